"""A file_readings source parses its file again only when the file changed, and never misses a change.

Polls of an unchanged file cost a ``stat`` (no parse, counted by ``parses``); a row a logger
appends arrives at the next poll; a rewrite with the same size inside the same step of the file
system's clock (the same ``mtime_ns``, as on file systems that keep times in seconds) arrives too,
because while a file's time is recent its bytes are compared. The CSV path (no shapely points)
gives the same readings and the same skips as the features path.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin.errors import CRSError
from twin.plugins import layer_types, source_types

T = dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.timezone.utc)
HEADER = "sensor,lon,lat,time,depth\n"


def _row(sensor: str, minutes_before: int, depth: float) -> str:
    return f"{sensor},121.49,31.24,{(T - dt.timedelta(minutes=minutes_before)).isoformat()},{depth}\n"


def _source(path: Path, **params: object) -> object:
    return source_types().get("file_readings")(path=str(path), sensor="sensor", value="depth", **params)


def _values(source: object) -> list[float]:
    return sorted(source.readings(T - dt.timedelta(hours=1), T + dt.timedelta(hours=1))["value"])


def _age(path: Path, seconds: float) -> None:
    """Set the file's modification time ``seconds`` in the past."""
    when = dt.datetime.now().timestamp() - seconds
    os.utime(path, (when, when))


def test_an_unchanged_file_is_parsed_once_and_an_appended_row_arrives_next_poll(tmp_path: Path) -> None:
    csv = tmp_path / "gauges.csv"
    csv.write_text(HEADER + _row("east", 10, 1.0) + _row("west", 10, 30.0), encoding="utf-8")
    _age(csv, 60)
    source = _source(csv)
    assert _values(source) == [1.0, 30.0] and source.parses == 1
    assert _values(source) == [1.0, 30.0] and _values(source) == [1.0, 30.0]
    assert source.parses == 1  # two more polls of the unchanged file: no parse
    with csv.open("a", encoding="utf-8") as f:
        f.write(_row("east", 3, 2.0))
    assert _values(source) == [1.0, 2.0, 30.0] and source.parses == 2
    assert _values(source) == [1.0, 2.0, 30.0] and source.parses == 2  # a recent file: its bytes are compared, not parsed


@pytest.mark.parametrize("suffix", [".csv", ".geojson"])
def test_a_rewrite_with_the_same_size_and_time_arrives(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"gauges{suffix}"

    def write(depth: float) -> None:
        if suffix == ".csv":
            path.write_text(HEADER + _row("east", 5, depth), encoding="utf-8")
        else:
            frame = pd.DataFrame({"sensor": ["east"], "time": [(T - dt.timedelta(minutes=5)).isoformat()], "depth": [depth]})
            import geopandas as gpd

            gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy([121.49], [31.24]), crs="EPSG:4326").to_file(path, driver="GeoJSON")

    write(1.5)
    stamp = path.stat()
    source = _source(path)
    assert _values(source) == [1.5] and source.parses == 1
    write(2.5)  # the same number of bytes ...
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # ... within the same tick of a coarse file clock
    assert path.stat().st_size == stamp.st_size and path.stat().st_mtime_ns == stamp.st_mtime_ns
    assert _values(source) == [2.5] and source.parses == 2


def test_a_file_whose_time_has_settled_is_trusted_by_size_and_time(tmp_path: Path) -> None:
    csv = tmp_path / "gauges.csv"
    csv.write_text(HEADER + _row("east", 5, 1.0), encoding="utf-8")
    source = _source(csv)
    assert _values(source) == [1.0]
    _age(csv, 10)  # another time: parsed again, and this read is not racy
    assert _values(source) == [1.0] and source.parses == 2
    assert source._stamp.digest is None  # nothing hashed for a file last changed long before the read
    assert _values(source) == [1.0] and source.parses == 2


def test_readings_through_a_layer_none_lost_across_rewrites(tmp_path: Path) -> None:
    csv = tmp_path / "gauges.csv"
    csv.write_text(HEADER + _row("east", 0, 1.0), encoding="utf-8")
    layer = layer_types().get("flood_points")("gauges", source={"type": "file_readings", "path": str(csv), "sensor": "sensor", "value": "depth"})
    layer.refresh(T)
    stamp = csv.stat()
    csv.write_text(HEADER + _row("east", 0, 1.5), encoding="utf-8")  # a revised value, the same size and time
    os.utime(csv, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    layer.refresh(T + dt.timedelta(seconds=5))
    with csv.open("a", encoding="utf-8") as f:
        f.write(_row("west", -1, 7.0))
    layer.refresh(T + dt.timedelta(minutes=1))
    assert sorted(layer.buffer.data["value"]) == [1.5, 7.0]
    assert layer.health.revised == 1 and not layer.health.dropped


def test_the_csv_path_skips_and_converts_as_the_features_path(tmp_path: Path) -> None:
    csv = tmp_path / "gcj.csv"
    rows = [f"s{i},{121.47 + i * 1e-3},{31.23},2026-07-01T09:5{i}:00+08:00,{i}\n" for i in range(3)]
    csv.write_text("sensor,lon,lat,time,depth\n" + rows[0] + "s9,x,31.2,2026-07-01T09:00:00,1\n" + rows[1] + rows[2], encoding="utf-8")
    with pytest.warns(UserWarning, match=r"gcj\.csv': skipped 1 of 4 rows: no numeric lon/lat \(feature 1\)$"):
        table = _source(csv, crs="GCJ02")._all()
    features = source_types().get("file")(path=str(csv), crs="GCJ02").read()
    assert np.allclose(table["lon"], features.geometry.x) and np.allclose(table["lat"], features.geometry.y)
    assert 1e-3 < 121.47 - table["lon"][0] < 1e-2  # GCJ-02 to WGS84 in Shanghai: ~500 m west
    assert list(table["sensor_id"]) == ["s0", "s1", "s2"] and list(table["time"].dt.minute) == [50, 51, 52]
    csv.write_text("sensor,lon,lat,time,depth\ns0,500000,3500000,2026-07-01T09:50:00Z,1\n", encoding="utf-8")
    with pytest.raises(CRSError, match=r"^file_readings source '.*gcj\.csv': coordinates .* outside ±180/±90"):
        _source(csv, crs="GCJ02")._all()
