"""Footprints as flat arrays: read GeoParquet / GeoPackage / GeoJSON / GeoDataFrames without shapely objects.

Every reader produces a :class:`FlatGeoms`: coordinates ``x``, ``y`` and three offset arrays in
the GeoArrow MultiPolygon layout (row -> polygons -> rings -> coordinates). Sources:

- GeoParquet with GeoArrow encoding: the nested list buffers are used as they are.
- WKB (GeoParquet's default encoding, GeoPackage and GeoJSON through ``pyogrio.read_arrow``):
  decoded by a numba kernel (two passes, parallel over rows); GeometryCollections of polygons
  are flattened, points and lines are reported per row.
- GeoDataFrames: plain polygons through ``shapely.get_coordinates`` (one C loop), the rest
  (holes, MultiPolygons, collections, other types) through ``shapely.to_wkb`` and the WKB kernel.

:func:`normalize` then drops the closing vertex of each ring and consecutive duplicate vertices,
and flags unclosed rings, degenerate rings and non-finite coordinates per row.

>>> import shapely
>>> flat = from_shapely(np.array([shapely.box(0, 0, 2, 1), None], dtype=object))
>>> flat.n_rows, flat.geom_off.tolist(), flat.x.size
(2, [0, 1, 1], 5)
>>> norm = normalize(flat)
>>> norm.flat.x.size, norm.null.tolist()
(4, [False, True])
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
from numba import njit
from numpy.typing import NDArray

from twin.errors import LayerDataError, SourceError
from twin.mesh import _parallel

_inner = njit(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)  # helpers called only from jitted code

__all__ = [
    "WKB_TYPE_NAMES",
    "FlatGeoms",
    "FootprintTable",
    "Normalized",
    "bad_offsets",
    "check_layout",
    "drop_rings",
    "from_shapely",
    "from_wkb",
    "normalize",
    "read_footprints",
    "replace_rows",
    "rows_with",
]

_LITTLE_ENDIAN_HOST = sys.byteorder == "little"

# row status codes
OK = 0
NULL = 1
NOT_POLYGONAL = 2
MALFORMED = 3

WKB_TYPE_NAMES = {
    0: "Geometry",
    1: "Point",
    2: "LineString",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
    8: "CircularString",
    9: "CompoundCurve",
    10: "CurvePolygon",
    11: "MultiCurve",
    12: "MultiSurface",
    13: "Curve",
    14: "Surface",
    15: "PolyhedralSurface",
    16: "TIN",
    17: "Triangle",
}


@dataclass
class FlatGeoms:
    """Polygonal geometries of ``n_rows`` rows in flat arrays (GeoArrow MultiPolygon layout).

    Row ``i`` owns polygons ``geom_off[i]:geom_off[i+1]``; polygon ``p`` owns rings
    ``poly_off[p]:poly_off[p+1]`` (shell first); ring ``r`` owns coordinates
    ``ring_off[r]:ring_off[r+1]``. Offsets are absolute indices into the next level.
    ``status[i]`` is 0 (polygonal, possibly empty), 1 (null), 2 (not polygonal: ``type_id``
    holds the WKB type) or 3 (malformed WKB).
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    ring_off: NDArray[np.int64]
    poly_off: NDArray[np.int64]
    geom_off: NDArray[np.int64]
    status: NDArray[np.int8]
    type_id: NDArray[np.int32]

    @property
    def n_rows(self) -> int:
        return int(self.geom_off.size - 1)

    @property
    def n_polygons(self) -> int:
        return int(self.poly_off.size - 1)

    @classmethod
    def empty(cls, n_rows: int = 0, status: int = NULL) -> FlatGeoms:
        return cls(
            np.zeros(0),
            np.zeros(0),
            np.zeros(1, np.int64),
            np.zeros(1, np.int64),
            np.zeros(n_rows + 1, np.int64),
            np.full(n_rows, status, np.int8),
            np.zeros(n_rows, np.int32),
        )

    def poly_row(self) -> NDArray[np.int64]:
        """The row of each polygon."""
        return np.repeat(np.arange(self.n_rows, dtype=np.int64), np.diff(self.geom_off))


# -- layout checks and row/ring removal (vectorised; run before any kernel indexes) --------------
def bad_offsets(off: NDArray[np.integer], size: int) -> str | None:
    """Why ``off`` is not a valid offset array into ``size`` items (None when it is)."""
    if off.ndim != 1 or off.size == 0:
        return "is empty" if off.ndim == 1 else f"has shape {off.shape}"
    if int(off[0]) != 0:
        return f"starts at {int(off[0])}, not 0"
    if int(off[-1]) != size:
        return f"ends at {int(off[-1])}, not at the {size} items it indexes"
    step = np.diff(off)
    if step.size and int(step.min()) < 0:
        return f"decreases at position {int(np.argmax(step < 0)) + 1}"
    return None


