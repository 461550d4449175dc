"""The remote 3D view's images: stills within a byte budget at the browser's real pixel size, small JPEGs while the camera moves.

At rest the image is the view box's CSS size times the browser's device pixel ratio (at most
:data:`MAX_PIXEL_RATIO`: a 2x laptop gets sharp text, a 3x phone no 9x bytes), encoded as WebP at
the best quality that fits the byte budget (:mod:`twin.app.still_encoding`: 150 kB per 1920×1080,
scaled by pixel count; ``$TWIN_STILL_KB`` sets another). While the camera moves (a drag, a wall's
flight) frames are JPEG :data:`MOVING_QUALITY` at :data:`MOVING_RATIO` of the box's side, encoded by
VTK as trame-vtk does; the still follows when the camera stops.

trame-vtk's image delivery (``vtkWebPublishImageDelivery``) renders and encodes a frame once on the
server and publishes the same bytes to every browser watching; :func:`remote_view` gives its
``still_render`` a :class:`BudgetStills` (one encoder per server), so that still holds. It keeps one
image size per view: browsers whose view boxes differ get the size asked for last. The page's
image element is built from a Blob typed ``image/jpeg``; browsers decode WebP bytes in it by content.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from trame.widgets import vtk as vtk_widgets
from trame_vtk.modules.vtk.protocols import vtkWebPublishImageDelivery
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkRenderingCore import vtkRenderWindow, vtkWindowToImageFilter

from twin.app.image_sends import newest_images
from twin.app.still_encoding import STILL_BUDGET_BYTES, StillEncoder

__all__ = ["MAX_PIXEL_RATIO", "MOVING_QUALITY", "MOVING_RATIO", "STILL_BUDGET_ENV", "BudgetStills", "remote_view", "still_budget", "window_rgb"]

log = logging.getLogger(__name__)

MOVING_QUALITY, MOVING_RATIO = 20, 0.5
"""JPEG quality (0-100) while the camera moves and the moving image's share of the view box's side (~50 kB on the demo)."""
MAX_PIXEL_RATIO = 2
"""The still image is at most this many image pixels per CSS pixel along each side."""
STILL_BUDGET_ENV = "TWIN_STILL_KB"
"""Environment variable: the still image's byte budget in kB per 1920×1080 pixels (default 150)."""


def still_budget(env: Mapping[str, str] | None = None) -> int:
    """Bytes per 1920×1080 still: ``$TWIN_STILL_KB`` × 1000 (``env``, default os.environ), else 150 kB.

    A value that is not a positive number of kB is logged as one warning naming the variable and the default is used
    (a wall must come up whatever its environment says).
    """
    text = (os.environ if env is None else env).get(STILL_BUDGET_ENV, "").strip()
    if not text:
        return STILL_BUDGET_BYTES
    try:
        kb = float(text)
    except ValueError:
        kb = math.nan
    if not math.isfinite(kb) or kb <= 0:
        log.warning("%s=%r is not a positive number of kB; using %g kB per 1920x1080 still", STILL_BUDGET_ENV, text, STILL_BUDGET_BYTES / 1000)
        return STILL_BUDGET_BYTES
    return round(kb * 1000)


def window_rgb(window: vtkRenderWindow) -> NDArray[np.uint8]:
    """The render window's last frame (back buffer, not rendered again) as (height, width, 3) uint8 RGB, top row first."""
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.ShouldRerenderOff()
    grab.FixBoundaryOn()
    grab.Update()
    image = grab.GetOutput()
    width, height, _ = image.GetDimensions()
    return np.ascontiguousarray(vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)[::-1, :, :3])


class BudgetStills:
    """Stands in for an image delivery's ``still_render``: stills rendered here and encoded by ``encoder``; frames of a moving view go to VTK's.

    ``options`` and the reply are trame-vtk's (``view``, ``size``; ``image`` bytes, ``size``, ``mtime``, ``stale``,
    ...). The reply's ``mtime`` 0 makes VTK's next moving frame render afresh, not reuse its cache. Every frame, still or
    moving, is then published keeping only each view's newest image waiting (:func:`~twin.app.image_sends.newest_images`:
    wslink gives the delivery its ``publish`` once a page connects).
    """

    def __init__(self, delivery: vtkWebPublishImageDelivery, encoder: StillEncoder) -> None:
        self.delivery, self.encoder = delivery, encoder
        self._vtk_render = delivery.still_render

    def __call__(self, options: dict[str, Any]) -> dict[str, Any]:
        newest_images(self.delivery)
        view = self.delivery.get_view(options["view"])
        if not view or str(self.delivery.get_global_id(view)) in self.delivery.views_in_animations:
            return self._vtk_render(options)
        started = time.perf_counter()
        size = list(options.get("size") or view.GetSize()[:2])
        if size != list(view.GetSize()[:2]) and min(size) > 10:
            view.SetSize(size)
        view.Render()
        still = self.encoder.encode(window_rgb(view))
        return {"image": still.data, "stale": False, "mtime": 0, "size": list(view.GetSize()[:2]), "memsize": len(still.data), "format": "webp",
                "global_id": str(self.delivery.get_global_id(view)), "localTime": options.get("localTime", 0),
                "workTime": round((time.perf_counter() - started) * 1000)}


def _budget_stills(root_protocol: Any) -> None:
    """Give each trame-vtk image delivery of ``root_protocol`` a :class:`BudgetStills` (once)."""
    for link in root_protocol.getLinkProtocols():
        if isinstance(link, vtkWebPublishImageDelivery) and not isinstance(link.still_render, BudgetStills):
            link.still_render = BudgetStills(link, StillEncoder(still_budget()))


def remote_view(window: Any, **options: Any) -> vtk_widgets.VtkRemoteView:
    """A trame-vtk remote view of ``window`` (a vtkRenderWindow) with twin's image settings; ``options`` go to the widget (ref, events)."""
    widget = vtk_widgets.VtkRemoteView(
        window, interactive_ratio=MOVING_RATIO, interactive_quality=MOVING_QUALITY,
        still_ratio=(f"Math.min(window.devicePixelRatio || 1, {MAX_PIXEL_RATIO})",), style="width: 100%; height: 100%;", **options,
    )
    if widget.server.protocol is not None:  # a page rebuilt on a running server (streamed start-up)
        _budget_stills(widget.server.protocol)
    else:
        widget.server.add_protocol_to_configure(_budget_stills)  # after trame-vtk's own, added when the widget enabled its module
    return widget
