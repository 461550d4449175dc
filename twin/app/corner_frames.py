"""Pictures smaller than the render window, drawn in its lower-left corner: the window keeps one size.

Resizing a VTK render window reallocates what it renders with: the EGL surface, VTK's render and display framebuffers, the
FXAA and translucency textures (on llvmpipe, ~15 blocks of width × height × 4 bytes or more: ~110 MiB at 1920×1080). The
remote view's moving frames (trame-vtk renders them at half the size) and the first picture used to resize the window and
back: on the wall (``benchmarks/bench_wall.py``) each flight of the tour freed and allocated all of them twice, and which of
them were held at a given moment varied (at rest after a flight 41-156 MiB of frame-sized blocks, from 2 to 18 of them),
so the server's resident level swung by ~10 % from hour to hour with the same scene.

:func:`corner_rgb` draws the smaller picture in a viewport of the window instead. The rasteriser's work still goes with the
picture's pixels; nothing sized by the window is freed or allocated. Passes sized by the viewport are turned off for the
picture, so they keep their full-size textures: FXAA (a smaller picture is a moving frame or a first glance) and
order-independent translucency (translucent layers are blended in drawing order in it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkUnsignedCharArray
from vtkmodules.vtkRenderingCore import vtkRenderer, vtkRenderWindow

__all__ = ["corner_rgb"]


def corner_rgb(window: vtkRenderWindow, width: int, height: int, *, scale_text: bool = False, render: Callable[[], None] | None = None) -> NDArray[np.uint8]:
    """The window's scene rendered now as a ``width`` × ``height`` picture (pixels, at most the window's size), as
    (height, width, 3) uint8 RGB, top row first. The window keeps its size, its renderers their viewports and settings.

    ``scale_text``: text sized in points (labels) keeps its share of the picture (the window's DPI is scaled for it; VTK
    draws the labels' textures again at that DPI); otherwise it keeps its size in pixels. ``render``: draws the frame
    (default the window's ``Render``; a :class:`~twin.render.view.SceneView`'s ``render`` sets the clipping range first).
    Raises ValueError for a size outside 1 .. the window's size.
    """
    full_width, full_height = window.GetSize()[:2]
    if not (0 < width <= full_width and 0 < height <= full_height):
        raise ValueError(f"a {width}x{height} picture does not fit in the {full_width}x{full_height} render window")
    renderers = _renderers(window)
    saved = [(r.GetViewport(), r.GetUseFXAA(), r.GetUseOIT()) for r in renderers]
    dpi = window.GetDPI()
    try:
        for renderer in renderers:
            renderer.SetViewport(0.0, 0.0, width / full_width, height / full_height)
            renderer.SetUseFXAA(False)
            renderer.SetUseOIT(False)
        if scale_text:
            window.SetDPI(max(1, round(dpi * width / full_width)))
        (render or window.Render)()
        pixels = vtkUnsignedCharArray()
        window.GetPixelData(0, 0, width - 1, height - 1, 0, pixels, 0)  # the back buffer, bottom row first
    finally:
        for renderer, (viewport, fxaa, oit) in zip(renderers, saved):
            renderer.SetViewport(*viewport)
            renderer.SetUseFXAA(fxaa)
            renderer.SetUseOIT(oit)
        window.SetDPI(dpi)
    return np.ascontiguousarray(vtk_to_numpy(pixels).reshape(height, width, 3)[::-1])


def _renderers(window: vtkRenderWindow) -> list[vtkRenderer]:
    collection = window.GetRenderers()
    collection.InitTraversal()
    return [collection.GetNextItem() for _ in range(collection.GetNumberOfItems())]
