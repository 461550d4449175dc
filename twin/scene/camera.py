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

from pydantic import BaseModel, ConfigDict, Field, model_validator

from twin.geo.frame import Frame

__all__ = ["CameraPreset", "Vec3"]

Vec3 = tuple[float, float, float]


class CameraPreset(BaseModel):
    """A named view of the scene."""

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
