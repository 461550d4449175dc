"""Ear-clipping triangulation of many polygons in one call: mapbox/earcut ported to numba.

Polygons come as flat arrays in the GeoArrow layout: vertex coordinates ``x``, ``y`` (each ring's
vertices once, no closing vertex), ``ring_off`` (ring ``r`` owns vertices
``ring_off[r]:ring_off[r+1]``) and ``poly_off`` (polygon ``p`` owns rings
``poly_off[p]:poly_off[p+1]``, the first one its shell, the others its holes).

The port follows mapbox/earcut v3 (hole elimination by bridging, z-order hashing above 80
vertices, the filter / cure / split passes), with the linked list held in integer arrays.
A ring without holes that is a strict fan from one of its vertices (every convex ring, many
star-shaped ones) skips the linked list: it is triangulated as that fan, in O(n). (For a simple
ring, strictly counter-clockwise fan triangles cover each interior point exactly once, so their
areas sum to the ring's area by construction; the area check is only run on ear-clipped ones.)
Every polygon is then checked in the kernel: its triangles must be counter-clockwise and their
areas must sum to the polygon's area (holes subtracted) within 1e-9 relative. The rare polygon
that fails is triangulated again by GEOS constrained Delaunay (then mapbox_earcut), so the
contract holds for every polygon; those are counted.

>>> import numpy as np
>>> # an L-shaped polygon with 6 vertices
>>> x = np.array([0., 2., 2., 1., 1., 0.]); y = np.array([0., 0., 1., 1., 2., 2.])
>>> res = triangulate(x, y, np.array([0, 6]), np.array([0, 1]))
>>> res.triangles.shape, res.n_fallback
((4, 3), 0)
>>> float(triangle_areas(x, y, res.triangles).sum())
3.0
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from twin.errors import LayerDataError
from twin.mesh import _parallel
from twin.mesh.footprints import bad_offsets

__all__ = ["Triangulation", "polygon_areas", "roof_capacity", "triangle_areas", "triangulate", "triangulate_into"]

_inner = njit(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)  # helpers called only from jitted code

# columns of the node table
_I = 0  # vertex index (global)
_PREV = 1
_NEXT = 2
_Z = 3
_PZ = 4  # previous node in z-order (-1: none)
_NZ = 5  # next node in z-order (-1: none)
_ST = 6  # steiner point flag
_NCOL = 7

_REL_TOL = 1e-9  # kernel check: |sum of triangle areas - polygon area| <= _REL_TOL * area


# -- node list ------------------------------------------------------------------------------
@_inner
def _area(X: NDArray, Y: NDArray, p: int, q: int, r: int) -> float:
    return (Y[q] - Y[p]) * (X[r] - X[q]) - (X[q] - X[p]) * (Y[r] - Y[q])


@_inner
def _equals(X: NDArray, Y: NDArray, a: int, b: int) -> bool:
    return X[a] == X[b] and Y[a] == Y[b]


@_inner
def _insert_node(L: NDArray, X: NDArray, Y: NDArray, cnt: NDArray, i: int, x: float, y: float, last: int) -> int:
    p = cnt[0]
    cnt[0] = p + 1
    L[p, _I] = i
    X[p] = x
    Y[p] = y
    L[p, _Z] = 0
    L[p, _PZ] = -1
    L[p, _NZ] = -1
    L[p, _ST] = 0
    if last < 0:
        L[p, _PREV] = p
        L[p, _NEXT] = p
    else:
        nxt = L[last, _NEXT]
        L[p, _NEXT] = nxt
        L[p, _PREV] = last
        L[nxt, _PREV] = p
        L[last, _NEXT] = p
    return p


@_inner
def _remove_node(L: NDArray, p: int) -> None:
    nxt = L[p, _NEXT]
    prv = L[p, _PREV]
    L[nxt, _PREV] = prv
    L[prv, _NEXT] = nxt
    if L[p, _PZ] >= 0:
        L[L[p, _PZ], _NZ] = L[p, _NZ]
    if L[p, _NZ] >= 0:
        L[L[p, _NZ], _PZ] = L[p, _PZ]


@_inner
def _linked_list(
    L: NDArray, X: NDArray, Y: NDArray, cnt: NDArray, xs: NDArray, ys: NDArray, x0: float, y0: float, start: int, end: int, clockwise: bool
) -> int:
    s = 0.0
    j = end - 1
    for i in range(start, end):
        s += ((xs[j] - x0) - (xs[i] - x0)) * ((ys[i] - y0) + (ys[j] - y0))
        j = i
    last = -1
    if clockwise == (s > 0):
        for i in range(start, end):
            last = _insert_node(L, X, Y, cnt, i, xs[i] - x0, ys[i] - y0, last)
    else:
        for i in range(end - 1, start - 1, -1):
            last = _insert_node(L, X, Y, cnt, i, xs[i] - x0, ys[i] - y0, last)
    if last >= 0 and _equals(X, Y, last, L[last, _NEXT]):
        _remove_node(L, last)
        last = L[last, _NEXT]
    return last


@_inner
def _filter_points(L: NDArray, X: NDArray, Y: NDArray, start: int, end: int) -> int:
    if start < 0:
        return start
    if end < 0:
        end = start
    p = start
    while True:
        again = False
        if L[p, _ST] == 0 and (_equals(X, Y, p, L[p, _NEXT]) or _area(X, Y, L[p, _PREV], p, L[p, _NEXT]) == 0):
            _remove_node(L, p)
            p = L[p, _PREV]
            end = p
            if p == L[p, _NEXT]:
                break
            again = True
        else:
            p = L[p, _NEXT]
        if not (again or p != end):
            break
    return end


# -- geometric predicates ---------------------------------------------------------------------
@_inner
def _point_in_triangle(ax: float, ay: float, bx: float, by: float, cx: float, cy: float, px: float, py: float) -> bool:
    return (
        (cx - px) * (ay - py) >= (ax - px) * (cy - py)
        and (ax - px) * (by - py) >= (bx - px) * (ay - py)
        and (bx - px) * (cy - py) >= (cx - px) * (by - py)
    )


@_inner
def _point_in_triangle_except_first(ax: float, ay: float, bx: float, by: float, cx: float, cy: float, px: float, py: float) -> bool:
    return not (ax == px and ay == py) and _point_in_triangle(ax, ay, bx, by, cx, cy, px, py)


@_inner
def _sign(v: float) -> int:
    if v > 0:
        return 1
    if v < 0:
        return -1
    return 0


@_inner
def _on_segment(X: NDArray, Y: NDArray, p: int, q: int, r: int) -> bool:
    return (
        X[q] <= max(X[p], X[r]) and X[q] >= min(X[p], X[r]) and Y[q] <= max(Y[p], Y[r]) and Y[q] >= min(Y[p], Y[r])
    )


@_inner
def _intersects(X: NDArray, Y: NDArray, p1: int, q1: int, p2: int, q2: int) -> bool:
    o1 = _sign(_area(X, Y, p1, q1, p2))
    o2 = _sign(_area(X, Y, p1, q1, q2))
    o3 = _sign(_area(X, Y, p2, q2, p1))
    o4 = _sign(_area(X, Y, p2, q2, q1))
    if o1 != o2 and o3 != o4:
        return True
    if o1 == 0 and _on_segment(X, Y, p1, p2, q1):
        return True
    if o2 == 0 and _on_segment(X, Y, p1, q2, q1):
        return True
    if o3 == 0 and _on_segment(X, Y, p2, p1, q2):
        return True
    return o4 == 0 and _on_segment(X, Y, p2, q1, q2)


@_inner
def _intersects_polygon(L: NDArray, X: NDArray, Y: NDArray, a: int, b: int) -> bool:
    p = a
    ai = L[a, _I]
    bi = L[b, _I]
    while True:
        pn = L[p, _NEXT]
        if L[p, _I] != ai and L[pn, _I] != ai and L[p, _I] != bi and L[pn, _I] != bi and _intersects(X, Y, p, pn, a, b):
            return True
        p = pn
        if p == a:
            break
    return False


@_inner
def _locally_inside(L: NDArray, X: NDArray, Y: NDArray, a: int, b: int) -> bool:
    ap = L[a, _PREV]
    an = L[a, _NEXT]
    if _area(X, Y, ap, a, an) < 0:
        return _area(X, Y, a, b, an) >= 0 and _area(X, Y, a, ap, b) >= 0
    return _area(X, Y, a, b, ap) < 0 or _area(X, Y, a, an, b) < 0


@_inner
def _middle_inside(L: NDArray, X: NDArray, Y: NDArray, a: int, b: int) -> bool:
    p = a
    inside = False
    px = (X[a] + X[b]) / 2
    py = (Y[a] + Y[b]) / 2
    while True:
        pn = L[p, _NEXT]
        if ((Y[p] > py) != (Y[pn] > py)) and Y[pn] != Y[p] and (px < (X[pn] - X[p]) * (py - Y[p]) / (Y[pn] - Y[p]) + X[p]):
            inside = not inside
        p = pn
        if p == a:
            break
    return inside


@_inner
def _is_valid_diagonal(L: NDArray, X: NDArray, Y: NDArray, a: int, b: int) -> bool:
    if L[L[a, _NEXT], _I] == L[b, _I] or L[L[a, _PREV], _I] == L[b, _I]:
        return False
    if _intersects_polygon(L, X, Y, a, b):
        return False
    if (
        _locally_inside(L, X, Y, a, b)
        and _locally_inside(L, X, Y, b, a)
        and _middle_inside(L, X, Y, a, b)
        and (_area(X, Y, L[a, _PREV], a, L[b, _PREV]) != 0 or _area(X, Y, a, L[b, _PREV], b) != 0)
    ):
        return True
    return (
        _equals(X, Y, a, b)
        and _area(X, Y, L[a, _PREV], a, L[a, _NEXT]) > 0
        and _area(X, Y, L[b, _PREV], b, L[b, _NEXT]) > 0
    )


# -- ears -------------------------------------------------------------------------------------
@_inner
def _is_ear(L: NDArray, X: NDArray, Y: NDArray, ear: int) -> bool:
    a = L[ear, _PREV]
    b = ear
    c = L[ear, _NEXT]
    if _area(X, Y, a, b, c) >= 0:
        return False
    ax, bx, cx = X[a], X[b], X[c]
    ay, by, cy = Y[a], Y[b], Y[c]
    x0 = min(ax, bx, cx)
    y0 = min(ay, by, cy)
    x1 = max(ax, bx, cx)
    y1 = max(ay, by, cy)
    p = L[c, _NEXT]
    while p != a:
        px = X[p]
        py = Y[p]
        if (
            px >= x0
            and px <= x1
            and py >= y0
            and py <= y1
            and _point_in_triangle_except_first(ax, ay, bx, by, cx, cy, px, py)
            and _area(X, Y, L[p, _PREV], p, L[p, _NEXT]) >= 0
        ):
            return False
        p = L[p, _NEXT]
    return True


@_inner
def _z_order(x: float, y: float, min_x: float, min_y: float, inv_size: float) -> int:
    xi = int((x - min_x) * inv_size)
    yi = int((y - min_y) * inv_size)
    xi = min(max(xi, 0), 32767)
    yi = min(max(yi, 0), 32767)
    xi = (xi | (xi << 8)) & 0x00FF00FF
    xi = (xi | (xi << 4)) & 0x0F0F0F0F
    xi = (xi | (xi << 2)) & 0x33333333
    xi = (xi | (xi << 1)) & 0x55555555
    yi = (yi | (yi << 8)) & 0x00FF00FF
    yi = (yi | (yi << 4)) & 0x0F0F0F0F
    yi = (yi | (yi << 2)) & 0x33333333
    yi = (yi | (yi << 1)) & 0x55555555
    return xi | (yi << 1)


@_inner
def _hashed_candidate(L: NDArray, X: NDArray, Y: NDArray, p: int, a: int, c: int, ax: float, ay: float, bx: float, by: float, cx: float, cy: float, x0: float, y0: float, x1: float, y1: float) -> bool:
    px = X[p]
    py = Y[p]
    return (
        px >= x0
        and px <= x1
        and py >= y0
        and py <= y1
        and p != a
        and p != c
        and _point_in_triangle_except_first(ax, ay, bx, by, cx, cy, px, py)
        and _area(X, Y, L[p, _PREV], p, L[p, _NEXT]) >= 0
    )


@_inner
def _is_ear_hashed(L: NDArray, X: NDArray, Y: NDArray, ear: int, min_x: float, min_y: float, inv_size: float) -> bool:
    a = L[ear, _PREV]
    b = ear
    c = L[ear, _NEXT]
    if _area(X, Y, a, b, c) >= 0:
        return False
    ax, bx, cx = X[a], X[b], X[c]
    ay, by, cy = Y[a], Y[b], Y[c]
    x0 = min(ax, bx, cx)
    y0 = min(ay, by, cy)
    x1 = max(ax, bx, cx)
    y1 = max(ay, by, cy)
    min_z = _z_order(x0, y0, min_x, min_y, inv_size)
    max_z = _z_order(x1, y1, min_x, min_y, inv_size)
    p = L[ear, _PZ]
    n = L[ear, _NZ]
    while p >= 0 and L[p, _Z] >= min_z and n >= 0 and L[n, _Z] <= max_z:
        if _hashed_candidate(L, X, Y, p, a, c, ax, ay, bx, by, cx, cy, x0, y0, x1, y1):
            return False
        p = L[p, _PZ]
        if _hashed_candidate(L, X, Y, n, a, c, ax, ay, bx, by, cx, cy, x0, y0, x1, y1):
            return False
        n = L[n, _NZ]
    while p >= 0 and L[p, _Z] >= min_z:
        if _hashed_candidate(L, X, Y, p, a, c, ax, ay, bx, by, cx, cy, x0, y0, x1, y1):
            return False
        p = L[p, _PZ]
    while n >= 0 and L[n, _Z] <= max_z:
        if _hashed_candidate(L, X, Y, n, a, c, ax, ay, bx, by, cx, cy, x0, y0, x1, y1):
            return False
        n = L[n, _NZ]
    return True


@_inner
def _sort_linked(L: NDArray, lst: int) -> int:
    """Simon Tatham's linked-list merge sort on the z links."""
    in_size = 1
    while True:
        p = lst
        lst = -1
        tail = -1
        num_merges = 0
        while p >= 0:
            num_merges += 1
            q = p
            p_size = 0
            for _ in range(in_size):
                p_size += 1
                q = L[q, _NZ]
                if q < 0:
                    break
            q_size = in_size
            while p_size > 0 or (q_size > 0 and q >= 0):
                if p_size != 0 and (q_size == 0 or q < 0 or L[p, _Z] <= L[q, _Z]):
                    e = p
                    p = L[p, _NZ]
                    p_size -= 1
                else:
                    e = q
                    q = L[q, _NZ]
                    q_size -= 1
                if tail >= 0:
                    L[tail, _NZ] = e
                else:
                    lst = e
                L[e, _PZ] = tail
                tail = e
            p = q
        L[tail, _NZ] = -1
        in_size *= 2
        if num_merges <= 1:
            break
    return lst


