"""Building footprints to ONE extruded mesh of triangle strips: exact roofs, outward walls, ~1 M buildings/s.

Pipeline (all flat arrays, numba kernels parallel over rows / polygons):

1. read: GeoParquet (GeoArrow or WKB), GeoPackage/GeoJSON (``pyogrio.read_arrow``) or a
   GeoDataFrame into flat coordinate and offset arrays (:mod:`twin.mesh.footprints`);
2. normalize rings (closing and consecutive duplicate vertices dropped, unclosed rings closed);
3. validity: a conservative numba pre-check flags the rows that may be invalid, only those go to
   ``shapely.is_valid`` and, if invalid, ``shapely.make_valid`` (:mod:`twin.mesh.validity`);
4. heights per row (height column, else floors x floor_height, else default);
5. projection into the frame (verified polynomial fit of ``Frame.project``, :mod:`twin.mesh.project`);
6. roofs: ear clipping over all polygons in one numba call, checked per polygon
   (:mod:`twin.mesh.earcut`); walls: one triangle strip per ring (2 triangles per edge), wound
   outward;
7. one ``pyvista.PolyData`` whose cells are all triangle strips: float32 points relative to the
   frame origin (the first half are the roof/wall-top vertices in footprint order, the second
   half the wall bottoms); first every roof triangle (a strip of 3 ids), then one wall strip per
   ring (top/bottom of each vertex alternating around the ring and back to the first pair:
   2 n + 2 ids for n edges); int32 offsets and connectivity; cell data ``building_id`` (input
   row) on every cell and counts in field data. ``mesh.triangulate()`` gives the plain
   triangles (ids carried along). Roof triangles are strips too, not polys: with all-triangle
   polys followed by strips, VTK 9.7's ``vtkTriangleFilter`` copies the polys' cell data to the
   wrong output ids, so ``triangulate()`` would lose the roofs' ``building_id``.

>>> import geopandas as gpd, shapely
>>> gdf = gpd.GeoDataFrame({"height": [12.0, 30.0]},
...     geometry=[shapely.box(121.470, 31.230, 121.4702, 31.2302),
...               shapely.Polygon([(121.471, 31.23), (121.4713, 31.23), (121.4713, 31.2303),
...                                (121.4711, 31.2303), (121.4711, 31.2301), (121.471, 31.2301)])],
...     crs="EPSG:4326")
>>> mesh = extrude_footprints(gdf)
>>> mesh.n_cells, mesh.n_points  # roofs 2 + 4 triangles, walls 1 strip per ring
(8, 20)
>>> mesh.triangulate().n_cells  # roofs + 2 triangles per wall edge: 6 + 2 x (4 + 6)
26
>>> sorted(set(mesh.cell_data["building_id"].tolist())), float(mesh.points[:, 2].max())
([0, 1], 30.0)
>>> int(mesh.field_data["n_buildings"][0]), int(mesh.field_data["n_skipped"][0])
(2, 0)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyproj
from numba import njit
from numpy.typing import NDArray

from twin.errors import LayerDataError, TwinWarning
from twin.geo.crs import WGS84, GeoCRS, parse_crs, to_wgs84, transformer
from twin.geo.frame import Frame, bounds_center, lon_center, unwrap_lon
from twin.mesh import _parallel
from twin.mesh.earcut import triangulate_into
from twin.mesh.footprints import (
    NOT_POLYGONAL,
    WKB_TYPE_NAMES,
    FlatGeoms,
    Normalized,
    check_layout,
    drop_rings,
    normalize,
    read_footprints,
    replace_rows,
    rows_with,
)
from twin.mesh.heights import Parsed, parse_count, parse_length
from twin.mesh.project import project_xy
from twin.mesh.validity import repair_rows, suspect_rows

if TYPE_CHECKING:
    import pyvista as pv

__all__ = ["BUILDING_ID", "STAT_FIELDS", "extrude_footprints", "mesh_nbytes"]

BUILDING_ID = "building_id"
STAT_FIELDS = (
    "n_rows",
    "n_buildings",
    "n_polygons",
    "n_skipped",
    "n_repaired",
    "n_height_fallback",
    "n_base_fallback",
    "n_roof_fallback",
    "n_roof_inexact",
    "n_triangles",
)
_MAX_IDS = 10

_ALIASES = {"height": ("height", "building:height", "bldg_height"), "floors": ("floors", "floor", "building:levels", "levels", "storeys")}


# -- columns --------------------------------------------------------------------------------------
@dataclass
class _Columns:
    """Resolves the height/floors/base column names against a source's columns."""

    height: str | None
    floors: str | None
    base: str | None
    found: dict[str, str | None] = field(default_factory=dict)

    def __call__(self, available: Sequence[str]) -> list[str]:
        lower = {a.lower(): a for a in available}
        for role, name in (("height", self.height), ("floors", self.floors), ("base", self.base)):
            if name is None:
                self.found[role] = None
            elif name in available:
                self.found[role] = name
            elif role in _ALIASES and name == role:  # the default name: optional, case-insensitive
                self.found[role] = next((lower[a] for a in _ALIASES[role] if a in lower), None)
            else:
                cols = ", ".join(map(str, available)) or "(none)"
                raise LayerDataError(f"footprints: no column {name!r} for {role}; available columns: {cols}")
        return list(dict.fromkeys(c for c in self.found.values() if c is not None))


