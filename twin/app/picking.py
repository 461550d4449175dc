"""Picking helpers of the 3D view: a pick along a browser's ray (the vtk.js view) and the marker of a picked place."""

from __future__ import annotations

import math
from typing import Any

import geopandas as gpd
import shapely

from twin.render.view import SceneView

__all__ = ["marker", "pick_along_ray"]


def pick_along_ray(view: SceneView, near: list[float], far: list[float]) -> dict[str, Any] | None:
    """Pick at the centre pixel of ``view``'s camera looking along ``near`` -> ``far`` (world coordinates, metres of the
    scene's frame), then restore the camera; :meth:`SceneView.pick`'s answer (None: nothing there)."""
    camera = view.renderer.GetActiveCamera()
    saved = (camera.GetPosition(), camera.GetFocalPoint(), camera.GetViewUp())
    direction = [f - n for n, f in zip(near, far)]
    length = math.sqrt(sum(d * d for d in direction)) or 1.0
    try:
        camera.SetPosition(*near)
        camera.SetFocalPoint(*far)
        camera.SetViewUp(*((0.0, 0.0, 1.0) if abs(direction[2] / length) < 0.9 else (0.0, 1.0, 0.0)))
        view.renderer.ResetCameraClippingRange()
        width, height = view.window.GetSize()
        return view.pick(width // 2, height // 2)
    finally:
        camera.SetPosition(*saved[0])
        camera.SetFocalPoint(*saved[1])
        camera.SetViewUp(*saved[2])
        view.renderer.ResetCameraClippingRange()


def marker(kind: str, lon: float | None, lat: float | None) -> gpd.GeoDataFrame | None:
    """One marker (EPSG:4326) of ``kind`` at (lon, lat); None without a location."""
    if lon is None or lat is None:
        return None
    return gpd.GeoDataFrame({"kind": [kind]}, geometry=[shapely.Point(lon, lat)], crs="EPSG:4326")