@_inner
def _index_curve(L: NDArray, X: NDArray, Y: NDArray, start: int, min_x: float, min_y: float, inv_size: float) -> None:
    p = start
    while True:
        if L[p, _Z] == 0:
            L[p, _Z] = _z_order(X[p], Y[p], min_x, min_y, inv_size)
        L[p, _PZ] = L[p, _PREV]
        L[p, _NZ] = L[p, _NEXT]
        p = L[p, _NEXT]
        if p == start:
            break
    L[L[p, _PZ], _NZ] = -1
    L[p, _PZ] = -1
    _sort_linked(L, p)


@_inner
def _split_polygon(L: NDArray, X: NDArray, Y: NDArray, cnt: NDArray, a: int, b: int) -> int:
    a2 = _insert_node(L, X, Y, cnt, L[a, _I], X[a], Y[a], -1)
    b2 = _insert_node(L, X, Y, cnt, L[b, _I], X[b], Y[b], -1)
    an = L[a, _NEXT]
    bp = L[b, _PREV]
    L[a, _NEXT] = b
    L[b, _PREV] = a
    L[a2, _NEXT] = an
    L[an, _PREV] = a2
    L[b2, _NEXT] = a2
    L[a2, _PREV] = b2
    L[bp, _NEXT] = b2
    L[b2, _PREV] = bp
    return b2