def _ids(rows: NDArray[np.integer]) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:_MAX_IDS])
    return f"[{shown}{', ...' if len(rows) > _MAX_IDS else ''}]"


# -- heights --------------------------------------------------------------------------------------
@dataclass
class _Heights:
    top: NDArray[np.float64]
    bottom: NDArray[np.float64]
    fallback_rows: NDArray[np.int64]
    base_rows: NDArray[np.int64]
    message: str


def _read_columns(cols: dict[str, NDArray[Any]], found: dict[str, str | None]) -> tuple[dict[str, Parsed], list[str]]:
    """Each role's column parsed (height/base: lengths with units, floors: plain numbers), and a
    message part per column holding text that is not a value (it counts as missing)."""
    parsed: dict[str, Parsed] = {}
    notes = []
    for role, parse, what in (("height", parse_length, "a length"), ("floors", parse_count, "a number"), ("base", parse_length, "a length")):
        name = found.get(role)
        if name is None:
            continue
        parsed[role] = p = parse(cols[name])
        k = int(p.unparsable.sum())
        if k:
            examples = ", ".join(repr(e) for e in p.examples)
            notes.append(f"{k} values of column {name!r} are not {what} (e.g. {examples}) and count as missing")
    return parsed, notes


def _heights(
    cols: dict[str, NDArray[Any]], found: dict[str, str | None], n: int, drawn: NDArray[np.bool_],
    floor_height: float, default_height: float, max_height: float,
) -> _Heights:
    """Roof and base height per row in metres, with the rows that fell back and one message.

    ``cols`` holds the raw columns (numbers, or text such as OSM's ``"12 m"``: see
    :mod:`twin.mesh.heights`); ``found`` maps the roles height/floors/base to column names."""
    parsed, notes = _read_columns(cols, found)
    top = np.full(n, np.nan)
    first_bad: NDArray[np.bool_] | None = None
    first_name = ""
    hcol, fcol, bcol = found.get("height"), found.get("floors"), found.get("base")
    with np.errstate(invalid="ignore"):
        if hcol is not None:
            h = parsed["height"].values
            ok = np.isfinite(h) & (h > 0) & (h <= max_height)
            top[ok] = h[ok]
            first_bad, first_name = ~ok, f"column {hcol!r}"
        if fcol is not None:
            f = parsed["floors"].values * floor_height
            ok = np.isfinite(f) & (f > 0) & (f <= max_height)
            use = np.isnan(top) & ok
            top[use] = f[use]
            if first_bad is None:
                first_bad, first_name = ~ok, f"column {fcol!r} x {floor_height:g} m"
        top[np.isnan(top)] = default_height
        bottom = np.zeros(n)
        base_bad = np.zeros(n, np.bool_)
        if bcol is not None:
            b = parsed["base"].values
            given = ~np.isnan(b) & (b != 0)
            ok = np.isfinite(b) & (b >= 0) & (b < top)
            bottom[given & ok] = b[given & ok]
            base_bad = given & ~ok
    fallback_rows = np.flatnonzero(first_bad & drawn) if first_bad is not None else np.zeros(0, np.int64)
    base_rows = np.flatnonzero(base_bad & drawn)
    parts = []
    if fallback_rows.size:
        what = "floors x floor_height, else " if (hcol is not None and fcol is not None) else ""
        parts.append(
            f"{fallback_rows.size} rows have no usable height in {first_name} (missing, not a number, NaN, <= 0 or > {max_height:g} m) "
            f"and use {what}the default {default_height:g} m: rows {_ids(fallback_rows)}"
        )
    if base_rows.size:
        parts.append(f"{base_rows.size} rows have a base {bcol!r} that is negative or not below the roof, set to 0: rows {_ids(base_rows)}")
    return _Heights(top, bottom, fallback_rows, base_rows, "; ".join(parts + notes))


# -- mesh kernel ----------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _roof_slots(ring_off: NDArray, poly_off: NDArray, cap_off: NDArray) -> None:
    """``cap_off[p]:cap_off[p+1]``: the roof triangle slots of polygon ``p`` (as :func:`twin.mesh.earcut.roof_capacity`)."""
    cap_off[0] = 0
    for p in range(poly_off.size - 1):
        r0 = poly_off[p]
        r1 = poly_off[p + 1]
        c = 0
        if r1 > r0:
            c = max(ring_off[r1] - ring_off[r0] + 2 * (r1 - r0 - 1) - 2, 0)
        cap_off[p + 1] = cap_off[p] + c


