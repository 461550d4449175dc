"""City scale: a light proxy of big layers while the camera moves, and which view a browser can hold.

Level of detail (:attr:`twin.render.view.SceneView.lod`, :class:`LodSettings`): a layer
of at least :attr:`LodSettings.min_triangles` triangles gets a *proxy*, the same mesh decimated
by quadric clustering (:func:`build_proxy`, ~:attr:`LodSettings.proxy_triangles` triangles,
every proxy cell keeping the cell data of one input cell, so colours by feature still apply).
A frame is *moving* when the render window's desired update rate is at least
:attr:`LodSettings.moving_rate`: VTK's interactor styles raise it to the interactor's desired
rate (15 fps) from the press that starts a rotate/pan/dolly until the release, and drop it to
the still rate (0.0001) after; trame's remote view sends the browser's mouse through that
interactor. A moving frame draws proxies instead of the full meshes and skips FXAA; the swap
lives only inside the render (renderer start/end events), so between frames the scene is at
full detail: a still frame, picking and bounds never see a proxy.

View choice (:func:`choose_view_mode`): the browser-side (vtk.js) view downloads every
triangle, so it is used only when the geometry fits :data:`LOCAL_BYTE_BUDGET` bytes (download
time and browser memory: the limit that decides at city scale) and the triangle budget (the
browser's frame rate; ``TwinApp(triangle_budget=...)``, 2M by default), and no
layer draws labels (vtk.js cannot show VTK's billboard text).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkFiltersCore import vtkQuadricClustering

__all__ = ["LOCAL_BYTE_BUDGET", "LodSettings", "build_proxy", "choose_view_mode", "geometry_bytes"]

LOCAL_BYTE_BUDGET = 48_000_000
"""Bytes of geometry (points, cells, cell arrays) above which the app renders on the server: ~0.4 s
on a 1 Gbit/s network and what a browser tab holds comfortably twice (vtk.js keeps a copy for the GPU)."""


@dataclass(frozen=True)
class LodSettings:
    """When and how a view draws light proxies of its big layers.

    ``min_triangles``: layers with at least this many triangles get a proxy (the 30k-building demo
    district, ~0.4M triangles, draws at full detail always). ``proxy_triangles``: the proxy's size
    (about; quadric clustering on a grid of square ground bins). ``moving_rate``: render window
    desired update rate (frames/s) from which a frame counts as moving.
    """

    min_triangles: int = 1_000_000
    proxy_triangles: int = 200_000
    moving_rate: float = 1.0


def build_proxy(mesh: vtkPolyData, triangles: int) -> vtkPolyData:
    """``mesh`` (local metres, z up) decimated by quadric clustering to about ``triangles`` triangles.

    Bins are square on the ground (the city's extent decides their number) and ~8 over the
    height. Each output cell carries the cell data of one input cell it came from (``building_id``:
    the feature's colour). Raises nothing; an empty mesh gives an empty proxy.
    """
    if mesh.GetNumberOfCells() == 0:
        return vtkPolyData()
    xmin, xmax, ymin, ymax, _zmin, _zmax = mesh.GetBounds()
    width, depth = max(xmax - xmin, 1.0), max(ymax - ymin, 1.0)
    bins = max(triangles / 4.0, 64.0)  # a dense city keeps ~4 triangles per occupied ground bin
    side = math.sqrt(width * depth / bins)
    clustering = vtkQuadricClustering()
    clustering.SetInputData(mesh)
    clustering.SetNumberOfDivisions(max(int(width / side), 2), max(int(depth / side), 2), 8)
    clustering.CopyCellDataOn()
    clustering.Update()
    proxy = vtkPolyData()
    proxy.ShallowCopy(clustering.GetOutput())
    return proxy


def geometry_bytes(mesh: vtkPolyData) -> int:
    """Bytes a browser-side view downloads for ``mesh``: its points, cells and cell/point arrays."""
    return int(mesh.GetActualMemorySize()) * 1024


def choose_view_mode(
    *, labelled: list[str], triangles: int, nbytes: int, triangle_budget: int, byte_budget: int = LOCAL_BYTE_BUDGET
) -> tuple[Literal["remote", "local"], str]:
    """``"local"`` (vtk.js in the browser) when the scene fits both budgets and draws no labels, else ``"remote"``; with the reason."""
    if labelled:
        return "remote", f"layers {', '.join(labelled)} draw labels"
    if nbytes > byte_budget:
        return "remote", f"{nbytes / 1e6:,.0f} MB of geometry is over the browser's {byte_budget / 1e6:,.0f} MB"
    if triangles > triangle_budget:
        return "remote", f"{triangles:,} triangles is over the budget of {triangle_budget:,}"
    return "local", f"{triangles:,} triangles, {nbytes / 1e6:,.1f} MB of geometry fit the browser"