@_inner
def _emit(L: NDArray, out: NDArray, base: int, tcount: NDArray, cap: int, a: int, b: int, c: int) -> None:
    k = tcount[0]
    if k >= cap:
        tcount[1] = 1  # overflow: the polygon fails its check and falls back
        return
    out[base + k, 0] = L[a, _I]
    out[base + k, 1] = L[b, _I]
    out[base + k, 2] = L[c, _I]
    tcount[0] = k + 1


@_inner
def _cure_local_intersections(L: NDArray, X: NDArray, Y: NDArray, start: int, out: NDArray, base: int, tcount: NDArray, cap: int) -> int:
    p = start
    while True:
        a = L[p, _PREV]
        pn = L[p, _NEXT]
        b = L[pn, _NEXT]
        if (
            not _equals(X, Y, a, b)
            and _intersects(X, Y, a, p, pn, b)
            and _locally_inside(L, X, Y, a, b)
            and _locally_inside(L, X, Y, b, a)
        ):
            _emit(L, out, base, tcount, cap, a, p, b)
            _remove_node(L, p)
            _remove_node(L, pn)
            p = b
            start = b
        p = L[p, _NEXT]
        if p == start:
            break
    return _filter_points(L, X, Y, p, -1)


@_inner
def _earcut_linked(
    L: NDArray, X: NDArray, Y: NDArray, cnt: NDArray, ear0: int, min_x: float, min_y: float, inv_size: float,
    out: NDArray, base: int, tcount: NDArray, cap: int, stack: NDArray,
) -> None:
    sp = 0
    stack[0, 0] = ear0
    stack[0, 1] = 0
    sp = 1
    while sp > 0:
        sp -= 1
        ear = stack[sp, 0]
        pss = stack[sp, 1]
        if ear < 0:
            continue
        if pss == 0 and inv_size != 0:
            _index_curve(L, X, Y, ear, min_x, min_y, inv_size)
        stop = ear
        while L[ear, _PREV] != L[ear, _NEXT]:
            prv = L[ear, _PREV]
            nxt = L[ear, _NEXT]
            if _is_ear_hashed(L, X, Y, ear, min_x, min_y, inv_size) if inv_size != 0 else _is_ear(L, X, Y, ear):
                _emit(L, out, base, tcount, cap, prv, ear, nxt)
                _remove_node(L, ear)
                ear = L[nxt, _NEXT]
                stop = ear
                continue
            ear = nxt
            if ear == stop:
                if pss == 0:
                    stack[sp, 0] = _filter_points(L, X, Y, ear, -1)
                    stack[sp, 1] = 1
                    sp += 1
                elif pss == 1:
                    e = _cure_local_intersections(L, X, Y, _filter_points(L, X, Y, ear, -1), out, base, tcount, cap)
                    stack[sp, 0] = e
                    stack[sp, 1] = 2
                    sp += 1
                else:
                    # split the remaining polygon in two along a valid diagonal
                    a = ear
                    done = False
                    while not done:
                        b = L[L[a, _NEXT], _NEXT]
                        while b != L[a, _PREV]:
                            if L[a, _I] != L[b, _I] and _is_valid_diagonal(L, X, Y, a, b):
                                if cnt[0] + 2 > L.shape[0] or sp + 2 > stack.shape[0]:
                                    done = True  # out of room: give up, the check falls back
                                    break
                                c = _split_polygon(L, X, Y, cnt, a, b)
                                a = _filter_points(L, X, Y, a, L[a, _NEXT])
                                c = _filter_points(L, X, Y, c, L[c, _NEXT])
                                stack[sp, 0] = c
                                stack[sp, 1] = 0
                                stack[sp + 1, 0] = a
                                stack[sp + 1, 1] = 0
                                sp += 2
                                done = True
                                break
                            b = L[b, _NEXT]
                        if done:
                            break
                        a = L[a, _NEXT]
                        if a == ear:
                            break
                break


