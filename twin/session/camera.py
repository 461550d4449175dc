"""The camera as a model object: a pose in the scene frame's local metres, and flights to a target.

Views (VTK, vtk.js, notebooks) apply a :class:`CameraChange`; the maths lives here so that a
test can check where a flight ends without any renderer. Presets stay in
:mod:`twin.scene.camera` (lon/lat, resolved against the scene's frame).

>>> pose = CameraPose((0.0, -1000.0, 1000.0), (0.0, 0.0, 0.0))
>>> flown = fly_to(pose, (500.0, 500.0, 0.0), 800.0)
>>> [round(v, 3) for v in flown.focal_point], round(flown.distance, 6)
([500.0, 500.0, 0.0], 800.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twin.scene.camera import Vec3

__all__ = ["CameraChange", "CameraPose", "fly_to"]

_DEFAULT_DIRECTION = (0.0, 0.6, -0.8)  # looking north and down, for a camera whose direction is unknown


@dataclass(frozen=True)
class CameraPose:
    """Where a camera is: ``position``, ``focal_point`` and ``up`` in the frame's local metres (x east, y north, z up)."""

    position: Vec3
    focal_point: Vec3
    up: Vec3 = (0.0, 0.0, 1.0)

    @property
    def distance(self) -> float:
        """Metres from the position to the focal point."""
        return float(math.dist(self.position, self.focal_point))

    def direction(self) -> Vec3:
        """Unit vector the camera looks along (a default tilt north-down when position and focal point coincide)."""
        d = np.subtract(self.focal_point, self.position)
        length = float(np.linalg.norm(d))
        if not math.isfinite(length) or length < 1e-6:
            return _DEFAULT_DIRECTION
        x, y, z = (float(v) for v in d / length)
        return (x, y, z)


@dataclass(frozen=True)
class CameraChange:
    """What a view applies: a named ``preset`` (None: the scene's default view), or a flight.

    A flight (``target`` set) looks at ``target`` (local metres) from ``range`` metres and keeps
    the view's current direction; ``pose`` is where it ends from the last pose the session knew.
    """

    preset: str | None = None
    target: Vec3 | None = None
    range: float | None = None
    pose: CameraPose | None = None


def fly_to(pose: CameraPose | None, target: Sequence[float], distance: float) -> CameraPose:
    """The pose looking at ``target`` (local metres) from ``distance`` metres along ``pose``'s direction."""
    direction = np.asarray(pose.direction() if pose is not None else _DEFAULT_DIRECTION, dtype=np.float64)
    goal = np.asarray(target, dtype=np.float64)
    position = goal - direction * float(distance)
    up = _orthogonal_up(direction, pose.up if pose is not None else (0.0, 0.0, 1.0))
    return CameraPose(_vec(position), _vec(goal), up)


def _orthogonal_up(direction: np.ndarray, up: Sequence[float]) -> Vec3:
    """``up`` made perpendicular to ``direction`` (as VTK's OrthogonalizeViewUp does)."""
    u = np.asarray(up, dtype=np.float64)
    u = u - direction * float(np.dot(u, direction))
    length = float(np.linalg.norm(u))
    if length < 1e-9:
        u, length = np.array([0.0, 1.0, 0.0]), 1.0
    return _vec(u / length)


def _vec(values: Sequence[float] | np.ndarray) -> Vec3:
    x, y, z = (float(v) for v in values)
    return (x, y, z)
