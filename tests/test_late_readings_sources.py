"""Late readings reach the layer from every readings source, not only OGC API.

A reading written to the service after later polls have passed its time stamp must still
reach the layer: within ``lookback`` by the next poll, later than that by the next ``sweep``
(and then counted as ``late`` in the layer's health).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import requests

from twin.plugins import layer_types

from servers import ServerProcess, start_sensorthings

T = dt.datetime(2026, 7, 1, 10, tzinfo=dt.timezone.utc)
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


@pytest.fixture(scope="module")
def sta(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    server = start_sensorthings(tmp_path_factory.mktemp("sensorthings-late"), max_top=50)
    try:
        thing = {
            "name": "gauge-east",
            "description": "water gauge",
            "Locations": [{"name": "kerb", "description": "kerb", "encodingType": "application/geo+json",
                           "location": {"type": "Point", "coordinates": [121.49, 31.24]}}],
            "Datastreams": [{
                "name": "east depth", "description": "water depth", "observationType": MEASUREMENT,
                "unitOfMeasurement": {"name": "centimetre", "symbol": "cm", "definition": "http://qudt.org/vocab/unit/CentiM"},
                "Sensor": {"name": "ultrasonic", "description": "ultrasonic", "encodingType": "text/html", "metadata": "http://example.org"},
                "ObservedProperty": {"name": "water depth", "definition": "http://example.org/depth", "description": "depth"},
                "Observations": [{"phenomenonTime": (T - dt.timedelta(minutes=m)).isoformat(), "result": float(m)} for m in (30, 20, 10, 1)],
            }],
        }
        assert requests.post(server.url + "Things", json=thing, timeout=10).status_code == 201
        stream = requests.get(server.url + "Datastreams", timeout=10).json()["value"][0]["@iot.id"]
        yield server, stream
    finally:
        server.stop()


def post(server: ServerProcess, stream: str, when: dt.datetime, value: float) -> None:
    body = {"phenomenonTime": when.isoformat(), "result": value, "Datastream": {"@iot.id": stream}}
    assert requests.post(server.url + "Observations", json=body, timeout=10).status_code == 201


def test_sensorthings_observations_posted_late_reach_the_layer(sta: tuple[ServerProcess, str]) -> None:
    server, stream = sta
    layer = layer_types().get("flood_points")(
        "gauges", source={"type": "sensorthings", "url": server.url, "sensor_id": "thing_name", "timeout": 10, "poll_interval": "5s"}
    )
    layer.refresh(T)
    assert sorted(layer.buffer.data["value"]) == [1.0, 10.0, 20.0, 30.0]
    post(server, stream, T - dt.timedelta(minutes=2), 2.0)  # two minutes late: within the 5-minute lookback
    post(server, stream, T - dt.timedelta(minutes=25), 25.0)  # 25 minutes late: only a sweep finds it
    layer.refresh(T + dt.timedelta(seconds=10))
    assert sorted(layer.buffer.data["value"]) == [1.0, 2.0, 10.0, 20.0, 30.0]
    assert layer.health.late == 0 and layer.health.newest_reading == T - dt.timedelta(minutes=1)
    layer.refresh(T + dt.timedelta(minutes=16))  # the default sweep: every 15 minutes
    assert sorted(layer.buffer.data["value"]) == [1.0, 2.0, 10.0, 20.0, 25.0, 30.0]
    assert layer.health.late == 1 and not layer.health.dropped


def test_rows_a_logger_appends_late_to_a_csv_reach_the_layer(tmp_path) -> None:
    csv = tmp_path / "gauges.csv"
    header = "sensor,lon,lat,time,depth\n"

    def row(sensor: str, minutes_before: int, depth: float) -> str:
        return f"{sensor},121.49,31.24,{(T - dt.timedelta(minutes=minutes_before)).isoformat()},{depth}\n"

    csv.write_text(header + row("east", 10, 1.0) + row("west", 10, 30.0), encoding="utf-8")
    layer = layer_types().get("flood_points")(
        "gauges", source={"type": "file_readings", "path": str(csv), "sensor": "sensor", "value": "depth"}
    )
    layer.refresh(T)
    assert len(layer.buffer) == 2
    with csv.open("a", encoding="utf-8") as f:  # the logger catches up: one reading from before the last poll, one new
        f.write(row("east", 3, 2.0) + row("west", -1, 31.0))
    layer.refresh(T + dt.timedelta(minutes=1))
    assert sorted(layer.buffer.data["value"]) == [1.0, 2.0, 30.0, 31.0]
    assert layer.health.newest_reading == T + dt.timedelta(minutes=1)
    assert not layer.health.dropped and layer.health.late == 0
