"""Property-based fuzzing of scene files: damaged or random files end in a scene or in one clean line, never a crash.

Valid scene files (the repository's, and generated ones) are mutated line by line (delete, insert, duplicate,
replace a value, random unicode, truncation, random keys) and fed to ``Scene.from_file`` and ``twin validate``.
Every outcome must be a loaded scene or a :class:`~twin.errors.TwinError` whose message is one line; the command
exits 0 or 1 with one line. A scene that loads also survives ``to_file`` and reads back equal.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import twin
from twin.cli import main
from twin.errors import TwinError
from twin.scene.yamlfile import dump_yaml

REPO = Path(__file__).resolve().parents[1]

HAND_WRITTEN = """\
version: 1
name: 黄浦 fuzz
frame: {crs: auto, center: [121.48, 31.23]}
time: 2026-07-01T18:00:00+08:00
settings: {background: "#101010", title: Test, show_legend: true}
cameras:
  overview: {target: [121.48, 31.23], heading: 20, pitch: 50, range: 6000}
camera: overview
layers:
  - id: roads
    type: vector
    source: {type: file, path: roads.geojson}
    color: "#cccccc"
    line_width: 3
  - id: buildings
    type: buildings
    source: {type: file, path: roads.geojson, crs: GCJ02}
    filter: {building: [yes, house], height: {min: 10}}
  - id: flood
    type: flood_points
    source: {type: flood_sim, cycle: 30m, storm: PT20M}
    stations: {type: demo, dataset: flood_points}
    stale_after: 5m
  - id: crowd
    type: h3
    source: {type: crowd_sim, pings_per_minute: 400}
    window: 5m
    history: 1h30m
alerts:
  - {id: deep, kind: threshold, layer: flood, above: 20, clear: 18, for: 2m, clear_for: 90s, severity: critical}
  - {id: feed, kind: stale, layer: flood, max_age: 5m, per_feature: true}