def check_layout(flat: FlatGeoms, where: str = "footprints") -> None:
    """Raise :class:`~twin.errors.LayerDataError` unless ``flat``'s arrays index each other in range.

    Checked (vectorised, O(rows + polygons + rings)): ``x``/``y`` are 1-D of one length; every
    offset array starts at 0, never decreases and ends at the size of the level it indexes;
    ``status``/``type_id`` have one entry per row. The kernels index only within these bounds.
    """
    x, y = np.asarray(flat.x), np.asarray(flat.y)
    if x.ndim != 1 or y.ndim != 1 or x.size != y.size:
        raise LayerDataError(f"{where}: x and y coordinates have shapes {x.shape} and {y.shape}, not one length")
    for name, off, size in (
        ("ring offsets", flat.ring_off, x.size),
        ("polygon offsets", flat.poly_off, flat.ring_off.size - 1),
        ("row offsets", flat.geom_off, flat.poly_off.size - 1),
    ):
        why = bad_offsets(np.asarray(off), size)
        if why is not None:
            raise LayerDataError(f"{where}: the {name} {why}")
    if flat.status.shape != (flat.n_rows,) or flat.type_id.shape != (flat.n_rows,):
        raise LayerDataError(f"{where}: {flat.n_rows} rows but {flat.status.size} status and {flat.type_id.size} type entries")


