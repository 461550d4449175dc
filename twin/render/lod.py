"""City scale: hierarchical level of detail (HLOD) for big layers, and which view a browser can hold.

Level of detail (:attr:`twin.render.view.SceneView.lod`, :class:`LodSettings`): a surface layer
(polygons and triangle strips) of at least :attr:`LodSettings.min_triangles` triangles is split
into square ground *tiles* of about :attr:`LodSettings.tile_triangles` triangles each (a feature's
cells stay in one tile), and each tile gets *proxies*: its mesh decimated by quadric clustering
on bins of :attr:`LodSettings.levels` times the layer's feature spacing (metres; a bin's size is
the proxy's geometric error; each level is decimated from the one before). Every frame, :func:`choose_levels` drops the tiles outside the
camera's frustum and draws each other tile at the coarsest level whose error, projected at the
tile's nearest point, is at most :attr:`LodSettings.still_error_px` pixels
(:attr:`LodSettings.moving_error_px` while the camera moves) — the 3D Tiles / Cesium
screen-space-error rule; when the frame would draw more than its triangle budget, tiles step
to coarser levels, the smallest added error first, until it fits. Moving frames are those with the render window's desired update rate
at least :attr:`LodSettings.moving_rate` (VTK's interactor styles raise it from the press that
starts a rotate/pan/dolly until the release) or within :meth:`SceneView.hold_moving` (wheel
zoom). The swap lives only inside a render: between frames the layer's one full-detail actor is
back, so picking, bounds and exports never see a tile or a proxy.

View choice (:func:`choose_view_mode`): the browser-side (vtk.js) view downloads every
triangle, so it is used only when the geometry fits :data:`LOCAL_BYTE_BUDGET` bytes (download
time and browser memory: the limit that decides at city scale) and the triangle budget (the
browser's frame rate; ``TwinApp(triangle_budget=...)``, 2M by default), and no
layer draws labels (vtk.js cannot show VTK's billboard text).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkDataSetAttributes, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkQuadricClustering

__all__ = [
    "CELL_IDS",
    "LOCAL_BYTE_BUDGET",
    "Eye",
    "LodSettings",
    "Tiles",
    "build_proxy",
    "build_tiles",
    "choose_levels",
    "choose_view_mode",
    "geometry_bytes",
    "in_frustum",
    "refresh_cell_data",
    "screen_errors",
]

LOCAL_BYTE_BUDGET = 48_000_000
"""Bytes of geometry (points, cells, cell arrays) above which the app renders on the server: ~0.4 s
on a 1 Gbit/s network and what a browser tab holds comfortably twice (vtk.js keeps a copy for the GPU)."""

CELL_IDS = "twin_cell"
"""Cell array of every tile and proxy mesh: the layer mesh's cell each cell stands for (picking, colours)."""


@dataclass(frozen=True)
class LodSettings:
    """When and how a view draws big layers as tiles at several levels of detail.

    ``min_triangles``: layers with at least this many triangles get tiles (the 30k-building demo
    district, ~0.4M triangles, draws at full detail always). ``tile_triangles``: about this many
    triangles per tile. ``levels``: proxy bin sizes in units of the layer's feature spacing
    (sqrt(ground area / features), ~30 m in the demo), finest first. ``still_error_px`` /
    ``moving_error_px``: the screen-space error (pixels) a still / moving frame allows; 0 keeps
    the full mesh, ``inf`` always draws the coarsest proxy. ``still_triangles`` /
    ``moving_triangles``: the most triangles a frame draws (far tiles coarsen first until it fits).
    ``moving_rate``: render window desired update rate (frames/s) from which a frame counts as moving.
    """

    min_triangles: int = 1_000_000
    tile_triangles: int = 50_000
    levels: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    still_error_px: float = 1.0
    moving_error_px: float = 4.0
    still_triangles: int = 1_500_000
    moving_triangles: int = 150_000
    moving_rate: float = 1.0

    @classmethod
    def first_round(cls, features: int, proxy_triangles: int = 200_000) -> LodSettings:
        """The first level-of-detail scheme, a benchmark baseline: one tile of a layer of ``features`` features, drawn as a
        ~``proxy_triangles`` proxy (about 4 triangles per occupied ground bin) in moving frames and at full detail when still."""
        return cls(tile_triangles=2**62, levels=(math.sqrt(4 * features / proxy_triangles),), still_error_px=0.0, moving_error_px=math.inf,
                   still_triangles=2**62, moving_triangles=2**62)


