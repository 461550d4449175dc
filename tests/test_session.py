"""The live Session without a browser: ticks, replay beside live alerts, acknowledgements kept on disk
and across rule edits, two threads at once, focus and camera as model objects, one-line errors.

The flood layer is fed by the rain simulator (a storm every 2 minutes, readings every 10 s), which
is deterministic in the (simulated) clock the tests pass to ``tick``.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from twin.alerts.rules import parse_rule
from twin.errors import TwinError
from twin.scene.model import Scene
from twin.session import CameraChange, Focus, LayerChange, Session, TimeChange, resolve_tick_seconds

T0 = dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.timezone.utc)
STEP = dt.timedelta(seconds=5)

SCENE = """\
version: 1
name: Session test
frame: {crs: auto, center: [121.48, 31.23]}
cameras:
  overview: {target: [121.48, 31.232], heading: 0, pitch: 55, range: 7500}
camera: overview
layers:
  - id: flood
    type: flood_points
    title: 积水 Flood
    source: {type: flood_sim, cycle: 2m, storm: 80s, interval: 10s}
    stations: {type: demo, dataset: flood_points}
    history: 15m
  - id: resources
    type: vector
    title: 应急资源
    source: {type: demo, dataset: resources}
alerts:
  - {id: deep, kind: threshold, layer: flood, above: 20, for: 0, severity: critical, title: Deep water}
