"""Scene files round-trip: every scene in the repository, and scenes built in Python, read back equal after ``to_file``.

Durations are written in the short form scene files use (``5m``, ``2d``) and read in that form or as ISO 8601.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

import twin
from twin.alerts.rules import MAX_DURATION, StaleRule, ThresholdRule, format_duration, parse_duration
from twin.errors import SceneFileError
from twin.plugins import layer_types

REPO = Path(__file__).resolve().parents[1]


def repo_scene_files() -> list[Path]:
    """Every YAML scene file in the repository (scenes/, examples/): a mapping with ``version`` and ``layers``."""
    candidates = sorted(REPO.glob("scenes/*.yaml")) + sorted(REPO.glob("examples/**/*.yaml")) + sorted(REPO.glob("examples/**/*.yml"))
    return [p for p in candidates if re.search(r"(?m)^version:", p.read_text(encoding="utf-8")) and re.search(r"(?m)^layers:", p.read_text(encoding="utf-8"))]


def doc_scene_blocks() -> list[tuple[str, str]]:
    """(where, text) of each ```yaml block in README.md and docs/ that is a whole scene file."""
    blocks = []
    for doc in [REPO / "README.md", *sorted(REPO.glob("docs/**/*.md"))]:
        for index, match in enumerate(re.finditer(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), re.DOTALL)):
            if re.search(r"(?m)^version:", match.group(1)):
                blocks.append((f"{doc.relative_to(REPO)}#{index}", match.group(1)))
    return blocks


def assert_same_scene(first: twin.Scene, second: twin.Scene) -> None:
    """Equal scene-file data, and equal parsed models (durations as timedeltas, not only as text)."""
    assert second.to_dict() == first.to_dict()
    for a, b in zip(first.layers, second.layers, strict=True):
        assert (type(a), a.params, a.title, a.visible, a.opacity) == (type(b), b.params, b.title, b.visible, b.opacity)
        assert (a.source is None) == (b.source is None)
        if a.source is not None:
            assert (type(a.source), a.source.params) == (type(b.source), b.source.params)
    assert second.alerts == first.alerts
    assert (second.time, second.cameras, second.camera, second.settings) == (first.time, first.cameras, first.camera, first.settings)


def round_trip(scene: twin.Scene, folder: Path) -> twin.Scene:
    """Write, read back, and check a second write gives the same text."""
    written = scene.to_file(folder / "again.yaml")
    again = twin.Scene.from_file(written)
    assert again.to_file(folder / "third.yaml").read_text(encoding="utf-8") == written.read_text(encoding="utf-8")
    return again


def test_the_repository_has_scene_files_to_check() -> None:
    assert REPO / "scenes" / "demo.yaml" in repo_scene_files()
    assert doc_scene_blocks(), "README.md shows a scene file"


@pytest.mark.parametrize("path", repo_scene_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_repository_scene_files_round_trip(path: Path, tmp_path: Path) -> None:
    first = twin.Scene.from_file(path)
    assert_same_scene(first, round_trip(first, tmp_path))


@pytest.mark.parametrize(("where", "text"), doc_scene_blocks(), ids=[w for w, _ in doc_scene_blocks()])
def test_documented_scene_files_round_trip(where: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text(text, encoding="utf-8")
    first = twin.Scene.from_file(path)
    assert_same_scene(first, round_trip(first, tmp_path))


def test_demo_durations_are_written_in_the_short_form(tmp_path: Path) -> None:
    text = twin.Scene.from_file(REPO / "scenes" / "demo.yaml").to_file(tmp_path / "demo.yaml").read_text(encoding="utf-8")
    assert "stale_after: 5m" in text
    assert "for: 2m" in text and "clear_for: 3m" in text and "max_age: 5m" in text
    assert not re.search(r"\bP(T\d|\d)", text), "no ISO 8601 durations in the written file"


def test_scene_built_in_python_with_durations_round_trips(tmp_path: Path) -> None:
    """Durations given as timedeltas in Python, in layer params, nested source params and alert rules."""
    types = layer_types()
    scene = twin.Scene("built in code", center=(121.48, 31.23), time=dt.datetime(2026, 7, 1, 20, tzinfo=dt.timezone(dt.timedelta(hours=8))))
    scene.add(types.get("h3")("crowd", source={"type": "crowd_sim", "pings_per_minute": 500}, window=dt.timedelta(minutes=15),
                              history=dt.timedelta(hours=2, minutes=30), fade=dt.timedelta(seconds=3723.25), stale_after=dt.timedelta(days=1, seconds=1)))
    scene.add(types.get("flood_points")("flood", source={"type": "flood_sim", "cycle": dt.timedelta(minutes=45), "storm": "PT25M",
                                                         "interval": dt.timedelta(microseconds=1500)},
                                        history=dt.timedelta(weeks=2), stale_after="1h30m"))
    scene.add(types.get("vector")("roads", source={"type": "ogcapi", "url": "https://onemap.example.gov.cn/ogcapi/", "collection": "roads",
                                                   "poll_interval": dt.timedelta(seconds=90)}))
    scene.alerts = [
        ThresholdRule(id="deep", kind="threshold", layer="flood", above=20, for_=dt.timedelta(seconds=90), clear_for=dt.timedelta(hours=1)),
        StaleRule(id="silent", kind="stale", layer="flood", max_age=dt.timedelta(days=2), per_feature=True),
    ]
    written = scene.to_dict()
    crowd, flood, roads = written["layers"]
    assert (crowd["window"], crowd["history"], crowd["fade"], crowd["stale_after"]) == ("15m", "150m", "3723.25s", "1d1s")
    assert (flood["source"]["cycle"], flood["source"]["storm"], flood["source"]["interval"], flood["history"], flood["stale_after"]) == (
        "45m", "25m", "1.5ms", "14d", "90m")
    assert roads["source"]["poll_interval"] == "90s"
    assert [(r.get("for"), r.get("clear_for"), r.get("max_age")) for r in written["alerts"]] == [("90s", "1h", None), (None, None, "2d")]
    assert_same_scene(scene, round_trip(scene, tmp_path))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300), ("2d", 172800), ("90s", 90), ("1h30m", 5400), ("1h 30m", 5400), ("250ms", 0.25), ("10min", 600), ("45", 45),
        ("1.5h", 5400), ("PT5M", 300), ("P2D", 172800), ("PT1H30M", 5400), ("P1W", 604800), ("P1DT2H", 93600), ("P1Y35D", 400 * 86400), ("pt0.5s", 0.5),
        ("PT1M30,5S", 90.5), (90, 90), (0.25, 0.25), (dt.timedelta(minutes=3), 180),
    ],
)
def test_parse_duration_reads_short_and_iso_forms(text: object, seconds: float) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("soon", "is not a duration"), ("5 5", "is not a duration"), ("1m1m", "is not a duration"), ("PT", "is not a duration"),
        ("P1M", "months have no fixed length"), ("P1Y2M", "months have no fixed length"), ("-5m", "is negative"), ("-PT5M", "is negative"),
        (-1, "is negative"), (float("inf"), "not a finite number"), (float("nan"), "not a finite number"), ("1e400s", "is not a duration"),
        ("3654d", "longer than 10 years"), (1e300, "longer than 10 years"), ("9" * 40 + "d", "longer than 10 years"), (True, "is not a duration"),
        (dt.timedelta(days=-1), "is negative"), ([5], "is not a duration"),
    ],
)
def test_parse_duration_rejects_with_a_reason(value: object, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        parse_duration(value)


durations = st.builds(dt.timedelta, microseconds=st.integers(0, int(MAX_DURATION.total_seconds()) * 10**6))
round_units = st.builds(lambda n, unit: dt.timedelta(seconds=n * unit), st.integers(0, 3000), st.sampled_from([1, 60, 3600, 86400]))


@settings(max_examples=200, deadline=None)
@given(st.one_of(durations, round_units))
def test_format_duration_is_read_back_exactly(value: dt.timedelta) -> None:
    text = format_duration(value)
    assert parse_duration(text) == value
    seconds = Decimal(value // dt.timedelta(microseconds=1)) / 10**6
    assert len(text) <= len(f"{seconds}s"), "never longer than the plain number of seconds"


@settings(max_examples=200, deadline=None)
@given(durations)
def test_pydantic_iso_durations_are_read_back_exactly(value: dt.timedelta) -> None:
    """Files written by older twin versions (pydantic's ISO 8601 form) still load."""
    iso = TypeAdapter(dt.timedelta).dump_python(value, mode="json")
    assert parse_duration(iso) == value


def test_shortest_exact_form() -> None:
    cases = {dt.timedelta(minutes=5): "5m", dt.timedelta(days=2): "2d", dt.timedelta(seconds=90): "90s", dt.timedelta(minutes=90): "90m",
             dt.timedelta(days=1, seconds=1): "1d1s", dt.timedelta(0): "0s", dt.timedelta(milliseconds=250): "250ms"}
    assert {k: format_duration(k) for k in cases} == cases


def test_iso_durations_in_a_scene_file_load(tmp_path: Path) -> None:
    path = tmp_path / "iso.yaml"
    path.write_text(
        "version: 1\nlayers:\n  - {id: f, type: flood_points, source: {type: flood_sim, storm: PT25M}, stale_after: PT1H30M}\n"
        "alerts:\n  - {id: a, kind: stale, layer: f, max_age: P1D}\n",
        encoding="utf-8",
    )
    scene = twin.Scene.from_file(path)
    assert scene["f"].params.stale_after == dt.timedelta(minutes=90)
    assert scene["f"].source.params.storm == dt.timedelta(minutes=25)
    assert scene.alerts[0].max_age == dt.timedelta(days=1)


def test_a_bad_duration_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nlayers:\n  - id: f\n    type: flood_points\n    stale_after: 5 minutes\n", encoding="utf-8")
    with pytest.raises(SceneFileError) as info:
        twin.Scene.from_file(path)
    assert str(info.value).startswith(f"{path}:5: layers[0].stale_after: ")
    assert "'5 minutes' is not a duration" in str(info.value)

