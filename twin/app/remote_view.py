"""The remote 3D view's images: JPEG, sharp at rest, small while the camera moves, at the browser's real pixel size.

At rest the image is :data:`STILL_QUALITY` at the view box's CSS size times the browser's device
pixel ratio (at most :data:`MAX_PIXEL_RATIO`: a 2x laptop gets sharp text, a 3x phone no 9x
bytes); while the camera moves it is :data:`MOVING_QUALITY` at :data:`MOVING_RATIO` of the box's
CSS size, and the still image follows when the camera stops. trame-vtk renders and encodes a
frame once on the server and publishes the same bytes to every browser watching; it keeps one
image size per view, so browsers whose view boxes differ get the size asked for last.
"""

from __future__ import annotations

from typing import Any

from trame.widgets import vtk as vtk_widgets

__all__ = ["MAX_PIXEL_RATIO", "MOVING_QUALITY", "MOVING_RATIO", "STILL_QUALITY", "remote_view"]

STILL_QUALITY, MOVING_QUALITY, MOVING_RATIO = 30, 20, 0.5
"""JPEG quality (0-100) at rest and while the camera moves; the moving image's share of the view box's side.

Quality 30 keeps the demo district's dense 1920×1080 still near 200 kB (quality 92: ~690 kB); plain
scenes (districts, lines) stay far under 150 kB."""
MAX_PIXEL_RATIO = 2
"""The still image is at most this many image pixels per CSS pixel along each side."""


def remote_view(window: Any, **options: Any) -> vtk_widgets.VtkRemoteView:
    """A trame-vtk remote view of ``window`` (a vtkRenderWindow) with twin's image settings; ``options`` go to the widget (ref, events)."""
    return vtk_widgets.VtkRemoteView(
        window, interactive_ratio=MOVING_RATIO, interactive_quality=MOVING_QUALITY, still_quality=STILL_QUALITY,
        still_ratio=(f"Math.min(window.devicePixelRatio || 1, {MAX_PIXEL_RATIO})",), style="width: 100%; height: 100%;", **options,
    )
