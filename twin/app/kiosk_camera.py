"""The wall's hold on the shared camera (:mod:`twin.app.kiosk`): while the wall runs, no page steers it.

Every page of a server shows one render window; while the wall's tour runs, its camera is the tour's. The
view's mouse style is swapped for one that moves nothing (a drag or the wheel from any page leaves the camera
where it is; the interactor's observers, e.g. the press that starts a pick, still run) and given back when
the wall stops.
"""

from __future__ import annotations

import math
from typing import Any

from vtkmodules.vtkInteractionStyle import vtkInteractorStyleUser

from twin.scene.camera import CameraPose

__all__ = ["CameraHold", "at"]


class CameraHold:
    """Holds the camera of ``window`` (a vtkRenderWindow with an interactor) against mouse drags and the wheel."""

    def __init__(self, window: Any) -> None:
        self.window = window
        self._page_style: Any = None  # the view's own mouse style, while held

    @property
    def held(self) -> bool:
        """Whether mouse drags and the wheel are kept off the camera now."""
        return self._page_style is not None

    def hold(self, on: bool) -> None:
        """``on``: drags and the wheel stop moving the camera; False: the view's own style comes back. Idempotent."""
        interactor = self.window.GetInteractor()
        if interactor is None or on == self.held:
            return
        if on:
            self._page_style = interactor.GetInteractorStyle()
            interactor.SetInteractorStyle(vtkInteractorStyleUser())  # observes, moves nothing
        else:
            interactor.SetInteractorStyle(self._page_style)
            self._page_style = None


def at(pose: CameraPose, key: tuple[float, ...], tolerance_m: float = 1e-3) -> bool:
    """Whether the camera ``pose`` is where ``key`` (position, then focal point, local metres, as the wall keys poses) put it."""
    return math.dist(pose.position, key[:3]) < tolerance_m and math.dist(pose.focal_point, key[3:6]) < tolerance_m
