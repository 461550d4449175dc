"""The command-hall wall as a model (no browser): the tour, alert interrupts, the queue, and the scene file's ``wall:``.

Times are seconds on the hall's own clock; poses are in the scene frame's metres.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import twin
from twin.alerts.engine import AlertEngine, AlertEvent
from twin.alerts.rules import parse_rule
from twin.errors import SceneFileError, TwinError
from twin.geo import Frame
from twin.live import LiveSnapshot
from twin.scene.camera import CameraPose, CameraPreset, preset_pose
from twin.scene.model import Scene
from twin.scene.wall import WallSpec
from twin.session.hall import MIN_ALERT_PITCH, Hall, HallAlert, HallStop

DEMO = Path(twin.__file__).parent / "demo" / "scenes" / "demo.yaml"
FRAME = Frame.auto(121.48, 31.23)
CAMERAS = {
    "a": CameraPreset(target=(121.47, 31.22), heading=0, pitch=50, range=3000),
    "b": CameraPreset(target=(121.49, 31.24), heading=90, pitch=35, range=1500),
    "c": CameraPreset(target=(121.48, 31.23), heading=0, pitch=90, range=6000),
}
DWELL, FLIGHT, RESUME, ALERT_FLIGHT = 10.0, 4.0, 30.0, 3.0


def _stops() -> list[HallStop]:
    return [HallStop(name, preset_pose(CAMERAS[name], FRAME), DWELL, FLIGHT, {"crowd": name == "b"}) for name in CAMERAS]


def _hall(**wall: object) -> Hall:
    spec = WallSpec.model_validate({"resume_after": f"{RESUME:g}s", "flight": f"{ALERT_FLIGHT:g}s", **wall})
    return Hall(_stops(), spec, FRAME, start=0.0)


def _alert(alert_id: str, severity: str = "critical", *, rule: str = "deep", lon: float | None = 121.485, lat: float | None = 31.235) -> HallAlert:
    return HallAlert(alert_id, severity, rule, f"alert {alert_id}", lon, lat)


def _same(p: CameraPose, q: CameraPose, tol: float = 1e-6) -> bool:
    return all(math.dist(u, v) <= tol for u, v in ((p.position, q.position), (p.focal_point, q.focal_point)))


def _shown(hall: Hall, t: float) -> str | None:
    banner = hall.frame_at(t).banner
    return None if banner is None else banner.alert.id


# -- the tour ------------------------------------------------------------------------------------------
def test_the_tour_visits_its_stops_in_order_dwells_at_their_poses_and_loops() -> None:
    hall = _hall()
    stops = _stops()
    rests = []
    for k in range(int(2 * 3 * (DWELL + FLIGHT) * 10)):
        frame = hall.frame_at(k / 10)
        if not frame.flying and (not rests or rests[-1] != frame.camera):
            rests.append(frame.camera)
            assert _same(frame.pose, stops[frame.stop].pose), frame.camera
        assert frame.layers["crowd"] is (frame.camera == "b")  # the stop's overrides hold from its flight to the end of its dwell
    assert rests == ["a", "b", "c", "a", "b", "c"]
    fresh = _hall()
    assert not fresh.frame_at(DWELL - 0.01).flying and fresh.frame_at(DWELL).flying and fresh.frame_at(DWELL + FLIGHT - 0.01).flying
    assert not fresh.frame_at(DWELL + FLIGHT).flying


def test_flights_are_eased_and_never_jump() -> None:
    hall = _hall()
    poses = [hall.frame_at(DWELL + k / 12).pose for k in range(int(FLIGHT * 12) + 1)]
    steps = np.array([math.dist(p.focal_point, q.focal_point) for p, q in itertools.pairwise(poses)])
    total = math.dist(poses[0].focal_point, poses[-1].focal_point)
    assert total > 1000
    assert steps.max() < 0.06 * total  # 48 frames: an even flight would move 2 % a frame, the eased one at most 3 %
    assert steps[0] < 0.003 * total and steps[-1] < 0.003 * total  # starts and ends at rest


def test_a_wall_without_a_tour_holds_the_scene_camera() -> None:
    scene = Scene("hold", center=(121.48, 31.23), cameras=CAMERAS, camera="c", wall={})
    hall = Hall.from_scene(scene, start=0.0)
    assert [(f.camera, f.flying) for f in map(hall.frame_at, (0.0, 100.0, 5000.0))] == [("c", False)] * 3
    assert _same(hall.frame_at(5000.0).pose, preset_pose(CAMERAS["c"], scene.frame))


# -- alert interrupts ----------------------------------------------------------------------------------
def test_an_alert_pauses_the_tour_flies_to_it_and_the_tour_resumes_after_resume_after() -> None:
    hall = _hall()
    t = DWELL + FLIGHT + 2.0  # dwelling at b
    before = hall.frame_at(t)
    assert hall.fire(_alert("1"), t)
    during = hall.frame_at(t)
    assert (during.mode, during.camera, during.flying, during.stop) == ("alert", "alert", True, 1)
    assert _same(before.pose, during.pose)  # the flight starts where the camera was: no jump cut
    arrived = hall.frame_at(t + ALERT_FLIGHT)
    x, y, _ = FRAME.lonlat_to_local([121.485], [31.235])[0]
    assert not arrived.flying and math.dist(arrived.pose.focal_point, (x, y, 0.0)) < 1e-6
    assert math.dist(arrived.pose.position, arrived.pose.focal_point) == pytest.approx(800.0)
    pitch = math.degrees(math.asin((arrived.pose.position[2] - arrived.pose.focal_point[2]) / 800.0))
    assert pitch == pytest.approx(max(35.0, MIN_ALERT_PITCH))  # b looks 35° down: steeper, to see a point between buildings
    assert hall.frame_at(t + RESUME - 0.01).mode == "alert"
    resumed = hall.frame_at(t + RESUME)
    assert (resumed.mode, resumed.camera, resumed.flying) == ("tour", "b", True)  # flies back to the stop it paused at
    assert _same(resumed.pose, arrived.pose)
    back = hall.frame_at(t + RESUME + FLIGHT)
    assert not back.flying and _same(back.pose, _stops()[1].pose)
    assert hall.frame_at(t + RESUME + FLIGHT + DWELL - 0.01).camera == "b"  # a full dwell there again
    assert hall.frame_at(t + RESUME + FLIGHT + DWELL + 0.01).camera == "c"


def test_alerts_queue_by_severity_then_age() -> None:
    hall = _hall()
    hall.fire(_alert("w1", "warning"), 1.0)
    for alert_id, severity, t in (("i1", "info", 2.0), ("c1", "critical", 3.0), ("w2", "warning", 4.0), ("c2", "critical", 5.0)):
        assert hall.fire(_alert(alert_id, severity), t)
    assert hall.frame_at(5.0).queue == ("c1", "c2", "w2", "i1")
    shown = [_shown(hall, 1.0 + k * RESUME + 0.5) for k in range(6)]
    assert shown == ["w1", "c1", "c2", "w2", "i1", None]
    assert hall.frame_at(1.0 + 5 * RESUME + 0.5).mode == "tour"


def test_an_alert_resolving_while_shown_says_so_and_a_queued_one_leaves_the_queue() -> None:
    hall = _hall()
    hall.fire(_alert("1"), 1.0)
    hall.fire(_alert("2"), 2.0)
    hall.fire(_alert("3", "warning"), 2.5)
    hall.resolve("1", 5.0)
    hall.resolve("3", 5.0)
    frame = hall.frame_at(6.0)
    assert frame.banner is not None and frame.banner.alert.id == "1" and frame.banner.resolved
    assert frame.queue == ("2",)
    assert _shown(hall, 1.0 + RESUME - 0.01) == "1"  # stays for its time, marked resolved
    after = hall.frame_at(1.0 + RESUME)
    assert after.banner is not None and after.banner.alert.id == "2" and not after.banner.resolved


def test_acknowledged_elsewhere_the_tour_resumes_at_once() -> None:
    """Wired as the app wires it: the engine's transitions (evaluate, an operator's acknowledge) go to the hall."""
    engine = AlertEngine([parse_rule({"id": "deep", "kind": "threshold", "layer": "flood", "above": 20, "severity": "critical", "title": "Deep water"})])
    hall = _hall()
    clock = {"t": 0.0}
    engine.subscribe(lambda event: hall.on_event(event, clock["t"]))
    when = dt.datetime(2026, 7, 1, 12, tzinfo=dt.timezone.utc)
    table = pd.DataFrame({"value": [25.0, 31.0], "lon": [121.485, 121.47], "lat": [31.235, 31.22], "time": [when, when]}, index=["FP1", "FP2"])
    clock["t"] = 3.0
    engine.evaluate({"flood": LiveSnapshot("flood", table, when)}, when)
    frame = hall.frame_at(3.0)
    assert frame.mode == "alert" and len(frame.queue) == 1 and frame.banner is not None
    first, second = frame.banner.alert.id, frame.queue[0]
    clock["t"] = 8.0
    engine.acknowledge(first, by="operator")  # on the operator's page
    assert _shown(hall, 8.0) == second  # the next alert at once
    clock["t"] = 9.0
    engine.acknowledge(second, by="operator")
    frame = hall.frame_at(9.0)
    assert (frame.mode, frame.camera, frame.flying, frame.banner) == ("tour", "a", True, None)


def test_interrupt_on_takes_a_severity_and_worse_or_named_rules() -> None:
    critical_only = _hall(interrupt_on="critical")
    assert not critical_only.fire(_alert("1", "warning"), 1.0) and critical_only.frame_at(1.0).mode == "tour"
    assert critical_only.fire(_alert("2", "critical"), 2.0)
    by_rule = _hall(interrupt_on=["crowd_high"])
    assert not by_rule.fire(_alert("1", "critical", rule="deep"), 1.0)
    assert by_rule.fire(_alert("2", "info", rule="crowd_high"), 2.0)
    never = _hall(interrupt_on=[])
    assert not never.fire(_alert("1"), 1.0)


def test_an_alert_without_location_shows_its_banner_and_the_camera_holds() -> None:
    hall = _hall()
    before = hall.frame_at(5.0)
    hall.fire(_alert("1", lon=None, lat=None), 5.0)
    frames = [hall.frame_at(5.0 + k) for k in range(5)]
    assert all(f.mode == "alert" and not f.flying and _same(f.pose, before.pose) for f in frames)


def test_already_acknowledged_and_repeated_alerts_do_not_interrupt_and_the_queue_is_bounded() -> None:
    hall = _hall()
    hall.on_event(AlertEvent("firing", {"id": "1", "severity": "critical", "rule_id": "deep", "acknowledged": True}, dt.datetime.now(dt.timezone.utc)), 1.0)
    assert hall.frame_at(1.0).mode == "tour"
    small = Hall(_stops(), WallSpec(), FRAME, start=0.0, max_queue=2)
    for i, severity in enumerate(["critical", "info", "warning", "critical", "critical"]):
        small.fire(_alert(str(i), severity), 1.0 + i)
    assert not small.fire(_alert("0"), 7.0)  # already shown
    assert small.frame_at(7.0).queue == ("3", "4") and small.dropped == 2  # info, then warning, left out


# -- property: no event ever jump-cuts, the queue stays ordered ---------------------------------------
_EVENTS = st.lists(
    st.tuples(st.floats(0.0, 40.0), st.sampled_from(["fire", "resolve", "ack"]), st.integers(0, 5), st.sampled_from(["critical", "warning", "info"]),
              st.booleans()),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(_EVENTS)
def test_events_never_move_the_camera_at_once_and_the_queue_stays_ordered(events: list[tuple[float, str, int, str, bool]]) -> None:
    hall = _hall()
    t = 0.0
    rank = {"critical": 0, "warning": 1, "info": 2}
    severities: dict[str, str] = {}
    for gap, kind, number, severity, located in events:
        t += gap
        alert_id = str(number)
        before = hall.frame_at(t)
        if kind == "fire":
            hall.fire(_alert(alert_id, severities.setdefault(alert_id, severity), lon=121.485 if located else None), t)
        elif kind == "resolve":
            hall.resolve(alert_id, t)
        else:
            hall.acknowledge(alert_id, t)
        after = hall.frame_at(t)
        assert _same(before.pose, after.pose, tol=1e-6)
        assert [rank[severities[i]] for i in after.queue] == sorted(rank[severities[i]] for i in after.queue)
        assert after.banner is None or after.banner.alert.id not in after.queue
        assert (after.mode == "alert") == (after.banner is not None)
    quiet = t + (len(events) + 1) * RESUME
    assert hall.frame_at(quiet).mode == "tour" and hall.frame_at(quiet).queue == ()


# -- the scene file's wall: ----------------------------------------------------------------------------
SCENE = """\
version: 1
name: Wall test
frame: {{crs: auto, center: [121.48, 31.23]}}
cameras:
  a: {{target: [121.47, 31.22], range: 3000}}
  b: {{target: [121.49, 31.24], range: 1500}}