@njit(cache=True, nogil=True)
def _compact_roofs(conn: NDArray, cap_off: NDArray, counts: NDArray, tri_off: NDArray) -> None:
    """Move each polygon's roof triangles from its slots down to ``tri_off`` (in place, in order)."""
    tri_off[0] = 0
    for p in range(counts.size):
        tri_off[p + 1] = tri_off[p] + counts[p]
        s = cap_off[p]
        d = tri_off[p]
        if s != d:
            for k in range(counts[p]):
                conn[d + k, 0] = conn[s + k, 0]
                conn[d + k, 1] = conn[s + k, 1]
                conn[d + k, 2] = conn[s + k, 2]


@njit(cache=True, nogil=True)
def _mesh_kernel(
    i0: int, i1: int, px: NDArray, py: NDArray, ring_off: NDArray, poly_off: NDArray, geom_off: NDArray,
    top: NDArray, bottom: NDArray, z0: float, tri_off: NDArray, points: NDArray, conn: NDArray, offsets: NDArray, bid: NDArray,
) -> None:
    """Points (tops, then bottoms), wall strips, cell offsets and building ids of rows i0:i1.

    Every cell is a triangle strip. Cells ``0:n_roof`` are the roof triangles (polygon ``p`` owns
    ``tri_off[p]:tri_off[p+1]``, already triangulated into ``conn[3 k : 3 k + 3]``), one strip of
    3 ids each; cell ``n_roof + r`` is the wall of ring ``r``: ids from ``3 n_roof + 2 (ring_off[r]
    + r)``, top and bottom of each vertex in the order that keeps the interior on the left, then
    the first pair again (2 n + 2 ids, 2 n triangles). Its first triangle (top a, bottom a, top b)
    faces outward; VTK and OpenGL flip every second triangle of a strip, so (top b, bottom a,
    bottom b) faces outward too."""
    nv = px.size
    n_roof = tri_off[tri_off.size - 1]
    wall0 = 3 * n_roof
    for i in range(i0, i1):
        q0 = geom_off[i]
        q1 = geom_off[i + 1]
        if q1 == q0:
            continue
        zt = np.float32(top[i] - z0)
        zb = np.float32(bottom[i] - z0)
        rid = np.int32(i)
        for v in range(ring_off[poly_off[q0]], ring_off[poly_off[q1]]):
            fx = np.float32(px[v])
            fy = np.float32(py[v])
            points[v, 0] = fx
            points[v, 1] = fy
            points[v, 2] = zt
            points[nv + v, 0] = fx
            points[nv + v, 1] = fy
            points[nv + v, 2] = zb
        for k in range(tri_off[q0], tri_off[q1]):
            offsets[k] = 3 * k
            bid[k] = rid
        for p in range(q0, q1):
            r0 = poly_off[p]
            r1 = poly_off[p + 1]
            v0 = ring_off[r0]
            x0 = px[v0]
            y0 = py[v0]
            for r in range(r0, r1):
                s = ring_off[r]
                e = ring_off[r + 1]
                a2 = 0.0
                j = e - 1
                for v in range(s, e):
                    a2 += (px[j] - x0) * (py[v] - y0) - (px[v] - x0) * (py[j] - y0)
                    j = v
                forward = a2 > 0 if r == r0 else a2 < 0  # shells counter-clockwise, holes clockwise
                c = wall0 + 2 * (s + r)
                offsets[n_roof + r] = c
                bid[n_roof + r] = rid
                conn[c] = s
                conn[c + 1] = nv + s
                c += 2
                if forward:
                    for v in range(s + 1, e):
                        conn[c] = v
                        conn[c + 1] = nv + v
                        c += 2
                else:
                    for v in range(e - 1, s, -1):
                        conn[c] = v
                        conn[c + 1] = nv + v
                        c += 2
                conn[c] = s
                conn[c + 1] = nv + s


