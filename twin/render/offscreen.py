"""Offscreen rendering of a scene to an image file (``twin render``, ``Scene.screenshot``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from twin.errors import TwinError, TwinWarning
from twin.render.view import SceneView
from twin.scene.model import Scene

__all__ = ["render_to_file"]


def render_to_file(scene: Scene, path: str | Path, *, size: tuple[int, int] = (1920, 1080), camera: str | None = None) -> Path:
    """Render ``scene`` at ``size`` to a PNG. Raises if a layer fails or nothing would be drawn."""
    width, height = size
    if not (16 <= width <= 16384 and 16 <= height <= 16384):
        raise TwinError(f"image size {width}x{height} is out of range (16..16384 pixels a side)")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise TwinError(f"output {path} must be a .png file")
    if not path.parent.exists():
        raise TwinError(f"output folder {path.parent} does not exist")
    scene.tick(scene.time)  # live layers show the scene time (or now)
    view = SceneView(scene, size=(width, height), strict=True)
    try:
        view.sync()
        empty = view.empty_layers()
        for layer_id in empty:
            warnings.warn(f"layer {layer_id!r} has no features to draw", TwinWarning, stacklevel=2)
        if len(empty) == len(scene.layers):
            raise TwinError(f"scene {scene.name!r} has nothing to draw: " + ("no layers" if not scene.layers else f"every layer is empty ({', '.join(empty)})"))
        view.set_camera(camera)
        pixels = view.image()
        if float(np.ptp(pixels.reshape(-1, 3), axis=0).max()) == 0:
            raise TwinError(f"rendering scene {scene.name!r} produced a blank image: check the camera and layers")
        return view.save_png(path, pixels)
    finally:
        view.close()
