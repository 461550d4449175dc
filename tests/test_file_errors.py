"""File data errors a new user meets: each is one line naming the file, column or feature, before anything later fails."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

import twin
from twin.errors import SourceError, TwinError, TwinWarning
from twin.plugins import layer_types, source_types

TWIN = [sys.executable, "-m", "twin.cli"]
T = "2026-07-01T10:02:00+08:00"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TWIN, *args], check=False, capture_output=True, text=True, timeout=180)


def scene_file(folder: Path, layers: str, *, extra: str = "") -> Path:
    path = folder / "scene.yaml"
    path.write_text(f"version: 1\nname: t\n{extra}layers:\n{layers}", encoding="utf-8")
    return path


def vector_entry(layer_id: str, source: str) -> str:
    return f"  - id: {layer_id}\n    type: vector\n    source: {source}\n"


def feature(geometry: dict | None) -> dict:
    return {"type": "Feature", "properties": {"n": 1}, "geometry": geometry}


def write_geojson(path: Path, geometries: list[dict | None]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature(g) for g in geometries]}), encoding="utf-8")
    return path


def triangle(x: float, *, closed: bool = True) -> dict:
    ring = [[x, 31.22], [x + 0.003, 31.22], [x + 0.003, 31.223]]
    return {"type": "Polygon", "coordinates": [ring + ([ring[0]] if closed else [])]}


# -- 1. a missing data file --------------------------------------------------------------------------
def test_missing_file_names_the_path_as_given_and_resolved(tmp_path: Path) -> None:
    scene = scene_file(tmp_path, vector_entry("roads", "{type: file, path: data/roads.geojson}"))
    result = run("render", str(scene), "-o", str(tmp_path / "x.png"), "--size", "320x200")
    assert result.returncode == 1
    line = f"layer 'roads': file source 'data/roads.geojson': file not found: {tmp_path / 'data' / 'roads.geojson'}"
    assert result.stderr.strip().splitlines() == [f"twin: error: {line}"]
    loaded = twin.Scene.from_file(scene)
    with pytest.raises(SourceError) as err:
        _ = loaded.frame
    assert str(err.value) == line
    assert f"layer 'roads': {loaded['roads'].health.error}" == line  # the app's badge says the same


def test_every_layer_failing_names_each_layer_and_why(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    scene = scene_file(tmp_path, vector_entry("a", "{type: file, path: a.geojson}") + vector_entry("b", "{type: file, path: empty.csv}"))
    result = run("render", str(scene), "-o", str(tmp_path / "x.png"), "--size", "320x200")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        ("twin: error: no layer of scene 't' could be loaded: "
        f"layer 'a': file source 'a.geojson': file not found: {tmp_path / 'a.geojson'}; "
        "layer 'b': file source 'empty.csv': cannot read CSV: No columns to parse from file")
    ]


def test_one_missing_file_does_not_stop_the_other_layers_in_the_app_view(tmp_path: Path) -> None:
    write_geojson(tmp_path / "good.geojson", [triangle(121.47)])
    scene = twin.Scene.from_file(scene_file(tmp_path, vector_entry("good", "{type: file, path: good.geojson}") + vector_entry("gone", "{type: file, path: gone.geojson}")))
    from twin.render.view import SceneView

    view = SceneView(scene, size=(160, 100))  # the wall's view: not strict
    view.sync()
    view.close()
    assert view.errors["gone"].message == f"file source 'gone.geojson': file not found: {tmp_path / 'gone.geojson'}"
    assert "good" not in view.errors and view.empty_layers() == []


# -- 2. unclosed or too-short rings, null geometries -------------------------------------------------
def test_unclosed_ring_is_closed_and_a_two_point_ring_skipped_the_rest_loads(tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "parcels.geojson", [
        triangle(121.47),
        triangle(121.474, closed=False),  # repaired: GeoJSON rings must repeat their first point
        {"type": "Polygon", "coordinates": [[[121.48, 31.22], [121.481, 31.22]]]},  # cannot be a ring
        None,
        triangle(121.484),
    ])
    layer = layer_types().get("vector")("parcels", source={"type": "file", "path": str(path)})
    with pytest.warns(TwinWarning) as caught:
        data = layer.data()
    assert len(data) == 3 and list(data.index) == [0, 1, 2]
    assert [str(w.message) for w in caught] == [
        (f"layer 'parcels' (file source '{path}'): skipped 2 of 5 features: "
        "no geometry (feature 3); polygon ring of 1-3 points (feature 2); repaired 1: unclosed ring closed (feature 1)")
    ]
    assert layer.health.last_report.accepted == 3
    assert layer.health.last_report.dropped == {"no geometry": 1, "polygon ring of 1-3 points": 1}
    assert shapely.get_num_coordinates(data.geometry.iloc[1]) == 4  # closed


def test_unclosed_ring_renders_with_the_warning_line(tmp_path: Path) -> None:
    write_geojson(tmp_path / "p.geojson", [triangle(121.47), triangle(121.474, closed=False), triangle(121.478)])
    scene = scene_file(tmp_path, vector_entry("p", "{type: file, path: p.geojson}"))
    result = run("render", str(scene), "-o", str(tmp_path / "x.png"), "--size", "320x200")
    assert result.returncode == 0, result.stderr
    assert "twin: warning: layer 'p' (file source 'p.geojson'): repaired 1: unclosed ring closed (feature 1)" in result.stderr.splitlines()
    assert "no data to centre" not in result.stderr


def test_a_geopackage_with_an_unclosed_ring_loads_too(tmp_path: Path) -> None:
    """The same kind in another format: the fallback decodes GDAL's geometries one by one, whatever the file."""
    path = tmp_path / "p.gpkg"
    gpd.GeoDataFrame({"n": [1, 2]}, geometry=[shapely.from_geojson(json.dumps(triangle(121.47))), shapely.box(121.48, 31.22, 121.49, 31.23)],
                     crs="EPSG:4326").to_file(path, layer="parcels")
    source = source_types().get("file")(path=str(path), layer="parcels")
    assert len(source.read()) == 2 and source.last_skipped == {}
    with pytest.raises(SourceError) as err:
        source_types().get("file")(path=str(path), layer="roads").read()
    assert str(err.value).startswith(f"file source '{path}': ") and str(err.value).endswith("; layers: parcels")