# -- holes ------------------------------------------------------------------------------------
@_inner
def _get_leftmost(L: NDArray, X: NDArray, Y: NDArray, start: int) -> int:
    p = start
    leftmost = start
    while True:
        if X[p] < X[leftmost] or (X[p] == X[leftmost] and Y[p] < Y[leftmost]):
            leftmost = p
        p = L[p, _NEXT]
        if p == start:
            break
    return leftmost


@_inner
def _sector_contains_sector(L: NDArray, X: NDArray, Y: NDArray, m: int, p: int) -> bool:
    return _area(X, Y, L[m, _PREV], m, L[p, _PREV]) < 0 and _area(X, Y, L[p, _NEXT], m, L[m, _NEXT]) < 0


@_inner
def _find_hole_bridge(L: NDArray, X: NDArray, Y: NDArray, hole: int, outer: int) -> int:
    p = outer
    hx = X[hole]
    hy = Y[hole]
    qx = -np.inf
    m = -1
    if _equals(X, Y, hole, p):
        return p
    while True:
        pn = L[p, _NEXT]
        if _equals(X, Y, hole, pn):
            return pn
        elif hy <= Y[p] and hy >= Y[pn] and Y[pn] != Y[p]:
            x = X[p] + (hy - Y[p]) * (X[pn] - X[p]) / (Y[pn] - Y[p])
            if x <= hx and x > qx:
                qx = x
                m = p if X[p] < X[pn] else pn
                if x == hx:
                    return m
        p = pn
        if p == outer:
            break
    if m < 0:
        return -1
    stop = m
    mx = X[m]
    my = Y[m]
    tan_min = np.inf
    p = m
    while True:
        px = X[p]
        py = Y[p]
        if hx >= px and px >= mx and hx != px and _point_in_triangle(hx if hy < my else qx, hy, mx, my, qx if hy < my else hx, hy, px, py):
            tan = abs(hy - py) / (hx - px)
            if _locally_inside(L, X, Y, p, hole) and (
                tan < tan_min or (tan == tan_min and (px > X[m] or (px == X[m] and _sector_contains_sector(L, X, Y, m, p))))
            ):
                m = p
                tan_min = tan
        p = L[p, _NEXT]
        if p == stop:
            break
    return m


