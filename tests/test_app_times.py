"""Times the browser app shows: pick cards in the display time zone (+08:00, like the rest of the
app), and a time bar spanning the readings the live layers actually hold.

In-process (no browser): the app's shared state is what the page renders.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from twin.app.server import TwinApp
from twin.scene.model import Scene

UTC = dt.timezone.utc
PLUS8 = dt.timedelta(hours=8)
POINT = (121.4737, 31.2304)


def shown_at_plus8(when: dt.datetime) -> str:
    """How a UTC time reads on a wall clock in Shanghai, written out by hand."""
    return (when.astimezone(UTC) + PLUS8).strftime("%Y-%m-%d %H:%M:%S") + " +08:00"


def write_readings(path: Path, times: list[dt.datetime], sensors: list[str] | None = None) -> None:
    """A CSV of readings at POINT (and a little east of it per sensor), times in UTC."""
    rows = ["sensor,lon,lat,time,value"]
    for i, when in enumerate(times):
        sensor = sensors[i % len(sensors)] if sensors else f"p{i}"
        offset = 0.001 * (sensors.index(sensor) if sensors else 0)
        rows.append(f"{sensor},{POINT[0] + offset},{POINT[1]},{when.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')},{10 + i % 7}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


CROWD = """\
  - id: crowd
    type: h3
    source: {type: file_readings, path: crowd.csv, sensor: sensor, value: value}
    resolution: 9
    window: 5m
    history: 6h
"""
GAUGES = """\
  - id: gauges
    type: flood_points
    source: {type: file_readings, path: gauges.csv, sensor: sensor, value: value}
"""


def scene_file(folder: Path, layers: str) -> Path:
    path = folder / "times.yaml"
    path.write_text(f"version: 1\nname: Times\nframe: {{crs: auto, center: [121.48, 31.23]}}\nlayers:\n{layers}", encoding="utf-8")
    return path


@pytest.fixture()
def apps() -> Iterator[list[TwinApp]]:
    """Apps made by a test, their offscreen views closed afterwards."""
    made: list[TwinApp] = []
    yield made
    for app in made:
        app.view.close()


def open_app(apps: list[TwinApp], path: Path) -> tuple[TwinApp, dt.datetime, dt.datetime]:
    """The app for a scene file, with the wall-clock moments just before and after its first live tick."""
    before = dt.datetime.now(UTC)
    app = TwinApp(Scene.from_file(path), view_mode="remote")
    apps.append(app)
    return app, before, dt.datetime.now(UTC)


# -- pick cards ----------------------------------------------------------------------------------
def test_h3_pick_card_shows_the_last_reading_in_plus8(tmp_path: Path, apps: list[TwinApp]) -> None:
    now = dt.datetime.now(UTC).replace(microsecond=0)
    last = now - dt.timedelta(minutes=1)
    write_readings(tmp_path / "crowd.csv", [now - dt.timedelta(minutes=m) for m in (4, 3, 2, 1)])
    app, _, _ = open_app(apps, scene_file(tmp_path, CROWD))
    crowd = app.scene["crowd"]
    app.view_panel.show_pick(lambda: crowd.pick(app.scene.frame, 0))
    card = {name: text for name, text, _ in app.state.twin_pick["attributes"]}  # rows: name, text, text per language
    assert card["last_reading"] == shown_at_plus8(last)
    assert card["value"] == "4"  # four pings in the 5-minute window


def test_any_time_attribute_on_a_pick_card_is_in_plus8(tmp_path: Path, apps: list[TwinApp]) -> None:
    (tmp_path / "pumps.geojson").write_text(
        '{"type": "FeatureCollection", "features": ['
        '{"type": "Feature", "properties": {"name": "泵站A", "updated": "2026-07-01T12:15:00Z"}, "geometry": {"type": "Point", "coordinates": [121.48, 31.23]}},'
        '{"type": "Feature", "properties": {"name": "泵站B", "updated": null}, "geometry": {"type": "Point", "coordinates": [121.49, 31.24]}}]}',
        encoding="utf-8",
    )
    app, _, _ = open_app(apps, scene_file(tmp_path, "  - {id: pumps, type: vector, source: {type: file, path: pumps.geojson}, point_size: 9}\n"))
    pumps = app.scene["pumps"]
    cards = []
    for cell in range(2):
        app.view_panel.show_pick(lambda cell=cell: pumps.pick(app.scene.frame, cell))
        cards.append({name: text for name, text, _ in app.state.twin_pick["attributes"]})
    assert {card["name"]: card["updated"] for card in cards} == {"泵站A": "2026-07-01 20:15:00 +08:00", "泵站B": "—"}


# -- the time bar --------------------------------------------------------------------------------
def test_time_bar_spans_the_hour_the_live_layer_holds_not_its_history(tmp_path: Path, apps: list[TwinApp]) -> None:
    start = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    write_readings(tmp_path / "crowd.csv", [start + dt.timedelta(minutes=m) for m in range(60)])
    app, before, after = open_app(apps, scene_file(tmp_path, CROWD))  # history: 6h
    state = app.state
    assert state.twin_replay_min == math.floor(start.timestamp())
    assert math.floor(before.timestamp()) <= state.twin_replay_max <= math.floor(after.timestamp())
    assert state.twin_replay_start == (start + PLUS8).strftime("%H:%M")
    assert state.twin_replay_step == 5  # ~1,500 slider positions over one hour (6 h would give 15 s steps)

    app.time_bar.seek(start.timestamp() - 3 * 3600)  # before the oldest reading: replay stops at it
    assert app.scene.time == start
    assert state.twin_replay_min == math.floor(start.timestamp())


@pytest.mark.parametrize(("layers", "held"), [(GAUGES, 20), (CROWD + GAUGES, 60)], ids=["gauges-only", "crowd-and-gauges"])
def test_time_bar_starts_at_the_oldest_reading_across_live_layers(tmp_path: Path, apps: list[TwinApp], layers: str, held: int) -> None:
    """Water gauges (history 24 h by default) whose feed holds 20 minutes, alone and beside an hour of crowd pings."""
    now = dt.datetime.now(UTC).replace(microsecond=0)
    write_readings(tmp_path / "crowd.csv", [now - dt.timedelta(minutes=m) for m in range(60, 0, -1)])
    write_readings(tmp_path / "gauges.csv", [now - dt.timedelta(minutes=m) for m in range(20, 0, -1) for _ in "ab"], sensors=["g1", "g2"])
    app, _, _ = open_app(apps, scene_file(tmp_path, layers))
    assert app.state.twin_replay_min == math.floor((now - dt.timedelta(minutes=held)).timestamp())
    assert app.state.twin_replay_start == (now - dt.timedelta(minutes=held) + PLUS8).strftime("%H:%M")