def rows_with(flat: FlatGeoms, vertex_mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Per row: does any of its vertices have ``vertex_mask`` set? (rows own contiguous vertices)"""
    cum = np.zeros(vertex_mask.size + 1, np.int64)
    np.cumsum(vertex_mask, out=cum[1:])
    bounds = flat.ring_off[flat.poly_off[flat.geom_off]]
    return (cum[bounds[1:]] - cum[bounds[:-1]]) > 0


def drop_rings(flat: FlatGeoms, keep_ring: NDArray[np.bool_], drop_rows: NDArray[np.bool_]) -> FlatGeoms:
    """``flat`` without the rings not in ``keep_ring`` and without every polygon of ``drop_rows``.

    A polygon whose shell (first ring) goes loses its holes too; rows keep their place (a row
    may end with no polygons). Vectorised; returns ``flat`` itself when nothing goes.
    """
    n_poly = flat.n_polygons
    rings_per_poly = np.diff(flat.poly_off)
    polys_per_row = np.diff(flat.geom_off)
    poly_row = np.repeat(np.arange(flat.n_rows), polys_per_row)
    shell = flat.poly_off[:-1]
    keep_poly = (rings_per_poly > 0) & ~drop_rows[poly_row]
    keep_poly[keep_poly] = keep_ring[shell[keep_poly]]
    ring_poly = np.repeat(np.arange(n_poly), rings_per_poly)
    keep_ring = keep_ring & keep_poly[ring_poly]
    if keep_ring.all() and keep_poly.all():
        return flat
    ring_len = np.diff(flat.ring_off)
    keep_vertex = np.repeat(keep_ring, ring_len)
    ring_off = np.zeros(int(keep_ring.sum()) + 1, np.int64)
    np.cumsum(ring_len[keep_ring], out=ring_off[1:])
    poly_off = np.zeros(int(keep_poly.sum()) + 1, np.int64)
    np.cumsum(np.bincount(ring_poly, weights=keep_ring, minlength=n_poly).astype(np.int64)[keep_poly], out=poly_off[1:])
    geom_off = np.zeros(flat.n_rows + 1, np.int64)
    np.cumsum(np.bincount(poly_row, weights=keep_poly, minlength=flat.n_rows).astype(np.int64), out=geom_off[1:])
    return FlatGeoms(flat.x[keep_vertex], flat.y[keep_vertex], ring_off, poly_off, geom_off, flat.status, flat.type_id)


# -- WKB ---------------------------------------------------------------------------------------
@_inner
def _u32(buf: NDArray, pos: int, le: bool) -> int:
    if le:
        return np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8) | (np.int64(buf[pos + 2]) << 16) | (np.int64(buf[pos + 3]) << 24)
    return np.int64(buf[pos + 3]) | (np.int64(buf[pos + 2]) << 8) | (np.int64(buf[pos + 1]) << 16) | (np.int64(buf[pos]) << 24)


@_inner
def _f64(buf: NDArray, pos: int, le: bool, tmp: NDArray, tmpf: NDArray) -> float:
    if le:
        for k in range(8):
            tmp[k] = buf[pos + k]
    else:
        for k in range(8):
            tmp[k] = buf[pos + 7 - k]
    return tmpf[0]


@_inner
def _header(buf: NDArray, pos: int, end: int) -> tuple[int, bool, int, int]:
    """(base type, little endian, dims, position after header); base type -1 when malformed."""
    if pos + 5 > end:
        return -1, True, 2, pos
    bo = buf[pos]
    if bo > 1:
        return -1, True, 2, pos
    le = bo == 1
    t = _u32(buf, pos + 1, le)
    pos += 5
    dims = 2
    if t & 0x80000000:
        dims += 1
    if t & 0x40000000:
        dims += 1
    if t & 0x20000000:
        pos += 4  # EWKB SRID
    t = t & 0x0FFFFFFF
    iso = t // 1000
    if iso == 1 or iso == 2:
        dims += 1
    elif iso == 3:
        dims += 2
    return t % 1000, le, dims, pos


@_inner
def _polygon_body(
    buf: NDArray, pos: int, end: int, le: bool, dims: int, fill: bool,
    xs: NDArray, ys: NDArray, ring_off: NDArray, c: int, r: int, tmp: NDArray, tmpf: NDArray,
) -> tuple[int, int, int]:
    """Read one polygon body; returns (new pos or -1, rings, coordinates)."""
    if pos + 4 > end:
        return -1, 0, 0
    nr = _u32(buf, pos, le)
    pos += 4
    nc = 0
    for k in range(nr):
        if pos + 4 > end:
            return -1, 0, 0
        npts = _u32(buf, pos, le)
        pos += 4
        if pos + npts * dims * 8 > end:
            return -1, 0, 0
        if fill:
            if le and _LITTLE_ENDIAN_HOST:
                # the coordinates as float64 in place (x86 loads unaligned doubles fine)
                block = buf[pos : pos + npts * dims * 8].view(np.float64)
                for q in range(npts):
                    xs[c + nc + q] = block[q * dims]
                    ys[c + nc + q] = block[q * dims + 1]
            else:
                for q in range(npts):
                    xs[c + nc + q] = _f64(buf, pos + q * dims * 8, le, tmp, tmpf)
                    ys[c + nc + q] = _f64(buf, pos + q * dims * 8 + 8, le, tmp, tmpf)
            ring_off[r + k + 1] = c + nc + npts
        pos += npts * dims * 8
        nc += npts
    return pos, nr, nc


@_inner
def _parse_row(
    buf: NDArray, pos: int, end: int, fill: bool, xs: NDArray, ys: NDArray, ring_off: NDArray, poly_off: NDArray,
    c: int, r: int, p: int, tmp: NDArray, tmpf: NDArray,
) -> tuple[int, int, int, int, int]:
    """Parse one WKB geometry: (status, type id, polygons, rings, coordinates)."""
    t, le, dims, pos = _header(buf, pos, end)
    if t < 0:
        return MALFORMED, 0, 0, 0, 0
    npoly = 0
    nring = 0
    ncoord = 0
    if t == 3:
        pos2, nr, nc = _polygon_body(buf, pos, end, le, dims, fill, xs, ys, ring_off, c, r, tmp, tmpf)
        if pos2 < 0:
            return MALFORMED, t, 0, 0, 0
        if nr > 0:
            if fill:
                poly_off[p + 1] = r + nr
            return OK, t, 1, nr, nc
        return OK, t, 0, 0, 0
    if t != 6 and t != 7:
        return NOT_POLYGONAL, t, 0, 0, 0
    if pos + 4 > end:
        return MALFORMED, t, 0, 0, 0
    n = _u32(buf, pos, le)
    pos += 4
    for _ in range(n):
        t2, le2, dims2, pos = _header(buf, pos, end)
        if t2 < 0:
            return MALFORMED, t, 0, 0, 0
        if t2 == 3:
            parts = 1
            single = True
        elif t2 == 6 and t == 7:
            if pos + 4 > end:
                return MALFORMED, t, 0, 0, 0
            parts = _u32(buf, pos, le2)
            pos += 4
            single = False
        else:
            return NOT_POLYGONAL, (t2 if t == 6 else 7), 0, 0, 0
        for _k in range(parts):
            if not single:
                t3, le2, dims2, pos = _header(buf, pos, end)
                if t3 != 3:
                    return (MALFORMED if t3 < 0 else NOT_POLYGONAL), 7, 0, 0, 0
            pos, nr, nc = _polygon_body(buf, pos, end, le2, dims2, fill, xs, ys, ring_off, c + ncoord, r + nring, tmp, tmpf)
            if pos < 0:
                return MALFORMED, t, 0, 0, 0
            if nr > 0:
                nring += nr
                ncoord += nc
                npoly += 1
                if fill:
                    poly_off[p + npoly] = r + nring
    return OK, t, npoly, nring, ncoord


@njit(cache=True, nogil=True)
def _wkb_count(i0: int, i1: int, buf: NDArray, offs: NDArray, null: NDArray, status: NDArray, type_id: NDArray, counts: NDArray) -> None:
    dummy_f = np.zeros(0, np.float64)
    dummy_i = np.zeros(0, np.int64)
    tmp = np.empty(8, np.uint8)
    tmpf = tmp.view(np.float64)
    fill = i0 < 0  # False, but not a literal: one compiled _parse_row serves both passes
    for i in range(i0, i1):
        if null[i] or offs[i + 1] <= offs[i]:
            status[i] = NULL
            counts[i, 0] = 0
            counts[i, 1] = 0
            counts[i, 2] = 0
            continue
        st, t, npoly, nring, ncoord = _parse_row(buf, offs[i], offs[i + 1], fill, dummy_f, dummy_f, dummy_i, dummy_i, 0, 0, 0, tmp, tmpf)
        status[i] = st
        type_id[i] = t
        if st != OK:
            npoly = 0
            nring = 0
            ncoord = 0
        counts[i, 0] = npoly
        counts[i, 1] = nring
        counts[i, 2] = ncoord


@njit(cache=True, nogil=True)
def _wkb_fill(
    i0: int, i1: int, buf: NDArray, offs: NDArray, status: NDArray, geom_off: NDArray, row_ring: NDArray, row_coord: NDArray,
    xs: NDArray, ys: NDArray, ring_off: NDArray, poly_off: NDArray,
) -> None:
    tmp = np.empty(8, np.uint8)
    tmpf = tmp.view(np.float64)
    fill = i0 >= 0  # True, but not a literal (see _wkb_count)
    for i in range(i0, i1):
        if status[i] != OK or geom_off[i + 1] == geom_off[i]:
            continue
        _parse_row(buf, offs[i], offs[i + 1], fill, xs, ys, ring_off, poly_off, row_coord[i], row_ring[i], geom_off[i], tmp, tmpf)


def _wkb_arrays(arr: Any) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.bool_]]:
    """Data buffer, offsets and null mask of a pyarrow (Large)BinaryArray."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_large_binary(arr.type):
        odt: type = np.int64
    elif pa.types.is_binary(arr.type):
        odt = np.int32
    else:
        storage = getattr(arr, "storage", None)
        if storage is not None:
            return _wkb_arrays(storage)
        raise LayerDataError(f"geometry column of type {arr.type} is neither WKB nor GeoArrow")
    bufs = arr.buffers()
    n = len(arr)
    offs = np.frombuffer(bufs[1], dtype=odt)[arr.offset : arr.offset + n + 1].astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    null = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else np.zeros(n, np.bool_)
    return data, offs, np.ascontiguousarray(null)


def from_wkb(arr: Any) -> FlatGeoms:
    """Decode WKB (a pyarrow binary array, or a numpy object array of bytes/None) to flat arrays."""
    import pyarrow as pa

    if isinstance(arr, np.ndarray):
        arr = pa.array(arr, type=pa.binary(), from_pandas=True)
    data, offs, null = _wkb_arrays(arr)
    n = offs.size - 1
    status = np.zeros(n, np.int8)
    type_id = np.zeros(n, np.int32)
    counts = np.zeros((n, 3), np.int64)
    if n:
        _parallel.run(_wkb_count, _parallel.chunks_for(offs), data, offs, null, status, type_id, counts)
    geom_off = np.zeros(n + 1, np.int64)
    row_ring = np.zeros(n + 1, np.int64)
    row_coord = np.zeros(n + 1, np.int64)
    np.cumsum(counts[:, 0], out=geom_off[1:])
    np.cumsum(counts[:, 1], out=row_ring[1:])
    np.cumsum(counts[:, 2], out=row_coord[1:])
    xs = np.empty(int(row_coord[-1]), np.float64)
    ys = np.empty(int(row_coord[-1]), np.float64)
    ring_off = np.zeros(int(row_ring[-1]) + 1, np.int64)
    poly_off = np.zeros(int(geom_off[-1]) + 1, np.int64)
    if n and geom_off[-1]:
        _parallel.run(_wkb_fill, _parallel.chunks_for(offs), data, offs, status, geom_off, row_ring, row_coord, xs, ys, ring_off, poly_off)
    return FlatGeoms(xs, ys, ring_off, poly_off, geom_off, status, type_id)


# -- shapely / GeoArrow -------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _single_ring_rows(i0: int, i1: int, x: NDArray, y: NDArray, offs: NDArray, type_id: NDArray, out: NDArray) -> None:
    """Rows that are a Polygon whose coordinates form exactly one closed ring (no holes).

    A ring closes where its first coordinate comes back; if that happens before the row's last
    coordinate, the row has holes (or a ring touching its own start: invalid) and is not simple."""
    for i in range(i0, i1):
        s = offs[i]
        e = offs[i + 1]
        ok = type_id[i] == 3 and e - s >= 4 and x[e - 1] == x[s] and y[e - 1] == y[s]
        if ok:
            for j in range(s + 1, e - 1):
                if x[j] == x[s] and y[j] == y[s]:
                    ok = False
                    break
        out[i] = ok


def from_shapely(geoms: NDArray[np.object_]) -> FlatGeoms:
    """Shapely geometries (numpy object array, None allowed) to flat arrays, without per-object loops.

    All coordinates come out in one ``shapely.get_coordinates`` call; rows that are a Polygon
    without holes (the usual footprint) use them directly, the others (holes, MultiPolygons,
    collections, empty, other types) are re-read from ``shapely.to_wkb`` by the WKB kernel.
    """
    import shapely

    geoms = np.asarray(geoms, dtype=object)
    n = geoms.size
    if n == 0:
        return FlatGeoms.empty(0)
    type_id = shapely.get_type_id(geoms).astype(np.int32)  # -1 for None
    ncoord = shapely.get_num_coordinates(geoms).astype(np.int64)
    coords = shapely.get_coordinates(geoms)
    x = np.ascontiguousarray(coords[:, 0])
    y = np.ascontiguousarray(coords[:, 1])
    offs = np.zeros(n + 1, np.int64)
    np.cumsum(ncoord, out=offs[1:])
    simple = np.zeros(n, np.bool_)
    _parallel.run(_single_ring_rows, _parallel.chunks_for(offs), x, y, offs, type_id, simple)
    # every row with coordinates is one polygon of one ring here; the others are replaced below
    has = ncoord > 0
    geom_off = np.zeros(n + 1, np.int64)
    np.cumsum(has, out=geom_off[1:])
    ring_off = np.concatenate([offs[:-1][has], offs[-1:]]).astype(np.int64)
    base = FlatGeoms(x, y, ring_off, np.arange(int(has.sum()) + 1, dtype=np.int64), geom_off, np.zeros(n, np.int8), np.full(n, 3, np.int32))
    other = np.flatnonzero(~simple)
    if other.size == 0:
        return base
    sub = from_wkb(shapely.to_wkb(geoms[other], output_dimension=2))
    return replace_rows(base, other, sub)


def _geoarrow_coords(values: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    import pyarrow as pa

    if pa.types.is_struct(values.type):
        x = values.field(0).to_numpy(zero_copy_only=False)
        y = values.field(1).to_numpy(zero_copy_only=False)
        return np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64)
    dim = values.type.list_size
    flat = values.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return np.ascontiguousarray(flat[:, 0]), np.ascontiguousarray(flat[:, 1])


def from_geoarrow(arr: Any, encoding: str) -> FlatGeoms:
    """GeoArrow ``polygon`` / ``multipolygon`` nested lists to flat arrays (offset buffers reused)."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if hasattr(arr, "storage"):
        arr = arr.storage
    n = len(arr)
    null = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else np.zeros(n, np.bool_)
    status = np.where(null, NULL, OK).astype(np.int8)
    type_id = np.full(n, 6 if encoding == "multipolygon" else 3, np.int32)
    top_off = arr.offsets.to_numpy().astype(np.int64)
    if encoding == "multipolygon":
        polys = arr.values
        poly_off = polys.offsets.to_numpy().astype(np.int64)
        rings = polys.values
        geom_off = top_off
    else:
        rings = arr.values
        counts = np.diff(top_off)
        nonempty = counts > 0
        geom_off = np.zeros(n + 1, np.int64)
        np.cumsum(nonempty, out=geom_off[1:])
        poly_off = np.concatenate([top_off[:-1][nonempty], top_off[-1:]]).astype(np.int64)
    ring_off = rings.offsets.to_numpy().astype(np.int64)
    x, y = _geoarrow_coords(rings.values)
    if geom_off[0] != 0:  # a sliced array: make the row level start at 0
        geom_off = geom_off - geom_off[0]
        poly_off = poly_off[int(top_off[0]) :]
    return FlatGeoms(x, y, ring_off, poly_off, geom_off, status, type_id)


# -- row surgery ----------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _replace_fill(
    i0: int, i1: int, a_x: NDArray, a_y: NDArray, a_ring: NDArray, a_poly: NDArray, a_geom: NDArray,
    b_x: NDArray, b_y: NDArray, b_ring: NDArray, b_poly: NDArray, b_geom: NDArray,
    src: NDArray, geom_off: NDArray, row_ring: NDArray, row_coord: NDArray,
    xs: NDArray, ys: NDArray, ring_off: NDArray, poly_off: NDArray,
) -> None:
    for i in range(i0, i1):
        p = geom_off[i]
        r = row_ring[i]
        c = row_coord[i]
        if src[i] < 0:
            gx, gy, gring, gpoly, g0, g1 = a_x, a_y, a_ring, a_poly, a_geom[i], a_geom[i + 1]
        else:
            j = src[i]
            gx, gy, gring, gpoly, g0, g1 = b_x, b_y, b_ring, b_poly, b_geom[j], b_geom[j + 1]
        for q in range(g0, g1):
            for rr in range(gpoly[q], gpoly[q + 1]):
                for v in range(gring[rr], gring[rr + 1]):
                    xs[c] = gx[v]
                    ys[c] = gy[v]
                    c += 1
                r += 1
                ring_off[r] = c
            p += 1
            poly_off[p] = r


def _row_counts(f: FlatGeoms) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    npoly = np.diff(f.geom_off)
    nring = np.diff(f.poly_off[f.geom_off])
    ncoord = np.diff(f.ring_off[f.poly_off[f.geom_off]])
    return npoly, nring, ncoord


def replace_rows(base: FlatGeoms, rows: NDArray[np.integer], sub: FlatGeoms) -> FlatGeoms:
    """``base`` with rows ``rows`` (distinct) replaced by the rows of ``sub`` (same order)."""
    rows = np.asarray(rows, dtype=np.int64)
    n = base.n_rows
    src = np.full(n, -1, np.int64)
    src[rows] = np.arange(rows.size)
    a = _row_counts(base)
    b = _row_counts(sub)
    counts = [np.where(src < 0, a[k], b[k][np.maximum(src, 0)] if rows.size else 0) for k in range(3)]
    offs = []
    for c in counts:
        o = np.zeros(n + 1, np.int64)
        np.cumsum(c, out=o[1:])
        offs.append(o)
    geom_off, row_ring, row_coord = offs
    xs = np.empty(int(row_coord[-1]))
    ys = np.empty(int(row_coord[-1]))
    ring_off = np.zeros(int(row_ring[-1]) + 1, np.int64)
    poly_off = np.zeros(int(geom_off[-1]) + 1, np.int64)
    if n:
        _parallel.run(
            _replace_fill,
            _parallel.chunks_for(row_coord),
            base.x, base.y, base.ring_off, base.poly_off, base.geom_off,
            sub.x, sub.y, sub.ring_off, sub.poly_off, sub.geom_off,
            src, geom_off, row_ring, row_coord, xs, ys, ring_off, poly_off,
        )
    status = base.status.copy()
    type_id = base.type_id.copy()
    status[rows] = sub.status
    type_id[rows] = sub.type_id
    return FlatGeoms(xs, ys, ring_off, poly_off, geom_off, status, type_id)


# -- normalisation ----------------------------------------------------------------------------------
@dataclass
class Normalized:
    """Rings without closing vertex nor consecutive duplicates, plus per-row flags."""

    flat: FlatGeoms
    unclosed: NDArray[np.bool_]
    duplicates: NDArray[np.bool_]
    degenerate: NDArray[np.bool_]  # a ring with fewer than 3 distinct vertices
    nonfinite: NDArray[np.bool_]
    null: NDArray[np.bool_]  # null, empty, or malformed (nothing to draw)


@njit(cache=True, nogil=True)
def _norm_count(i0: int, i1: int, x: NDArray, y: NDArray, ring_off: NDArray, poly_off: NDArray, geom_off: NDArray, keep: NDArray, flags: NDArray) -> None:
    """keep[r] = distinct vertices of ring r; flags[row] bits: 1 unclosed, 2 duplicates, 4 degenerate, 8 non-finite."""
    for i in range(i0, i1):
        f = 0
        for q in range(geom_off[i], geom_off[i + 1]):
            for r in range(poly_off[q], poly_off[q + 1]):
                s = ring_off[r]
                e = ring_off[r + 1]
                m = e - s
                if m > 1 and x[e - 1] == x[s] and y[e - 1] == y[s]:
                    e -= 1
                elif m > 0:
                    f |= 1
                k = 0
                for v in range(s, e):
                    if not (np.isfinite(x[v]) and np.isfinite(y[v])):
                        f |= 8
                    if v > s and x[v] == x[v - 1] and y[v] == y[v - 1]:
                        f |= 2
                        continue
                    k += 1
                # a last vertex equal to the first (after removing the closing one) is a duplicate too
                if k > 1 and x[e - 1] == x[s] and y[e - 1] == y[s]:
                    f |= 2
                    k -= 1
                if k < 3:
                    f |= 4
                keep[r] = k
        flags[i] = f


@njit(cache=True, nogil=True)
def _norm_fill(i0: int, i1: int, x: NDArray, y: NDArray, ring_off: NDArray, poly_off: NDArray, geom_off: NDArray, new_ring_off: NDArray, xs: NDArray, ys: NDArray) -> None:
    for i in range(i0, i1):
        for q in range(geom_off[i], geom_off[i + 1]):
            for r in range(poly_off[q], poly_off[q + 1]):
                s = ring_off[r]
                e = ring_off[r + 1]
                if e - s > 1 and x[e - 1] == x[s] and y[e - 1] == y[s]:
                    e -= 1
                c = new_ring_off[r]
                stop = new_ring_off[r + 1]
                for v in range(s, e):
                    if c >= stop:
                        break
                    if v > s and x[v] == x[v - 1] and y[v] == y[v - 1]:
                        continue
                    xs[c] = x[v]
                    ys[c] = y[v]
                    c += 1


@njit(cache=True, nogil=True)
def _norm_fast(i0: int, i1: int, x: NDArray, y: NDArray, ring_off: NDArray, poly_off: NDArray, geom_off: NDArray, xs: NDArray, ys: NDArray, bad: NDArray) -> None:
    """One pass for the usual case: every ring closed, >= 3 distinct finite vertices, no duplicates.

    Ring r then keeps ``ring_off[r+1] - ring_off[r] - 1`` vertices starting at ``ring_off[r] - r``.
    Rows that are not that simple get ``bad[i] = True`` (the two-pass path redoes everything)."""
    for i in range(i0, i1):
        b = False
        for q in range(geom_off[i], geom_off[i + 1]):
            for r in range(poly_off[q], poly_off[q + 1]):
                s = ring_off[r]
                e = ring_off[r + 1] - 1
                if e - s < 3 or x[e] != x[s] or y[e] != y[s]:
                    b = True
                    break
                c = s - r
                px = x[e - 1]  # the last distinct vertex: a first vertex equal to it is a duplicate
                py = y[e - 1]
                for v in range(s, e):
                    xv = x[v]
                    yv = y[v]
                    if (xv == px and yv == py) or not (np.isfinite(xv) and np.isfinite(yv)):
                        b = True
                        break
                    xs[c] = xv
                    ys[c] = yv
                    c += 1
                    px = xv
                    py = yv
                if b:
                    break
            if b:
                break
        bad[i] = b


def _readonly(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """A read-only view: numba compiles one specialisation for Arrow's read-only buffers and ours."""
    v = a.view()
    v.flags.writeable = False
    return v


def normalize(flat: FlatGeoms) -> Normalized:
    """Drop closing and consecutive duplicate vertices; flag unclosed/degenerate/non-finite rows.

    Raises :class:`~twin.errors.LayerDataError` when the arrays do not index each other in range
    (:func:`check_layout`). Rings may be empty or degenerate (flagged ``degenerate``, kept with
    the vertices they have; :func:`drop_rings` removes them).
    """
    check_layout(flat)
    n = flat.n_rows
    flat = FlatGeoms(_readonly(flat.x), _readonly(flat.y), flat.ring_off, flat.poly_off, flat.geom_off, flat.status, flat.type_id)
    nr = flat.ring_off.size - 1
    if n and nr:
        # optimistic single pass; falls back to count + fill when any row needs more
        new_ring_off = flat.ring_off - np.arange(nr + 1)
        new_ring_off -= new_ring_off[0]
        if int(np.diff(flat.ring_off).min()) >= 4:  # the one-pass layout needs >= 3 vertices + closing one per ring
            xs = np.empty(int(new_ring_off[-1]))
            ys = np.empty(int(new_ring_off[-1]))
            bad = np.zeros(n, np.bool_)
            bounds = _parallel.chunks_for(flat.ring_off[flat.poly_off[flat.geom_off]])
            _parallel.run(_norm_fast, bounds, flat.x, flat.y, flat.ring_off, flat.poly_off, flat.geom_off, xs, ys, bad)
            if not bad.any():
                out = FlatGeoms(xs, ys, new_ring_off, flat.poly_off, flat.geom_off, flat.status, flat.type_id)
                null = (flat.status == NULL) | (flat.status == MALFORMED) | ((flat.status == OK) & (np.diff(flat.geom_off) == 0))
                none = np.zeros(n, np.bool_)
                return Normalized(out, none, none, none, none.copy(), null)
    nr = flat.ring_off.size - 1
    keep = np.zeros(nr, np.int64)
    flags = np.zeros(n, np.int64)
    bounds = _parallel.chunks_for(flat.ring_off[flat.poly_off[flat.geom_off]]) if n else np.zeros(1, np.int64)
    if n:
        _parallel.run(_norm_count, bounds, flat.x, flat.y, flat.ring_off, flat.poly_off, flat.geom_off, keep, flags)
    # rings of polygons that belong to no row (cannot happen) keep 0
    new_ring_off = np.zeros(nr + 1, np.int64)
    np.cumsum(keep, out=new_ring_off[1:])
    xs = np.empty(int(new_ring_off[-1]))
    ys = np.empty(int(new_ring_off[-1]))
    if n and xs.size:
        _parallel.run(_norm_fill, bounds, flat.x, flat.y, flat.ring_off, flat.poly_off, flat.geom_off, new_ring_off, xs, ys)
    out = FlatGeoms(xs, ys, new_ring_off, flat.poly_off, flat.geom_off, flat.status, flat.type_id)
    null = (flat.status == NULL) | (flat.status == MALFORMED) | ((flat.status == OK) & (np.diff(flat.geom_off) == 0))
    return Normalized(
        out,
        (flags & 1).astype(bool),
        (flags & 2).astype(bool),
        (flags & 4).astype(bool),
        (flags & 8).astype(bool),
        null,
    )


# -- sources ------------------------------------------------------------------------------------------
@dataclass
class FootprintTable:
    """What a reader returns: geometries, their CRS (None: unknown), attribute columns (numbers or text)."""

    geoms: FlatGeoms
    crs: pyproj.CRS | None
    columns: dict[str, NDArray[Any]]
    source: str


Resolver = Callable[[Sequence[str]], list[str]]


def _values(values: Any) -> NDArray[Any]:
    """A column as numpy: numbers as they are, text as objects (read by :mod:`twin.mesh.heights`)."""
    return np.asarray(values)


@lru_cache(maxsize=64)
def _crs(text: str) -> pyproj.CRS:
    return pyproj.CRS.from_user_input(text)  # ~10 ms each from PROJJSON: cached


def _crs_from_geo_meta(col_meta: dict[str, Any]) -> pyproj.CRS | None:
    if "crs" not in col_meta:
        return _crs("OGC:CRS84")  # GeoParquet: a missing crs means lon/lat
    crs = col_meta["crs"]
    if crs is None:
        return None
    return _crs(crs if isinstance(crs, str) else json.dumps(crs, sort_keys=True))


def read_geoparquet(path: str | Path, resolve: Resolver) -> FootprintTable:
    """GeoParquet (GeoArrow or WKB encoding) straight into flat arrays; no shapely objects."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise SourceError(f"{path}: cannot read as Parquet ({exc})") from exc
    schema = pf.schema_arrow
    meta = json.loads((schema.metadata or {}).get(b"geo", b"{}") or b"{}")
    geom_col = meta.get("primary_column") or ("geometry" if "geometry" in schema.names else None)
    if geom_col is None or geom_col not in schema.names:
        raise LayerDataError(f"{path}: no geometry column (not GeoParquet); columns: {', '.join(schema.names)}")
    col_meta = meta.get("columns", {}).get(geom_col, {})
    encoding = str(col_meta.get("encoding", "WKB")).lower()
    available = [c for c in schema.names if c != geom_col]
    wanted = resolve(available)
    table = pf.read(columns=[geom_col, *wanted], use_threads=True)
    arr = table.column(geom_col)
    if encoding in ("polygon", "multipolygon"):
        geoms = from_geoarrow(arr, encoding)
    elif encoding == "wkb":
        geoms = from_wkb(arr)
    else:
        names = {"point": "Point", "linestring": "LineString", "multipoint": "MultiPoint", "multilinestring": "MultiLineString"}
        n = table.num_rows
        raise LayerDataError(
            f"{path}: footprints must be polygons, but the geometry column is GeoArrow {names.get(encoding, encoding)} "
            f"(all {n} rows, e.g. rows {list(range(min(n, 10)))})"
        )
    cols = {c: _values(table.column(c).to_numpy()) for c in wanted}
    return FootprintTable(geoms, _crs_from_geo_meta(col_meta), cols, str(path))


def read_ogr(path: str | Path, resolve: Resolver) -> FootprintTable:
    """GeoPackage, GeoJSON, Shapefile... through ``pyogrio.read_arrow`` (WKB) and the WKB kernel."""
    import pyogrio

    try:
        info = pyogrio.read_info(path)
        available = [str(f) for f in info["fields"]]
        wanted = resolve(available)
        with warnings.catch_warnings():  # unclosed rings are closed and reported by the caller
            warnings.filterwarnings("ignore", message="Non closed ring")
            meta, table = pyogrio.read_arrow(path, columns=wanted)
    except (LayerDataError, SourceError):
        raise
    except Exception as exc:
        raise SourceError(f"{path}: cannot read footprints ({exc})") from exc
    geom_name = meta.get("geometry_name") or "wkb_geometry"
    if geom_name not in table.column_names:
        geom_name = table.column_names[-1]
    geoms = from_wkb(table.column(geom_name))
    crs = _crs(meta["crs"]) if meta.get("crs") else None
    cols = {c: _values(table.column(c).to_numpy(zero_copy_only=False)) for c in wanted}
    return FootprintTable(geoms, crs, cols, str(path))


def read_geodataframe(gdf: Any, resolve: Resolver) -> FootprintTable:
    """A GeoDataFrame's active geometry column (vectorised, see :func:`from_shapely`)."""
    geom_name = gdf.geometry.name
    available = [str(c) for c in gdf.columns if c != geom_name]
    wanted = resolve(available)
    geoms = from_shapely(np.asarray(gdf.geometry.values, dtype=object))
    cols = {c: _values(gdf[c].to_numpy()) for c in wanted}
    return FootprintTable(geoms, gdf.crs, cols, "GeoDataFrame")


def read_footprints(source: Any, resolve: Resolver) -> FootprintTable:
    """Dispatch on the source: GeoDataFrame, or a path to GeoParquet / any file OGR reads."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise SourceError(f"{path}: no such file")
        if path.suffix.lower() in (".parquet", ".geoparquet", ".pq"):
            return read_geoparquet(path, resolve)
        return read_ogr(path, resolve)
    if hasattr(source, "geometry") and hasattr(source, "columns"):
        return read_geodataframe(source, resolve)
    raise LayerDataError(f"footprints must be a GeoDataFrame or a path to GeoParquet/GeoPackage/GeoJSON, not {type(source).__name__}")
