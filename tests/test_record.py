"""Issue 15: briefings as MP4 with no display: tours and replays, clock and legends burnt in, `twin record`."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from imaging import hue_share

import twin
from twin.cli import main
from twin.errors import ExportError

UTC = dt.timezone.utc
TOUR = """\
tours:
  patrol:
    - {camera: top, dwell: 1s}
    - {camera: bund, dwell: 0.5s, flight: 2s}
    - {camera: top, dwell: 0.5s, flight: 1s, layers: {districts: false}}
"""


def read_video(path: Path) -> tuple[dict[str, object], list[np.ndarray]]:
    """The video's metadata (ffmpeg's) and its frames as (height, width, 3) arrays."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return meta, [np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in reader]


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_twin_record_flies_the_tour_into_an_h264_mp4(districts_scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    districts_scene.write_text(districts_scene.read_text(encoding="utf-8") + TOUR, encoding="utf-8")
    out = tmp_path / "brief.mp4"
    assert main(["record", str(districts_scene), "-o", str(out), "--tour", "patrol", "--size", "320x180", "--fps", "4"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out} (320x180, 4 fps)"
    meta, frames = read_video(out)
    assert (meta["size"], meta["fps"], meta["codec"]) == ((320, 180), 4.0, "h264")
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == len(frames) == 20  # (1 + 2.5 + 1.5) s at 4 fps
    dwell, flight = frames[:4], frames[4:12]
    assert max(diff(dwell[0], f) for f in dwell) < 1.0, "the first stop holds still"
    assert all(diff(a, b) > 1.0 for a, b in itertools.pairwise(flight)), "every flight frame moves"
    assert diff(frames[0], frames[11]) > 10, "the flight ends somewhere else"
    # the districts (tab20 colours) show until the last stop hides them; the legend leaves with them
    assert hue_share(frames[0], 270, 20) > 0.05 and hue_share(frames[-1], 270, 20) < 0.002
    assert diff(frames[0][:, 240:], frames[-1][:, 240:]) > diff(frames[0][:, :200], frames[3][:, :200])


def write_gauges(path: Path, start: dt.datetime) -> None:
    """One flood gauge rising from 2 cm to 40 cm over an hour (UTC times)."""
    rows = ["sensor,lon,lat,time,value"]
    for minute in range(0, 61, 5):
        rows.append(f"g1,121.48,31.23,{(start + dt.timedelta(minutes=minute)).strftime('%Y-%m-%dT%H:%M:%SZ')},{2 + minute * 38 / 60:.1f}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def gauge_scene(folder: Path) -> twin.Scene:
    path = folder / "gauges.yaml"
    path.write_text(
        "version: 1\nname: Gauges\nframe: {crs: auto, center: [121.48, 31.23]}\n"
        "cameras:\n  top: {target: [121.48, 31.23], pitch: 90, range: 400}\ncamera: top\n"
        "layers:\n  - {id: gauges, type: flood_points, source: {type: file_readings, path: gauges.csv, sensor: sensor, value: value}, radius: 60}\n",
        encoding="utf-8",
    )
    return twin.Scene.from_file(path)


def test_a_replay_steps_scene_time_and_burns_the_clock_in(tmp_path: Path) -> None:
    start = dt.datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    write_gauges(tmp_path / "gauges.csv", start)
    scene = gauge_scene(tmp_path)
    out = scene.record(tmp_path / "replay.mp4", replay=("2026-07-01T20:05:00+08:00", start + dt.timedelta(minutes=60)), fps=2, size=(160, 90), duration="3s")
    _, frames = read_video(out)
    assert len(frames) == 6
    assert scene.time == start + dt.timedelta(minutes=60), "the scene is left at the replay's end"
    clock = (slice(70, 90), slice(0, 120))  # bottom left: 2026-07-01 20:05:00 +08:00 ... 21:00:00
    assert all(diff(a[clock], b[clock]) > 0.5 for a, b in itertools.pairwise(frames)), "the clock ticks every frame"
    gauge = (slice(30, 60), slice(65, 95))
    assert diff(frames[0][gauge], frames[-1][gauge]) > 10, "the gauge changes colour as the water rises"


def test_a_long_recording_shows_a_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_gauges(tmp_path / "gauges.csv", dt.datetime(2026, 7, 1, 12, 0, tzinfo=UTC))
    scene = gauge_scene(tmp_path)
    scene.record(tmp_path / "long.mp4", replay=("2026-07-01T20:00+08:00", "2026-07-01T21:00+08:00"), fps=20, size=(32, 18), duration=3)
    assert "60/60" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tour", "patrl", "--size", "320x180"], "unknown tour 'patrl' (did you mean 'patrol'?); tours: patrol"),
        (["--tour", "patrol", "--size", "321x180"], "video size 321x180: width and height must be even (H.264 in yuv420p), e.g. 322x180"),
        (["--tour", "patrol", "--size", "7680x4320"], "video size 7680x4320 is out of range (16x16 .. 3840x2160)"),
        (["--tour", "patrol", "--fps", "0"], "frames per second 0.0 is out of range (above 0, at most 120)"),
        ([], "a recording needs a tour (tour=NAME) or a replay (replay=(start, end))"),
        (["--replay", "2026-07-01T20:00", "2026-07-01T21:00+08:00"], "replay start 2026-07-01T20:00:00 needs a time zone, e.g. +08:00"),
        (["--replay", "2026-07-01T21:00+08:00", "2026-07-01T20:00+08:00"],
         "replay end 2026-07-01T20:00:00+08:00 is not after its start 2026-07-01T21:00:00+08:00"),
        (["--replay", "yesterday", "2026-07-01T20:00+08:00"], "replay start 'yesterday' is not an ISO 8601 time, e.g. 2026-07-01T20:15:00+08:00"),
        (["--tour", "patrol", "--duration", "soon"], "recording duration: 'soon' is not a duration"),
    ],
)
def test_bad_recording_arguments_are_one_line_before_any_rendering(
    districts_scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    districts_scene.write_text(districts_scene.read_text(encoding="utf-8") + TOUR, encoding="utf-8")
    out = tmp_path / "x.mp4"
    assert main(["record", str(districts_scene), "-o", str(out), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"twin: error: {message}") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("brief.gif", "must be a .mp4 file (an H.264 video)"),
        ("missing/brief.mp4", "does not exist (writing brief.mp4)"),
    ],
)
def test_a_bad_output_path_is_refused(tmp_path: Path, name: str, message: str) -> None:
    scene = twin.Scene(cameras={"top": {"target": [121.48, 31.23]}}, tours={"p": [{"camera": "top"}]})
    with pytest.raises(ExportError, match=re.escape(message)):
        scene.record(tmp_path / name, tour="p")


def test_a_tour_naming_a_layer_the_scene_lost_is_refused(tmp_path: Path) -> None:
    """Python-built tours are checked against the layers when recording (a scene file checks them at load)."""
    scene = twin.Scene(cameras={"top": {"target": [121.48, 31.23]}}, tours={"p": [{"camera": "top", "layers": {"crowd": True}}]})
    with pytest.raises(ExportError, match=r"^tour 'p' stop 0: unknown layer 'crowd'; layers: none$"):
        scene.record(tmp_path / "x.mp4", tour="p")