def _int32(n: int) -> tuple[Any, NDArray[np.int32]]:
    """A VTK int32 array of ``n`` values and a numpy view on it (VTK owns the memory).

    Not numpy memory handed over with ``numpy_to_vtk(deep=False)``: numpy asks for transparent
    huge pages, which on the VMs measured (Firecracker, memory backed lazily by the host) halved
    the time to fill a fresh 1 M-building mesh in the median but took 5-9x longer in about 1 run
    of 4, while the 4 kB pages VTK gets cost a steady ~0.15 s of page faults per 340 MB."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkCommonCore import vtkTypeInt32Array

    arr = vtkTypeInt32Array()
    arr.SetNumberOfTuples(n)
    return arr, vtk_to_numpy(arr)


def _cells_nbytes(cells: Any) -> int:
    if cells is None or cells.GetNumberOfCells() == 0:
        return 0
    conn = cells.GetConnectivityArray()
    total = conn.GetNumberOfValues() * conn.GetDataTypeSize()
    if not cells.IsStorageFixedSize():
        off = cells.GetOffsetsArray()
        total += off.GetNumberOfValues() * off.GetDataTypeSize()
    return int(total)


def mesh_nbytes(mesh: pv.PolyData) -> int:
    """Bytes held by the mesh's points, cell arrays (connectivity, plus offsets unless implicit) and cell data."""
    total = int(mesh.points.nbytes)
    for cells in (mesh.GetVerts(), mesh.GetLines(), mesh.GetPolys(), mesh.GetStrips()):
        total += _cells_nbytes(cells)
    for name in mesh.cell_data:
        total += int(np.asarray(mesh.cell_data[name]).nbytes)
    return total


@dataclass
class _Roofs:
    n_fallback: int
    inexact_polygons: NDArray[np.int64]
    n_triangles: int  # roofs + 2 per wall edge: what the strips draw


def _check_mesh_input(px: NDArray[np.float64], py: NDArray[np.float64], flat: FlatGeoms) -> None:
    """What the mesh kernels index by, checked before they run (vectorised): offsets in range,
    every polygon with a shell, every ring >= 3 vertices, one projected vertex per vertex.
    The clean-up guarantees all of it; a LayerDataError here means a bug, never a bad write."""
    check_layout(flat, "mesh")
    if px.shape != flat.x.shape or py.shape != flat.x.shape:
        raise LayerDataError(f"mesh: {px.size} projected vertices for {flat.x.size} footprint vertices")
    if flat.n_polygons and int(np.diff(flat.poly_off).min()) < 1:
        raise LayerDataError("mesh: a polygon without rings reached the mesh kernel")
    if flat.ring_off.size > 1 and int(np.diff(flat.ring_off).min()) < 3:
        raise LayerDataError("mesh: a ring with fewer than 3 vertices reached the mesh kernel")
    # finite vertices: checked by triangulate_into, which runs before the wall kernel


def _assemble(px: NDArray[np.float64], py: NDArray[np.float64], flat: FlatGeoms, heights: _Heights, z0: float) -> tuple[pv.PolyData, _Roofs]:
    """Roofs triangulated straight into the mesh's connectivity, then points, wall strips, offsets, ids."""
    import pyvista as pv
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkCommonCore import vtkFloatArray, vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

    _check_mesh_input(px, py, flat)
    if heights.top.shape != (flat.n_rows,) or heights.bottom.shape != (flat.n_rows,):
        raise LayerDataError(f"mesh: {heights.top.size} heights for {flat.n_rows} rows")
    ring_off, poly_off, geom_off = flat.ring_off, flat.poly_off, flat.geom_off
    nv = int(px.size)
    n_rings = int(ring_off.size - 1)
    n_poly = int(poly_off.size - 1)
    cap_off = np.empty(n_poly + 1, np.int64)
    _roof_slots(ring_off, poly_off, cap_off)
    n_slots = int(cap_off[-1])
    n_wall_ids = 2 * (nv + n_rings)
    if 2 * nv >= 2**31 - 1 or 3 * n_slots + n_wall_ids >= 2**31 - 1:
        raise LayerDataError(f"footprints: {n_slots} roof triangles and {nv} vertices are beyond 32-bit cell arrays; split the layer")
    conn, conn_np = _int32(3 * n_slots + n_wall_ids)
    counts, failed, inexact = triangulate_into(px, py, ring_off, poly_off, conn_np[: 3 * n_slots].reshape(n_slots, 3), cap_off[:-1], np.diff(cap_off))
    n_roof = int(counts.sum())
    if n_roof == n_slots:
        tri_off = cap_off
    else:  # roofs that dropped collinear vertices: close the gaps, shrink the array
        tri_off = np.empty(n_poly + 1, np.int64)
        _compact_roofs(conn_np[: 3 * n_slots].reshape(n_slots, 3), cap_off, counts, tri_off)
        del conn_np
        conn.SetNumberOfTuples(3 * n_roof + n_wall_ids)
        conn.Squeeze()
        conn_np = vtk_to_numpy(conn)
    pts = vtkFloatArray()
    pts.SetNumberOfComponents(3)
    pts.SetNumberOfTuples(2 * nv)
    offsets, offsets_np = _int32(n_roof + n_rings + 1)
    bid, bid_np = _int32(n_roof + n_rings)
    bid.SetName(BUILDING_ID)
    offsets_np[-1] = 3 * n_roof + n_wall_ids
    bounds = _parallel.chunks_for(ring_off[poly_off[geom_off]])  # a few ranges per thread: balances a busy core
    _parallel.run(
        _mesh_kernel, bounds, px, py, ring_off, poly_off, geom_off, heights.top, heights.bottom, z0, tri_off,
        vtk_to_numpy(pts).reshape(2 * nv, 3), conn_np, offsets_np, bid_np,
    )
    cells = vtkCellArray()
    if not cells.SetData(offsets, conn):  # int32 offsets and connectivity, kept as they are
        raise RuntimeError("vtkCellArray refused the int32 strip arrays")
    points = vtkPoints()
    points.SetData(pts)
    poly = vtkPolyData()
    poly.SetPoints(points)
    poly.SetStrips(cells)
    poly.GetCellData().AddArray(bid)
    return pv.wrap(poly), _Roofs(int(failed.size), inexact, n_roof + 2 * nv)