"""


@pytest.fixture()
def scene_file(tmp_path: Path) -> Path:
    path = tmp_path / "session.yaml"
    path.write_text(SCENE, encoding="utf-8")
    return path


def ticks(n: int, start: dt.datetime = T0) -> list[dt.datetime]:
    return [start + i * STEP for i in range(n)]


def transitions(session: Session) -> list[tuple[str, str, str]]:
    """Every alert transition the session emits, as (kind, alert id, time)."""
    seen: list[tuple[str, str, str]] = []
    session.alert_event.connect(lambda e: seen.append((e.kind, str(e.alert["id"]), e.at.isoformat())))
    return seen


def test_ticks_follow_the_clock_and_say_what_changed(scene_file: Path) -> None:
    session = Session(Scene.from_file(scene_file))
    times: list[TimeChange] = []
    layers: list[LayerChange] = []
    session.time_changed.connect(times.append)
    session.layer_changed.connect(layers.append)
    for when in ticks(3):
        session.tick(when)
    assert session.ticks == 3 and session.now == T0 + 2 * STEP and session.shown_time == T0 + 2 * STEP
    assert [t.shown for t in times] == ticks(3) and all(t.live for t in times)
    assert {c.layer_id for c in layers} == {"flood"} and all(c.kinds == {"data"} for c in layers)
    assert session.scene["flood"].health.newest_reading is not None


def test_replaying_ten_minutes_while_readings_arrive_alerts_fire_live(scene_file: Path) -> None:
    """A replaying session sees the same alert transitions, at the live clock, as one that never replayed."""
    live, replaying = Session(Scene.from_file(scene_file)), Session(Scene.from_file(scene_file))
    live_events, replay_events = transitions(live), transitions(replaying)
    warmup, replay_ticks = ticks(60), ticks(120, T0 + 60 * STEP)  # 5 minutes of history, then 10 minutes replaying
    for when in warmup:
        live.tick(when)
        replaying.tick(when)
    shown = replaying.replay(T0 + dt.timedelta(minutes=1))
    before = len(replay_events)
    for when in replay_ticks:
        live.tick(when)
        replaying.tick(when)
        assert replaying.shown_time == shown and not replaying.live
    fired = [e for e in replay_events[before:] if e[0] == "firing"]
    assert fired, "no alert fired during ten minutes of storms"
    assert all(dt.datetime.fromisoformat(at) > shown + dt.timedelta(minutes=3) for _, _, at in fired)
    assert replay_events == live_events
    assert replaying.scene["flood"].health.newest_reading >= replay_ticks[-1] - dt.timedelta(seconds=10)
    replaying.go_live()
    assert replaying.live and replaying.shown_time == replay_ticks[-1]


def test_replay_is_clamped_to_what_is_kept_and_debounced(scene_file: Path) -> None:
    session = Session(Scene.from_file(scene_file))
    for when in ticks(13):
        session.tick(when)
    assert session.replay(T0 - dt.timedelta(hours=3)) == session.replay_start() == session.now - dt.timedelta(minutes=15)  # history: 15m
    assert session.replay(T0 + dt.timedelta(hours=1)) == session.now
    shown: list[TimeChange] = []
    session.time_changed.connect(shown.append)
    for minutes in (1, 2, 3):  # a dragged slider: only the last value is applied
        session.seek(T0 + dt.timedelta(seconds=minutes * 10), debounce_s=0.05)
    deadline = time.monotonic() + 5
    while session.shown_time != T0 + dt.timedelta(seconds=30) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [t.shown for t in shown if t.shown is not None and t.shown < T0 + dt.timedelta(seconds=30)] == []
    assert session.shown_time == T0 + dt.timedelta(seconds=30)


def test_acknowledged_alert_and_history_survive_a_restart_from_the_state_folder(scene_file: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    session = Session(Scene.from_file(scene_file), state_dir=state)
    for when in ticks(60):
        session.tick(when)
    firing = session.engine.firing()
    assert firing, "no alert fired in five minutes of storms"
    acked = session.acknowledge(firing[0].id, by="duty officer")
    closed = [a.id for a in session.engine.history]
    assert closed
    session.close()
    assert (state / "alerts.sqlite").is_file()

    restarted = Session(Scene.from_file(scene_file), state_dir=state)
    alert = restarted.engine.get(firing[0].id)
    assert alert.acknowledged and alert.acknowledged_by == "duty officer" and acked.alert["id"] == alert.id
    assert [a.id for a in restarted.engine.history] == closed
    restarted.close()


def test_editing_the_rules_keeps_acknowledgements(scene_file: Path) -> None:
    session = Session(Scene.from_file(scene_file))
    for when in ticks(60):
        session.tick(when)
    alert = session.engine.firing()[0]
    session.acknowledge(alert.id)
    engine = session.engine
    extra = parse_rule({"id": "stale", "kind": "stale", "layer": "flood", "max_age": "5m"})
    session.set_rules([*session.scene.alerts, extra])
    assert session.engine is engine and session.engine.get(alert.id).acknowledged
    assert [r.id for r in session.engine.rules] == ["deep", "stale"]
    session.tick(T0 + 60 * STEP)
    assert session.engine.get(alert.id).acknowledged
    with pytest.raises(TwinError, match=r"^alert rule 'x': no layer 'nowhere' in scene 'Session test'; layers: flood, resources$"):
        session.set_rules([parse_rule({"id": "x", "kind": "threshold", "layer": "nowhere", "above": 1})])


def test_ticking_and_replaying_from_two_threads_at_once(scene_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Replays from a second thread change neither the readings nor the alert transitions of the ticks."""
    alone, shared = Session(Scene.from_file(scene_file)), Session(Scene.from_file(scene_file))
    alone_events, shared_events = transitions(alone), transitions(shared)
    schedule = ticks(90)
    for when in schedule:
        alone.tick(when)
    errors: list[BaseException] = []
    done = threading.Event()

    def replayer() -> None:
        rng = random.Random(7)
        while not done.is_set():
            try:
                if shared.now is not None:
                    shared.replay(shared.now - dt.timedelta(seconds=rng.uniform(0, 600)))
                    shared.go_live()
            except BaseException as exc:  # noqa: BLE001  (collected for the assertion)
                errors.append(exc)

    thread = threading.Thread(target=replayer)
    with caplog.at_level(logging.WARNING):
        thread.start()
        try:
            for when in schedule:
                shared.tick(when)
        finally:
            done.set()
            thread.join()
    assert errors == []
    assert "poll failed" not in caplog.text
    assert shared_events == alone_events
    a, b = alone.scene["flood"].buffer, shared.scene["flood"].buffer
    assert len(a) == len(b) and all(np.array_equal(a.column(c), b.column(c)) for c in ("t", "v"))


def test_focus_flies_to_the_alert_and_finds_help_without_changing_the_scene(scene_file: Path, tmp_path: Path) -> None:
    scene = Scene.from_file(scene_file)
    session = Session(scene)
    for when in ticks(60):
        session.tick(when)
    changes: list[CameraChange] = []
    session.camera_changed.connect(changes.append)
    preset = session.set_camera("overview")
    direction = preset.pose.direction()
    alert = session.engine.firing()[0]
    focus = session.focus_alert(alert.id)
    assert isinstance(focus, Focus) and focus.resource_layers == ("resources",) and (focus.lon, focus.lat) == (alert.lon, alert.lat)
    assert len(focus.resources) and (focus.resources["distance_m"].diff().dropna() >= 0).all()
    assert (focus.resources["distance_m"] <= 3000).all()
    assert focus.reach is not None and focus.reach["kind"].iloc[0] == "reach"
    target = scene.frame.lonlat_to_local([alert.lon], [alert.lat])[0]
    flight = changes[-1]
    assert np.allclose(flight.target, target) and flight.range == 800
    assert np.allclose(flight.pose.focal_point, target) and flight.pose.distance == pytest.approx(800)
    assert np.allclose(flight.pose.direction(), direction)
    assert [layer.id for layer in scene.layers] == ["flood", "resources"]
    assert Scene.from_file(scene.to_file(tmp_path / "saved.yaml")).to_dict() == scene.to_dict()


