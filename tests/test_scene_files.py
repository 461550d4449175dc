"""Scene files: validation with file, line and key; File -> Scene -> file round trips."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

import twin
from twin.errors import SceneFileError, TwinError
from twin.plugins import layer_types

GOOD = """\
version: 1
name: 黄浦 test
frame: {crs: EPSG:32651, center: [121.48, 31.23]}
time: 2026-07-01T18:00:00+08:00
settings: {background: "#101010", title: Test}
cameras:
  overview: {target: [121.48, 31.23], heading: 20, pitch: 50, range: 6000}
  street: {position: [121.47, 31.22, 300], focal_point: [121.48, 31.23, 0]}
camera: overview
layers:
  - id: roads
    type: vector
    source: {type: file, path: roads.geojson}
    color: "#cccccc"
    line_width: 3
  - id: districts
    type: vector
    title: Districts
    opacity: 0.5
    source: {type: file, path: d.geojson, crs: GCJ02}
    color_by: name
"""


def write(tmp_path: Path, text: str, name: str = "scene.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> SceneFileError:
    with pytest.raises(SceneFileError) as info:
        twin.Scene.from_file(write(tmp_path, text))
    return info.value


def test_good_file_loads(tmp_path: Path) -> None:
    scene = twin.Scene.from_file(write(tmp_path, GOOD))
    assert [layer.id for layer in scene.layers] == ["roads", "districts"]
    assert scene.name == "黄浦 test"
    assert scene.time == dt.datetime(2026, 7, 1, 18, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert scene.camera == "overview" and set(scene.cameras) == {"overview", "street"}
    assert scene["districts"].opacity == 0.5 and scene["districts"].title == "Districts"
    assert scene.frame.crs.to_epsg() == 32651


def test_file_scene_file_round_trip(tmp_path: Path) -> None:
    first = twin.Scene.from_file(write(tmp_path, GOOD))
    out = first.to_file(tmp_path / "again.yaml")
    second = twin.Scene.from_file(out)
    assert second.to_dict() == first.to_dict()
    assert out.read_text(encoding="utf-8") == second.to_file(tmp_path / "third.yaml").read_text(encoding="utf-8")
    assert first.to_dict()["layers"][1]["source"] == {"type": "file", "path": "d.geojson", "crs": "GCJ02"}


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        (GOOD.replace("    line_width: 3", "    line_widht: 3"), 15, "layers[0].line_widht", ["did you mean 'line_width'"]),
        (GOOD.replace("name: 黄浦 test", "nmae: x"), 2, "nmae", ["did you mean 'name'"]),
        (GOOD.replace("crs: GCJ02}", "crs: GCJ02, encoding: utf8}"), 20, "layers[1].source.encoding", ["unknown key", "known keys"]),
        (GOOD.replace("heading: 20", "headin: 20"), 7, "cameras.overview.headin", ["did you mean 'heading'"]),
        (GOOD.replace("opacity: 0.5", "opacity: high"), 19, "layers[1].opacity", ["number"]),
        (GOOD.replace("    type: vector\n    title", "    type: vectr\n    title"), 17, "layers[1].type", ["unknown layer type 'vectr'", "did you mean 'vector'", "known types"]),
        (GOOD.replace("{type: file, path: roads.geojson}", "{type: ftp, path: roads.geojson}"), 13, "layers[0].source.type", ["unknown source type 'ftp'", "file"]),
        (GOOD.replace("camera: overview", "camera: nope"), 9, "camera", ["unknown camera 'nope'"]),
        (GOOD.replace("version: 1", "version: 7"), 1, "version", ["unsupported scene schema version 7"]),
        (GOOD.replace("crs: EPSG:32651", "crs: EPSG:4326"), 3, "frame.crs", ["not a projected CRS"]),
        (GOOD.replace("crs: GCJ02}", "crs: MARS2}"), 20, "layers[1].source.crs", ["unknown CRS 'MARS2'"]),
        (GOOD.replace("id: districts", "id: roads"), 16, "layers[1].id", ["duplicate layer id"]),
        (GOOD.replace('color: "#cccccc"', 'color: "#zzz"'), 14, "layers[0].color", ["invalid colour"]),
        (GOOD.replace("    color_by: name", "    color_by: name\n    color_by: kind"), 22, "layers[1].color_by", ["duplicate key"]),
        (GOOD + "  - {type: vector}\n", 22, "layers[2].id", ["required"]),
    ],
)
def test_errors_name_file_line_and_key(tmp_path: Path, text: str, line: int, key: str, words: list[str]) -> None:
    err = error_of(tmp_path, text)
    assert err.file and err.file.endswith("scene.yaml")
    assert (err.line, err.key) == (line, key), str(err)
    message = str(err)
    assert message.startswith(f"{err.file}:{line}: {key}:")
    for word in words:
        assert word in message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    err = error_of(tmp_path, "version: 1\nlayers:\n  - id: a\n   type: [vector\n")
    assert err.line in (3, 4) and "invalid YAML" in str(err)


def test_yaml_is_safe_loaded(tmp_path: Path) -> None:
    err = error_of(tmp_path, "version: 1\nname: !!python/object/apply:os.system ['echo hacked']\n")
    assert err.line == 2 and "python/object" in str(err)


def test_scene_file_must_be_a_mapping(tmp_path: Path) -> None:
    assert "mapping" in str(error_of(tmp_path, "- a\n- b\n"))


def test_missing_scene_file() -> None:
    with pytest.raises(SceneFileError, match="nothing.yaml: scene file not found"):
        twin.Scene.from_file("nothing.yaml")


def test_python_api_builds_the_same_scene(tmp_path: Path) -> None:
    Vector = layer_types().get("vector")
    scene = twin.Scene("api", center=(121.48, 31.23), cameras={"top": {"target": [121.48, 31.23], "pitch": 90}}, camera="top")
    points = gpd.GeoDataFrame({"name": ["外滩"]}, geometry=[shapely.Point(121.49, 31.24)], crs="EPSG:4326")
    scene.add(Vector("poi", data=points, color="red"))
    scene.add(Vector("roads", source={"type": "file", "path": "roads.geojson"}), index=0)
    assert [layer.id for layer in scene.layers] == ["roads", "poi"]
    with pytest.raises(TwinError, match="already has a layer with id 'poi'"):
        scene.add(Vector("poi", data=points))
    saved = scene.to_file(tmp_path / "x.yaml")  # in-memory data is written beside the file, then read from there
    assert (tmp_path / "x_data" / "poi.geojson").is_file()
    again = twin.Scene.from_file(saved)
    assert again.to_dict() == scene.to_dict() and again["poi"].data()["name"].tolist() == ["外滩"]
    scene.remove("poi")
    again = twin.Scene.from_file(scene.to_file(tmp_path / "x.yaml"))
    assert again.to_dict() == scene.to_dict()


def test_layer_params_are_validated_in_python_too() -> None:
    Vector = layer_types().get("vector")
    with pytest.raises(TwinError, match="unknown key 'colour'.*did you mean 'color'"):
        Vector("x", data=gpd.GeoDataFrame(geometry=[], crs="EPSG:4326"), colour="red")
    with pytest.raises(TwinError, match="layer id"):
        Vector("bad id!", data=gpd.GeoDataFrame(geometry=[], crs="EPSG:4326"))


def test_style_change_does_not_rebuild_geometry(districts_scene: Path) -> None:
    scene = twin.Scene.from_file(districts_scene)
    layer = scene["districts"]
    first = layer.visual(scene.frame)
    layer.update(palette="Set3")
    second = layer.visual(scene.frame)
    assert second.mesh is first.mesh and second.geometry_version == first.geometry_version
    assert second.style_version > first.style_version
    assert (second.style.colors != first.style.colors).any()
    layer.update(elevation=5.0)
    third = layer.visual(scene.frame)
    assert third.mesh is not first.mesh and third.geometry_version > first.geometry_version
    assert float(third.mesh.points[:, 2].min()) == pytest.approx(5.0)


def test_missing_data_file_names_the_file(tmp_path: Path) -> None:
    scene = twin.Scene.from_file(write(tmp_path, GOOD))
    with pytest.raises(TwinError, match=r"roads\.geojson.*file not found"):
        scene["roads"].data()


def test_frame_centres_on_the_data_when_not_given(districts_scene: Path) -> None:
    scene = twin.Scene.from_file(districts_scene)
    lon, lat, _ = scene.frame.local_to_lonlat([0.0, 0.0, 0.0])
    assert 121.0 < lon[0] < 122.0 and 30.6 < lat[0] < 31.9


ALERTS = GOOD + """alerts:
  - {id: deep, kind: threshold, layer: districts, above: 20, clear: 18, for: 2m, severity: critical}
  - {id: feed, kind: stale, layer: roads, max_age: 5m}
