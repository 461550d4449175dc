"""Named camera presets, in lon/lat so they survive a change of the scene's frame.

Two forms: an explicit ``position`` / ``focal_point`` / ``up`` (lon, lat, height in metres), or
an orbit around a ``target`` with ``heading`` (degrees clockwise from north, the direction the
camera looks), ``pitch`` (degrees below the horizon; 90 looks straight down) and ``range``
(metres from the target).

>>> from twin.geo import Frame
>>> cam = CameraPreset(target=(121.48, 31.23), heading=0, pitch=90, range=1000)
>>> pos, focal, up = cam.resolve(Frame.auto(121.48, 31.23))
>>> [round(v, 3) + 0.0 for v in pos], up
([0.0, 0.0, 1000.0], (0.0, 1.0, 0.0))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from twin.geo.frame import Frame

__all__ = ["CameraPose", "CameraPreset", "Vec3", "ease_in_out", "fly", "preset_pose"]

Vec3 = tuple[float, float, float]


class CameraPreset(BaseModel):
    """A named view of the scene: ``position`` + ``focal_point`` (lon, lat, height in m), or an orbit
    around ``target`` with ``heading`` (degrees from north), ``pitch`` (degrees below the horizon)
    and ``range`` (metres). Raises ``ValueError`` (pydantic) for a mix of the two forms.

    >>> from twin.geo.frame import Frame
    >>> bund = CameraPreset(target=(121.49, 31.24), heading=0, pitch=90, range=1000)
    >>> position, focal, up = bund.resolve(Frame.auto(121.49, 31.24))
    >>> [round(v, 3) + 0.0 for v in position], [round(v, 3) + 0.0 for v in focal], up  # straight down, north up
    ([0.0, 0.0, 1000.0], [0.0, 0.0, 0.0], (0.0, 1.0, 0.0))
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    position: tuple[float, float, float] | None = Field(None, description="camera lon, lat, height (m)")
    focal_point: tuple[float, float, float] | None = Field(None, description="looked-at lon, lat, height (m)")
    up: tuple[float, float, float] = Field((0.0, 0.0, 1.0), description="view-up vector in the local frame")
    target: tuple[float, float] | tuple[float, float, float] | None = Field(None, description="orbit centre lon, lat[, height]")
    heading: float = Field(0.0, description="degrees clockwise from north that the camera looks towards")
    pitch: float = Field(45.0, ge=0.0, le=90.0, description="degrees below the horizon; 90 looks straight down")
    range: float = Field(2000.0, gt=0.0, description="distance from the target in metres")
    view_angle: float = Field(30.0, gt=1.0, lt=120.0, description="vertical field of view in degrees")

    @model_validator(mode="after")
    def _one_form(self) -> CameraPreset:
        explicit = self.position is not None or self.focal_point is not None
        if explicit and self.target is not None:
            raise ValueError("give either position + focal_point or target (+ heading/pitch/range), not both")
        if explicit and (self.position is None or self.focal_point is None):
            raise ValueError("position and focal_point go together")
        if not explicit and self.target is None:
            raise ValueError("a camera needs position + focal_point, or a target")
        return self

    def resolve(self, frame: Frame) -> tuple[Vec3, Vec3, Vec3]:
        """Position, focal point and view-up in the frame's local metres."""
        if self.position is not None and self.focal_point is not None:
            pos = frame.lonlat_to_local([self.position[0]], [self.position[1]], self.position[2])[0]
            focal = frame.lonlat_to_local([self.focal_point[0]], [self.focal_point[1]], self.focal_point[2])[0]
            return _vec(pos), _vec(focal), self.up
        assert self.target is not None
        height = self.target[2] if len(self.target) == 3 else 0.0
        focal = _vec(frame.lonlat_to_local([self.target[0]], [self.target[1]], height)[0])
        heading = math.radians(self.heading)
        pitch = math.radians(self.pitch)
        look = (math.sin(heading), math.cos(heading))
        horizontal = self.range * math.cos(pitch)
        pos = (focal[0] - look[0] * horizontal, focal[1] - look[1] * horizontal, focal[2] + self.range * math.sin(pitch))
        up: Vec3 = (round(look[0], 12), round(look[1], 12), 0.0) if self.pitch > 89.9 else (0.0, 0.0, 1.0)
        return (float(pos[0]), float(pos[1]), float(pos[2])), focal, up