# -- 3. missing columns, named with those that exist ---------------------------------------------------
READINGS = "lon,lat_wgs,time,value\n121.47,31.22,2026-07-01T10:00:00+08:00,3\n121.48,31.23,2026-07-01T10:01:00+08:00,4\n"


def test_readings_csv_without_the_latitude_column_is_one_line_in_cli_and_badge(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text(READINGS, encoding="utf-8")
    entry = "  - id: crowd\n    type: h3\n    source: {type: file_readings, path: x.csv, lat: latitude}\n"
    scene = scene_file(tmp_path, entry, extra=f"frame: {{center: [121.47, 31.22]}}\ntime: {T}\n")
    line = "file_readings source 'x.csv': no column 'latitude'; columns: lon, lat_wgs, time, value"
    result = run("render", str(scene), "-o", str(tmp_path / "x.png"), "--size", "320x200")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"twin: WARNING: twin.live_layer: layer crowd: poll failed: {line}",  # the wall's log line, once per poll
        f"twin: error: layer 'crowd': {line}",  # an H3 layer with nothing else to show fails with its source's error
    ]
    loaded = twin.Scene.from_file(scene)
    loaded.tick(dt.datetime.fromisoformat(T))
    assert loaded["crowd"].health.error == line


@pytest.mark.parametrize(
    ("csv", "params", "message"),
    [
        ("x,lat\n1,2\n", {"type": "file"}, "file source 'p.csv': no column 'lon'; columns: x, lat"),
        ("x,y\n1,2\n", {"type": "file"}, "file source 'p.csv': no columns 'lon', 'lat'; columns: x, y"),
        ("lon,lat,t,value\n121,31,2026-07-01T10:00Z,1\n", {"type": "file_readings"}, "file_readings source 'p.csv': no column 'time'; columns: lon, lat, t, value"),
        ("lon,lat,time,v\n121,31,2026-07-01T10:00Z,1\n", {"type": "file_readings", "value": "depth", "sensor": "gauge"},
         "file_readings source 'p.csv': no columns 'depth', 'gauge'; columns: lon, lat, time, v"),
    ],
)
def test_every_missing_column_is_named_with_the_columns_that_exist(tmp_path: Path, csv: str, params: dict, message: str) -> None:
    (tmp_path / "p.csv").write_text(csv, encoding="utf-8")
    spec = dict(params)
    source = source_types().get(spec.pop("type"))(path="p.csv", **spec)
    source.bind_base_dir(tmp_path)
    with pytest.raises(SourceError) as err:
        source.readings(dt.datetime(2026, 7, 1, tzinfo=dt.timezone.utc), dt.datetime(2026, 7, 2, tzinfo=dt.timezone.utc)) if hasattr(source, "readings") else source.read()
    assert str(err.value) == message