@_inner
def _eliminate_holes(
    L: NDArray, X: NDArray, Y: NDArray, cnt: NDArray, xs: NDArray, ys: NDArray, x0: float, y0: float,
    ring_off: NDArray, r0: int, r1: int, outer: int, queue: NDArray,
) -> int:
    nq = 0
    for r in range(r0 + 1, r1):
        lst = _linked_list(L, X, Y, cnt, xs, ys, x0, y0, ring_off[r], ring_off[r + 1], False)
        if lst < 0:
            continue
        if lst == L[lst, _NEXT]:
            L[lst, _ST] = 1
        lm = _get_leftmost(L, X, Y, lst)
        # insertion sort by (x, y) of the leftmost point
        k = nq
        while k > 0 and (X[queue[k - 1]] > X[lm] or (X[queue[k - 1]] == X[lm] and Y[queue[k - 1]] > Y[lm])):
            queue[k] = queue[k - 1]
            k -= 1
        queue[k] = lm
        nq += 1
    for k in range(nq):
        hole = queue[k]
        bridge = _find_hole_bridge(L, X, Y, hole, outer)
        if bridge < 0:
            continue
        bridge_reverse = _split_polygon(L, X, Y, cnt, bridge, hole)
        _filter_points(L, X, Y, bridge_reverse, L[bridge_reverse, _NEXT])
        outer = _filter_points(L, X, Y, bridge, L[bridge, _NEXT])
    return outer


# -- one polygon, all polygons -------------------------------------------------------------------
@_inner
def _ring_area2(xs: NDArray, ys: NDArray, x0: float, y0: float, start: int, end: int) -> float:
    """Twice the signed (counter-clockwise positive) area of a ring, coordinates shifted by (x0, y0)."""
    s = 0.0
    j = end - 1
    for i in range(start, end):
        s += (xs[j] - x0) * (ys[i] - y0) - (xs[i] - x0) * (ys[j] - y0)
        j = i
    return s


@_inner
def _check_polygon(xs: NDArray, ys: NDArray, ring_off: NDArray, r0: int, r1: int, out: NDArray, base: int, ntri: int) -> bool:
    """Triangles counter-clockwise and their areas summing to the polygon's area (holes subtracted)."""
    v0 = ring_off[r0]
    x0 = xs[v0]
    y0 = ys[v0]
    area = abs(_ring_area2(xs, ys, x0, y0, ring_off[r0], ring_off[r0 + 1]))
    for r in range(r0 + 1, r1):
        area -= abs(_ring_area2(xs, ys, x0, y0, ring_off[r], ring_off[r + 1]))
    if not area > 0:
        return False
    total = 0.0
    for t in range(base, base + ntri):
        a = out[t, 0]
        b = out[t, 1]
        c = out[t, 2]
        ax = xs[a] - x0
        ay = ys[a] - y0
        t2 = (xs[b] - x0 - ax) * (ys[c] - y0 - ay) - (ys[b] - y0 - ay) * (xs[c] - x0 - ax)
        if t2 < -_REL_TOL * area:
            return False
        total += abs(t2)
    return abs(total - area) <= _REL_TOL * area


@_inner
def _fan(xs: NDArray, ys: NDArray, start: int, end: int, out: NDArray, base: int, cap: int, tcount: NDArray) -> bool:
    """Fan from one vertex when every fan triangle is strictly counter-clockwise (convex and many
    star-shaped rings): for a simple ring this is a valid triangulation (each point of the ring's
    interior is covered exactly as often as its winding number, 1). O(n) per apex tried: the first
    vertex, then the one nearest the vertex mean (likely inside the kernel of a star shape), then
    the others (up to 12 in all)."""
    n = end - start
    if n - 2 > cap:
        return False
    x0 = xs[start]
    y0 = ys[start]
    area2 = 0.0
    mx = 0.0
    my = 0.0
    j = end - 1
    for i in range(start, end):
        area2 += (xs[j] - x0) * (ys[i] - y0) - (xs[i] - x0) * (ys[j] - y0)
        mx += xs[i] - x0
        my += ys[i] - y0
        j = i
    sign = 1.0 if area2 > 0 else -1.0
    mx /= n
    my /= n
    near = 0
    best = np.inf
    for k in range(n):
        d = (xs[start + k] - x0 - mx) ** 2 + (ys[start + k] - y0 - my) ** 2
        if d < best:
            best = d
            near = k
    tries = min(n, 12)
    for t in range(tries):
        a = 0 if t == 0 else (near if t == 1 else (t - 1 if t - 1 < near else t))
        if t > 1 and (a == 0 or a >= n):
            continue
        ax = xs[start + a] - x0
        ay = ys[start + a] - y0
        good = True
        k1 = a + 1 if a + 1 < n else 0
        for _ in range(n - 2):
            k2 = k1 + 1 if k1 + 1 < n else 0
            dx1 = xs[start + k1] - x0 - ax
            dy1 = ys[start + k1] - y0 - ay
            dx2 = xs[start + k2] - x0 - ax
            dy2 = ys[start + k2] - y0 - ay
            left = dx1 * dy2
            right = dy1 * dx2
            if not (sign * (left - right) > 1e-12 * (abs(left) + abs(right))):
                good = False
                break
            k1 = k2
        if good:
            k1 = a + 1 if a + 1 < n else 0
            for q in range(n - 2):
                k2 = k1 + 1 if k1 + 1 < n else 0
                out[base + q, 0] = start + a
                if sign > 0:
                    out[base + q, 1] = start + k1
                    out[base + q, 2] = start + k2
                else:
                    out[base + q, 1] = start + k2
                    out[base + q, 2] = start + k1
                k1 = k2
            tcount[0] = n - 2
            return True
    return False


