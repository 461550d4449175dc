"""Issue 13: camera tours in scene files (validated with located errors, round-tripped) and eased flights that never jump-cut."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_scene_roundtrip import REPO, assert_same_scene, repo_scene_files, round_trip

import twin
from twin.errors import SceneFileError, TwinError
from twin.geo import Frame
from twin.scene.camera import CameraPose, CameraPreset, ease_in_out, fly, preset_pose
from twin.scene.tour import Tour

SCENE = """\
version: 1
name: t
frame: {center: [121.48, 31.23]}
cameras:
  overview: {target: [121.48, 31.23], heading: 15, pitch: 48, range: 7500}
  top: {target: [121.48, 31.23], heading: 0, pitch: 90, range: 9000}
layers:
  - {id: crowd, type: flood_points, source: {type: flood_sim}}
tours:
  patrol:
    - {camera: overview, dwell: 30s}
    - {camera: top, dwell: 20s, flight: 6s, layers: {crowd: false}}
"""
FRAME = Frame.auto(121.48, 31.23)


def load(tmp_path: Path, text: str) -> twin.Scene:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return twin.Scene.from_file(path)


def scene_error(tmp_path: Path, text: str) -> SceneFileError:
    with pytest.raises(SceneFileError) as info:
        load(tmp_path, text)
    return info.value


# -- scene files ---------------------------------------------------------------------------
def test_a_tour_loads_with_its_stops(tmp_path: Path) -> None:
    tour = load(tmp_path, SCENE).tours["patrol"]
    assert [(s.camera, s.dwell, s.flight, s.layers) for s in tour.stops] == [
        ("overview", dt.timedelta(seconds=30), dt.timedelta(seconds=4), {}),
        ("top", dt.timedelta(seconds=20), dt.timedelta(seconds=6), {"crowd": False}),
    ]
    assert tour.duration == dt.timedelta(seconds=56)  # the tour starts at its first stop: no flight there


def test_the_repository_scenes_have_a_tour_and_round_trip_it(tmp_path: Path) -> None:
    demo = twin.Scene.from_file(REPO / "scenes" / "demo.yaml")
    assert list(demo.tours) == ["patrol"] and len(demo.tours["patrol"].stops) == 3
    for path in repo_scene_files():
        first = twin.Scene.from_file(path)
        again = round_trip(first, tmp_path)
        assert_same_scene(first, again)
        assert again.tours == first.tours


def test_a_tour_built_in_python_round_trips(tmp_path: Path) -> None:
    scene = twin.Scene("built", center=(121.48, 31.23), cameras={"top": {"target": [121.48, 31.23], "pitch": 90}}, tours={
        "brief": [
            {"camera": "top", "dwell": dt.timedelta(minutes=1, seconds=30)},
            {"camera": {"target": [121.49, 31.24], "heading": 200, "pitch": 30, "range": 800}, "dwell": 0, "flight": "2.5s"},
        ],
    })
    written = scene.to_dict()["tours"]["brief"]
    assert written == [
        {"camera": "top", "dwell": "90s"},
        {"camera": {"target": [121.49, 31.24], "heading": 200.0, "pitch": 30.0, "range": 800.0}, "dwell": "0s", "flight": "2.5s"},
    ]
    again = round_trip(scene, tmp_path)
    assert again.tours == scene.tours


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "message"),
    [
        ("camera: overview, dwell: 30s", "camera: overveiw, dwell: 30s", 11, "tours.patrol[0].camera",
         "unknown camera 'overveiw' (did you mean 'overview'?); cameras: overview, top"),
        ("layers: {crowd: false}", "layers: {crwod: false}", 12, "tours.patrol[1].layers.crwod",
         "unknown layer 'crwod' (did you mean 'crowd'?); layers: crowd"),
        ("dwell: 30s", "dwell: 5 minutes", 11, "tours.patrol[0].dwell", "'5 minutes' is not a duration"),
        ("flight: 6s", "flight: 0s", 12, "tours.patrol[1].flight", "flight must be longer than 0s: a tour flies between stops, it never jump-cuts"),
        ("{camera: overview, dwell: 30s}", "{camera: overview, dwel: 30s}", 11, "tours.patrol[0].dwel",
         "unknown key 'dwel' (did you mean 'dwell'?); known keys: camera, dwell, flight, layers"),
        ("{camera: overview, dwell: 30s}", "{camera: {target: [121.48, 31.23], pitch: 100}}", 11, "tours.patrol[0].camera.pitch",
         "Input should be less than or equal to 90"),
        ("{camera: overview, dwell: 30s}", "{camera: {target: [121.48, 31.23], heding: 10}}", 11, "tours.patrol[0].camera.heding",
         "unknown key 'heding' (did you mean 'heading'?)"),
        ("layers: {crowd: false}", "layers: {crowd: maybe}", 12, "tours.patrol[1].layers.crowd", "Input should be a valid boolean"),
        ("  patrol:\n    - {camera: overview, dwell: 30s}\n    - {camera: top, dwell: 20s, flight: 6s, layers: {crowd: false}}\n",
         "  patrol: []\n", 10, "tours.patrol", "a tour needs at least one stop"),
        ("  patrol:\n", "  night patrol:\n", 10, "tours.night patrol", "not a valid id: use letters, digits"),
    ],
)
def test_a_bad_tour_is_one_located_line(tmp_path: Path, old: str, new: str, line: int, key: str, message: str) -> None:
    assert old in SCENE
    err = scene_error(tmp_path, SCENE.replace(old, new))
    assert (err.line, err.key) == (line, key)
    assert message in err.message
    assert "\n" not in str(err)


def test_a_bad_tour_from_python_names_the_tour_and_stop() -> None:
    cameras = {"overview": {"target": [121.48, 31.23]}}
    with pytest.raises(TwinError, match=r"^tour 'p' stop 1: unknown camera 'overveiw' \(did you mean 'overview'\?\); cameras: overview$"):
        twin.Scene(cameras=cameras, tours={"p": [{"camera": "overview"}, {"camera": "overveiw"}]})
    with pytest.raises(TwinError, match=r"^tour 'p' stop 0: dwell: "):
        twin.Scene(cameras=cameras, tours={"p": [{"camera": "overview", "dwell": "-5s"}]})
    with pytest.raises(TwinError, match=r"^tour 'p' needs at least one stop$"):
        twin.Scene(cameras=cameras, tours={"p": []})


# -- flights -------------------------------------------------------------------------------
presets = st.builds(
    CameraPreset,
    target=st.tuples(st.floats(121.40, 121.56), st.floats(31.18, 31.28), st.floats(0, 300)),
    heading=st.floats(-360, 360),
    pitch=st.floats(0, 90),
    range=st.floats(50, 50_000),
    view_angle=st.floats(15, 60),
)


def distance(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    return math.dist(a, b)


@settings(max_examples=150, deadline=None)
@given(presets, presets)
@example(  # found by hypothesis: a zoom from 44 km to 50 m at pitch 0 moves fast at first (geometric zoom), still eased
    CameraPreset(target=(121.48, 31.23), heading=0, pitch=0, range=44477), CameraPreset(target=(121.48, 31.23), heading=0, pitch=0, range=50)
)
def test_a_flight_is_smooth_and_stays_above_the_ground(first: CameraPreset, second: CameraPreset) -> None:
    a, b = preset_pose(first, FRAME), preset_pose(second, FRAME)
    assert fly(a, b, 0.0) == a and fly(a, b, 1.0) == b
    steps = 400
    poses = [fly(a, b, k / steps) for k in range(steps + 1)]
    # no jump: the camera's speed along the eased fraction s is at most the focal shift + half a turn at the larger range
    # + the geometric zoom's speed (range_a * (range_b/range_a)**s changes by at most max range * |ln(range_b/range_a)| per unit s);
    # smoothstep easing peaks at 1.5x
    ra, rb = distance(a.position, a.focal_point), distance(b.position, b.focal_point)
    speed = (distance(a.focal_point, b.focal_point) + math.pi * max(ra, rb) + max(ra, rb) * abs(math.log(rb / ra))) * 1.05
    bound = 1.5 * speed / steps + 1e-6
    assert max(distance(p.position, q.position) for p, q in itertools.pairwise(poses)) <= bound
    for pose in poses[1:-1]:
        assert pose.position[2] >= pose.focal_point[2] - 1e-6 * max(ra, rb), "never below the point looked at"
        look = [f - p for f, p in zip(pose.focal_point, pose.position)]
        norm = math.sqrt(sum(v * v for v in look))
        assert abs(sum(u * v for u, v in zip(pose.up, look))) <= 1e-9 * norm, "view-up is square to the view"
    # eased: it leaves and arrives at rest
    assert distance(fly(a, b, 0.01).position, a.position) <= ease_in_out(0.01) * speed + 1e-6


def test_ease_in_out_starts_and_ends_at_rest() -> None:
    assert [ease_in_out(t) for t in (0, 0.25, 0.5, 0.75, 1)] == [0, 0.15625, 0.5, 0.84375, 1]
    assert ease_in_out(0.001) < 1e-5 and 1 - ease_in_out(0.999) < 1e-5


def test_a_flight_to_a_view_from_straight_above_turns_to_its_heading() -> None:
    """The straight-down preset's view-up says which way is up on screen; the flight ends there with no spin."""
    start = preset_pose(CameraPreset(target=(121.48, 31.23), heading=0, pitch=45, range=2000), FRAME)
    end = preset_pose(CameraPreset(target=(121.48, 31.23), heading=90, pitch=90, range=2000), FRAME)
    near_end = fly(start, end, 0.999)
    assert math.dist(near_end.up, end.up) < 1e-3
    assert math.dist(near_end.position, end.position) < 1e-2


