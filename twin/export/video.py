"""Recording a scene to an H.264 MP4 with no display: a flight through a camera tour and/or a replay of scene time.

Frames are rendered offscreen by :class:`~twin.render.view.SceneView` (legends included) with the
scene clock (+08:00) burnt in, and piped to the ffmpeg binary that imageio-ffmpeg ships
(libx264, yuv420p, so every player opens it). Recordings over :data:`PROGRESS_ABOVE` frames show a
tqdm progress bar on stderr.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm
from vtkmodules.vtkRenderingCore import vtkTextActor, vtkTextProperty

from twin.alerts.rules import parse_duration
from twin.clock import fmt_datetime
from twin.errors import ExportError, TwinWarning, unknown_name
from twin.export.common import output_path
from twin.render import vtk_setup
from twin.render.view import SceneView
from twin.scene.camera import CameraPose
from twin.scene.model import Scene
from twin.scene.tour import Tour, TourFrame

__all__ = ["MAX_VIDEO_SIZE", "PROGRESS_ABOVE", "record_video"]

MAX_VIDEO_SIZE = (3840, 2160)
"""Largest video (width, height): 4K UHD."""
PROGRESS_ABOVE = 50
"""Recordings of more frames than this show a progress bar."""
DEFAULT_REPLAY_SECONDS = 10.0
"""Length of a replay recorded without a tour or a duration."""

Replay = tuple[dt.datetime | str, dt.datetime | str]


def record_video(
    scene: Scene,
    path: str | Path,
    *,
    tour: str | None = None,
    replay: Replay | None = None,
    fps: float = 10.0,
    size: tuple[int, int] = (1280, 720),
    duration: float | dt.timedelta | str | None = None,
) -> Path:
    """Record ``scene`` to the MP4 ``path`` (see :meth:`twin.Scene.record`); returns the path.

    ``size`` is (width, height) in pixels, both even, at most 3840×2160; ``fps`` frames per second
    (0 < fps <= 120). Every problem with the arguments is checked before rendering starts and
    raised as one :class:`ExportError` line; a layer that fails to draw raises its own error.
    """
    path = output_path(path, (".mp4",), "an H.264 video")
    width, height = _check_size(size)
    fps = _check_fps(fps)
    chosen = _tour(scene, tour)
    times = _replay(replay)
    count = _frame_count(chosen, times, fps, duration)
    stops = chosen.timeline(scene.cameras, scene.frame, fps=fps, count=count) if chosen is not None else None
    clock = _spread(times, count) if times is not None else None
    shown = {layer.id: layer.visible for layer in scene.layers}
    scene.tick(clock[0] if clock else scene.time)
    view = SceneView(scene, size=(width, height), strict=True)
    try:
        _first_sync(view, scene)
        label = _clock_label(view, height)
        with _writer(path, (width, height), fps) as send:
            for k in tqdm(range(count), total=count, disable=count <= PROGRESS_ABOVE, unit="frame", desc=f"twin: recording {path.name}"):
                send(_frame(view, scene, label, stops[k] if stops else None, clock[k] if clock else None, shown))
    finally:
        for layer in scene.layers:
            layer.visible = shown.get(layer.id, layer.visible)
        view.close()
    return path


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ExportError(f"video size {size!r} is not (width, height)") from None
    if not (16 <= width <= MAX_VIDEO_SIZE[0] and 16 <= height <= MAX_VIDEO_SIZE[1]):
        raise ExportError(f"video size {width}x{height} is out of range (16x16 .. {MAX_VIDEO_SIZE[0]}x{MAX_VIDEO_SIZE[1]})")
    if width % 2 or height % 2:
        raise ExportError(f"video size {width}x{height}: width and height must be even (H.264 in yuv420p), e.g. {width + width % 2}x{height + height % 2}")
    return width, height


def _check_fps(fps: float) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise ExportError(f"frames per second {fps!r} is not a number") from None
    if not 0 < value <= 120:
        raise ExportError(f"frames per second {fps!r} is out of range (above 0, at most 120)")
    return value


def _tour(scene: Scene, name: str | None) -> Tour | None:
    """The scene's tour ``name`` (None for none), its layer overrides checked against the scene's layers."""
    if name is None:
        return None
    if name not in scene.tours:
        raise ExportError(unknown_name("tour", name, list(scene.tours), listed="tours", none="none defined"))
    tour = scene.tours[name]
    layer = tour.unknown_layer([layer.id for layer in scene.layers])
    if layer is not None:
        raise ExportError(f"tour {name!r} stop {layer[0]}: {layer[2]}")
    return tour


def _replay(replay: Replay | None) -> tuple[dt.datetime, dt.datetime] | None:
    """(start, end) as tz-aware datetimes, start before end."""
    if replay is None:
        return None
    if not isinstance(replay, (tuple, list)) or len(replay) != 2:
        raise ExportError(f"replay must be (start, end), got {replay!r}")
    start, end = (_moment(value, which) for value, which in zip(replay, ("start", "end"), strict=True))
    if end <= start:
        raise ExportError(f"replay end {end.isoformat()} is not after its start {start.isoformat()}")
    return start, end


def _moment(value: dt.datetime | str, which: str) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ExportError(f"replay {which} {value!r} is not an ISO 8601 time, e.g. 2026-07-01T20:15:00+08:00") from None
    if not isinstance(value, dt.datetime):
        raise ExportError(f"replay {which} {value!r} is not a time")
    if value.tzinfo is None:
        raise ExportError(f"replay {which} {value.isoformat()} needs a time zone, e.g. +08:00")
    return value


def _frame_count(tour: Tour | None, times: tuple[dt.datetime, dt.datetime] | None, fps: float, duration: float | dt.timedelta | str | None) -> int:
    """Frames in the video: ``duration`` (default: the tour's length, else :data:`DEFAULT_REPLAY_SECONDS`) × ``fps``."""
    if tour is None and times is None:
        raise ExportError("a recording needs a tour (tour=NAME) or a replay (replay=(start, end))")
    if duration is not None:
        try:
            seconds = parse_duration(duration).total_seconds()
        except ValueError as exc:
            raise ExportError(f"recording duration: {exc}") from None
    else:
        seconds = tour.duration.total_seconds() if tour is not None else DEFAULT_REPLAY_SECONDS
    return max(1, round(seconds * fps))


def _spread(times: tuple[dt.datetime, dt.datetime], count: int) -> list[dt.datetime]:
    """``count`` scene times from start to end inclusive."""
    start, end = times
    return [start + (end - start) * (k / (count - 1) if count > 1 else 0.0) for k in range(count)]


def _first_sync(view: SceneView, scene: Scene) -> None:
    """Draw the layers once; warn about empty ones; refuse a scene with nothing to draw."""
    view.sync()
    empty = view.empty_layers()
    for layer_id in empty:
        warnings.warn(f"layer {layer_id!r} has no features to draw", TwinWarning, stacklevel=3)
    if len(empty) == len(scene.layers):
        raise ExportError(f"scene {scene.name!r} has nothing to draw: " + ("no layers" if not scene.layers else f"every layer is empty ({', '.join(empty)})"))


def _clock_label(view: SceneView, height: int) -> vtkTextActor:
    """The clock, bottom left, in the legends' font (CJK capable)."""
    scale = max(height / 1080.0, 0.5)
    prop = vtkTextProperty()
    font = vtk_setup.cjk_font_file()
    if font:
        prop.SetFontFamily(4)  # VTK_FONT_FILE
        prop.SetFontFile(font)
    prop.SetFontSize(int(26 * scale))
    prop.SetBold(True)
    prop.SetColor(0.95, 0.95, 0.95)
    prop.SetBackgroundColor(0.04, 0.06, 0.11)
    prop.SetBackgroundOpacity(0.6)
    label = vtkTextActor()
    label.SetTextProperty(prop)
    label.SetDisplayPosition(int(20 * scale), int(20 * scale))
    view.renderer.AddViewProp(label)
    return label


def _frame(view: SceneView, scene: Scene, label: vtkTextActor, stop: TourFrame | None, when: dt.datetime | None, shown: dict[str, bool]) -> NDArray[np.uint8]:
    """Render one frame: scene time ``when`` (replay), the tour's layer overrides and camera, the clock."""
    if when is not None:
        scene.tick(when)
    overrides = stop.layers if stop is not None else {}
    for layer in scene.layers:
        layer.visible = overrides.get(layer.id, shown.get(layer.id, layer.visible))
    view.sync()
    if stop is not None:
        _apply_pose(view, stop.pose)
    label.SetInput(fmt_datetime(scene.time))
    return view.image()


def _apply_pose(view: SceneView, pose: CameraPose) -> None:
    camera = view.renderer.GetActiveCamera()
    camera.SetFocalPoint(*pose.focal_point)
    camera.SetPosition(*pose.position)
    camera.SetViewUp(*pose.up)
    camera.SetViewAngle(pose.view_angle)


@contextmanager
def _writer(path: Path, size: tuple[int, int], fps: float) -> Iterator[Callable[[NDArray[np.uint8]], None]]:
    """A function taking (height, width, 3) RGB frames, piped to ffmpeg (libx264); the file is complete on exit."""
    writer = imageio_ffmpeg.write_frames(
        str(path), size, fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p", macro_block_size=2, quality=7,
        ffmpeg_log_level="error", output_params=["-movflags", "+faststart"],
    )
    try:
        writer.send(None)  # starts ffmpeg
    except (OSError, RuntimeError) as exc:
        raise ExportError(f"cannot start ffmpeg to write {path}: {_one_line(exc)}") from None

    def send(frame: NDArray[np.uint8]) -> None:
        try:
            writer.send(np.ascontiguousarray(frame))
        except (OSError, RuntimeError) as exc:
            raise ExportError(f"cannot write video {path}: {_one_line(exc)}") from None

    failed = False
    try:
        yield send
    except BaseException:
        failed = True
        raise
    finally:
        try:
            writer.close()
        except (OSError, RuntimeError) as exc:
            if not failed:
                raise ExportError(f"cannot finish video {path}: {_one_line(exc)}") from None
        if failed:
            path.unlink(missing_ok=True)  # no half-written video left looking like a good one


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