@_inner
def _earcut_polygon(
    L: NDArray, X: NDArray, Y: NDArray, cnt: NDArray, xs: NDArray, ys: NDArray, ring_off: NDArray, r0: int, r1: int,
    out: NDArray, base: int, cap: int, tcount: NDArray, stack: NDArray, queue: NDArray, fan: bool,
) -> None:
    cnt[0] = 0
    tcount[0] = 0
    tcount[1] = 0
    start = ring_off[r0]
    end = ring_off[r0 + 1]
    if end - start < 3:
        return
    if fan and r1 - r0 == 1 and _fan(xs, ys, start, end, out, base, cap, tcount):
        tcount[1] = -1  # a strict fan: its areas telescope to the ring's area, nothing to check
        return
    x0 = xs[start]
    y0 = ys[start]
    outer = _linked_list(L, X, Y, cnt, xs, ys, x0, y0, start, end, True)
    if outer < 0 or L[outer, _NEXT] == L[outer, _PREV]:
        return
    # bbox of the outer ring (before bridging, as mapbox does)
    n_total = ring_off[r1] - start
    min_x = 0.0
    min_y = 0.0
    inv_size = 0.0
    if n_total > 80:
        min_x = np.inf
        min_y = np.inf
        max_x = -np.inf
        max_y = -np.inf
        for i in range(start, end):
            xi = xs[i] - x0
            yi = ys[i] - y0
            min_x = min(min_x, xi)
            min_y = min(min_y, yi)
            max_x = max(max_x, xi)
            max_y = max(max_y, yi)
        inv_size = max(max_x - min_x, max_y - min_y)
        inv_size = 32767.0 / inv_size if inv_size != 0 else 0.0
    if r1 - r0 > 1:
        outer = _eliminate_holes(L, X, Y, cnt, xs, ys, x0, y0, ring_off, r0, r1, outer, queue)
    _earcut_linked(L, X, Y, cnt, outer, min_x, min_y, inv_size, out, base, tcount, cap, stack)


@njit(cache=True, nogil=True)
def _triangulate_kernel(
    p0: int, p1: int, xs: NDArray, ys: NDArray, ring_off: NDArray, poly_off: NDArray, slot: NDArray, caps: NDArray,
    out: NDArray, counts: NDArray, ok: NDArray, fan: bool,
) -> None:
    max_nodes = 0
    max_holes = 0
    for p in range(p0, p1):
        r0 = poly_off[p]
        r1 = poly_off[p + 1]
        m = ring_off[r1] - ring_off[r0] + 2 * (r1 - r0)
        max_nodes = max(max_nodes, m)
        max_holes = max(max_holes, r1 - r0)
    cap_nodes = 2 * max_nodes + 16
    L = np.empty((cap_nodes, _NCOL), np.int64)
    X = np.empty(cap_nodes, np.float64)
    Y = np.empty(cap_nodes, np.float64)
    cnt = np.zeros(1, np.int64)
    tcount = np.zeros(2, np.int64)
    stack = np.empty((cap_nodes + 8, 2), np.int64)
    queue = np.empty(max_holes + 1, np.int64)
    for p in range(p0, p1):
        r0 = poly_off[p]
        r1 = poly_off[p + 1]
        base = slot[p]
        cap = caps[p]
        if r1 == r0 or ring_off[r0 + 1] - ring_off[r0] < 3:  # no shell, or one of < 3 vertices: no roof
            counts[p] = 0
            ok[p] = True
            continue
        _earcut_polygon(L, X, Y, cnt, xs, ys, ring_off, r0, r1, out, base, cap, tcount, stack, queue, fan)
        counts[p] = tcount[0]
        ok[p] = tcount[1] < 0 or (tcount[1] == 0 and _check_polygon(xs, ys, ring_off, r0, r1, out, base, tcount[0]))


@njit(cache=True, nogil=True)
def _compact_kernel(p0: int, p1: int, out: NDArray, tri_cap_off: NDArray, counts: NDArray, tri_off: NDArray, dst: NDArray) -> None:
    for p in range(p0, p1):
        s = tri_cap_off[p]
        d = tri_off[p]
        for k in range(counts[p]):
            dst[d + k, 0] = out[s + k, 0]
            dst[d + k, 1] = out[s + k, 1]
            dst[d + k, 2] = out[s + k, 2]


@njit(cache=True)
def _check_one(xs: NDArray, ys: NDArray, ring_off: NDArray, r0: int, r1: int, tris: NDArray) -> bool:
    return _check_polygon(xs, ys, ring_off, r0, r1, tris, 0, tris.shape[0])


# -- public ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Triangulation:
    """Triangles of many polygons: ``triangles[tri_off[p]:tri_off[p+1]]`` belong to polygon ``p``.

    Vertex indices are global (into the ``x``/``y`` arrays given); every triangle is
    counter-clockwise. ``n_fallback`` polygons were triangulated by the fallback, and
    ``n_inexact`` (normally 0) failed the area check even there.
    """

    triangles: NDArray[np.int32]
    tri_off: NDArray[np.int64]
    n_fallback: int
    n_inexact: int
    fallback_polygons: NDArray[np.int64]
    inexact_polygons: NDArray[np.int64]


