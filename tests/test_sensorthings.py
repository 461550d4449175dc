"""SensorThings source against a real django-ogc-sensorthings 1.2 on SQLite (started here).

The server runs with ``MAX_TOP = 50``: it rejects larger ``$top`` values with HTTP 422 rather
than capping them, which the source must survive. Three Things (gauges) each have a Location
and a depth Datastream with an observation every 10 minutes for 3 hours.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
import requests

from twin.errors import SourceError
from twin_layers.sensorthings import SensorThingsSource

from servers import ServerProcess, start_sensorthings

T0 = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
GAUGES = {
    "gauge-A": {"type": "Point", "coordinates": [121.49, 31.24]},
    "gauge-B": {"type": "Point", "coordinates": [121.50, 31.20]},
    "gauge-C": {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [121.40, 31.22]}},
}
LONLAT = {"gauge-A": (121.49, 31.24), "gauge-B": (121.50, 31.20), "gauge-C": (121.40, 31.22)}
STEPS = 18  # 10-minute steps: T0+10min .. T0+180min


def value_of(index: int, minute: int) -> float:
    return index * 1000 + minute


@dataclass
class Sta:
    server: ServerProcess
    datastreams: dict[str, str]  # thing name -> datastream @iot.id

    @property
    def url(self) -> str:
        return self.server.url

    def post_observation(self, thing: str, when: dt.datetime, result: Any) -> None:
        body = {"phenomenonTime": when.isoformat(), "result": result, "Datastream": {"@iot.id": self.datastreams[thing]}}
        response = requests.post(self.url + "Observations", json=body, timeout=10)
        assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def sta(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sta]:
    server = start_sensorthings(tmp_path_factory.mktemp("sensorthings"), max_top=50)
    try:
        for index, (name, location) in enumerate(GAUGES.items()):
            thing = {
                "name": name,
                "description": f"water gauge {name}",
                "Locations": [{"name": f"{name} site", "description": "kerb", "encodingType": "application/geo+json", "location": location}],
                "Datastreams": [
                    {
                        "name": f"{name} depth",
                        "description": "water depth",
                        "unitOfMeasurement": {"name": "centimetre", "symbol": "cm", "definition": "http://qudt.org/vocab/unit/CentiM"},
                        "observationType": MEASUREMENT,
                        "Sensor": {"name": f"{name} sensor", "description": "ultrasonic", "encodingType": "text/html", "metadata": "http://example.org"},
                        "ObservedProperty": {"name": "water depth", "definition": "http://example.org/depth", "description": "depth"},
                        "Observations": [
                            {"phenomenonTime": (T0 + dt.timedelta(minutes=10 * k)).isoformat(), "result": value_of(index, 10 * k)} for k in range(1, STEPS + 1)
                        ],
                    }
                ],
            }
            response = requests.post(server.url + "Things", json=thing, timeout=10)
            assert response.status_code == 201, response.text
        # Things with their Datastreams: to-many $expand (to-one, Datastream→Thing, is wrong on this server)
        listing = requests.get(server.url + "Things", params={"$expand": "Datastreams($select=@iot.id)"}, timeout=10).json()["value"]
        yield Sta(server, {t["name"]: t["Datastreams"][0]["@iot.id"] for t in listing})
    finally:
        server.stop()


def source(sta: Sta, **params: Any) -> SensorThingsSource:
    return SensorThingsSource(url=sta.url, timeout=10, **params)


def test_readings_are_exactly_the_observations_in_the_interval(sta: Sta) -> None:
    src = source(sta, sensor_id="thing_name", page_size=50)
    frame = src.readings(T0 + dt.timedelta(minutes=30), T0 + dt.timedelta(minutes=90))
    assert list(frame.columns) == ["sensor_id", "lon", "lat", "time", "value"]
    assert isinstance(frame["time"].dtype, pd.DatetimeTZDtype)
    got = sorted(zip(frame["sensor_id"], frame["time"], frame["value"]))
    expected = sorted(
        (name, pd.Timestamp(T0 + dt.timedelta(minutes=m)), value_of(i, m)) for i, name in enumerate(GAUGES) for m in range(40, 91, 10)
    )
    assert got == expected  # 30 excluded (start <), 90 included (<= end)
    for name, (lon, lat) in LONLAT.items():
        rows = frame[frame["sensor_id"] == name]
        assert (rows["lon"] == lon).all() and (rows["lat"] == lat).all()


def test_paging_follows_next_links(sta: Sta) -> None:
    src = source(sta, page_size=5)
    frame = src.readings(T0, T0 + dt.timedelta(hours=3))
    assert len(frame) == 3 * STEPS and frame["value"].is_unique
    assert set(frame["sensor_id"]) == set(sta.datastreams.values())  # default sensor_id: the datastream's @iot.id
    # the Things list, then 18 observations per datastream at 5 a page (this server's pages
    # under Datastreams(id)/Observations overlap by one row: de-duplicated by @iot.id)
    assert src.pages_read >= 1 + 3 * 4


def test_top_above_the_servers_maximum_is_retried_smaller(sta: Sta, caplog: pytest.LogCaptureFixture) -> None:
    src = source(sta, page_size=100)
    with caplog.at_level(logging.WARNING):
        frame = src.readings(T0, T0 + dt.timedelta(hours=3))
    assert len(frame) == 3 * STEPS
    assert "rejected $top=100; trying $top=50" in caplog.text


def test_datastreams_by_name_or_id(sta: Sta) -> None:
    src = source(sta, datastreams=["gauge-A depth", sta.datastreams["gauge-C"]], sensor_id="datastream_name", page_size=50)
    frame = src.readings(T0, T0 + dt.timedelta(minutes=60))
    assert sorted(frame["sensor_id"].unique()) == ["gauge-A depth", "gauge-C depth"]
    assert len(frame) == 2 * 6
    with pytest.raises(SourceError, match=r"no datastream named or with id 'gauge-Z depth'; datastreams: gauge-A depth, gauge-B depth, gauge-C depth"):
        source(sta, datastreams=["gauge-Z depth"]).readings(T0, T0 + dt.timedelta(hours=1))


def test_incremental_polls_fetch_only_new_observations(sta: Sta) -> None:
    from twin.plugins import layer_types

    layer = layer_types().get("flood_points")("gauges", source={"type": "sensorthings", "url": sta.url, "sensor_id": "thing_name", "page_size": 50, "timeout": 10})
    src = layer.source
    assert isinstance(src, SensorThingsSource)
    first_end = T0 + dt.timedelta(hours=3, minutes=5)
    layer.refresh(first_end)
    assert layer.health.error is None and len(layer.buffer) == 3 * STEPS

    # new observations, one exactly at the next poll's end, one exactly at the first poll's end
    sta.post_observation("gauge-A", T0 + dt.timedelta(hours=3, minutes=10), 501.0)
    sta.post_observation("gauge-B", T0 + dt.timedelta(hours=3, minutes=20), 502.0)
    sta.post_observation("gauge-C", first_end, 503.0)
    second_end = T0 + dt.timedelta(hours=3, minutes=20)
    new = src.readings(first_end, second_end)
    assert sorted(new["value"]) == [501.0, 502.0]  # the one at first_end belonged to the first window
    # a poll whose start wobbles half a second back does not repeat the boundary observation
    again = src.readings(second_end - dt.timedelta(milliseconds=500), second_end + dt.timedelta(minutes=1))
    assert again.empty

    # through the layer: the next poll pulls only what came after its last poll
    layer2 = layer_types().get("flood_points")("gauges2", source={"type": "sensorthings", "url": sta.url, "sensor_id": "thing_name", "page_size": 50, "timeout": 10})
    layer2.refresh(first_end)
    assert len(layer2.buffer) == 3 * STEPS + 1  # 503, at first_end, is in its first window
    sta.post_observation("gauge-A", T0 + dt.timedelta(hours=3, minutes=30), 504.0)
    layer2.refresh(T0 + dt.timedelta(hours=3, minutes=31))
    assert len(layer2.buffer) == 3 * STEPS + 4  # + 501, 502 and 504, nothing twice
    assert layer2.health.last_report is not None and layer2.health.last_report.total_dropped == 0