"""


def test_alert_rules_round_trip(tmp_path: Path) -> None:
    scene = twin.Scene.from_file(write(tmp_path, ALERTS))
    assert [r.id for r in scene.alerts] == ["deep", "feed"]
    assert scene.alerts[0].for_.total_seconds() == 120
    again = twin.Scene.from_file(scene.to_file(tmp_path / "again.yaml"))
    assert again.to_dict() == scene.to_dict() and again.alerts == scene.alerts


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "words"),
    [
        ("layer: roads", "layer: rodas", 24, "alerts[1].layer", ["unknown layer 'rodas'"]),
        ("above: 20, clear", "abov: 20, clear", 23, "alerts[0].abov", ["did you mean 'above'"]),
        ("kind: stale", "kind: smoke", 24, "alerts[1].kind", ["unknown rule kind"]),
        ("for: 2m", "for: later", 23, "alerts[0].for", ["not a duration"]),
        ("id: feed", "id: deep", 24, "alerts[1].id", ["duplicate alert rule id"]),
    ],
)
def test_bad_alert_rules_are_located(tmp_path: Path, old: str, new: str, line: int, key: str, words: list[str]) -> None:
    err = error_of(tmp_path, ALERTS.replace(old, new))
    assert (err.line, err.key) == (line, key), str(err)
    for word in words:
        assert word in str(err)
