"""Cheap, conservative validity pre-check in numba, then GEOS only for the rows it flags.

``shapely.is_valid`` costs ~0.6 s per million polygons (plus building the shapely objects when
the input is GeoParquet), more than the whole mesh. :func:`suspect_rows` flags every row that
*might* be invalid in the OGC sense (edges of a row touching or crossing other than at a shared
ring vertex, ring spikes, a hole not strictly inside its shell or inside another hole, parts of a
MultiPolygon nested in each other, rings with fewer than 3 distinct vertices, very large rows);
orientation tests use a relative tolerance (1e-12), so a near-touch counts as a touch. A single
ring that is strictly star-shaped around its vertex mean is simple and passes in O(n); so do
holes of such rings that keep away from each other's bounding boxes. A row
it does not flag is valid; the flagged rows (usually none) go to ``shapely.is_valid`` and the
invalid ones to ``shapely.make_valid`` (keeping the polygonal parts) by :func:`repair_rows`.

>>> import shapely
>>> from twin.mesh.footprints import from_shapely, normalize
>>> geoms = np.array([shapely.box(0, 0, 1, 1), shapely.from_wkt("POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))")])
>>> norm = normalize(from_shapely(geoms))
>>> suspect_rows(norm.flat).tolist()
[False, True]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from twin.mesh import _parallel
from twin.mesh.footprints import FlatGeoms, check_layout, from_shapely

_inner = njit(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)  # helpers called only from jitted code

__all__ = ["Repair", "repair_rows", "suspect_rows", "to_shapely_rows"]

_TOL = 1e-12
_BRUTE_MAX_EDGES = 48
_MAX_RINGS = 64


@_inner
def _orient(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> int:
    left = (bx - ax) * (cy - ay)
    right = (by - ay) * (cx - ax)
    d = left - right
    tol = _TOL * (abs(left) + abs(right))
    if d > tol:
        return 1
    if d < -tol:
        return -1
    return 0


@_inner
def _pair_bad(xs: NDArray, ys: NDArray, a1: int, b1: int, a2: int, b2: int) -> bool:
    """Edges (a1,b1), (a2,b2) of the same row (distinct edges): do they meet improperly?"""
    # bounding boxes (exact)
    if max(xs[a1], xs[b1]) < min(xs[a2], xs[b2]) or max(xs[a2], xs[b2]) < min(xs[a1], xs[b1]):
        return False
    if max(ys[a1], ys[b1]) < min(ys[a2], ys[b2]) or max(ys[a2], ys[b2]) < min(ys[a1], ys[b1]):
        return False
    if b1 == a2 or b2 == a1:
        # adjacent edges of one ring: bad only if they fold back onto each other
        if b1 == a2:
            pa, pb, pc = a1, b1, b2
        else:
            pa, pb, pc = a2, b2, b1
        if _orient(xs[pa], ys[pa], xs[pb], ys[pb], xs[pc], ys[pc]) != 0:
            return False
        return (xs[pa] - xs[pb]) * (xs[pc] - xs[pb]) + (ys[pa] - ys[pb]) * (ys[pc] - ys[pb]) > 0
    o1 = _orient(xs[a1], ys[a1], xs[b1], ys[b1], xs[a2], ys[a2])
    o2 = _orient(xs[a1], ys[a1], xs[b1], ys[b1], xs[b2], ys[b2])
    o3 = _orient(xs[a2], ys[a2], xs[b2], ys[b2], xs[a1], ys[a1])
    o4 = _orient(xs[a2], ys[a2], xs[b2], ys[b2], xs[b1], ys[b1])
    return o1 * o2 <= 0 and o3 * o4 <= 0


@_inner
def _point_in_ring(xs: NDArray, ys: NDArray, s: int, e: int, px: float, py: float) -> int:
    """1 inside, 0 outside, -1 too close to the ring to tell."""
    inside = False
    j = e - 1
    for i in range(s, e):
        ax, ay, bx, by = xs[j], ys[j], xs[i], ys[i]
        if (ay > py) != (by > py):
            o = _orient(ax, ay, bx, by, px, py)
            if o == 0:
                return -1
            if (by > ay) == (o > 0):
                inside = not inside
        elif ay == py and by == py and min(ax, bx) <= px <= max(ax, bx):
            return -1
        j = i
    return 1 if inside else 0


@_inner
def _star_simple(xs: NDArray, ys: NDArray, s: int, e: int) -> bool:
    """True if the ring is strictly star-shaped around its vertex mean (hence simple), in O(n).

    Every edge strictly turns the same way around the mean c, and the ring crosses the
    horizontal line through c exactly once in that direction (winding number 1): the vertices'
    angles around c then increase monotonically through one turn, a radial, simple curve."""
    n = e - s
    cx = 0.0
    cy = 0.0
    for v in range(s, e):
        cx += xs[v]
        cy += ys[v]
    cx /= n
    cy /= n
    sign = 0
    cross = 0
    j = e - 1
    for i in range(s, e):
        o = _orient(cx, cy, xs[j], ys[j], xs[i], ys[i])
        if o == 0 or (sign != 0 and o != sign):
            return False
        sign = o
        up = ys[j] <= cy < ys[i]
        down = ys[i] <= cy < ys[j]
        if (up and o > 0) or (down and o < 0):
            cross += 1
        j = i
    return cross == 1


@_inner
def _argsort(key: NDArray, n: int) -> NDArray:
    """Indices sorting key[:n] (shell sort: compiles fast, fine for the rare large rows)."""
    order = np.arange(n)
    gap = 1
    while gap < n // 3:
        gap = 3 * gap + 1
    while gap > 0:
        for i in range(gap, n):
            t = order[i]
            j = i
            while j >= gap and key[order[j - gap]] > key[t]:
                order[j] = order[j - gap]
                j -= gap
            order[j] = t
        gap //= 3
    return order


@_inner
def _rings_cross(xs: NDArray, ys: NDArray, s1: int, e1: int, s2: int, e2: int) -> bool:
    """Does any edge of ring 1 (that reaches ring 2's bounding box) meet an edge of ring 2?"""
    bx0 = np.inf
    by0 = np.inf
    bx1 = -np.inf
    by1 = -np.inf
    for v in range(s2, e2):
        bx0 = min(bx0, xs[v])
        bx1 = max(bx1, xs[v])
        by0 = min(by0, ys[v])
        by1 = max(by1, ys[v])
    for v in range(s1, e1):
        w = v + 1 if v + 1 < e1 else s1
        if max(xs[v], xs[w]) < bx0 or min(xs[v], xs[w]) > bx1 or max(ys[v], ys[w]) < by0 or min(ys[v], ys[w]) > by1:
            continue
        for a in range(s2, e2):
            b = a + 1 if a + 1 < e2 else s2
            if _pair_bad(xs, ys, v, w, a, b):
                return True
    return False


@_inner
def _holes_fast(xs: NDArray, ys: NDArray, ring_off: NDArray, r0: int, r1: int) -> int:
    """One polygon with holes whose rings are each star-shaped (simple): check ring against ring,
    only the edges that reach the other ring's bounding box, then containment. O(n) when holes
    keep away from the shell. 0 valid, 1 suspect, -1 not applicable (use the general check)."""
    for r in range(r0, r1):
        if ring_off[r + 1] - ring_off[r] < 3 or not _star_simple(xs, ys, ring_off[r], ring_off[r + 1]):
            return -1
    s0 = ring_off[r0]
    e0 = ring_off[r0 + 1]
    for h in range(r0 + 1, r1):
        sh = ring_off[h]
        eh = ring_off[h + 1]
        if _rings_cross(xs, ys, s0, e0, sh, eh):
            return 1
        if _point_in_ring(xs, ys, s0, e0, xs[sh], ys[sh]) != 1:
            return 1
        for h2 in range(h + 1, r1):
            if _rings_cross(xs, ys, sh, eh, ring_off[h2], ring_off[h2 + 1]):
                return 1
            if _point_in_ring(xs, ys, ring_off[h2], ring_off[h2 + 1], xs[sh], ys[sh]) != 0:
                return 1
            if _point_in_ring(xs, ys, sh, eh, xs[ring_off[h2]], ys[ring_off[h2]]) != 0:
                return 1
    return 0


@_inner
def _row_suspect(
    xs: NDArray, ys: NDArray, ring_off: NDArray, poly_off: NDArray, q0: int, q1: int,
    ea: NDArray, eb: NDArray, key: NDArray,
) -> bool:
    r0 = poly_off[q0]
    r1 = poly_off[q1]
    if r1 - r0 > _MAX_RINGS:
        return True
    for q in range(q0, q1):
        if poly_off[q + 1] == poly_off[q]:
            return True  # a polygon without rings: let GEOS decide
    if r1 - r0 == 1 and ring_off[r0 + 1] - ring_off[r0] >= 3 and _star_simple(xs, ys, ring_off[r0], ring_off[r0 + 1]):
        return False
    if q1 - q0 == 1:
        fast = _holes_fast(xs, ys, ring_off, r0, r1)
        if fast >= 0:
            return fast == 1
    # edges
    ne = 0
    for r in range(r0, r1):
        s = ring_off[r]
        e = ring_off[r + 1]
        if e - s < 3:
            return True
        for v in range(s, e):
            ea[ne] = v
            eb[ne] = v + 1 if v + 1 < e else s
            ne += 1
    if ne <= _BRUTE_MAX_EDGES:
        for i in range(ne):
            for j in range(i + 1, ne):
                if _pair_bad(xs, ys, ea[i], eb[i], ea[j], eb[j]):
                    return True
    else:
        for i in range(ne):
            key[i] = min(xs[ea[i]], xs[eb[i]])
        order = _argsort(key, ne)
        for ii in range(ne):
            i = order[ii]
            xmax = max(xs[ea[i]], xs[eb[i]])
            for jj in range(ii + 1, ne):
                j = order[jj]
                if key[j] > xmax:
                    break
                if _pair_bad(xs, ys, ea[i], eb[i], ea[j], eb[j]):
                    return True
    # holes strictly inside their shell and not inside each other; parts not inside each other
    for q in range(q0, q1):
        sr = poly_off[q]
        s0 = ring_off[sr]
        s1 = ring_off[sr + 1]
        for h in range(sr + 1, poly_off[q + 1]):
            v = ring_off[h]
            if _point_in_ring(xs, ys, s0, s1, xs[v], ys[v]) != 1:
                return True
            for h2 in range(sr + 1, poly_off[q + 1]):
                if h2 != h and _point_in_ring(xs, ys, ring_off[h2], ring_off[h2 + 1], xs[v], ys[v]) != 0:
                    return True
        for q2 in range(q0, q1):
            if q2 != q:
                t0 = ring_off[poly_off[q2]]
                t1 = ring_off[poly_off[q2] + 1]
                if _point_in_ring(xs, ys, t0, t1, xs[s0], ys[s0]) != 0:
                    return True
    return False


@njit(cache=True, nogil=True)
def _suspect_kernel(i0: int, i1: int, xs: NDArray, ys: NDArray, ring_off: NDArray, poly_off: NDArray, geom_off: NDArray, out: NDArray) -> None:
    m = 1
    for i in range(i0, i1):
        m = max(m, ring_off[poly_off[geom_off[i + 1]]] - ring_off[poly_off[geom_off[i]]])
    ea = np.empty(m, np.int64)
    eb = np.empty(m, np.int64)
    key = np.empty(m, np.float64)
    for i in range(i0, i1):
        q0 = geom_off[i]
        q1 = geom_off[i + 1]
        if q1 == q0:
            out[i] = False
        else:
            out[i] = _row_suspect(xs, ys, ring_off, poly_off, q0, q1, ea, eb, key)


def suspect_rows(flat: FlatGeoms) -> NDArray[np.bool_]:
    """Rows that might be invalid (normalized rings: no closing vertex, no consecutive duplicates).

    Raises :class:`~twin.errors.LayerDataError` when the arrays do not index each other in range.
    """
    check_layout(flat, "validity check")
    n = flat.n_rows
    out = np.zeros(n, np.bool_)
    if n == 0:
        return out
    bounds = _parallel.chunks_for(flat.ring_off[flat.poly_off[flat.geom_off]])
    _parallel.run(_suspect_kernel, bounds, flat.x, flat.y, flat.ring_off, flat.poly_off, flat.geom_off, out)
    return out


def to_shapely_rows(flat: FlatGeoms, rows: NDArray[np.integer]) -> tuple[NDArray[np.object_], NDArray[np.bool_]]:
    """Shapely geometries for some rows of normalized arrays (rings closed again).

    A ring with fewer than 3 distinct vertices cannot be built: a degenerate hole is dropped, a
    degenerate shell drops its polygon. Returns the geometries and whether anything was dropped.
    """
    import shapely

    out = np.empty(len(rows), dtype=object)
    dropped = np.zeros(len(rows), np.bool_)
    for k, i in enumerate(rows):
        polys = []
        for q in range(int(flat.geom_off[i]), int(flat.geom_off[i + 1])):
            rings = []
            for r in range(int(flat.poly_off[q]), int(flat.poly_off[q + 1])):
                s, e = int(flat.ring_off[r]), int(flat.ring_off[r + 1])
                pts = np.column_stack([flat.x[s:e], flat.y[s:e]])
                if e - s < 3 or not np.isfinite(pts).all():
                    if r == flat.poly_off[q]:
                        rings = []
                        dropped[k] = True
                        break
                    dropped[k] = True
                    continue
                rings.append(pts)
            if rings:
                polys.append(shapely.Polygon(rings[0], rings[1:]))
        if not polys:
            out[k] = shapely.Polygon()
        elif len(polys) == 1:
            out[k] = polys[0]
        else:
            out[k] = shapely.MultiPolygon(polys)
    return out, dropped


@dataclass
class Repair:
    """Outcome of :func:`repair_rows` for the suspect rows."""

    rows: NDArray[np.int64]  # the rows given
    flat: FlatGeoms  # their geometries, valid (one row each, in order)
    repaired: NDArray[np.bool_]  # make_valid changed it (or a degenerate ring was dropped)
    skipped: NDArray[np.bool_]  # nothing polygonal left


def _polygonal(geom: object) -> object:
    import shapely

    parts = shapely.get_parts(geom)
    while True:
        types = shapely.get_type_id(parts)
        nested = (types == 6) | (types == 7)
        if not nested.any():
            break
        parts = np.concatenate([parts[~nested], shapely.get_parts(parts[nested])])
    polys = parts[shapely.get_type_id(parts) == 3]
    polys = polys[~shapely.is_empty(polys)]
    if len(polys) == 0:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(list(polys))


def repair_rows(flat: FlatGeoms, rows: NDArray[np.integer]) -> Repair:
    """GEOS validity for the given (suspect) rows; ``make_valid`` on the invalid ones."""
    import shapely

    rows = np.asarray(rows, dtype=np.int64)
    geoms, dropped = to_shapely_rows(flat, rows)
    valid = shapely.is_valid(geoms)
    fixed = geoms.copy()
    bad = np.flatnonzero(~valid)
    if bad.size:
        made = shapely.make_valid(geoms[bad])
        for k, g in zip(bad, made):
            fixed[k] = _polygonal(g)
    skipped = shapely.is_empty(fixed) | (shapely.area(fixed) <= 0)
    repaired = (~valid | dropped) & ~skipped
    sub = from_shapely(fixed)
    return Repair(rows, sub, repaired, skipped)