def _vec(values: object) -> Vec3:
    x, y, z = (float(v) for v in values)  # type: ignore[attr-defined]
    return (x, y, z)


@dataclass(frozen=True)
class CameraPose:
    """A camera in a scene frame's local metres: where it is, what it looks at, its view-up, its vertical field of view (degrees)."""

    position: Vec3
    focal_point: Vec3
    up: Vec3
    view_angle: float = 30.0


def preset_pose(preset: CameraPreset, frame: Frame) -> CameraPose:
    """The pose of ``preset`` in ``frame`` (local metres)."""
    position, focal, up = preset.resolve(frame)
    return CameraPose(position, focal, up, preset.view_angle)


def ease_in_out(t: float) -> float:
    """Smoothstep easing of ``t`` in [0, 1] (clamped): starts and ends at rest, so a flight never jerks.

    >>> ease_in_out(0.0), ease_in_out(0.5), ease_in_out(1.0), ease_in_out(2.0)
    (0.0, 0.5, 1.0, 1.0)
    """
    t = min(max(t, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def fly(start: CameraPose, end: CameraPose, t: float) -> CameraPose:
    """The pose a fraction ``t`` (0..1, eased) along a smooth flight from ``start`` to ``end``.

    The focal point moves in a straight line; the camera orbits it: its distance changes
    geometrically (zooming from 9 km to 900 m looks even), its heading turns the short way round
    and its pitch changes linearly, so the camera never cuts through the ground between two views
    from above. ``t`` = 0 and 1 give ``start`` and ``end`` exactly.

    >>> a = CameraPose((0.0, -1000.0, 1000.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    >>> b = CameraPose((1000.0, 0.0, 1000.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    >>> mid = fly(a, b, 0.5)  # halfway round: looking north-west, from the south-east
    >>> [round(v) + 0 for v in mid.position], [round(v, 3) + 0 for v in mid.up]
    ([707, -707, 1000], [-0.5, 0.5, 0.707])
    """
    s = ease_in_out(t)
    if s <= 0.0:
        return start
    if s >= 1.0:
        return end
    (range_a, heading_a, pitch_a), (range_b, heading_b, pitch_b) = _orbit(start), _orbit(end)
    turn = (heading_b - heading_a + math.pi) % (2 * math.pi) - math.pi
    heading = heading_a + turn * s
    pitch = pitch_a + (pitch_b - pitch_a) * s
    distance = range_a * (range_b / range_a) ** s
    focal = tuple(a + (b - a) * s for a, b in zip(start.focal_point, end.focal_point, strict=True))
    horizontal = distance * math.cos(pitch)
    position = (focal[0] - math.sin(heading) * horizontal, focal[1] - math.cos(heading) * horizontal, focal[2] + distance * math.sin(pitch))
    up = (math.sin(heading) * math.sin(pitch), math.cos(heading) * math.sin(pitch), math.cos(pitch))
    return CameraPose(position, _vec(focal), up, start.view_angle + (end.view_angle - start.view_angle) * s)


def _orbit(pose: CameraPose) -> tuple[float, float, float]:
    """(range m, heading rad clockwise from north that the camera looks, pitch rad below the horizon) of ``pose``.

    Looking straight down, the heading is where the view-up points (as :meth:`CameraPreset.resolve` sets it).
    """
    dx, dy, dz = (p - f for p, f in zip(pose.position, pose.focal_point, strict=True))
    distance = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-6)
    horizontal = math.hypot(dx, dy)
    heading = math.atan2(-dx, -dy) if horizontal > 1e-9 * distance else math.atan2(pose.up[0], pose.up[1])
    return distance, heading, math.atan2(dz, horizontal)