# -- geometry clean-up ------------------------------------------------------------------------------
_MAX_PROJECTED = 1e8  # |x|, |y| of a projected source (CRS units): beyond any real CRS, false eastings included
_MAX_LOCAL = 2e7  # metres from the frame origin (half the Earth's circumference): farther is not in a local frame


@dataclass
class _Rows:
    """Per-row outcome of the geometry clean-up (bool masks over the input rows)."""

    null: NDArray[np.bool_]  # null, empty or malformed
    nonfinite: NDArray[np.bool_]  # a NaN or infinite coordinate
    out_of_range: NDArray[np.bool_]  # a coordinate outside where the CRS places anything (see _out_of_range)
    degenerate: NDArray[np.bool_]  # nothing left once rings of < 3 distinct vertices are dropped
    unrepairable: NDArray[np.bool_]  # invalid, and make_valid left no area
    unprojectable: NDArray[np.bool_]  # not finite, or over 2e7 m from the origin, in the frame
    ring_dropped: NDArray[np.bool_]  # drawn without a ring of < 3 distinct vertices (empty hole, sliver part)
    made_valid: NDArray[np.bool_]  # invalid, fixed by make_valid
    crossing: NDArray[np.bool_]  # straddles the antimeridian: its longitudes were unwrapped

    def skipped(self) -> NDArray[np.bool_]:
        return self.null | self.nonfinite | self.out_of_range | self.degenerate | self.unrepairable | self.unprojectable


@lru_cache(maxsize=32)
def _valid_box(proj: pyproj.CRS) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) where a projected CRS's coordinates can be: its area of use
    projected, widened by its own width and height on each side (data a little outside its zone
    is common), within +-1e8 units; +-1e8 units when the CRS declares no area of use."""
    whole = (-_MAX_PROJECTED, _MAX_PROJECTED, -_MAX_PROJECTED, _MAX_PROJECTED)
    aou = proj.area_of_use
    if aou is None:
        return whole
    east = aou.east if aou.east >= aou.west else aou.east + 360.0
    lon, lat = np.meshgrid(np.linspace(aou.west, east, 21), np.linspace(aou.south, aou.north, 21))
    x, y = transformer(WGS84.proj, proj).transform(lon.ravel(), lat.ravel())
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return whole
    x0, x1, y0, y1 = float(x[ok].min()), float(x[ok].max()), float(y[ok].min()), float(y[ok].max())
    wx, wy = x1 - x0, y1 - y0
    return max(x0 - wx, whole[0]), min(x1 + wx, whole[1]), max(y0 - wy, whole[2]), min(y1 + wy, whole[3])


def _out_of_range(flat: FlatGeoms, geo: GeoCRS) -> NDArray[np.bool_]:
    """Rows with a (finite) coordinate outside where the CRS places anything: |lon| > 360 or
    |lat| > 90 for lon/lat; for a projected CRS, outside :func:`_valid_box` (e.g. UTM 51N:
    x about -0.5 .. 1.5 million m). One such row would drag the automatic frame's centre away."""
    x0, x1, y0, y1 = (-360.0, 360.0, -90.0, 90.0) if geo.is_geographic else _valid_box(geo.proj)
    with np.errstate(invalid="ignore"):
        if not flat.x.size or (flat.x.min() >= x0 and flat.x.max() <= x1 and flat.y.min() >= y0 and flat.y.max() <= y1):
            return np.zeros(flat.n_rows, np.bool_)  # the usual case: four reductions, no mask (NaN fails these tests)
        bad = (flat.x < x0) | (flat.x > x1) | (flat.y < y0) | (flat.y > y1)
    return rows_with(flat, bad)