tours:
  patrol:
    - {{camera: a, dwell: 3s}}
    - {{camera: b, dwell: 3s, flight: 2s}}
layers:
  - {{id: gauges, type: vector, source: {{type: demo, dataset: flood_points}}}}
alerts:
  - {{id: deep, kind: threshold, layer: gauges, above: 20}}
wall:
{wall}"""


def _scene_file(tmp_path: Path, wall: str) -> Path:
    path = tmp_path / "wall.yaml"
    path.write_text(SCENE.format(wall=wall), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("wall", "message"),
    [
        ("  tour: patrl\n", "wall.yaml:16: wall.tour: unknown tour 'patrl' (did you mean 'patrol'?); tours: patrol"),
        ("  tour: patrol\n  interrupt_on: [critical, dep]\n",
         ("wall.yaml:17: wall.interrupt_on[1]: unknown interrupt_on entry 'dep' (did you mean 'deep'?); "
         "known entries (firing, a severity, an alert rule id): firing, critical, warning, info, deep")),
        ("  interrupt_on: severe\n",
         "wall.yaml:16: wall.interrupt_on: unknown interrupt_on entry 'severe'; known entries (firing, a severity, an alert rule id): firing, critical, warning, info, deep"),
        ("  tour: patrol\n  resume_after: soon\n", "wall.yaml:17: wall.resume_after: Value error, 'soon' is not a duration: use e.g. 30s, 5m, 2h, 1h30m or ISO 8601 (PT5M) (got 'soon')"),
        ("  flight: 0s\n", "wall.yaml:16: wall.flight: Value error, must be longer than 0s: the wall flies to an alert and shows it before moving on (got '0s')"),
        ("  tour: patrol\n  range: -5\n", "wall.yaml:17: wall.range: Input should be greater than 0 (got -5)"),
        ("  tuor: patrol\n", "wall.yaml:16: wall.tuor: unknown key 'tuor' (did you mean 'tour'?); known keys: flight, interrupt_on, range, resume_after, tour"),
        ("  - patrol\n", "wall.yaml:15: wall: wall is a mapping of keys (tour, interrupt_on, resume_after, flight, range), got list"),
    ],
)
def test_a_bad_wall_section_is_one_line_with_its_file_line_and_key(tmp_path: Path, wall: str, message: str) -> None:
    with pytest.raises(SceneFileError) as caught:
        Scene.from_file(_scene_file(tmp_path, wall))
    assert str(caught.value).startswith(str(tmp_path / message.split(":")[0]))
    shown = str(caught.value)[len(str(tmp_path)) + 1 :]
    assert shown.startswith(message) and "\n" not in shown


def test_the_wall_section_round_trips_through_to_file(tmp_path: Path) -> None:
    path = _scene_file(tmp_path, "  tour: patrol\n  interrupt_on: [critical, deep]\n  resume_after: 90s\n  flight: 2500ms\n  range: 600\n")
    scene = Scene.from_file(path)
    assert scene.wall == WallSpec(tour="patrol", interrupt_on=("critical", "deep"), resume_after=dt.timedelta(seconds=90),
                                  flight=dt.timedelta(seconds=2.5), range=600.0)
    again = Scene.from_file(scene.to_file(tmp_path / "saved.yaml"))
    assert again.wall == scene.wall and again.to_dict() == scene.to_dict()
    assert scene.to_dict()["wall"] == {"tour": "patrol", "interrupt_on": ["critical", "deep"], "resume_after": "90s", "flight": "2.5s", "range": 600.0}


def test_python_walls_are_checked_and_a_wall_whose_tour_went_away_says_so() -> None:
    with pytest.raises(TwinError, match=r"^wall\.tour: unknown tour 'p'; tours: none defined$"):
        Scene("s", wall={"tour": "p"})
    with pytest.raises(TwinError, match=r"^wall\.resume_after: Value error, must be longer than 0s"):
        Scene("s", wall={"resume_after": 0})
    scene = Scene("s", center=(121.48, 31.23), cameras=CAMERAS, tours={"p": [{"camera": "a"}]}, wall={"tour": "p", "interrupt_on": "flooded"})
    with pytest.raises(TwinError, match=r"^wall\.interrupt_on\[0\]: unknown interrupt_on entry 'flooded'"):  # rules are known once the wall starts
        Hall.from_scene(scene, start=0.0)
    scene.tours = {}
    with pytest.raises(TwinError, match=r"^wall\.tour: unknown tour 'p'; tours: none defined$"):
        Hall.from_scene(scene, start=0.0)


def test_the_demo_wall_cycles_the_patrol() -> None:
    scene = Scene.from_file(DEMO)
    assert scene.wall is not None and scene.wall.tour == "patrol" and scene.wall.resume_after == dt.timedelta(minutes=2)
    hall = Hall.from_scene(scene, start=0.0)
    assert [stop.name for stop in hall.stops] == ["overview", "riverside", "top"]
    assert hall.frame_at(31.0).camera == "riverside" and hall.frame_at(31.0).layers == {"crowd": True}