def test_user_actions_with_bad_input_say_one_line(scene_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    session = Session(Scene.from_file(scene_file))
    with pytest.raises(TwinError, match=r"^no layer 'roads' in scene 'Session test'; layers: flood, resources$"):
        session.set_layer("roads", visible=False)
    with pytest.raises(TwinError, match=r"^unknown camera 'bund'; cameras: overview$"):
        session.set_camera("bund")
    with pytest.raises(TwinError, match=r"^replay time 2026-07-01T10:00:00 needs a time zone, e.g. \+08:00$"):
        session.replay(T0.replace(tzinfo=None))
    with pytest.raises(TwinError, match=r"^replay time nan is not a finite number of epoch seconds$"):
        session.replay(float("nan"))
    with pytest.raises(TwinError, match=r"^no alert 'deep:FP999:1'$"):
        session.acknowledge("deep:FP999:1")
    with pytest.raises(TwinError, match=r"^tick interval -1.0 s must be a positive number of seconds$"):
        resolve_tick_seconds(-1.0)
    monkeypatch.setenv("TWIN_TICK_SECONDS", "fast")
    with caplog.at_level(logging.WARNING):
        assert resolve_tick_seconds() == 5.0
    assert "TWIN_TICK_SECONDS='fast' is not a number of seconds; using 5 s" in caplog.text


def test_hiding_a_layer_drops_its_selection(scene_file: Path) -> None:
    session = Session(Scene.from_file(scene_file))
    selections: list[object] = []
    session.selection_changed.connect(selections.append)
    session.select({"layer": "resources", "feature": 2, "attributes": {"name": "泵车"}, "lon": 121.48, "lat": 31.23})
    change = session.set_layer("resources", visible=False, opacity=2)
    assert change.kinds == {"visibility", "style"} and session.scene["resources"].opacity == 1.0
    assert selections[-1] is None and session.selection is None
    assert session.set_layer("resources", elevation=30).kinds == {"geometry"}


def test_the_session_imports_neither_trame_nor_vtk() -> None:
    import subprocess
    import sys

    code = "import sys, twin.session; print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('twin.render', 'twin.app', 'trame', 'vtk', 'pyvista'))}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_moving_the_camera_fetches_what_comes_into_view(tmp_path: Path) -> None:
    """A layer read by view (``source: {type: view, ...}``) holds only what the camera sees, and the view is told."""
    import geopandas as gpd
    import shapely

    from twin.session.camera import CameraPose

    points = [shapely.Point(121.40 + 0.01 * i, 31.20) for i in range(21)]  # a row of points 1 km apart, west to east
    gpd.GeoDataFrame({"id": range(21)}, geometry=points, crs="EPSG:4326").to_file(tmp_path / "row.geojson")
    scene = Scene.from_dict({"version": 1, "name": "view", "frame": {"center": [121.50, 31.20]},
                             "layers": [{"id": "row", "type": "vector", "source": {"type": "view", "source": {"type": "file", "path": "row.geojson"}}}]},
                            base_dir=tmp_path)
    session = Session(scene)
    changes: list = []
    session.layer_changed.connect(changes.append)
    x_west = scene.frame.lonlat_to_local([121.42], [31.20])[0][0]
    x_east = scene.frame.lonlat_to_local([121.58], [31.20])[0][0]
    for x in (x_west, x_east):
        reloaded = session.camera_moved(CameraPose((x, -1.0, 2500.0), (x, 0.0, 0.0), (0.0, 1.0, 0.0)), view_angle=30.0, aspect=1.0)
        assert reloaded == ["row"] and changes[-1].layer_id == "row" and "data" in changes[-1].kinds
        shown = sorted(scene["row"].data()["id"])
        near = [i for i in range(21) if abs(121.40 + 0.01 * i - (121.42 if x == x_west else 121.58)) < 0.006]
        assert set(near) <= set(shown) and len(shown) < 10  # what is in view, not the whole row
    assert session.camera_moved(CameraPose((x_east, -1.0, 2500.0), (x_east, 0.0, 0.0), (0.0, 1.0, 0.0)), view_angle=30.0, aspect=1.0) == []  # nothing new
