"""``twin validate`` runs each source's check: a missing data file is one located line and exit 1, not "ok"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import twin
from twin.cli import main
from twin.errors import SceneFileError, SourceCheckError
from twin.plugins import source_types

EMPTY = '{"type": "FeatureCollection", "features": []}'


def scene_text(roads: str = "roads.geojson", gauges: str = "gauges.csv", stations: str | None = None) -> str:
    stations_line = f"    stations: {{type: file, path: {stations}}}\n" if stations else ""
    return (
        "version: 1\n"
        "name: check\n"
        "frame: {center: [121.48, 31.23]}\n"
        "layers:\n"
        "  - id: outline\n"
        "    type: vector\n"
        "    source: {type: demo, dataset: boundary}\n"
        "  - id: flood\n"
        "    type: flood_points\n"
        f"    source: {{type: file_readings, path: {gauges}, value: depth}}\n"
        f"{stations_line}"
        "  - id: roads\n"
        "    type: vector\n"
        "    source:\n"
        "      type: file\n"
        f"      path: {roads}\n"
    )


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """A scene folder with the data files the scene names."""
    (tmp_path / "roads.geojson").write_text(EMPTY, encoding="utf-8")
    (tmp_path / "gauges.csv").write_text("lon,lat,time,depth\n121.48,31.23,2026-07-01T20:00:00+08:00,3\n", encoding="utf-8")
    return tmp_path


def validate(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, list[str], list[str]]:
    code = main(["validate", *map(str, paths)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_all_files_present_is_ok(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = folder / "scene.yaml"
    path.write_text(scene_text(), encoding="utf-8")
    assert validate(capsys, path) == (0, [f"{path}: ok (3 layers, 0 cameras)"], [])


def test_missing_file_source_is_one_located_line(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = folder / "scene.yaml"
    path.write_text(scene_text(roads="x.geojson"), encoding="utf-8")
    assert validate(capsys, path) == (1, [], [f"twin: error: {path}:15: layers[2].source.path: file 'x.geojson' not found (looked in {folder})"])


def test_missing_readings_file_is_one_located_line(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = folder / "scene.yaml"
    path.write_text(scene_text(gauges="data/gauges_2026.csv"), encoding="utf-8")
    expected = f"twin: error: {path}:10: layers[1].source.path: file 'data/gauges_2026.csv' not found (looked in {folder / 'data'})"
    assert validate(capsys, path) == (1, [], [expected])


def test_missing_nested_source_file_is_one_located_line(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A flood layer's ``stations:`` source spec is checked too (an absolute path here)."""
    path = folder / "scene.yaml"
    stations = folder / "elsewhere" / "stations.geojson"
    path.write_text(scene_text(stations=str(stations)), encoding="utf-8")
    expected = f"twin: error: {path}:11: layers[1].stations.path: file '{stations}' not found (looked in {stations.parent})"
    assert validate(capsys, path) == (1, [], [expected])


def test_bad_nested_source_spec_is_located(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = folder / "scene.yaml"
    path.write_text(scene_text().replace("value: depth}\n", "value: depth}\n    stations: {type: file, paht: s.geojson}\n"), encoding="utf-8")
    code, out, err = validate(capsys, path)
    assert code == 1 and out == [] and len(err) == 1
    assert err[0].startswith(f"twin: error: {path}:11: layers[1].stations.")
    assert "'paht'" in err[0] or "path: required key is missing" in err[0]


def test_relative_paths_are_read_from_the_scene_folder_not_the_working_directory(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = folder / "scene.yaml"
    path.write_text(scene_text(), encoding="utf-8")
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert validate(capsys, path)[0] == 0


def test_each_file_is_reported_until_the_first_failure(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = folder / "good.yaml", folder / "bad.yaml"
    good.write_text(scene_text(), encoding="utf-8")
    bad.write_text(scene_text(roads="gone.geojson"), encoding="utf-8")
    code, out, err = validate(capsys, good, bad)
    assert (code, out) == (1, [f"{good}: ok (3 layers, 0 cameras)"])
    assert err == [f"twin: error: {bad}:15: layers[2].source.path: file 'gone.geojson' not found (looked in {folder})"]


def test_scene_check_and_source_check_in_python(folder: Path) -> None:
    path = folder / "scene.yaml"
    path.write_text(scene_text(roads="x.geojson"), encoding="utf-8")
    scene = twin.Scene.from_file(path)  # loading reads no data and does not check files
    with pytest.raises(SceneFileError) as info:
        scene.check()
    assert (info.value.line, info.value.key) == (15, "layers[2].source.path")
    with pytest.raises(SourceCheckError) as source_info:
        scene["roads"].source.check()
    assert source_info.value.key == "path"
    assert str(source_info.value) == f"file 'x.geojson' not found (looked in {folder})"


def test_source_check_is_a_no_op_by_default() -> None:
    source = source_types().get("demo")(dataset="boundary")
    assert source.check() is None


def test_the_command_line_prints_the_same_line(folder: Path) -> None:
    path = folder / "scene.yaml"
    path.write_text(scene_text(roads="x.geojson"), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "twin.cli", "validate", str(path)], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"twin: error: {path}:15: layers[2].source.path: file 'x.geojson' not found (looked in {folder})\n"


def test_relative_stations_path_is_read_from_the_scene_folder(folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A nested source's relative path means the same as a layer's own ``source:`` path: next to the scene file."""
    stations = '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"id": "FP1", "name": "人民路"}, ' \
               '"geometry": {"type": "Point", "coordinates": [121.48, 31.23]}}]}'
    (folder / "stations.geojson").write_text(stations, encoding="utf-8")
    path = folder / "scene.yaml"
    path.write_text(scene_text(stations="stations.geojson"), encoding="utf-8")
    monkeypatch.chdir(folder.parent)  # not the scene's folder
    assert validate(capsys, path)[0] == 0
    scene = twin.Scene.from_file(path)
    assert scene["flood"].data()["name"].tolist() == ["人民路"]
    path.write_text(scene_text(stations="gone.geojson"), encoding="utf-8")
    assert validate(capsys, path) == (1, [], [f"twin: error: {path}:11: layers[1].stations.path: file 'gone.geojson' not found (looked in {folder})"])