def build_proxy(mesh: vtkPolyData, bin_size: float) -> vtkPolyData:
    """``mesh`` (local metres, z up) decimated by quadric clustering on cubic bins of ``bin_size`` metres.

    Each output cell carries the cell data of one input cell it came from (with :data:`CELL_IDS`:
    which cell of the layer). Raises nothing; an empty mesh gives an empty proxy.
    """
    if mesh.GetNumberOfCells() == 0:
        return vtkPolyData()
    xmin, xmax, ymin, ymax, zmin, zmax = mesh.GetBounds()
    clustering = vtkQuadricClustering()
    clustering.SetInputData(mesh)
    clustering.SetNumberOfDivisions(*(max(math.ceil((high - low) / bin_size), 1) + 1 for low, high in ((xmin, xmax), (ymin, ymax), (zmin, zmax))))
    clustering.CopyCellDataOn()
    clustering.Update()
    proxy = vtkPolyData()
    proxy.ShallowCopy(clustering.GetOutput())
    return proxy


@dataclass
class Tiles:
    """A layer mesh split into ground tiles, each at full detail (level 0) and as proxies.

    ``meshes[t][k]``: tile t at level k (every mesh has :data:`CELL_IDS`). ``bounds``: (T, 6)
    xmin, xmax, ymin, ymax, zmin, zmax per tile (metres). ``errors``: (T, L) geometric error of
    each level (metres; 0 for level 0). ``triangles``: (T, L) triangles each level draws.
    ``cell_ids[t][k]``: the layer mesh's cell behind each cell of ``meshes[t][k]``. ``spacing``:
    the layer's feature spacing (m); ``built_s``: seconds the split and the proxies took.
    """

    meshes: list[list[vtkPolyData]]
    bounds: NDArray[np.float64]
    errors: NDArray[np.float64]
    triangles: NDArray[np.int64]
    cell_ids: list[list[NDArray[np.int64]]]
    spacing: float
    built_s: float


def _surface_cells(mesh: vtkPolyData) -> list[tuple[NDArray[np.int64], NDArray[np.int64]]] | None:
    """(offsets, connectivity) of the polygons and the strips, in the mesh's cell order; None if it has vertices or lines."""
    if mesh.GetNumberOfVerts() or mesh.GetNumberOfLines():
        return None
    parts = []
    for cells in (mesh.GetPolys(), mesh.GetStrips()):
        if cells.GetNumberOfCells() == 0:
            parts.append((np.zeros(1, np.int64), np.zeros(0, np.int64)))
        else:
            parts.append((vtk_to_numpy(cells.GetOffsetsArray()).astype(np.int64), vtk_to_numpy(cells.GetConnectivityArray()).astype(np.int64)))
    return parts


def _cell_triangles(offsets: NDArray[np.int64]) -> NDArray[np.int64]:
    """Triangles each cell draws: n - 2 for a polygon or strip of n points."""
    return np.maximum(np.diff(offsets) - 2, 0) if len(offsets) > 1 else np.zeros(0, np.int64)


