"""Scene files keep their meaning and fail safely: YAML 1.1 booleans stay text, hostile or damaged files give one located line fast."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

import twin
from twin.errors import SceneFileError
from twin.scene.yamlfile import MAX_SCENE_BYTES, load_yaml

CASES = Path(__file__).resolve().parents[1].parent / "shared" / "cases"

SQUARE = [[0, 0], [0.0002, 0], [0.0002, 0.0002], [0, 0.0002], [0, 0]]


def write(folder: Path, text: str, name: str = "scene.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def footprints(folder: Path, column: str, values: list[str]) -> Path:
    """A GeoJSON file with one square building per value of ``column``."""
    features = [
        {"type": "Feature", "properties": {column: value, "height": 10 + i},
         "geometry": {"type": "Polygon", "coordinates": [[[121.47 + 0.001 * i + x, 31.23 + y] for x, y in SQUARE]]}}
        for i, value in enumerate(values)
    ]
    path = folder / "footprints.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def selected(scene: twin.Scene, layer_id: str = "buildings") -> list[int]:
    layer = scene[layer_id]
    return layer.selected_rows(layer.data()).tolist()


def located_error(path: Path, *, within: float = 1.0) -> SceneFileError:
    """The error reading ``path`` gives: a SceneFileError on one line, never 'unexpected', in ``within`` seconds."""
    start = time.perf_counter()
    with pytest.raises(SceneFileError) as info:
        twin.Scene.from_file(path)
    assert time.perf_counter() - start < within
    message = str(info.value)
    assert "\n" not in message and "unexpected" not in message
    assert message.startswith(f"{path}:{info.value.line}:")
    return info.value


# -- YAML 1.1 booleans: the "Norway problem" ---------------------------------------------------------------------------

def test_case_osm_building_yes_is_the_text_yes() -> None:
    """shared/cases/yaml-booleans: ``filter: {building: [yes, house]}`` keeps rows 0, 1 and 3 (tags yes, house, yes)."""
    scene = twin.Scene.from_file(CASES / "yaml-booleans" / "scene.yaml")
    assert scene["buildings"].params.filter == {"building": ["yes", "house"]}
    assert selected(scene) == [0, 1, 3]


@pytest.mark.parametrize(
    ("values", "filter_text", "rows"),
    [
        (["on", "off", "on", "yes"], "[on]", [0, 2]),
        (["no", "cn", "se", "no"], "[no, se]", [0, 2, 3]),  # no = Norway, an ISO country code
        (["y", "n", "Y", "N"], "[n, N]", [1, 3]),
        (["OFF", "On", "TRUE", "x"], "[OFF, On]", [0, 1]),
    ],
)
def test_yaml_11_booleans_in_filters_stay_text(tmp_path: Path, values: list[str], filter_text: str, rows: list[int]) -> None:
    footprints(tmp_path, "tag", values)
    text = f"version: 1\nframe: {{center: [121.472, 31.2301]}}\nlayers:\n  - {{id: buildings, type: buildings, source: {{type: file, path: footprints.geojson}}, filter: {{tag: {filter_text}}}}}\n"
    assert selected(twin.Scene.from_file(write(tmp_path, text))) == rows


def test_yaml_12_booleans_still_work(tmp_path: Path) -> None:
    text = "version: 1\nsettings: {show_legend: FALSE}\nlayers:\n  - {id: a, type: vector, visible: false}\n  - {id: b, type: vector, visible: True}\n"
    scene = twin.Scene.from_file(write(tmp_path, text))
    assert (scene["a"].visible, scene["b"].visible, scene.settings.show_legend) == (False, True, False)


def test_other_yaml_11_typing_keeps_text_and_decimals() -> None:
    """Base-60 (``1:30``) and leading-zero octal (``010``) are YAML 1.1 only; YAML 1.2 numbers still are numbers."""
    data, _ = load_yaml("a: [1:30, 010, 0o17, 0x1F, 1e3, -2.5, .inf, ~, null, 2026-07-01]\n")
    assert data["a"][:8] == ["1:30", 10, 15, 31, 1000.0, -2.5, float("inf"), None]
    assert str(data["a"][9]) == "2026-07-01"


@pytest.mark.parametrize("value", ["yes", "no", "on", "off", "y", "N", "1:30", "010", "1e3", "true", "null", "~", "3.5", "0x1F"])
def test_written_text_means_the_same_to_yaml_11_readers(tmp_path: Path, value: str) -> None:
    footprints(tmp_path, "tag", [value])
    text = f"version: 1\nlayers:\n  - id: buildings\n    type: buildings\n    source: {{type: file, path: footprints.geojson}}\n    filter: {{tag: ['{value}']}}\n"
    scene = twin.Scene.from_file(write(tmp_path, text))
    written = scene.to_file(tmp_path / "again.yaml")
    assert yaml.safe_load(written.read_text(encoding="utf-8"))["layers"][0]["filter"] == {"tag": [value]}, "PyYAML's YAML 1.1 reader"
    again = twin.Scene.from_file(written)
    assert again["buildings"].params.filter == {"tag": [value]}
    assert selected(again) == [0]


# -- hostile and damaged files -------------------------------------------------------------------------------------------

def test_case_alias_bomb() -> None:
    err = located_error(CASES / "yaml-abuse" / "alias_bomb_5.yaml")
    assert err.line == 8 and err.key is not None and err.key.startswith("a4[")
    assert "aliases expand to more than 100,000 nodes" in str(err)


def test_case_control_character() -> None:
    err = located_error(CASES / "yaml-abuse" / "control_char.yaml")
    assert err.line == 4
    assert "character U+008E at column 48 is not allowed" in str(err)


def test_case_infinite_duration() -> None:
    err = located_error(CASES / "yaml-abuse" / "duration_inf.yaml")
    assert (err.line, err.key) == (5, "layers[0].source.storm")
    assert "duration inf is not a finite number of seconds" in str(err)


def alias_bomb(levels: int, width: int = 10) -> str:
    lines = ["version: 1", "layers: []", "a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("levels", "width", "line"), [(7, 10, 7), (9, 10, 7), (40, 2, 17)])
def test_alias_bombs_fail_fast_in_bounded_memory(tmp_path: Path, levels: int, width: int, line: int) -> None:
    """A 7-level bomb is 10 million nodes (13 s and 2.3 GB before): now refused while composing, before building."""
    path = write(tmp_path, alias_bomb(levels, width))
    tracemalloc.start()
    try:
        err = located_error(path, within=0.5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20
    assert err.line == line and "alias bomb" in str(err)


def test_aliases_within_the_limit_still_work(tmp_path: Path) -> None:
    text = "version: 1\ncameras:\n  a: &cam {target: [121.48, 31.23], pitch: 60}\n  b: *cam\nlayers: []\n"
    scene = twin.Scene.from_file(write(tmp_path, text))
    assert scene.cameras["a"] == scene.cameras["b"]


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("version: 1\nname: &a [1, *a]\n", 2, "name[1]"),
        ("version: 1\nlayers:\n  - &m {id: x, type: vector, more: *m}\n", 3, "layers[0].more"),
    ],
)
def test_recursive_aliases_are_refused(tmp_path: Path, text: str, line: int, key: str) -> None:
    err = located_error(write(tmp_path, text))
    assert (err.line, err.key) == (line, key) and "recursive alias" in str(err)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("version: 1\nname: a\x00b\n", 2, "character U+0000 at column 8"),
        ("version: 1\nname: \x1b[31mred\n", 2, "character U+001B at column 7"),
        ("version: 1\n# note\x07\nlayers: []\n", 2, "character U+0007 at column 7"),
    ],
)
def test_control_characters_name_line_and_column(tmp_path: Path, text: str, line: int, words: str) -> None:
    err = located_error(write(tmp_path, text))
    assert err.line == line and words in str(err)


def test_escaped_control_characters_in_quotes_are_text(tmp_path: Path) -> None:
    assert twin.Scene.from_file(write(tmp_path, 'version: 1\nname: "a\\0b"\n')).name == "a\x00b"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (".inf", "not a finite number"), ("-.inf", "not a finite number"), (".nan", "not a finite number"), ("1.0e+400", "not a finite number"),
        ("1e400s", "is not a duration"), ("-5m", "is negative"), ("-300", "is negative"), ("11y", "is not a duration"),
        ("4000d", "longer than 10 years"), ("P11Y", "longer than 10 years"), ("99999999999999999999h", "longer than 10 years"),
    ],
)
def test_unbounded_durations_name_the_key(tmp_path: Path, value: str, words: str) -> None:
    text = f"version: 1\nlayers:\n  - id: f\n    type: flood_points\n    stale_after: {value}\nalerts: []\n"
    err = located_error(write(tmp_path, text), within=5.0)  # the first flood layer imports its plugin
    assert (err.line, err.key) == (5, "layers[0].stale_after") and words in str(err)


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        ("kind: threshold, above: 1, for: .inf", "for"),
        ("kind: threshold, above: 1, clear_for: -1m", "clear_for"),
        ("kind: stale, max_age: .nan", "max_age"),
        ("kind: stale, max_age: 20y", "max_age"),
    ],
)
def test_unbounded_alert_durations_name_the_key(tmp_path: Path, rule: str, key: str) -> None:
    text = f"version: 1\nlayers:\n  - {{id: f, type: flood_points}}\nalerts:\n  - {{id: r, layer: f, {rule}}}\n"
    err = located_error(write(tmp_path, text), within=5.0)
    assert (err.line, err.key) == (5, f"alerts[0].{key}")


def test_a_scene_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w", encoding="utf-8") as out:
        out.write("version: 1\n")
        out.write(("# padding\n" * 1024) * (MAX_SCENE_BYTES // 10240 + 1))
    with pytest.raises(SceneFileError, match=r"huge\.yaml: scene file is larger than 10 MiB") as info:
        twin.Scene.from_file(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("version: 1\nname: " + "[" * 5000 + "]" * 5000 + "\n", 2, "nested more than 100 levels deep"),
        ("version: 1\nname:\n" + "- " * 5000 + "x\n", 3, "nested more than 100 levels deep"),
        ("version: 1\nname: !!int abc\n", 2, "cannot read value 'abc'"),
        ("version: 1\ntime: 2026-13-45\n", 2, "cannot read value '2026-13-45': month must be in 1..12"),
        ("version: 1\nname: !!bool maybe\n", 2, "cannot read value 'maybe'"),
        ("version: 1\nname: " + "9" * 5000 + "\n", 2, "cannot read value"),
        ("version: 1\nname: *nope\n", 2, "undefined alias 'nope'"),
    ],
)
def test_damaged_yaml_is_one_located_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    err = located_error(write(tmp_path, text))
    assert err.line == line and words in str(err)


def test_non_utf8_bytes_name_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("version: 1\nname: Müller\n".encode("latin-1"))
    err = located_error(path)
    assert err.line == 2 and "not UTF-8 text: byte 0xfc at column 8" in str(err)