# -- timelines -----------------------------------------------------------------------------
def test_a_timeline_dwells_flies_and_applies_layer_overrides(tmp_path: Path) -> None:
    scene = load(tmp_path, SCENE)
    frames = scene.tours["patrol"].timeline(scene.cameras, scene.frame, fps=2)
    assert len(frames) == 112  # 56 s at 2 frames a second
    overview, top = (preset_pose(scene.cameras[name], scene.frame) for name in ("overview", "top"))
    dwell, flight, arrived = frames[:60], frames[60:72], frames[72:]
    assert {f.pose for f in dwell} == {overview} and {f.stop for f in dwell} == {0} and all(f.layers == {} for f in dwell)
    assert all(f.pose not in (overview, top) for f in flight[1:]) and {f.stop for f in flight} == {1}
    assert all(f.layers == {"crowd": False} for f in flight + arrived)
    assert {f.pose for f in arrived} == {top}
    steps = [distance(p.pose.position, q.pose.position) for p, q in itertools.pairwise(frames)]
    assert max(steps) < 0.2 * distance(overview.position, top.position) + 1500, "no jump cut between frames"


def test_a_timeline_longer_than_the_tour_stays_at_the_last_stop(tmp_path: Path) -> None:
    scene = load(tmp_path, SCENE)
    tour: Tour = scene.tours["patrol"]
    frames = tour.timeline(scene.cameras, scene.frame, fps=1, count=70)
    assert len(frames) == 70 and frames[-1].pose == preset_pose(scene.cameras["top"], scene.frame) and frames[-1].stop == 1


def test_a_camera_pose_keeps_the_presets_view_angle() -> None:
    pose = preset_pose(CameraPreset(target=(121.48, 31.23), view_angle=50), FRAME)
    assert isinstance(pose, CameraPose) and pose.view_angle == 50


def test_removing_a_layer_keeps_the_scene_file_loadable(tmp_path) -> None:
    """A tour stop that showed a removed layer no longer names it, so the saved file loads again."""
    import twin

    scene = twin.Scene.from_dict({"version": 1, "name": "t", "frame": {"center": [121.48, 31.23]},
                                  "cameras": {"a": {"target": [121.48, 31.23], "range": 2000}},
                                  "layers": [{"id": "outline", "type": "vector", "source": {"type": "demo", "dataset": "boundary"}},
                                             {"id": "roads", "type": "vector", "source": {"type": "demo", "dataset": "roads"}}],
                                  "tours": {"patrol": [{"camera": "a", "dwell": "5s", "layers": {"roads": False, "outline": True}}]}})
    scene.remove("roads")
    again = twin.Scene.from_file(scene.to_file(tmp_path / "t.yaml"))
    assert dict(again.tours["patrol"].stops[0].layers) == {"outline": True}