"""

SEEDS = [HAND_WRITTEN, *(p.read_text(encoding="utf-8") for p in sorted(REPO.glob("scenes/*.yaml")))]

NASTY = [
    ".nan", ".inf", "-.inf", "1e400", "1.0e+400", "9" * 40, "-0", "yes", "no", "on", "~", "null", "[]", "{}", "[", "{", "*a", "&a x",
    "*undefined", "!!python/object/apply:os.system ['true']", "!!int x", "!!binary x", "'", '"', "- x", ": :", "? x", "|", ">", "PT5M",
    "P1M", "-5m", "1e400s", "2026-13-45", "0x1F", "0o9", "1:30", "\x00", "\x1b", "\ufeff", "\u202e", "%YAML 1.1", "---", "...", "#",
    "<<: *a", "\t", "a: &a [*a]", "[[[[[[[[[[]]]]]]]]]]", "{type: file, path: ''}", "{type: demo, dataset: nope}", "🌊" * 3,
]
scalars = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=24),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
keys = st.one_of(st.sampled_from(["type", "id", "source", "path", "for", "max_age", "window", "filter", "layers", "version", "<<", "stations"]),
                 st.text(min_size=1, max_size=12))


@st.composite
def mutated(draw: st.DrawFn, seeds: st.SearchStrategy[str]) -> str:
    """A seed scene with 1-4 line-level mutations."""
    lines = draw(seeds).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        kind = draw(st.sampled_from(["delete", "insert", "duplicate", "replace_value", "unicode", "truncate", "random_key", "indent"]))
        if kind == "delete" and lines:
            del lines[at]
        elif kind == "insert":
            lines.insert(at, draw(st.text(max_size=40)))
        elif kind == "duplicate" and lines:
            lines.insert(at, lines[at])
        elif kind == "replace_value" and lines:
            values = list(re.finditer(r"(?<=: )[^,{}\[\]\n]+", lines[at]))
            if values:
                span = draw(st.sampled_from(values)).span()
                lines[at] = lines[at][: span[0]] + draw(scalars) + lines[at][span[1]:]
        elif kind == "unicode" and lines:
            pos = draw(st.integers(0, len(lines[at])))
            lines[at] = lines[at][:pos] + draw(st.text(min_size=1, max_size=4)) + lines[at][pos:]
        elif kind == "truncate":
            text = "\n".join(lines)
            lines = text[: draw(st.integers(0, len(text)))].splitlines()
        elif kind == "random_key" and lines:
            indent = re.match(r"\s*(- )?", lines[at]).group(0).replace("-", " ")
            lines.insert(at + 1, f"{indent}{draw(keys)}: {draw(scalars)}")
        elif kind == "indent" and lines:
            lines[at] = " " * draw(st.integers(0, 5)) + lines[at].lstrip()
    return "\n".join(lines) + "\n"


durations = st.one_of(st.sampled_from(["5m", "90s", "1h30m", "2d", "PT5M", "P1DT2H", "250ms"]), st.integers(0, 10**6))
layer_entries = st.one_of(
    st.fixed_dictionaries({"id": st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), "type": st.just("vector"),
                           "source": st.just({"type": "file", "path": "roads.geojson"}),
                           "color": st.sampled_from(["red", "#123456", "white"]), "opacity": st.floats(0, 1)}),
    st.fixed_dictionaries({"id": st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), "type": st.just("h3"),
                           "source": st.fixed_dictionaries({"type": st.just("crowd_sim"), "pings_per_minute": st.integers(1, 5000)}),
                           "window": durations, "history": durations}),
    st.fixed_dictionaries({"id": st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), "type": st.just("buildings"),
                           "filter": st.dictionaries(st.sampled_from(["building", "kind"]), st.lists(st.sampled_from(["yes", "no", "on", "house", "1:30"]), min_size=1, max_size=3), max_size=2)}),
)
generated = st.builds(
    lambda name, center, layers: dump_yaml({"version": 1, "name": name, "frame": {"center": center}, "layers": layers}),
    st.text(max_size=20),
    st.tuples(st.floats(-180, 180), st.floats(-85, 85)).map(list),
    st.lists(layer_entries, max_size=4, unique_by=lambda entry: entry["id"]),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz")
    (path / "roads.geojson").write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    return path


def load_cleanly(path: Path, text: str) -> twin.Scene | None:
    """The scene, or None after a TwinError on one line; any other exception fails the test."""
    path.write_text(text, encoding="utf-8")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return twin.Scene.from_file(path)
    except TwinError as exc:
        assert "\n" not in str(exc), str(exc)
        return None


def assert_round_trips(scene: twin.Scene, folder: Path) -> None:
    again = twin.Scene.from_file(scene.to_file(folder / "written.yaml"))
    assert again.to_dict() == scene.to_dict()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated(st.sampled_from(SEEDS)))
def test_mutated_scene_files_load_or_fail_on_one_line(folder: Path, text: str) -> None:
    scene = load_cleanly(folder / "mutant.yaml", text)
    if scene is not None:
        assert_round_trips(scene, folder)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(generated, mutated(generated)))
def test_generated_scene_files_load_or_fail_on_one_line(folder: Path, text: str) -> None:
    scene = load_cleanly(folder / "generated.yaml", text)
    if scene is not None:
        assert_round_trips(scene, folder)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(mutated(st.sampled_from(SEEDS)), mutated(generated), st.text(max_size=200)))
def test_validate_command_exits_0_or_1_with_one_line(folder: Path, text: str) -> None:
    path = folder / "cli.yaml"
    path.write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    showwarning = warnings.showwarning
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = main(["validate", str(path)])
    finally:
        warnings.showwarning = showwarning
    lines = (out.getvalue() + err.getvalue()).splitlines()
    assert code in (0, 1) and len(lines) == 1, lines
    assert "Traceback" not in lines[0] and not lines[0].startswith("twin: error: unexpected ")
    assert lines[0].startswith(f"{path}: ok (" if code == 0 else "twin: error: ")
