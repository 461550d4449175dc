"""Camera tours: named sequences of stops that a recording (or the wall) flies through.

In a scene file::

    tours:
      patrol:
        - {camera: overview, dwell: 30s}
        - {camera: bund, dwell: 20s, flight: 6s, layers: {crowd: true}}
        - {camera: {target: [121.49, 31.24], pitch: 60, range: 1500}, dwell: 10s}

A stop names a camera preset of ``cameras:`` (or gives a camera spec like a ``cameras:``
entry), how long to stay (``dwell``, default 10 s), how long the eased flight from the previous
stop takes (``flight``, default 4 s; never zero: a tour never jump-cuts), and layer visibility
overrides in force from the start of its flight to the end of its dwell.

>>> from twin.geo import Frame
>>> cameras = {"a": CameraPreset(target=(121.48, 31.23), range=1000), "b": CameraPreset(target=(121.49, 31.23), range=500)}
>>> tour = Tour.parse("demo", [{"camera": "a", "dwell": "2s"}, {"camera": "b", "dwell": "1s", "flight": "2s"}], cameras)
>>> tour.duration.total_seconds(), len(tour.timeline(cameras, Frame.auto(121.48, 31.23), fps=2))
(5.0, 10)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator

from twin.alerts.rules import format_duration, parse_duration
from twin.errors import SceneFileError, TwinError, unknown_name
from twin.geo.frame import Frame
from twin.params import ID_RULE, Id, dotted_path, is_id, problems_of
from twin.scene.camera import CameraPose, CameraPreset, fly, preset_pose
from twin.scene.schema import raise_located
from twin.scene.yamlfile import KeyPath, line_of

__all__ = ["DEFAULT_DWELL", "DEFAULT_FLIGHT", "Tour", "TourFrame", "TourStop", "validate_tours"]

DEFAULT_DWELL = dt.timedelta(seconds=10)
"""How long a stop is shown when its ``dwell`` is not given."""
DEFAULT_FLIGHT = dt.timedelta(seconds=4)
"""How long the eased flight to a stop takes when its ``flight`` is not given."""

_CameraRef = Annotated[
    Annotated[Id, Tag("preset")] | Annotated[CameraPreset, Tag("spec")],
    Discriminator(lambda value: "preset" if isinstance(value, str) else "spec"),
]


class TourStop(BaseModel):
    """One stop of a tour: a camera (preset name or spec), how long to stay, the flight there, layer overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    camera: _CameraRef = Field(description="name of a camera preset, or a camera spec like a `cameras:` entry")
    dwell: dt.timedelta = Field(DEFAULT_DWELL, description="how long the tour stays at this stop (e.g. 30s, 2m)")
    flight: dt.timedelta = Field(DEFAULT_FLIGHT, description="how long the eased flight from the previous stop takes")
    layers: dict[Id, bool] = Field({}, description="layer visibility during the flight here and the dwell: {layer id: true/false}")

    _durations = field_validator("dwell", "flight", mode="before")(classmethod(lambda cls, v: parse_duration(v)))

    @field_validator("flight")
    @classmethod
    def _no_jump_cut(cls, value: dt.timedelta) -> dt.timedelta:
        if value <= dt.timedelta(0):
            raise ValueError("flight must be longer than 0s: a tour flies between stops, it never jump-cuts")
        return value

    def pose(self, cameras: Mapping[str, CameraPreset], frame: Frame) -> CameraPose:
        """The stop's camera pose in ``frame`` (its preset must be in ``cameras``)."""
        preset = cameras[self.camera] if isinstance(self.camera, str) else self.camera
        return preset_pose(preset, frame)

    def to_dict(self) -> dict[str, Any]:
        """Scene-file form: durations as ``30s``, defaults left out except ``dwell``."""
        out: dict[str, Any] = {
            "camera": self.camera if isinstance(self.camera, str) else self.camera.model_dump(mode="json", exclude_defaults=True),
            "dwell": format_duration(self.dwell),
        }
        if self.flight != DEFAULT_FLIGHT:
            out["flight"] = format_duration(self.flight)
        if self.layers:
            out["layers"] = dict(self.layers)
        return out


@dataclass(frozen=True)
class TourFrame:
    """What one frame of a tour shows: its time since the tour started, the camera, the layer overrides in force."""

    seconds: float
    pose: CameraPose
    layers: Mapping[str, bool]
    stop: int
    """Index of the stop being flown to or dwelt at."""