def _rows_of_rings(flat: FlatGeoms, ring_mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Per row: does any of its rings have ``ring_mask`` set? (works for rings without vertices)"""
    poly_row = np.repeat(np.arange(flat.n_rows), np.diff(flat.geom_off))
    ring_row = np.repeat(poly_row, np.diff(flat.poly_off))
    return np.bincount(ring_row[ring_mask], minlength=flat.n_rows) > 0


def _drop_degenerate(flat: FlatGeoms, kill: NDArray[np.bool_]) -> tuple[FlatGeoms, NDArray[np.bool_]]:
    """Drop the rows ``kill`` and every ring with < 3 vertices (normalized: distinct ones).

    Returns the arrays and the other rows that lost a ring this way. Afterwards every polygon has
    a shell and every ring >= 3 vertices: what the validity, roof and wall kernels index by."""
    short = np.diff(flat.ring_off) < 3
    if not short.any() and not kill.any():
        return flat, np.zeros(flat.n_rows, np.bool_)
    return drop_rings(flat, ~short, kill), _rows_of_rings(flat, short) & ~kill


def _unwrap(flat: FlatGeoms, center: float, x0: float, x1: float) -> tuple[FlatGeoms, NDArray[np.bool_]]:
    """Longitudes unwrapped around ``center`` (degrees) so footprints cut at +-180 meet (RFC 7946 3.1.9).

    ``x0``, ``x1``: the least and greatest longitude. Returns the arrays (``flat`` itself when every
    longitude is already within 180 degrees of the centre) and the rows that have vertices on
    both sides of the line (their parts now meet)."""
    x = flat.x
    if x0 >= center - 180.0 and x1 < center + 180.0:
        return flat, np.zeros(flat.n_rows, np.bool_)
    ux = unwrap_lon(x, center)
    moved = ux != x
    crossing = rows_with(flat, moved) & rows_with(flat, ~moved)
    return replace(flat, x=ux), crossing


def _repair(flat: FlatGeoms, rows: _Rows) -> FlatGeoms:
    """Rows the numba pre-check flags go to GEOS; invalid ones are replaced by ``make_valid``'s polygons."""
    suspect = suspect_rows(flat)
    if not suspect.any():
        return flat
    idx = np.flatnonzero(suspect)
    rep = repair_rows(flat, idx)
    rows.made_valid[idx[rep.repaired]] = True
    rows.unrepairable[idx[rep.skipped]] = True
    flat = replace_rows(flat, idx, normalize(rep.flat).flat)
    flat, lost = _drop_degenerate(flat, np.zeros(flat.n_rows, np.bool_))  # GEOS keeps >= 3 distinct vertices; never trust it blindly
    rows.ring_dropped |= lost
    return flat


def _clean(flat: FlatGeoms, geo: GeoCRS, frame: Frame | None, norm: Normalized) -> tuple[FlatGeoms, _Rows]:
    """Normalized footprints without the rows that cannot be drawn, degenerate rings dropped,
    longitudes unwrapped around the frame's (else the data's) centre, invalid rows repaired."""
    n = flat.n_rows
    none = np.zeros(n, np.bool_)
    rows = _Rows(norm.null, norm.nonfinite, none.copy(), none.copy(), none.copy(), none.copy(), none.copy(), none.copy(), none.copy())
    rows.out_of_range = _out_of_range(flat, geo) & ~rows.nonfinite
    flat, rows.ring_dropped = _drop_degenerate(flat, rows.null | rows.nonfinite | rows.out_of_range)
    rows.degenerate = ~(rows.null | rows.nonfinite | rows.out_of_range) & (np.diff(flat.geom_off) == 0)
    if geo.is_geographic and flat.x.size:
        x0, x1 = float(flat.x.min()), float(flat.x.max())
        if frame is not None:
            flat, rows.crossing = _unwrap(flat, frame.center_lonlat[0], x0, x1)
        elif x1 - x0 > 180.0:  # narrower data is already unwrapped around its own centre
            flat, rows.crossing = _unwrap(flat, lon_center(flat.x), x0, x1)
    flat = _repair(flat, rows)
    return flat, rows


def _drop_unprojectable(flat: FlatGeoms, rows: _Rows) -> FlatGeoms:
    """Rows whose projected vertices are not finite or lie over 2e7 m from the origin are dropped."""
    lo, hi = -_MAX_LOCAL, _MAX_LOCAL
    if not flat.x.size or (flat.x.min() >= lo and flat.x.max() <= hi and flat.y.min() >= lo and flat.y.max() <= hi):
        return flat  # the usual case (NaN fails these tests)
    with np.errstate(invalid="ignore"):
        bad = ~((np.abs(flat.x) <= _MAX_LOCAL) & (np.abs(flat.y) <= _MAX_LOCAL))
    rows.unprojectable = rows_with(flat, bad)
    return drop_rings(flat, np.ones(flat.ring_off.size - 1, np.bool_), rows.unprojectable)


# -- frame ---------------------------------------------------------------------------------------------
def _bbox(flat: FlatGeoms) -> tuple[float, float, float, float] | None:
    """(xmin, xmax, ymin, ymax) of the (cleaned, finite) coordinates; None when there are none."""
    if flat.x.size == 0:
        return None
    return float(flat.x.min()), float(flat.x.max()), float(flat.y.min()), float(flat.y.max())


def _auto_frame(bbox: tuple[float, float, float, float] | None, geo: GeoCRS) -> Frame | None:
    """``Frame.auto`` at the centre of the data's lon/lat bounds (longitudes already unwrapped)."""
    if bbox is None:
        return None
    x0, x1, y0, y1 = bbox
    if geo.is_geographic and geo.offset is None and geo.proj.equals(WGS84.proj, ignore_axis_order=True):
        lon, lat = np.array([x0, x1]), np.array([y0, y1])
    else:
        gx = np.linspace(x0, x1, 5)
        gy = np.linspace(y0, y1, 5)
        bx = np.concatenate([gx, gx, np.full(5, x0), np.full(5, x1)])
        by = np.concatenate([np.full(5, y0), np.full(5, y1), gy, gy])
        lon, lat = to_wgs84(bx, by, geo)
        if geo.is_geographic:  # unwrapped longitudes may pass 180: keep the arc, not its wrap
            lon = unwrap_lon(np.asarray(lon), float(np.asarray(lon)[0]))
    return Frame.auto(*bounds_center(lon, lat))


# -- main ------------------------------------------------------------------------------------------------
def _empty_mesh(frame: Frame | None, stats: dict[str, int]) -> pv.PolyData:
    import pyvista as pv

    mesh = pv.PolyData()
    mesh.cell_data[BUILDING_ID] = np.zeros(0, np.int32)
    for k, v in stats.items():
        mesh.field_data[k] = np.array([v], dtype=np.int64)
    if frame is not None:
        frame.attach(mesh)
    return mesh


def _wrong_types(flat: FlatGeoms, label: str) -> None:
    """Points and lines are a layer error, not something to skip."""
    wrong = np.flatnonzero(flat.status == NOT_POLYGONAL)
    if wrong.size:
        kinds = sorted({WKB_TYPE_NAMES.get(int(t), f"type {int(t)}") for t in flat.type_id[wrong]})
        raise LayerDataError(
            f"{label}: footprints must be Polygon/MultiPolygon, but {wrong.size} of {flat.n_rows} rows are {', '.join(kinds)}: rows {_ids(wrong)}"
        )


def extrude_footprints(
    footprints: Any,
    *,
    height: str | None = "height",
    floors: str | None = "floors",
    floor_height: float = 3.0,
    default_height: float = 10.0,
    base: str | None = None,
    frame: Frame | None = None,
    max_height: float = 1000.0,
    label: str | None = None,
) -> pv.PolyData:
    """Extrude building footprints into one mesh of triangle strips (roofs + outward walls).

    ``footprints`` is a GeoDataFrame (CRS None means EPSG:4326) or a path to GeoParquet
    (GeoArrow or WKB), GeoPackage or GeoJSON. ``height`` / ``floors`` / ``base`` name columns
    (None disables one; the default names are optional and matched case-insensitively, with
    ``floor``/``levels`` accepted for floors; any other name must exist). A building's roof is at
    its height column value, else floors x ``floor_height``, else ``default_height``; values that
    are missing, NaN, <= 0 or > ``max_height`` fall back and are counted. Heights and bases may be
    text with a unit as OpenStreetMap writes them (``"12 m"``, ``"40 ft"``, ``10'6"``, ``"8,5"``;
    OSM Key:height, see :mod:`twin.mesh.heights`), floors text holding a number; other text
    (``"tall"``, ``""``) counts as missing and is named in the warning. Walls run from the
    ``base`` column (0 when absent) to the roof.

    Returns a PolyData of triangle strips (each roof triangle a strip of its own, then one wall
    strip per ring; ``.triangulate()`` turns them into triangles): float32 points relative to
    ``frame``'s origin (default ``Frame.auto`` at the centre of the data's lon/lat bounds, across
    the antimeridian the centre of the shortest arc; attached as field data), cell data
    ``building_id`` (int32 input row of each cell) and the counts :data:`STAT_FIELDS` as field
    data (``n_triangles``: the triangles the strips draw; ``n_cells`` counts strips). Polygons
    with holes and MultiPolygons are supported; lon/lat footprints cut at +-180 (RFC 7946 3.1.9)
    or crossing it are unwrapped around the frame's centre so their parts meet. Rows that are
    null, empty, non-finite, outside their CRS's range, degenerate (rings of < 3 distinct
    vertices), not repairable or not placeable in the frame are skipped; invalid geometries are
    repaired with ``make_valid``; rings of < 3 distinct vertices (an empty hole) are dropped; one
    :class:`~twin.errors.TwinWarning` names the rows, prefixed by ``label`` (default: the file
    name, or "GeoDataFrame"). Points or lines raise :class:`~twin.errors.LayerDataError`, as do
    inconsistent GeoArrow offsets.
    """
    if not (floor_height > 0 and np.isfinite(floor_height)):
        raise LayerDataError(f"floor_height must be a positive number of metres, not {floor_height!r}")
    if not (0 < default_height <= max_height):
        raise LayerDataError(f"default_height must be in (0, max_height={max_height:g}], not {default_height!r}")
    columns = _Columns(height, floors, base)
    if hasattr(footprints, "geometry") and not hasattr(footprints, "columns"):  # a GeoSeries
        footprints = footprints.to_frame()
    table = read_footprints(footprints, columns)
    if label is None:
        label = table.source if not isinstance(footprints, (str, Path)) else Path(table.source).name
    check_layout(table.geoms, label)
    n = table.geoms.n_rows
    geo = parse_crs(table.crs if table.crs is not None else WGS84.proj)
    _wrong_types(table.geoms, label)

    norm = normalize(table.geoms)
    flat, rows = _clean(norm.flat, geo, frame, norm)
    bbox = _bbox(flat)
    if frame is None:
        frame = _auto_frame(bbox, geo)
    if frame is not None and flat.n_polygons:
        # flat.x/flat.y are this call's own arrays (normalize copies): project in place
        px, py = project_xy(frame, flat.x, flat.y, geo, bbox=bbox, out=(flat.x, flat.y))
        flat = _drop_unprojectable(replace(flat, x=px, y=py), rows)
    skip = rows.skipped() | (np.diff(flat.geom_off) == 0)
    drawn = ~skip
    repaired = drawn & ((rows.made_valid & ~rows.crossing) | norm.unclosed | norm.duplicates | rows.ring_dropped)
    heights = _heights(table.columns, columns.found, n, drawn, floor_height, default_height, max_height)
    stats = {
        "n_rows": n,
        "n_buildings": int(drawn.sum()),
        "n_polygons": int(flat.n_polygons),
        "n_skipped": int(skip.sum()),
        "n_repaired": int(repaired.sum()),
        "n_height_fallback": int(heights.fallback_rows.size),
        "n_base_fallback": int(heights.base_rows.size),
        "n_roof_fallback": 0,
        "n_roof_inexact": 0,
        "n_triangles": 0,
    }
    _warn_geometry(label, n, skip, rows, norm, repaired)
    if heights.message:
        warnings.warn(f"{label}: {heights.message}", TwinWarning, stacklevel=2)
    if frame is None or flat.n_polygons == 0:
        return _empty_mesh(frame, stats)

    mesh, roofs = _assemble(flat.x, flat.y, flat, heights, frame.origin[2])
    stats["n_roof_fallback"] = roofs.n_fallback
    stats["n_roof_inexact"] = int(roofs.inexact_polygons.size)
    stats["n_triangles"] = roofs.n_triangles
    if roofs.inexact_polygons.size:
        inexact = np.unique(flat.poly_row()[roofs.inexact_polygons])
        warnings.warn(
            f"{label}: the roofs of {inexact.size} rows could not be triangulated exactly (degenerate geometry): rows {_ids(inexact)}",
            TwinWarning,
            stacklevel=2,
        )
    for k, v in stats.items():
        mesh.field_data[k] = np.array([v], dtype=np.int64)
    frame.attach(mesh)
    return mesh


def _warn_geometry(label: str, n: int, skip: NDArray[np.bool_], rows: _Rows, norm: Normalized, repaired: NDArray[np.bool_]) -> None:
    """One warning: the rows skipped (by reason) and the rows repaired (by repair)."""
    parts = []
    if skip.any():
        reasons = []
        for name, mask in (
            ("null or empty", rows.null | (skip & ~rows.skipped())),
            ("non-finite coordinates", rows.nonfinite),
            ("coordinates outside the CRS's range", rows.out_of_range),
            ("no ring of 3 distinct vertices", rows.degenerate),
            ("invalid, no area left after make_valid", rows.unrepairable),
            (f"not placeable in the frame (over {_MAX_LOCAL:g} m away)", rows.unprojectable),
        ):
            hit = np.flatnonzero(mask & skip)
            if hit.size:
                reasons.append(f"{name}: {_ids(hit)}")
        parts.append(f"{int(skip.sum())} of {n} rows skipped: rows {_ids(np.flatnonzero(skip))} ({'; '.join(reasons)})")
    if repaired.any():
        detail = []
        for name, mask in (
            ("invalid, fixed by make_valid", rows.made_valid & ~rows.crossing),
            ("unclosed rings closed", norm.unclosed),
            ("duplicate vertices removed", norm.duplicates),
            ("rings of < 3 distinct vertices dropped", rows.ring_dropped),
        ):
            hit = np.flatnonzero(mask & repaired)
            if hit.size:
                detail.append(f"{name}: {hit.size} rows {_ids(hit)}")
        parts.append(f"{int(repaired.sum())} rows repaired ({'; '.join(detail)})")
    if parts:
        warnings.warn(f"{label}: " + "; ".join(parts), TwinWarning, stacklevel=3)