def _chunks(poly_off: NDArray[np.int64], ring_off: NDArray[np.int64]) -> NDArray[np.int64]:
    """Polygon ranges of about equal vertex counts, a few per thread."""
    return _parallel.chunks_for(ring_off[poly_off])


def triangle_areas(x: NDArray[np.float64], y: NDArray[np.float64], triangles: NDArray[np.integer]) -> NDArray[np.float64]:
    """Signed areas (counter-clockwise positive) of triangles given as vertex indices."""
    t = np.asarray(triangles, dtype=np.int64)
    if t.size == 0:
        return np.zeros(0)
    ax, ay = x[t[:, 0]], y[t[:, 0]]
    return 0.5 * ((x[t[:, 1]] - ax) * (y[t[:, 2]] - ay) - (y[t[:, 1]] - ay) * (x[t[:, 2]] - ax))


def polygon_areas(x: NDArray[np.float64], y: NDArray[np.float64], ring_off: NDArray[np.int64], poly_off: NDArray[np.int64]) -> NDArray[np.float64]:
    """Area of each polygon: |shell| minus the |holes| (shoelace, per ring)."""
    nr = ring_off.size - 1
    nv = int(ring_off[-1]) if nr else 0
    if nr == 0:
        return np.zeros(poly_off.size - 1)
    idx = np.arange(nv)
    ring_of = np.repeat(np.arange(nr), np.diff(ring_off))
    nxt = idx + 1
    last = ring_off[1:] - 1
    nxt[last[last >= ring_off[:-1]]] = ring_off[:-1][last >= ring_off[:-1]]
    x0 = x[ring_off[:-1]].repeat(np.diff(ring_off))
    y0 = y[ring_off[:-1]].repeat(np.diff(ring_off))
    cross = (x[idx] - x0) * (y[nxt] - y0) - (x[nxt] - x0) * (y[idx] - y0)
    ring_area = np.abs(np.bincount(ring_of, weights=cross, minlength=nr)) / 2
    is_shell = np.zeros(nr, bool)
    is_shell[poly_off[:-1][np.diff(poly_off) > 0]] = True
    signed = np.where(is_shell, ring_area, -ring_area)
    poly_of = np.repeat(np.arange(poly_off.size - 1), np.diff(poly_off))
    return np.bincount(poly_of, weights=signed, minlength=poly_off.size - 1)


def _fallback_one(x: NDArray[np.float64], y: NDArray[np.float64], ring_off: NDArray[np.int64], r0: int, r1: int) -> NDArray[np.int64] | None:
    """Triangulate one polygon by GEOS constrained Delaunay, else mapbox_earcut; None if both fail.

    Rings of < 3 vertices are left out (an empty hole crashes GEOS 3.14's triangulator: a segfault), and only
    a valid polygon goes to GEOS (it may crash or loop on invalid ones)."""
    import shapely

    v0, v1 = int(ring_off[r0]), int(ring_off[r1])
    if int(ring_off[r0 + 1]) - v0 < 3:
        return None
    x0, y0 = float(x[v0]), float(y[v0])
    lx = x[v0:v1] - x0
    ly = y[v0:v1] - y0
    kept = [r for r in range(r0, r1) if ring_off[r + 1] - ring_off[r] >= 3]
    kept_vertices = np.concatenate([np.arange(ring_off[r], ring_off[r + 1]) for r in kept])  # mapbox_earcut's indices -> ours
    rings = [np.column_stack([x[ring_off[r] : ring_off[r + 1]] - x0, y[ring_off[r] : ring_off[r + 1]] - y0]) for r in kept]
    candidates: list[NDArray[np.int64]] = []
    with contextlib.suppress(Exception):  # GEOS may refuse a degenerate polygon: try the next method
        poly = shapely.Polygon(rings[0], rings[1:])
        tri = shapely.constrained_delaunay_triangles(poly) if shapely.is_valid(poly) else shapely.GeometryCollection()
        parts = shapely.get_parts(tri)
        if len(parts):
            coords = shapely.get_coordinates(shapely.get_exterior_ring(parts)).reshape(len(parts), 4, 2)[:, :3]
            lookup = {(float(a), float(b)): k for k, (a, b) in enumerate(zip(lx, ly))}
            flat = coords.reshape(-1, 2)
            idx = np.empty(len(flat), np.int64)
            for k, (a, b) in enumerate(flat):
                j = lookup.get((float(a), float(b)))
                if j is None:
                    j = int(np.argmin((lx - a) ** 2 + (ly - b) ** 2))
                idx[k] = j
            candidates.append(idx.reshape(-1, 3) + v0)
    with contextlib.suppress(Exception):
        import mapbox_earcut

        verts = np.concatenate(rings).astype(np.float64)
        ends = np.cumsum([len(r) for r in rings]).astype(np.uint32)
        t = np.asarray(mapbox_earcut.triangulate_float64(verts, ends), dtype=np.int64).reshape(-1, 3)
        candidates.append(kept_vertices[t])
    for tris in candidates:
        tris = tris.copy()
        ar = triangle_areas(x, y, tris)
        flip = ar < 0
        tris[flip] = tris[flip][:, [0, 2, 1]]
        if _check_one(x, y, ring_off, r0, r1, tris):
            return tris
    return None