@dataclass(frozen=True)
class Tour:
    """A named, non-empty sequence of stops."""

    name: str
    stops: tuple[TourStop, ...]

    @classmethod
    def parse(cls, name: str, stops: Any, cameras: Mapping[str, CameraPreset]) -> Tour:
        """A tour from Python or scene-file data; raises :class:`TwinError` (one line naming the tour) when it is invalid."""
        if not is_id(name):
            raise TwinError(f"tour name {name!r} is invalid: {ID_RULE}")
        if isinstance(stops, Tour):
            stops = stops.stops
        if not isinstance(stops, (list, tuple)):
            raise TwinError(f"tour {name!r} is a list of stops, got {type(stops).__name__}")
        if not stops:
            raise TwinError(f"tour {name!r} needs at least one stop")
        parsed = []
        for index, stop in enumerate(stops):
            try:
                parsed.append(stop if isinstance(stop, TourStop) else TourStop.model_validate(stop))
            except ValidationError as exc:
                loc, message = _stop_problems(exc)[0]
                raise TwinError(f"tour {name!r} stop {index}: {dotted_path(loc) or '(top)'}: {message}") from None
        tour = cls(name, tuple(parsed))
        problem = tour.unknown_camera(cameras)
        if problem is not None:
            raise TwinError(f"tour {name!r} stop {problem[0]}: {problem[1]}")
        return tour

    @property
    def duration(self) -> dt.timedelta:
        """Length of the tour: every dwell, and every flight but the first stop's (the tour starts there)."""
        return sum((stop.dwell + (stop.flight if i else dt.timedelta(0)) for i, stop in enumerate(self.stops)), dt.timedelta(0))

    def unknown_camera(self, cameras: Mapping[str, CameraPreset]) -> tuple[int, str] | None:
        """(stop index, message) of the first stop naming a preset not in ``cameras``, else None."""
        for index, stop in enumerate(self.stops):
            if isinstance(stop.camera, str) and stop.camera not in cameras:
                return index, unknown_name("camera", stop.camera, list(cameras), listed="cameras", none="none defined")
        return None

    def without_layer(self, layer_id: str) -> Tour:
        """The same tour with ``layer_id`` dropped from every stop's visibility overrides (the layer left the scene)."""
        stops = tuple(stop.model_copy(update={"layers": {k: v for k, v in stop.layers.items() if k != layer_id}}) for stop in self.stops)
        return Tour(self.name, stops)

    def unknown_layer(self, layer_ids: list[str]) -> tuple[int, str, str] | None:
        """(stop index, layer id, message) of the first layer override naming no layer of ``layer_ids``, else None."""
        for index, stop in enumerate(self.stops):
            for layer_id in stop.layers:
                if layer_id not in layer_ids:
                    return index, layer_id, unknown_name("layer", layer_id, layer_ids, listed="layers")
        return None

    def pose_at(self, seconds: float, poses: list[CameraPose]) -> tuple[CameraPose, int]:
        """The camera ``seconds`` into the tour (clamped to its length) and the stop index, given each stop's pose."""
        elapsed = 0.0
        for index, stop in enumerate(self.stops):
            flight = stop.flight.total_seconds() if index else 0.0
            if seconds < elapsed + flight:
                return fly(poses[index - 1], poses[index], (seconds - elapsed) / flight), index
            elapsed += flight + stop.dwell.total_seconds()
            if seconds < elapsed:
                return poses[index], index
        return poses[-1], len(self.stops) - 1

    def timeline(self, cameras: Mapping[str, CameraPreset], frame: Frame, *, fps: float, count: int | None = None) -> list[TourFrame]:
        """One :class:`TourFrame` every 1/``fps`` seconds, camera poses in ``frame``: ``count`` frames (default: the
        tour's length, at least one; past the end the tour stays at its last stop)."""
        if not fps > 0:
            raise TwinError(f"frames per second must be above 0, got {fps}")
        poses = [stop.pose(cameras, frame) for stop in self.stops]
        count = max(1, round(self.duration.total_seconds() * fps)) if count is None else count
        frames = []
        for k in range(count):
            pose, index = self.pose_at(k / fps, poses)
            frames.append(TourFrame(k / fps, pose, self.stops[index].layers, index))
        return frames

    def to_list(self) -> list[dict[str, Any]]:
        """Scene-file form of the stops."""
        return [stop.to_dict() for stop in self.stops]


def _stop_problems(exc: ValidationError) -> list[tuple[KeyPath, str]]:
    """A stop's problems, without the ``preset`` / ``spec`` tags pydantic puts after ``camera``."""
    problems = []
    for loc, message in problems_of(TourStop, exc):
        if loc[:1] == ("camera",) and loc[1:2] in (("preset",), ("spec",)):
            loc = loc[:1] + loc[2:]
            if len(loc) == 2 and message.startswith("unknown key"):  # the spec's own keys, which problems_of cannot see past the tag
                message = unknown_name("key", loc[1], sorted(CameraPreset.model_fields), listed="known keys")
        problems.append((loc, message))
    return problems


def validate_tours(
    tours: Mapping[str, Any], cameras: Mapping[str, CameraPreset], layer_ids: list[str], *, file: str | None, lines: dict[KeyPath, int]
) -> dict[str, Tour]:
    """The ``tours:`` of a scene file; the first problem raises a :class:`SceneFileError` with its file, line and key."""
    out: dict[str, Tour] = {}
    for name, stops in tours.items():
        path: KeyPath = ("tours", name)
        if not isinstance(stops, list) or not stops:
            message = f"a tour is a list of stops, got {type(stops).__name__}" if not isinstance(stops, list) else "a tour needs at least one stop"
            raise SceneFileError(message, file=file, line=line_of(lines, path), key=dotted_path(path))
        parsed = []
        for index, stop in enumerate(stops):
            try:
                parsed.append(TourStop.model_validate(stop))
            except ValidationError as exc:
                raise_located(_stop_problems(exc), file=file, lines=lines, prefix=path + (index,))
        tour = Tour(name, tuple(parsed))
        camera = tour.unknown_camera(cameras)
        if camera is not None:
            where = path + (camera[0], "camera")
            raise SceneFileError(camera[1], file=file, line=line_of(lines, where), key=dotted_path(where))
        layer = tour.unknown_layer(layer_ids)
        if layer is not None:
            where = path + (layer[0], "layers", layer[1])
            raise SceneFileError(layer[2], file=file, line=line_of(lines, where), key=dotted_path(where))
        out[name] = tour
    return out