def _take_cells(offsets: NDArray[np.int64], conn: NDArray[np.int64], cells: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(offsets, connectivity) of the listed cells only, in that order."""
    starts, sizes = offsets[cells], offsets[cells + 1] - offsets[cells]
    new_offsets = np.zeros(len(cells) + 1, np.int64)
    np.cumsum(sizes, out=new_offsets[1:])
    index = np.repeat(starts - new_offsets[:-1], sizes) + np.arange(new_offsets[-1])
    return new_offsets, conn[index]


def _cell_array(offsets: NDArray[np.int64], conn: NDArray[np.int64]) -> vtkCellArray:
    cells = vtkCellArray()
    cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True), numpy_to_vtkIdTypeArray(conn, deep=True))
    return cells


def _sub_mesh(mesh: vtkPolyData, parts: list[tuple[NDArray[np.int64], NDArray[np.int64]]], cells: NDArray[np.int64]) -> vtkPolyData:
    """The listed cells of ``mesh`` (sorted ids) as a compact mesh: own points, cell and point arrays, and :data:`CELL_IDS`."""
    n_polys = len(parts[0][0]) - 1
    picked = [cells[cells < n_polys], cells[cells >= n_polys] - n_polys]
    taken = [_take_cells(offsets, conn, ids) for (offsets, conn), ids in zip(parts, picked)]
    used = np.unique(np.concatenate([conn for _, conn in taken]))
    out = vtkPolyData()
    points = vtkPoints()
    points.SetData(numpy_to_vtk(vtk_to_numpy(mesh.GetPoints().GetData())[used], deep=True))
    out.SetPoints(points)
    out.SetPolys(_cell_array(taken[0][0], np.searchsorted(used, taken[0][1])))
    out.SetStrips(_cell_array(taken[1][0], np.searchsorted(used, taken[1][1])))
    _copy_arrays(mesh.GetPointData(), out.GetPointData(), used)
    ids = numpy_to_vtk(cells.astype(np.int64), deep=True)
    ids.SetName(CELL_IDS)
    out.GetCellData().AddArray(ids)
    return out


def _copy_arrays(source: vtkDataSetAttributes, target: vtkDataSetAttributes, rows: NDArray[np.int64]) -> None:
    """Every named array of ``source`` at ``rows`` into ``target`` (replacing arrays of the same name)."""
    for i in range(source.GetNumberOfArrays()):
        array = source.GetArray(i)
        if array is None or not array.GetName() or array.GetName() == CELL_IDS:
            continue
        copy = numpy_to_vtk(np.ascontiguousarray(vtk_to_numpy(array)[rows]), deep=True, array_type=array.GetDataType())
        copy.SetName(array.GetName())
        target.AddArray(copy)


def refresh_cell_data(tiles: Tiles, mesh: vtkPolyData) -> None:
    """Give every tile and proxy mesh the cell arrays of ``mesh`` (the layer's, after a restyle) at its :data:`CELL_IDS`."""
    source = mesh.GetCellData()
    names = {source.GetArrayName(i) for i in range(source.GetNumberOfArrays())} | {CELL_IDS}
    for levels, level_ids in zip(tiles.meshes, tiles.cell_ids):
        for level, ids in zip(levels, level_ids):
            target = level.GetCellData()
            for stale in [target.GetArrayName(i) for i in range(target.GetNumberOfArrays())]:
                if stale not in names:
                    target.RemoveArray(stale)
            _copy_arrays(source, target, ids)
            level.Modified()


def _tile_of_cells(mesh: vtkPolyData, parts: list[tuple[NDArray[np.int64], NDArray[np.int64]]], features: NDArray[np.int64] | None,
                   tile_count: int) -> NDArray[np.int64]:
    """Tile index of every cell: a ground grid of about ``tile_count`` near-square tiles; a feature's cells share its first cell's tile."""
    xyz = vtk_to_numpy(mesh.GetPoints().GetData())
    first = np.concatenate([conn[offsets[:-1]] if len(conn) else np.zeros(0, np.int64) for offsets, conn in parts])
    xy = xyz[first, :2].astype(np.float64)
    low, extent = xy.min(axis=0), np.maximum(xy.max(axis=0) - xy.min(axis=0), 1.0)
    side = math.sqrt(float(np.prod(extent)) / max(tile_count, 1))
    shape = np.maximum(np.round(extent / side), 1).astype(np.int64)  # columns, rows
    grid = np.minimum(np.floor((xy - low) / extent * shape).astype(np.int64), shape - 1)
    tile = grid[:, 1] * shape[0] + grid[:, 0]
    if features is not None and len(features) == len(tile):
        _, first_cell, inverse = np.unique(features, return_index=True, return_inverse=True)
        tile = tile[first_cell][inverse]
    return tile


def build_tiles(mesh: vtkPolyData, settings: LodSettings, feature_array: str | None = None) -> Tiles | None:
    """``mesh`` (local metres, z up) split into tiles with proxies (see :class:`Tiles`); None if it is not a surface (vertices, lines) or empty.

    ``feature_array``: a cell array naming each cell's feature (cells of one feature stay in one
    tile, and the feature spacing counts features, not cells). Raises nothing.
    """
    start = time.perf_counter()
    parts = _surface_cells(mesh)
    if parts is None or mesh.GetNumberOfCells() == 0:
        return None
    tris = np.concatenate([_cell_triangles(offsets) for offsets, _ in parts])
    array = mesh.GetCellData().GetArray(feature_array) if feature_array else None
    features = vtk_to_numpy(array).astype(np.int64) if array is not None else None
    tile = _tile_of_cells(mesh, parts, features, -(-int(tris.sum()) // settings.tile_triangles))
    xmin, xmax, ymin, ymax, _, _ = mesh.GetBounds()
    n_features = len(np.unique(features)) if features is not None else max(mesh.GetNumberOfCells() // 4, 1)
    spacing = math.sqrt(max((xmax - xmin) * (ymax - ymin), 1.0) / n_features)
    order = np.argsort(tile, kind="stable")
    cuts = np.flatnonzero(np.diff(tile[order])) + 1
    meshes, bounds, errors, triangles, cell_ids = [], [], [], [], []
    for cells in np.split(order, cuts):
        cells = np.sort(cells)
        full = _sub_mesh(mesh, parts, cells)
        levels, level_errors, level_tris = [full], [0.0], [int(tris[cells].sum())]
        for factor in settings.levels:
            proxy = build_proxy(levels[-1], factor * spacing)  # each level from the one before: the coarse ones cost little
            if proxy.GetNumberOfCells() < 0.7 * level_tris[-1]:  # worth a level only when it draws clearly less
                levels.append(proxy)
                level_errors.append(factor * spacing)
                level_tris.append(proxy.GetNumberOfCells())
            else:
                levels.append(levels[-1])
                level_errors.append(level_errors[-1])
                level_tris.append(level_tris[-1])
        meshes.append(levels)
        bounds.append(full.GetBounds())
        errors.append(level_errors)
        triangles.append(level_tris)
        cell_ids.append([vtk_to_numpy(level.GetCellData().GetArray(CELL_IDS)) for level in levels])
    tiles = Tiles(meshes=meshes, bounds=np.array(bounds, np.float64), errors=np.array(errors, np.float64), triangles=np.array(triangles, np.int64),
                  cell_ids=cell_ids, spacing=spacing, built_s=0.0)
    refresh_cell_data(tiles, mesh)
    tiles.built_s = time.perf_counter() - start
    return tiles


@dataclass(frozen=True)
class Eye:
    """What level choice needs of a camera: position (m), frustum planes (6, 4; normals inward), and pixels per metre at distance 1 (or per metre, parallel)."""

    position: NDArray[np.float64]
    planes: NDArray[np.float64]
    pixels_per_metre: float
    parallel: bool = False


def in_frustum(bounds: NDArray[np.float64], planes: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Which boxes (N, 6: xmin, xmax, ymin, ymax, zmin, zmax) reach inside the frustum (6 planes a, b, c, d; normals inward)."""
    normals = planes[:, :3]
    # the corner of each box furthest along each plane's normal: outside that plane means the box is outside
    corner = np.where(normals[None, :, :] >= 0, bounds[:, None, 1::2], bounds[:, None, 0::2])
    return ((corner * normals[None]).sum(axis=2) + planes[None, :, 3] >= 0).all(axis=1)


def screen_errors(bounds: NDArray[np.float64], errors: NDArray[np.float64], eye: Eye) -> NDArray[np.float64]:
    """(T, L) pixels each level's geometric error ``errors`` (T, L; metres) spans at its tile's nearest point (inf with the eye inside the box)."""
    if eye.parallel:
        return errors * eye.pixels_per_metre
    low, high = bounds[:, 0::2], bounds[:, 1::2]
    gap = np.maximum(np.maximum(low - eye.position, eye.position - high), 0.0)
    distance = np.sqrt((gap * gap).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        pixels = errors * eye.pixels_per_metre / distance[:, None]
    return np.where(errors == 0, 0.0, np.nan_to_num(pixels, nan=np.inf))


def choose_levels(bounds: NDArray[np.float64], errors: NDArray[np.float64], triangles: NDArray[np.int64], eye: Eye, *, error_px: float,
                  budget: int) -> tuple[NDArray[np.int64], float]:
    """Level to draw per tile (-1: outside the frustum) and the largest screen error (pixels) the frame allowed.

    Each tile in view gets its coarsest level whose screen error is at most ``error_px``. While
    the frame draws more than ``budget`` triangles, tiles step to coarser levels, the step with
    the smallest screen error first (so the frame's largest error is as small as the budget
    allows: far tiles coarsen before near ones); when even the coarsest levels exceed the budget
    they are drawn.
    """
    visible = in_frustum(bounds, eye.planes)
    pixels = screen_errors(bounds, errors, eye)
    levels = (pixels <= error_px).sum(axis=1) - 1  # errors grow with the level: the last one within the bound
    rows = np.arange(len(levels))
    drawn = int(triangles[rows, levels][visible].sum())
    allowed = error_px
    if drawn > budget:
        tile, level = np.nonzero((np.arange(errors.shape[1])[None, :] > levels[:, None]) & visible[:, None])
        order = np.lexsort((level, pixels[tile, level]))  # by error, a tile's own steps in level order
        tile, level = tile[order], level[order]
        left = drawn - np.cumsum(triangles[tile, level - 1] - triangles[tile, level])
        steps = int(np.argmax(left <= budget)) + 1 if (left <= budget).any() else len(left)
        np.maximum.at(levels, tile[:steps], level[:steps])
        allowed = max(error_px, float(pixels[tile[steps - 1], level[steps - 1]])) if steps else error_px
    return np.where(visible, levels, -1), allowed


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