def _check_input(x: NDArray[np.float64], y: NDArray[np.float64], ring_off: NDArray[np.int64], poly_off: NDArray[np.int64]) -> None:
    """LayerDataError unless the offsets index the coordinates in range and every coordinate is finite."""
    if x.ndim != 1 or x.shape != y.shape:
        raise LayerDataError(f"triangulate: x and y have shapes {x.shape} and {y.shape}, not one length")
    for name, off, size in (("ring offsets", ring_off, x.size), ("polygon offsets", poly_off, ring_off.size - 1)):
        why = bad_offsets(off, size)
        if why is not None:
            raise LayerDataError(f"triangulate: the {name} {why}")
    if x.size and np.isfinite([x.min(), x.max(), y.min(), y.max()]).all():  # NaN and inf reach the extremes
        return
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise LayerDataError(f"triangulate: {int(bad.sum())} vertices are not finite (first: vertex {int(np.argmax(bad))})")


def _check_slots(out: NDArray[np.int32], slot: NDArray[np.int64], cap: NDArray[np.int64], n_poly: int) -> None:
    """LayerDataError unless every polygon's slots ``slot[p] : slot[p] + cap[p]`` lie inside ``out``."""
    if out.ndim != 2 or out.shape[1] != 3 or slot.shape != (n_poly,) or cap.shape != (n_poly,):
        raise LayerDataError(f"triangulate: out {out.shape}, slot {slot.shape} and cap {cap.shape} do not fit {n_poly} polygons")
    if n_poly and (int(slot.min()) < 0 or int(cap.min()) < 0 or int((slot + cap).max()) > out.shape[0]):
        raise LayerDataError(f"triangulate: the triangle slots reach outside the {out.shape[0]} rows of out")


def roof_capacity(ring_off: NDArray[np.int64], poly_off: NDArray[np.int64]) -> NDArray[np.int64]:
    """Triangles a polygon's roof has at most: vertices + 2 x holes - 2 (exactly that unless
    collinear or repeated vertices are dropped)."""
    nv = np.diff(ring_off[poly_off])
    nr = np.diff(poly_off)
    return np.where(nr > 0, np.maximum(nv + 2 * np.maximum(nr - 1, 0) - 2, 0), 0).astype(np.int64)


def triangulate_into(
    x: NDArray[np.float64], y: NDArray[np.float64], ring_off: NDArray[np.int64], poly_off: NDArray[np.int64],
    out: NDArray[np.int32], slot: NDArray[np.int64], cap: NDArray[np.int64], *, fan: bool = True,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Triangulate polygon ``p`` into ``out[slot[p] : slot[p] + counts[p]]`` (``counts[p] <= cap[p]``).

    Returns ``counts``, the polygons that went to the fallback and those that stayed inexact.
    Raises :class:`~twin.errors.LayerDataError` for offsets, coordinates or slots that are out of
    range or not finite (checked before the kernel runs; see :func:`triangulate`).
    """
    _check_input(x, y, ring_off, poly_off)
    n_poly = poly_off.size - 1
    if x.size >= 2**31 - 1:
        raise LayerDataError(f"triangulate: {x.size} vertices are too many for int32 indices")
    _check_slots(out, slot, cap, n_poly)
    counts = np.zeros(n_poly, np.int64)
    ok = np.zeros(n_poly, np.bool_)
    if n_poly:
        _parallel.run(_triangulate_kernel, _chunks(poly_off, ring_off), x, y, ring_off, poly_off, slot, cap, out, counts, ok, fan)
    failed = np.flatnonzero(~ok)
    inexact = []
    for p in failed:
        tris = _fallback_one(x, y, ring_off, int(poly_off[p]), int(poly_off[p + 1]))
        if tris is None or len(tris) > cap[p]:
            inexact.append(p)  # keep the ear-clipping result
            continue
        base = int(slot[p])
        out[base : base + len(tris)] = tris
        counts[p] = len(tris)
    return counts, failed.astype(np.int64), np.asarray(inexact, dtype=np.int64)


def triangulate(
    x: NDArray[np.float64], y: NDArray[np.float64], ring_off: NDArray[np.integer], poly_off: NDArray[np.integer], *, fan: bool = True
) -> Triangulation:
    """Triangulate all polygons (flat GeoArrow-style arrays, rings without closing vertex).

    Holes stay open; triangles are counter-clockwise (normals +z); indices are global vertex
    indices (int32). ``fan=False`` disables the fan shortcut (every polygon goes through ear
    clipping). See the module docstring for the exactness contract. Rings with fewer than 3
    vertices give no triangles (a shell) or are ignored (a hole); offsets that do not index the
    coordinates in range, or non-finite coordinates, raise :class:`~twin.errors.LayerDataError`.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    ring_off = np.ascontiguousarray(ring_off, dtype=np.int64)
    poly_off = np.ascontiguousarray(poly_off, dtype=np.int64)
    _check_input(x, y, ring_off, poly_off)
    n_poly = poly_off.size - 1
    cap = roof_capacity(ring_off, poly_off)
    tri_cap_off = np.zeros(n_poly + 1, np.int64)
    np.cumsum(cap, out=tri_cap_off[1:])
    out = np.empty((int(tri_cap_off[-1]), 3), np.int32)
    counts, failed, inexact = triangulate_into(x, y, ring_off, poly_off, out, tri_cap_off[:-1], cap, fan=fan)
    tri_off = np.zeros(n_poly + 1, np.int64)
    np.cumsum(counts, out=tri_off[1:])
    if int(tri_off[-1]) == int(tri_cap_off[-1]):
        dst = out
    else:
        dst = np.empty((int(tri_off[-1]), 3), np.int32)
        if n_poly:
            _parallel.run(_compact_kernel, _parallel.chunks_for(tri_off, 1), out, tri_cap_off, counts, tri_off, dst)
    return Triangulation(dst, tri_off, int(failed.size), int(inexact.size), failed, inexact)