def test_readings_from_geojson_without_the_time_property(tmp_path: Path) -> None:
    write_geojson(tmp_path / "r.geojson", [{"type": "Point", "coordinates": [121.47, 31.22]}])
    source = source_types().get("file_readings")(path=str(tmp_path / "r.geojson"))
    with pytest.raises(SourceError) as err:
        source.readings(dt.datetime(2026, 7, 1, tzinfo=dt.timezone.utc), dt.datetime(2026, 7, 2, tzinfo=dt.timezone.utc))
    assert str(err.value) == f"file_readings source '{tmp_path / 'r.geojson'}': no column 'time'; columns: n"


def test_parquet_without_geometry_names_its_columns(tmp_path: Path) -> None:
    pd.DataFrame({"name": ["a"], "height": [3.0]}).to_parquet(tmp_path / "t.parquet")
    with pytest.raises(SourceError) as err:
        source_types().get("file")(path=str(tmp_path / "t.parquet")).read()
    assert str(err.value) == f"file source '{tmp_path / 't.parquet'}': no geometry column (no GeoParquet 'geo' metadata); columns: name, height"


def test_csv_rows_without_coordinates_are_skipped_and_counted_by_the_layer(tmp_path: Path) -> None:
    (tmp_path / "poi.csv").write_text("lon,lat,name\n121.47,31.22,a\n,31.2,b\n121.48,north,c\n121.49,31.24,d\n", encoding="utf-8")
    layer = layer_types().get("vector")("poi", source={"type": "file", "path": str(tmp_path / "poi.csv")})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert layer.data()["name"].tolist() == ["a", "d"]
    assert [str(w.message) for w in caught] == [f"layer 'poi' (file source '{tmp_path / 'poi.csv'}'): skipped 2 of 4 features: no numeric lon/lat (features 1, 2)"]


# -- malformed files --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"type": "FeatureCollection", "features": [', "not valid JSON: Expecting value at line 1 column 44"),
        ("[1, 2]", "not GeoJSON: the top level is an array, expected a FeatureCollection, Feature or geometry object"),
        ('{"type": "FeatureCollection", "features": {"a": 1}}', "not GeoJSON: a FeatureCollection needs a 'features' list"),
    ],
)
def test_malformed_geojson_is_one_line(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "bad.geojson").write_text(text, encoding="utf-8")
    scene = scene_file(tmp_path, vector_entry("bad", "{type: file, path: bad.geojson}"))
    result = run("render", str(scene), "-o", str(tmp_path / "x.png"), "--size", "320x200")
    assert result.stderr.strip().splitlines() == [f"twin: error: layer 'bad': file source 'bad.geojson': cannot read: {problem}"]


def test_a_layer_error_is_a_twin_error_not_a_frame_error(tmp_path: Path) -> None:
    scene = twin.Scene("s")
    scene.add(layer_types().get("vector")("v", source={"type": "file", "path": str(tmp_path / "none.geojson")}))
    with pytest.raises(TwinError, match=r"^layer 'v': file source .*none\.geojson': file not found$"):
        _ = scene.frame
