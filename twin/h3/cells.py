"""Points to H3 cells, cell boundaries and centres: numba ports of the H3 C library (v4.5), vectorised.

:func:`points_to_cells` gives the same cell id as ``h3.latlng_to_cell`` for every point, at 10-30x the speed of a
Python loop over h3-py. Two code paths, one result:

* the literal port: H3's own code path (``latLngToCell`` -> ``_vec3ToFaceIjk`` -> ``_hex2dToCoordIJK`` ->
  ``_faceIjkToH3``) line by line, with the same double constants (read from the library), the same order of
  floating-point operations (no fastmath, no fused multiply-add) and the same libm functions, so a point on or within
  rounding distance of a cell edge falls on the same side as in H3;
* the fast pipeline, for blocks of points in loops that LLVM vectorises: polynomial sin/cos, closest face, an
  algebraic form of H3's gnomonic projection, nearest hexagon centre, then the index digits four resolution levels
  per table step. It keeps its answer only when the point is farther from the hexagon's edges (and the closest face
  ahead of the runner-up) by a wide bound on the difference between its arithmetic and H3's; the rest, a few points
  per million, goes through the literal port.

On first use in a process the result is compared with h3-py on ~1,500 points at every resolution (worldwide, around
pentagons, within 1e-12 degrees of cell vertices); should a platform's maths ever disagree, every call goes through
h3-py instead (exact, slow) and a warning says so. ``tests/test_h3_cells.py`` compares millions more.

:func:`cells_to_boundaries` and :func:`cell_centers` port ``cellToBoundary`` and ``cellToLatLng`` the same literal
way (same vertices as h3-py to the last bit here).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from numba import njit, prange

from twin.h3 import _tables as _t

__all__ = [
    "MAX_BOUNDARY_VERTS",
    "cell_centers",
    "cells_to_boundaries",
    "points_to_cells",
    "points_to_cells_reference",
]

#: Most vertices of one cell boundary (a Class III pentagon crossing icosahedron edges), H3's MAX_CELL_BNDRY_VERTS.
MAX_BOUNDARY_VERTS = 10

# Constants and tables as module globals: numba freezes them into the compiled (and cached) kernels.
_DEG2RAD = _t.DEG2RAD
_RAD2DEG = _t.RAD2DEG
_TWO_PI = _t.TWO_PI
_EPSILON = _t.EPSILON
_AP7_ROT_RADS = _t.AP7_ROT_RADS
_INV_RES0_U_GNOMONIC = _t.INV_RES0_U_GNOMONIC
_RES0_U_GNOMONIC = _t.RES0_U_GNOMONIC
_SQRT7 = _t.SQRT7
_RSQRT7 = _t.RSQRT7
_RSIN60 = _t.RSIN60
_SQRT3_2 = _t.SQRT3_2
_SQRT3 = math.sqrt(3.0)
_INV_SQRT3 = 1.0 / math.sqrt(3.0)
_ONE_THIRD = _t.ONE_THIRD
_TWO_THIRDS = _t.TWO_THIRDS
_V2D_EPSILON = _t.V2D_EPSILON
_FCP = _t.FACE_CENTER_POINT
_FAZ0 = np.ascontiguousarray(_t.FACE_AXES_AZ_RADS_CII[:, 0])
_NORTH = _t.FACE_NORTH
_EAST = _t.FACE_EAST
_FIJK_BC = _t.FACE_IJK_BASE_CELLS
_BCD = _t.BASE_CELL_DATA
_FN_FACE = _t.FACE_NEIGHBOR_FACE
_FN_TRANS = _t.FACE_NEIGHBOR_TRANSLATE
_FN_ROT = _t.FACE_NEIGHBOR_ROT
_ADJ_DIR = _t.ADJACENT_FACE_DIR
_MAX_DIM = _t.MAX_DIM_BY_CII_RES
_UNIT_SCALE = _t.UNIT_SCALE_BY_CII_RES
_ROT60CCW = np.array([0, 5, 3, 1, 6, 4, 2, 7], dtype=np.int64)  # _rotate60ccw by digit
_ROT60CW = np.array([0, 3, 6, 2, 5, 1, 4, 7], dtype=np.int64)  # _rotate60cw by digit
_UNIT_VECS = np.array(
    [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0], [1, 0, 1], [1, 1, 0]],
    dtype=np.int64,
)
_VERTS_CII = np.array([[2, 1, 0], [1, 2, 0], [0, 2, 1], [0, 1, 2], [1, 0, 2], [2, 0, 1]], dtype=np.int64)
_VERTS_CIII = np.array([[5, 4, 0], [1, 5, 0], [0, 5, 4], [0, 1, 5], [4, 0, 5], [5, 0, 1]], dtype=np.int64)

# Digit of an axial (i - k, j - k) unit offset (di + 1, dj + 1) -> H3 direction digit (7: not a unit vector).
_AXIAL_DIGIT = np.array([1, 3, 7, 5, 0, 2, 7, 4, 6], dtype=np.int64)


def _rotation_tables() -> np.ndarray:
    rot = np.zeros((6, 8), dtype=np.int64)
    for n in range(6):
        for d in range(8):
            x = d
            for _ in range(n):
                x = int(_ROT60CCW[x])
            rot[n, d] = x
    return rot


_ROTN = _rotation_tables()  # _ROTN[n, d]: digit d rotated 60 degrees ccw n times


def _projection_axes() -> tuple[np.ndarray, np.ndarray]:
    """Per resolution class (II, III) and face, the 3D axes ux, uy that give H3's hex2d position algebraically.

    H3 computes x = K tan(r) cos(theta), y = K tan(r) sin(theta), r the angle from the face centre p to the point v,
    theta = A - azimuth (A the face's i-axis azimuth, less the aperture-7 rotation in Class III). Expanding the
    trigonometry: x = K (v . ux) / (v . p), y = K (v . uy) / (v . p) with ux = cos A north + sin A east and
    uy = sin A north - cos A east in the face centre's tangent plane.
    """
    ux = np.empty((2, 20, 3))
    uy = np.empty((2, 20, 3))
    for c in range(2):
        for f in range(20):
            a = float(_FAZ0[f]) - c * _AP7_ROT_RADS
            ux[c, f] = math.cos(a) * _NORTH[f] + math.sin(a) * _EAST[f]
            uy[c, f] = math.sin(a) * _NORTH[f] - math.cos(a) * _EAST[f]
    return ux, uy


_UX, _UY = _projection_axes()


_AXIAL_UNIT = np.array([[0, 0], [-1, -1], [0, 1], [-1, 0], [1, 0], [0, -1], [1, 1]], dtype=np.int64)  # by digit


def _block_tables() -> np.ndarray:
    """Four H3 resolution levels in one step.

    Going one level up, H3 writes a cell c (axial coordinates) as c = D p + u: p the parent (``_upAp7`` /
    ``_upAp7r``), D the parent-to-child map (``_downAp7`` for a Class III child, ``_downAp7r`` for Class II) and u
    the unit vector of the digit. Four levels up, c = D1 D2 D3 D4 p4 + O = 49 p4 + O (a Class III and a Class II
    map multiply to 7 I) with O = u1 + D1 u2 + D1 D2 u3 + D1 D2 D3 u4, so the four digits depend only on c mod 49.
    ``_BLOCK[cls, (a % 49) * 49 + b % 49]`` = (the four digits packed finest first, their coarsest non-zero digit,
    O_a, O_b) where cls is the class of the finest level. The map is exact and periodic, so checking all 2401
    residues against the one-level steps (``tests/test_h3_cells.py``) covers every cell.
    """

    def down(cls: int, a: int, b: int) -> tuple[int, int]:
        return (2 * a + b, 3 * b - a) if cls else (3 * a - b, a + 2 * b)

    table = np.full((2, 49 * 49, 4), -1, dtype=np.int64)
    for cls in (0, 1):
        for code in range(7**4):
            digits = [(code // 7**n) % 7 for n in range(4)]  # finest level first
            oa = ob = 0
            for n in range(3, -1, -1):  # O = u1 + D1 (u2 + D2 (u3 + D3 u4))
                oa, ob = down((cls + n) & 1, oa, ob) if n < 3 else (0, 0)
                oa += int(_AXIAL_UNIT[digits[n], 0])
                ob += int(_AXIAL_UNIT[digits[n], 1])
            idx = (oa % 49) * 49 + ob % 49
            assert table[cls, idx, 0] == -1
            lead = next((d for d in reversed(digits) if d), 0)
            table[cls, idx] = (
                sum(d << (3 * n) for n, d in enumerate(digits)),
                lead,
                oa,
                ob,
            )
    return table


_BLOCK = _block_tables()
_BLK_DIGITS = np.ascontiguousarray(_BLOCK[:, :, 0])
_BLK_LEAD = np.ascontiguousarray(_BLOCK[:, :, 1])
_BLK_OA = _BLOCK[:, :, 2].astype(np.float64)
_BLK_OB = _BLOCK[:, :, 3].astype(np.float64)


def _total_rotations(face: int, i: int, j: int, k: int, lead: int) -> int:
    """The 60-degree ccw rotations ``_faceIjkToH3`` applies to every digit, given the base cell's (face, i, j, k)
    and the leading non-zero digit: the table's count for a hexagon base cell; for a pentagon, first a rotation out
    of the deleted k-axes subsequence (cw on the base cell's cw-offset faces), then ``_h3RotatePent60ccw`` steps,
    each rotating once more when the leading digit lands on the k axis."""
    base_cell, rots = (int(v) for v in _FIJK_BC[face, i, j, k])
    if not _BCD[base_cell, 4]:
        return rots
    total = 0
    if lead == 1:
        total = 5 if face in (int(_BCD[base_cell, 5]), int(_BCD[base_cell, 6])) else 1
        lead = int(_ROTN[total, lead])
    for _ in range(rots):
        lead = int(_ROTN[1, lead])
        total += 1
        if lead == 1:
            lead = int(_ROTN[1, lead])
            total += 1
    return total % 6


_TOTAL_ROT = np.array(
    [
        [[[[_total_rotations(f, i, j, k, d) for d in range(7)] for k in range(3)] for j in range(3)] for i in range(3)]
        for f in range(20)
    ],
    dtype=np.int64,
)
# _ROT12[n, b]: the four 3-bit digits packed in b, each rotated 60 degrees ccw n times
_DIGITS12 = (np.arange(4096)[None, :] >> (3 * np.arange(4))[:, None]) & 7  # [q, b]: digit q of b
_ROT12 = np.ascontiguousarray(sum(_ROTN[:, _DIGITS12[q]].astype(np.int64) << (3 * q) for q in range(4)), dtype=np.int64)

# sin / cos of the fast path (fdlibm's kernels after a Cody-Waite reduction by pi/2; error < 1 ulp, vectorisable)
_S1, _S2, _S3 = -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04
_S4, _S5, _S6 = 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10
_C1, _C2, _C3 = 4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05
_C4, _C5, _C6 = -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11
_INV_PIO2 = 6.36619772367581382433e-01
_PIO2_1 = 1.57079632673412561417e00  # first 33 bits of pi/2
_PIO2_1T = 6.07710050650619224932e-11  # pi/2 - _PIO2_1
_INV7 = 1.0 / 7.0
_INV49 = 1.0 / 49.0
_BLOCK_SIZE = 256  # points per block of the vectorised pipeline (its arrays stay in L1)


_H3_INIT = 0x1FFFFFFFFFFF  # all 15 digits 7, everything else 0
_CELL_MODE_BITS = 1 << 59
_NO_OVERAGE, _FACE_EDGE, _NEW_FACE = 0, 1, 2
_DIV7_SHIFT = 1 << 40
_DIV7_OFFSET = 14 * _DIV7_SHIFT
_SERIAL_BELOW = 20_000  # below this many items the serial kernels win (no thread start-up)

_JIT: dict[str, Any] = {"cache": True, "error_model": "numpy", "nogil": True}


# --------------------------------------------------------------------------------------------------------------
# IJK coordinate helpers (coordijk.c); coordinates are plain int64 triples.


@njit(**_JIT)
def _normalize(i: int, j: int, k: int) -> tuple[int, int, int]:
    if i < 0:
        j -= i
        k -= i
        i = 0
    if j < 0:
        i -= j
        k -= j
        j = 0
    if k < 0:
        i -= k
        j -= k
        k = 0
    m = i
    m = min(m, j)
    m = min(m, k)
    if m > 0:
        i -= m
        j -= m
        k -= m
    return i, j, k


@njit(**_JIT)
def _round_div7(n: int) -> int:
    """``lround(n / 7.0)`` for |n| < 2**40, in integers: n / 7 is never a half-integer, so this is
    floor((2n + 7) / 14), computed as an unsigned division of a shifted, non-negative numerator (cheaper than
    signed floor division)."""
    return np.int64(np.uint64(2 * n + 7 + _DIV7_OFFSET) // np.uint64(14)) - _DIV7_SHIFT


@njit(**_JIT)
def _up_ap7(i: int, j: int, k: int) -> tuple[int, int, int]:
    ii = i - k
    jj = j - k
    return _normalize(_round_div7(3 * ii - jj), _round_div7(ii + 2 * jj), 0)


@njit(**_JIT)
def _up_ap7r(i: int, j: int, k: int) -> tuple[int, int, int]:
    ii = i - k
    jj = j - k
    return _normalize(_round_div7(2 * ii + jj), _round_div7(3 * jj - ii), 0)


@njit(**_JIT)
def _down_ap7(i: int, j: int, k: int) -> tuple[int, int, int]:
    # i*(3,0,1) + j*(1,3,0) + k*(0,1,3)
    return _normalize(3 * i + j, 3 * j + k, i + 3 * k)


@njit(**_JIT)
def _down_ap7r(i: int, j: int, k: int) -> tuple[int, int, int]:
    # i*(3,1,0) + j*(0,3,1) + k*(1,0,3)
    return _normalize(3 * i + k, i + 3 * j, j + 3 * k)


@njit(**_JIT)
def _down_ap3(i: int, j: int, k: int) -> tuple[int, int, int]:
    # i*(2,0,1) + j*(1,2,0) + k*(0,1,2)
    return _normalize(2 * i + j, 2 * j + k, i + 2 * k)


@njit(**_JIT)
def _down_ap3r(i: int, j: int, k: int) -> tuple[int, int, int]:
    # i*(2,1,0) + j*(0,2,1) + k*(1,0,2)
    return _normalize(2 * i + k, i + 2 * j, j + 2 * k)


@njit(**_JIT)
def _rotate60ccw_ijk(i: int, j: int, k: int) -> tuple[int, int, int]:
    # i*(1,1,0) + j*(0,1,1) + k*(1,0,1)
    return _normalize(i + k, i + j, j + k)


@njit(**_JIT)
def _rotate60cw_ijk(i: int, j: int, k: int) -> tuple[int, int, int]:
    # i*(1,0,1) + j*(1,1,0) + k*(0,1,1)
    return _normalize(i + j, j + k, i + k)


@njit(**_JIT)
def _pos_angle(rads: float) -> float:
    if rads < 0.0:
        return rads + _TWO_PI
    if rads >= _TWO_PI:
        return rads - _TWO_PI
    return rads


# --------------------------------------------------------------------------------------------------------------
# H3 index digit helpers (h3Index.c); indexes are int64 (bit 63 is always 0 for a cell).


@njit(**_JIT)
def _get_digit(h: int, r: int) -> int:
    return (h >> ((15 - r) * 3)) & 7


@njit(**_JIT)
def _set_digit(h: int, r: int, d: int) -> int:
    s = (15 - r) * 3
    return (h & ~(7 << s)) | (d << s)


@njit(**_JIT)
def _leading_nonzero_digit(h: int, res: int) -> int:
    for r in range(1, res + 1):
        d = _get_digit(h, r)
        if d != 0:
            return d
    return 0


@njit(**_JIT)
def _rotate60ccw_h(h: int, res: int) -> int:
    for r in range(1, res + 1):
        h = _set_digit(h, r, _ROT60CCW[_get_digit(h, r)])
    return h


@njit(**_JIT)
def _rotate60cw_h(h: int, res: int) -> int:
    for r in range(1, res + 1):
        h = _set_digit(h, r, _ROT60CW[_get_digit(h, r)])
    return h


@njit(**_JIT)
def _rotate_pent60ccw_h(h: int, res: int) -> int:
    found = False
    for r in range(1, res + 1):
        h = _set_digit(h, r, _ROT60CCW[_get_digit(h, r)])
        if not found and _get_digit(h, r) != 0:
            found = True
            if _leading_nonzero_digit(h, res) == 1:
                h = _rotate60ccw_h(h, res)
    return h


# --------------------------------------------------------------------------------------------------------------
# Point -> cell (faceijk.c _vec3ToFaceIjk / coordijk.c _hex2dToCoordIJK / h3Index.c _faceIjkToH3).


@njit(**_JIT)
def _latlng_to_face_ijk(lat_deg: float, lng_deg: float, res: int) -> tuple[int, int, int, int]:
    lat = lat_deg * _DEG2RAD
    lng = lng_deg * _DEG2RAD
    cos_lat = math.cos(lat)
    vx = math.cos(lng) * cos_lat
    vy = math.sin(lng) * cos_lat
    vz = math.sin(lat)

    # _vec3ToClosestFace
    face = 0
    sqd = 5.0
    for f in range(20):
        dx = _FCP[f, 0] - vx
        dy = _FCP[f, 1] - vy
        dz = _FCP[f, 2] - vz
        d = (dx * dx + dy * dy) + dz * dz
        if d < sqd:
            face = f
            sqd = d

    # _vec3ToHex2d
    r = math.acos(1.0 - sqd * 0.5)
    if r < _EPSILON:
        return face, 0, 0, 0
    px = _FCP[face, 0]
    py = _FCP[face, 1]
    pz = _FCP[face, 2]
    dot = (vx * px + vy * py) + vz * pz
    nd = -dot
    qx = vx + nd * px
    qy = vy + nd * py
    qz = vz + nd * pz
    mag = math.sqrt((qx * qx + qy * qy) + qz * qz)
    inv = 1.0 / mag if mag > 0.0 else 0.0
    qx *= inv
    qy *= inv
    qz *= inv
    d_east = (_EAST[face, 0] * qx + _EAST[face, 1] * qy) + _EAST[face, 2] * qz
    d_north = (_NORTH[face, 0] * qx + _NORTH[face, 1] * qy) + _NORTH[face, 2] * qz
    az = math.atan2(d_east, d_north)
    theta = _pos_angle(_FAZ0[face] - _pos_angle(az))
    if res & 1:
        theta = _pos_angle(theta - _AP7_ROT_RADS)
    r = math.tan(r) * _INV_RES0_U_GNOMONIC
    for _ in range(res):
        r *= _SQRT7
    x = r * math.cos(theta)
    y = r * math.sin(theta)

    # _hex2dToCoordIJK
    a1 = abs(x)
    a2 = abs(y)
    x2 = a2 * _RSIN60
    x1 = a1 + x2 * 0.5
    m1 = int(x1)
    m2 = int(x2)
    r1 = x1 - m1
    r2 = x2 - m2
    if r1 < 0.5:
        if r1 < _ONE_THIRD:
            i = m1
            j = m2 if r2 < (1.0 + r1) * 0.5 else m2 + 1
        else:
            j = m2 if r2 < 1.0 - r1 else m2 + 1
            i = m1 + 1 if (1.0 - r1) <= r2 < 2.0 * r1 else m1
    else:
        if r1 < _TWO_THIRDS:
            j = m2 if r2 < 1.0 - r1 else m2 + 1
            i = m1 if (2.0 * r1 - 1.0) < r2 < 1.0 - r1 else m1 + 1
        else:
            i = m1 + 1
            j = m2 if r2 < r1 * 0.5 else m2 + 1
    # fold across the axes (j >= 0 here, so C's truncating division equals floor division)
    if x < 0.0:
        if j % 2 == 0:
            i = i - 2 * (i - j // 2)
        else:
            i = i - (2 * (i - (j + 1) // 2) + 1)
    if y < 0.0:
        i = i - (2 * j + 1) // 2
        j = -j
    i, j, k = _normalize(i, j, 0)
    return face, i, j, k


@njit(**_JIT)
def _face_ijk_to_h3(face: int, i: int, j: int, k: int, res: int) -> int:
    h = _H3_INIT | _CELL_MODE_BITS | (res << 52)
    if res == 0:
        if i > 2 or j > 2 or k > 2:
            return 0
        return h | (_FIJK_BC[face, i, j, k, 0] << 45)
    for r in range(res - 1, -1, -1):
        li, lj, lk = i, j, k
        if (r + 1) & 1:
            i, j, k = _up_ap7(i, j, k)
            ci, cj, ck = _down_ap7(i, j, k)
        else:
            i, j, k = _up_ap7r(i, j, k)
            ci, cj, ck = _down_ap7r(i, j, k)
        di, dj, dk = _normalize(li - ci, lj - cj, lk - ck)
        if di <= 1 and dj <= 1 and dk <= 1:
            digit = 4 * di + 2 * dj + dk
        else:
            digit = 7
        h = _set_digit(h, r + 1, digit)
    if i > 2 or j > 2 or k > 2:
        return 0
    base_cell = _FIJK_BC[face, i, j, k, 0]
    rots = _FIJK_BC[face, i, j, k, 1]
    h |= base_cell << 45
    if _BCD[base_cell, 4]:
        if _leading_nonzero_digit(h, res) == 1:
            if _BCD[base_cell, 5] == face or _BCD[base_cell, 6] == face:
                h = _rotate60cw_h(h, res)
            else:
                h = _rotate60ccw_h(h, res)
        for _ in range(rots):
            h = _rotate_pent60ccw_h(h, res)
    else:
        for _ in range(rots):
            h = _rotate60ccw_h(h, res)
    return h


@njit(**_JIT)
def _point_to_cell(lng: float, lat: float, res: int) -> int:
    # NaN fails both comparisons, +-inf and out-of-range values fail one: all map to H3_NULL.
    if not (abs(lat) <= 90.0 and abs(lng) <= 180.0):
        return 0
    face, i, j, k = _latlng_to_face_ijk(lat, lng, res)
    return _face_ijk_to_h3(face, i, j, k, res)


# --------------------------------------------------------------------------------------------------------------
# The fast pipeline: the same cells as the literal port above, for blocks of points, in loops that LLVM vectorises.
# A point clearly inside its cell gets it from an algebraic projection; a point within rounding distance of a cell
# edge or of a face boundary (or anything unusual) gets it from the literal port.


@njit(inline="always", **_JIT)
def _sincos(x: float) -> tuple[float, float]:
    k = math.floor(x * _INV_PIO2 + 0.5)
    r = (x - k * _PIO2_1) - k * _PIO2_1T
    z = r * r
    sn = r + z * r * (_S1 + z * (_S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))))
    hz = 0.5 * z
    w = 1.0 - hz
    cs = w + (((1.0 - w) - hz) + z * (z * (_C1 + z * (_C2 + z * (_C3 + z * (_C4 + z * (_C5 + z * _C6)))))))
    q = k - 4.0 * math.floor(k * 0.25)  # quadrant 0-3
    odd = (q == 1.0) | (q == 3.0)
    s1 = cs if odd else sn
    c1 = sn if odd else cs
    return (-s1 if q >= 2.0 else s1), (-c1 if (q == 1.0) | (q == 2.0) else c1)


@njit(**_JIT)
def _stage_sphere(
    lng: np.ndarray, lat: np.ndarray, s: int, m: int, vx: np.ndarray, vy: np.ndarray, vz: np.ndarray, valid: np.ndarray
) -> None:
    """Unit vectors of the points (within 1 ulp of H3's; exactness is not needed here) and their validity."""
    for t in range(m):
        la = lat[s + t]
        lo = lng[s + t]
        ok = (abs(la) <= 90.0) & (abs(lo) <= 180.0)
        sin_lat, cos_lat = _sincos((la if ok else 0.0) * _DEG2RAD)
        sin_lng, cos_lng = _sincos((lo if ok else 0.0) * _DEG2RAD)
        vx[t] = cos_lng * cos_lat
        vy[t] = sin_lng * cos_lat
        vz[t] = sin_lat
        valid[t] = ok


@njit(**_JIT)
def _stage_face(
    m: int, vx: np.ndarray, vy: np.ndarray, vz: np.ndarray, best: np.ndarray, second: np.ndarray, face: np.ndarray
) -> None:
    """Closest icosahedron face centre (squared chord as in H3), with the runner-up's distance."""
    for t in range(m):
        best[t] = 5.0
        second[t] = 5.0
        face[t] = 0
    for f in range(20):
        px = _FCP[f, 0]
        py = _FCP[f, 1]
        pz = _FCP[f, 2]
        for t in range(m):
            dx = px - vx[t]
            dy = py - vy[t]
            dz = pz - vz[t]
            d = (dx * dx + dy * dy) + dz * dz
            b = best[t]
            closer = d < b
            second[t] = b if closer else min(second[t], d)
            face[t] = f if closer else face[t]
            best[t] = d if closer else b


@njit(**_JIT)
def _stage_project(
    m: int,
    res: int,
    scale: float,
    vx: np.ndarray,
    vy: np.ndarray,
    vz: np.ndarray,
    best: np.ndarray,
    second: np.ndarray,
    face: np.ndarray,
    valid: np.ndarray,
    fi: np.ndarray,
    fj: np.ndarray,
    ok: np.ndarray,
) -> None:
    """Hex2d position on the face (gnomonic), the containing hexagon's axial (i, j), and whether that is certain."""
    cls = res & 1
    for t in range(m):
        f = face[t]
        x0 = vx[t]
        y0 = vy[t]
        z0 = vz[t]
        # H3: r = angle to the face centre, theta = A - azimuth, (x, y) = K tan(r) (cos theta, sin theta); the same
        # as K (v . ux, v . uy) / (v . p) with the axes of _projection_axes.
        dp = (x0 * _FCP[f, 0] + y0 * _FCP[f, 1]) + z0 * _FCP[f, 2]
        a = (x0 * _UX[cls, f, 0] + y0 * _UX[cls, f, 1]) + z0 * _UX[cls, f, 2]
        b = (x0 * _UY[cls, f, 0] + y0 * _UY[cls, f, 1]) + z0 * _UY[cls, f, 2]
        inv_dp = 1.0 / dp
        k = scale * inv_dp
        x = a * k
        y = b * k
        rho = math.sqrt(a * a + b * b) * inv_dp  # tan r
        # Nearest hexagon centre. Centres are at (i - j / 2, j sqrt(3) / 2): rows with j even form the rectangular
        # lattice Z x 2hZ (h = sqrt(3) / 2), odd rows the same shifted by (1/2, h); take the nearer of the two.
        jn = y * _INV_SQRT3
        ya = math.floor(jn + 0.5)
        xa = math.floor(x + 0.5)
        yb = math.floor(jn)
        xb = math.floor(x) + 0.5
        exa = x - xa
        eya = y - ya * _SQRT3
        exb = x - xb
        eyb = y - (yb * _SQRT3 + _SQRT3_2)
        use_a = exa * exa + eya * eya <= exb * exb + eyb * eyb
        ex = exa if use_a else exb
        ey = eya if use_a else eyb
        # Distance to that hexagon's edge against a bound on how far H3's own (x, y) (acos, atan2, tan, cos, sin of
        # the exact unit vector) can be from ours: relative 1e-12 (observed ~1e-15) plus the conditioning of H3's
        # acos(1 - sqd / 2), 2e-14 / r radians (observed ~2e-16 / r). The face is certain when the runner-up is
        # 1e-12 farther (errors ~1e-16).
        edge = max(abs(ex), max(abs(0.5 * ex + _SQRT3_2 * ey), abs(0.5 * ex - _SQRT3_2 * ey)))
        tol = 1e-12 * (1.0 + abs(x) + abs(y)) + scale * 2e-14 * (1.0 + rho * rho) / max(rho, 1e-300)
        sure = (
            valid[t]
            & (second[t] - best[t] > 1e-12)
            & (0.5 - edge > tol)
            & (dp > 0.0)
            & (abs(x) < 1e15)
            & (abs(y) < 1e15)
        )
        fi[t] = ((xa + ya) if use_a else (xb + yb + 0.5)) if sure else 0.0
        fj[t] = ((2.0 * ya) if use_a else (2.0 * yb + 1.0)) if sure else 0.0
        ok[t] = sure


@njit(**_JIT)
def _stage_index(
    s: int,
    m: int,
    res: int,
    fi: np.ndarray,
    fj: np.ndarray,
    face: np.ndarray,
    ok: np.ndarray,
    digits: np.ndarray,
    lead: np.ndarray,
    out: np.ndarray,
) -> None:
    """``_faceIjkToH3`` on axial (i, j) held in doubles (exact integers): digits four levels at a time
    (see _block_tables), base cell, all digit rotations in one table step."""
    for t in range(m):
        digits[t] = 0
        lead[t] = 0
    level = res
    while level >= 4:
        cls = level & 1
        shift = (15 - level) * 3
        for t in range(m):
            a = fi[t]
            b = fj[t]
            ra = a - 49.0 * math.floor(a * _INV49)
            ra = ra - 49.0 if ra >= 49.0 else ra
            ra = ra + 49.0 if ra < 0.0 else ra
            rb = b - 49.0 * math.floor(b * _INV49)
            rb = rb - 49.0 if rb >= 49.0 else rb
            rb = rb + 49.0 if rb < 0.0 else rb
            row = np.int64(ra) * 49 + np.int64(rb)
            digits[t] |= _BLK_DIGITS[cls, row] << shift
            block_lead = _BLK_LEAD[cls, row]
            lead[t] = block_lead if block_lead != 0 else lead[t]
            fi[t] = math.floor((a - _BLK_OA[cls, row]) * _INV49 + 0.5)  # exact: a multiple of 49
            fj[t] = math.floor((b - _BLK_OB[cls, row]) * _INV49 + 0.5)
        level -= 4
    while level >= 1:
        shift = (15 - level) * 3
        class_iii = (level & 1) == 1
        for t in range(m):
            a = fi[t]
            b = fj[t]
            # _upAp7 / _upAp7r (lround of n / 7, never a tie), then the parent's centre (_downAp7 / _downAp7r)
            p = math.floor(((3.0 * a - b) if class_iii else (2.0 * a + b)) * _INV7 + 0.5)
            q = math.floor(((a + 2.0 * b) if class_iii else (3.0 * b - a)) * _INV7 + 0.5)
            ca = (2.0 * p + q) if class_iii else (3.0 * p - q)
            cb = (3.0 * q - p) if class_iii else (p + 2.0 * q)
            idx = np.int64((a - ca) * 3.0 + (b - cb)) + 4
            d = _AXIAL_DIGIT[min(max(idx, 0), 8)]
            digits[t] |= d << shift
            lead[t] = d if d != 0 else lead[t]
            fi[t] = p
            fj[t] = q
        level -= 1
    base_shift = (15 - res) * 3
    head = _CELL_MODE_BITS | (res << 52) | ((1 << base_shift) - 1)
    for t in range(m):
        a = fi[t]
        b = fj[t]
        mn = min(min(a, b), 0.0)  # _ijkNormalize of (a, b, 0)
        i = np.int64(a - mn)
        j = np.int64(b - mn)
        k = np.int64(-mn)
        ok[t] = ok[t] & (i <= 2) & (j <= 2) & (k <= 2)
        i = min(i, 2)
        j = min(j, 2)
        k = min(k, 2)
        f = face[t]
        out[s + t] = head | (_FIJK_BC[f, i, j, k, 0] << 45)
        lead[t] = _TOTAL_ROT[f, i, j, k, lead[t]]
    for c in range((res + 3) // 4):
        sh = base_shift + 12 * c
        for t in range(m):
            out[s + t] |= _ROT12[lead[t], (digits[t] >> sh) & 4095] << sh


@njit(**_JIT)
def _cells_block(lng: np.ndarray, lat: np.ndarray, s: int, e: int, res: int, scale: float, out: np.ndarray) -> None:
    m = e - s
    f64 = np.empty((7, m))
    i64 = np.empty((3, m), dtype=np.int64)
    flags = np.empty((2, m), dtype=np.bool_)
    vx, vy, vz, best, second, fi, fj = f64[0], f64[1], f64[2], f64[3], f64[4], f64[5], f64[6]
    face, digits, lead = i64[0], i64[1], i64[2]
    valid, ok = flags[0], flags[1]
    _stage_sphere(lng, lat, s, m, vx, vy, vz, valid)
    _stage_face(m, vx, vy, vz, best, second, face)
    _stage_project(m, res, scale, vx, vy, vz, best, second, face, valid, fi, fj, ok)
    _stage_index(s, m, res, fi, fj, face, ok, digits, lead, out)
    for t in range(m):
        if not ok[t]:
            out[s + t] = _point_to_cell(lng[s + t], lat[s + t], res) if valid[t] else 0


@njit(**_JIT)
def _gnomonic_scale(res: int) -> float:
    scale = _INV_RES0_U_GNOMONIC
    for _ in range(res):
        scale *= _SQRT7
    return scale


@njit(parallel=True, **_JIT)
def _points_to_cells_blocks_parallel(lng: np.ndarray, lat: np.ndarray, res: int, out: np.ndarray) -> None:
    scale = _gnomonic_scale(res)
    n = lng.shape[0]
    for b in prange((n + _BLOCK_SIZE - 1) // _BLOCK_SIZE):
        s = b * _BLOCK_SIZE
        _cells_block(lng, lat, s, min(n, s + _BLOCK_SIZE), res, scale, out)


@njit(**_JIT)
def _points_to_cells_blocks_serial(lng: np.ndarray, lat: np.ndarray, res: int, out: np.ndarray) -> None:
    scale = _gnomonic_scale(res)
    n = lng.shape[0]
    for s in range(0, n, _BLOCK_SIZE):
        _cells_block(lng, lat, s, min(n, s + _BLOCK_SIZE), res, scale, out)


@njit(**_JIT)
def _points_to_cells_serial(lng: np.ndarray, lat: np.ndarray, res: int, out: np.ndarray) -> None:
    for n in range(lng.shape[0]):
        out[n] = _point_to_cell(lng[n], lat[n], res)


# --------------------------------------------------------------------------------------------------------------
# Cell -> FaceIJK (h3Index.c _h3ToFaceIjk, faceijk.c _adjustOverageClassII).


@njit(**_JIT)
def _is_valid_cell(h: int) -> bool:
    if h <= 0 or (h >> 59) != 1 or ((h >> 56) & 7) != 0:  # high bit, mode, reserved bits
        return False
    base_cell = (h >> 45) & 127
    if base_cell >= 122:
        return False
    res = (h >> 52) & 15
    for r in range(1, res + 1):
        if _get_digit(h, r) == 7:
            return False
    for r in range(res + 1, 16):
        if _get_digit(h, r) != 7:
            return False
    # a pentagon has no cells in the deleted k-axes subsequence
    return not (_BCD[base_cell, 4] and _leading_nonzero_digit(h, res) == 1)


@njit(**_JIT)
def _adjust_overage_class_ii(
    face: int, i: int, j: int, k: int, res: int, pent_leading4: bool, substrate: bool
) -> tuple[int, int, int, int, int]:
    overage = _NO_OVERAGE
    max_dim = _MAX_DIM[res]
    if substrate:
        max_dim *= 3
    s = i + j + k
    if substrate and s == max_dim:
        overage = _FACE_EDGE
    elif s > max_dim:
        overage = _NEW_FACE
        if k > 0:
            if j > 0:
                quad = 3  # JK
            else:
                quad = 2  # KI
                if pent_leading4:
                    # translate origin to the pentagon centre, rotate 60 cw, translate back
                    ti, tj, tk = _rotate60cw_ijk(i - max_dim, j, k)
                    i, j, k = ti + max_dim, tj, tk
        else:
            quad = 1  # IJ
        new_face = _FN_FACE[face, quad]
        for _ in range(_FN_ROT[face, quad]):
            i, j, k = _rotate60ccw_ijk(i, j, k)
        unit_scale = _UNIT_SCALE[res]
        if substrate:
            unit_scale *= 3
        i, j, k = _normalize(
            i + _FN_TRANS[face, quad, 0] * unit_scale,
            j + _FN_TRANS[face, quad, 1] * unit_scale,
            k + _FN_TRANS[face, quad, 2] * unit_scale,
        )
        face = new_face
        if substrate and i + j + k == max_dim:
            overage = _FACE_EDGE
    return overage, face, i, j, k


@njit(**_JIT)
def _h3_to_face_ijk(h: int) -> tuple[int, int, int, int]:
    base_cell = (h >> 45) & 127
    res = (h >> 52) & 15
    is_pent_base = _BCD[base_cell, 4] != 0
    if is_pent_base and _leading_nonzero_digit(h, res) == 5:
        h = _rotate60cw_h(h, res)
    face = _BCD[base_cell, 0]
    i = _BCD[base_cell, 1]
    j = _BCD[base_cell, 2]
    k = _BCD[base_cell, 3]
    # _h3ToFaceIjkWithInitializedFijk
    possible_overage = True
    if not is_pent_base and (res == 0 or (i == 0 and j == 0 and k == 0)):
        possible_overage = False
    for r in range(1, res + 1):
        if r & 1:
            i, j, k = _down_ap7(i, j, k)
        else:
            i, j, k = _down_ap7r(i, j, k)
        d = _get_digit(h, r)
        if 0 < d < 7:
            i, j, k = _normalize(i + _UNIT_VECS[d, 0], j + _UNIT_VECS[d, 1], k + _UNIT_VECS[d, 2])
    if not possible_overage:
        return face, i, j, k
    oi, oj, ok = i, j, k
    adj_res = res
    if res & 1:
        i, j, k = _down_ap7r(i, j, k)
        adj_res += 1
    pent_leading4 = is_pent_base and _leading_nonzero_digit(h, res) == 4
    overage, face, i, j, k = _adjust_overage_class_ii(face, i, j, k, adj_res, pent_leading4, False)
    if overage != _NO_OVERAGE:
        if is_pent_base:
            while True:
                overage, face, i, j, k = _adjust_overage_class_ii(face, i, j, k, adj_res, False, False)
                if overage == _NO_OVERAGE:
                    break
        if adj_res != res:
            i, j, k = _up_ap7r(i, j, k)
    elif adj_res != res:
        i, j, k = oi, oj, ok
    return face, i, j, k


# --------------------------------------------------------------------------------------------------------------
# FaceIJK / hex2d -> geographic (faceijk.c _hex2dToVec3, vec3d.c, latLng.c).


@njit(**_JIT)
def _hex2d_to_lnglat_deg(x: float, y: float, face: int, res: int, substrate: bool) -> tuple[float, float]:
    r = math.sqrt(x * x + y * y)
    if r < _EPSILON:
        vx = _FCP[face, 0]
        vy = _FCP[face, 1]
        vz = _FCP[face, 2]
    else:
        theta = math.atan2(y, x)
        for _ in range(res):
            r *= _RSQRT7
        if substrate:
            r *= _ONE_THIRD
            if res & 1:
                r *= _RSQRT7
        r *= _RES0_U_GNOMONIC
        r = math.atan(r)
        if not substrate and res & 1:
            theta = _pos_angle(theta + _AP7_ROT_RADS)
        theta = _pos_angle(_FAZ0[face] - theta)
        ct = math.cos(theta)
        st = math.sin(theta)
        cr = math.cos(r)
        sr = math.sin(r)
        dx = ct * _NORTH[face, 0] + st * _EAST[face, 0]
        dy = ct * _NORTH[face, 1] + st * _EAST[face, 1]
        dz = ct * _NORTH[face, 2] + st * _EAST[face, 2]
        vx = cr * _FCP[face, 0] + sr * dx
        vy = cr * _FCP[face, 1] + sr * dy
        vz = cr * _FCP[face, 2] + sr * dz
        mag = math.sqrt((vx * vx + vy * vy) + vz * vz)
        inv = 1.0 / mag if mag > 0.0 else 0.0
        vx *= inv
        vy *= inv
        vz *= inv
    lat = math.asin(vz)
    lng = math.atan2(vy, vx)
    return lng * _RAD2DEG, lat * _RAD2DEG


@njit(**_JIT)
def _ijk_to_hex2d(i: int, j: int, k: int) -> tuple[float, float]:
    ii = i - k
    jj = j - k
    return ii - 0.5 * jj, jj * _SQRT3_2


@njit(**_JIT)
def _v2d_intersect(
    x0: float,
    y0: float,
    x1: float,
    y1: float,
    x2: float,
    y2: float,
    x3: float,
    y3: float,
) -> tuple[float, float]:
    s1x = x1 - x0
    s1y = y1 - y0
    s2x = x3 - x2
    s2y = y3 - y2
    t = (s2x * (y0 - y2) - s2y * (x0 - x2)) / (-s2x * s1y + s1x * s2y)
    return x0 + t * s1x, y0 + t * s1y


@njit(**_JIT)
def _v2d_almost_equals(x0: float, y0: float, x1: float, y1: float) -> bool:
    return abs(x0 - x1) < _V2D_EPSILON and abs(y0 - y1) < _V2D_EPSILON


@njit(**_JIT)
def _icosa_edge(adj_res: int, direction: int) -> tuple[float, float, float, float]:
    max_dim = _MAX_DIM[adj_res]
    v0x, v0y = 3.0 * max_dim, 0.0
    v1x, v1y = -1.5 * max_dim, 3.0 * _SQRT3_2 * max_dim
    v2x, v2y = -1.5 * max_dim, -3.0 * _SQRT3_2 * max_dim
    if direction == 1:  # IJ
        return v0x, v0y, v1x, v1y
    if direction == 3:  # JK
        return v1x, v1y, v2x, v2y
    return v2x, v2y, v0x, v0y  # KI


@njit(**_JIT)
def _substrate_vertex(ci: int, cj: int, ck: int, v: int, class_iii: bool) -> tuple[int, int, int]:
    if class_iii:
        return _normalize(ci + _VERTS_CIII[v, 0], cj + _VERTS_CIII[v, 1], ck + _VERTS_CIII[v, 2])
    return _normalize(ci + _VERTS_CII[v, 0], cj + _VERTS_CII[v, 1], ck + _VERTS_CII[v, 2])


@njit(**_JIT)
def _cell_boundary(h: int, out: np.ndarray) -> int:
    """Write the boundary of cell ``h`` as (lng, lat) degrees into ``out`` (10, 2); return the vertex count."""
    res = (h >> 52) & 15
    face, ci, cj, ck = _h3_to_face_ijk(h)
    is_pentagon = _BCD[(h >> 45) & 127, 4] != 0 and _leading_nonzero_digit(h, res) == 0
    class_iii = (res & 1) == 1
    nverts = 5 if is_pentagon else 6
    # _faceIjkToVerts / _faceIjkPentToVerts: centre into the aperture 33r (7r) substrate grid, add vertex offsets
    ci, cj, ck = _down_ap3(ci, cj, ck)
    ci, cj, ck = _down_ap3r(ci, cj, ck)
    adj_res = res
    if class_iii:
        ci, cj, ck = _down_ap7r(ci, cj, ck)
        adj_res += 1
    count = 0
    if is_pentagon:
        # _faceIjkPentToCellBoundary
        last_f = last_i = last_j = last_k = 0
        for vert in range(nverts + 1):
            f = face
            a, b, c = _substrate_vertex(ci, cj, ck, vert % nverts, class_iii)
            while True:  # _adjustPentVertOverage
                overage, f, a, b, c = _adjust_overage_class_ii(f, a, b, c, adj_res, False, True)
                if overage != _NEW_FACE:
                    break
            if class_iii and vert > 0:
                x0, y0 = _ijk_to_hex2d(last_i, last_j, last_k)
                to_last = _ADJ_DIR[f, last_f]
                tf = _FN_FACE[f, to_last]
                ti, tj, tk = a, b, c
                for _ in range(_FN_ROT[f, to_last]):
                    ti, tj, tk = _rotate60ccw_ijk(ti, tj, tk)
                scale = _UNIT_SCALE[adj_res] * 3
                ti, tj, tk = _normalize(
                    ti + _FN_TRANS[f, to_last, 0] * scale,
                    tj + _FN_TRANS[f, to_last, 1] * scale,
                    tk + _FN_TRANS[f, to_last, 2] * scale,
                )
                x1, y1 = _ijk_to_hex2d(ti, tj, tk)
                e0x, e0y, e1x, e1y = _icosa_edge(adj_res, _ADJ_DIR[tf, f])
                ix, iy = _v2d_intersect(x0, y0, x1, y1, e0x, e0y, e1x, e1y)
                out[count, 0], out[count, 1] = _hex2d_to_lnglat_deg(ix, iy, tf, adj_res, True)
                count += 1
            if vert < nverts:
                x, y = _ijk_to_hex2d(a, b, c)
                out[count, 0], out[count, 1] = _hex2d_to_lnglat_deg(x, y, f, adj_res, True)
                count += 1
            last_f, last_i, last_j, last_k = f, a, b, c
        return count
    # _faceIjkToCellBoundary
    last_face = -1
    last_overage = _NO_OVERAGE
    for vert in range(nverts + 1):
        v = vert % nverts
        a0, b0, c0 = _substrate_vertex(ci, cj, ck, v, class_iii)
        overage, f, a, b, c = _adjust_overage_class_ii(face, a0, b0, c0, adj_res, False, True)
        if class_iii and vert > 0 and f != last_face and last_overage != _FACE_EDGE:
            la, lb, lc = _substrate_vertex(ci, cj, ck, (v + 5) % 6, class_iii)
            x0, y0 = _ijk_to_hex2d(la, lb, lc)
            x1, y1 = _ijk_to_hex2d(a0, b0, c0)
            face2 = f if last_face == face else last_face
            e0x, e0y, e1x, e1y = _icosa_edge(adj_res, _ADJ_DIR[face, face2])
            ix, iy = _v2d_intersect(x0, y0, x1, y1, e0x, e0y, e1x, e1y)
            if not (_v2d_almost_equals(x0, y0, ix, iy) or _v2d_almost_equals(x1, y1, ix, iy)):
                out[count, 0], out[count, 1] = _hex2d_to_lnglat_deg(ix, iy, face, adj_res, True)
                count += 1
        if vert < nverts:
            x, y = _ijk_to_hex2d(a, b, c)
            out[count, 0], out[count, 1] = _hex2d_to_lnglat_deg(x, y, f, adj_res, True)
            count += 1
        last_face = f
        last_overage = overage
    return count


@njit(parallel=True, **_JIT)
def _boundaries_kernel(cells: np.ndarray, verts: np.ndarray, counts: np.ndarray) -> None:
    for n in prange(cells.shape[0]):
        h = cells[n]
        if _is_valid_cell(h):
            counts[n] = _cell_boundary(h, verts[n])
        else:
            counts[n] = 0


@njit(parallel=True, **_JIT)
def _centers_kernel(cells: np.ndarray, lng: np.ndarray, lat: np.ndarray) -> None:
    for n in prange(cells.shape[0]):
        h = cells[n]
        if _is_valid_cell(h):
            face, i, j, k = _h3_to_face_ijk(h)
            x, y = _ijk_to_hex2d(i, j, k)
            lng[n], lat[n] = _hex2d_to_lnglat_deg(x, y, face, (h >> 52) & 15, False)
        else:
            lng[n] = np.nan
            lat[n] = np.nan


# --------------------------------------------------------------------------------------------------------------
# Public API.

_STATE: dict[str, bool] = {"checked": False, "exact": True}


def _check_res(res: int) -> int:
    if isinstance(res, bool) or not isinstance(res, (int, np.integer)) or not 0 <= int(res) <= 15:
        raise ValueError(f"H3 resolution must be an integer 0-15, got {res!r}")
    return int(res)


def _as_cells(cells: Any) -> np.ndarray:
    arr = np.asarray(cells)
    if arr.dtype.kind in "USO":
        import h3

        flat = [h3.str_to_int(str(c)) if c else 0 for c in arr.ravel().tolist()]
        arr = np.array(flat, dtype=np.uint64).reshape(arr.shape)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"H3 cells must be integers (uint64/int64) or hex strings, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr.astype(np.uint64, copy=False).view(np.int64).ravel())


def points_to_cells_reference(lng: Any, lat: Any, res: int) -> np.ndarray:
    """The same as :func:`points_to_cells`, one ``h3.latlng_to_cell`` call per point (slow, the reference).

    >>> int(points_to_cells_reference(121.4737, 31.2304, 9)) == int(points_to_cells(121.4737, 31.2304, 9))
    True
    """
    import h3.api.basic_int as h3i

    res = _check_res(res)
    lng_b, lat_b = np.broadcast_arrays(np.asarray(lng, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    out = np.zeros(lng_b.size, dtype=np.uint64)
    latlng_to_cell = h3i.latlng_to_cell
    for n, (x, y) in enumerate(zip(lng_b.ravel().tolist(), lat_b.ravel().tolist())):
        if abs(y) <= 90.0 and abs(x) <= 180.0:
            out[n] = latlng_to_cell(y, x, res)
    return out.reshape(lng_b.shape)


def _self_check() -> bool:
    """Compare the kernel with h3-py on worldwide, pentagon and cell-edge points at every resolution."""
    import h3.api.basic_int as h3i

    rng = np.random.default_rng(20240611)
    lng = [rng.uniform(-180.0, 180.0, 300), rng.uniform(120.85, 122.2, 200)]
    lat = [
        np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, 300))),
        rng.uniform(30.67, 31.88, 200),
    ]
    for cell in h3i.get_pentagons(3)[::3]:
        for v_lat, v_lng in h3i.cell_to_boundary(cell) + (h3i.cell_to_latlng(cell),):
            lat.append(v_lat + rng.normal(0.0, 1e-3, 4))
            lng.append(v_lng + rng.normal(0.0, 1e-3, 4))
    for cell in {int(c) for c in h3i.grid_disk(h3i.latlng_to_cell(31.23, 121.47, 9), 1)}:
        for v_lat, v_lng in h3i.cell_to_boundary(cell):
            lat.append(v_lat + np.array([1e-12, -1e-12, 0.0]))
            lng.append(v_lng + np.array([0.0, 1e-12, -1e-12]))
    lng_a = np.clip(np.concatenate(lng), -180.0, 180.0)
    lat_a = np.clip(np.concatenate(lat), -90.0, 90.0)
    out = np.empty(lng_a.size, dtype=np.int64)
    for res in range(16):
        _points_to_cells_blocks_serial(lng_a, lat_a, res, out)
        if not np.array_equal(out.view(np.uint64), points_to_cells_reference(lng_a, lat_a, res)):
            return False
    return True


def _ensure_checked() -> bool:
    if not _STATE["checked"]:
        _STATE["exact"] = _self_check()
        _STATE["checked"] = True
        if not _STATE["exact"]:
            warnings.warn(
                "twin.h3: the compiled H3 kernel disagrees with h3-py on this platform; "
                "points_to_cells falls back to h3-py (exact but slow)",
                RuntimeWarning,
                stacklevel=3,
            )
    return _STATE["exact"]


def points_to_cells(lng: Any, lat: Any, res: int) -> np.ndarray:
    """H3 cell ids (uint64) of WGS84 points, identical to ``h3.latlng_to_cell(lat, lng, res)`` for each point.

    ``lng`` and ``lat`` are degrees (arrays or scalars, broadcast together); the result has their broadcast shape
    (0-d for two scalars). ``res`` is the H3 resolution, 0-15. A point whose longitude or latitude is NaN or
    infinite, or outside [-180, 180] / [-90, 90], gives 0 (H3_NULL) instead of raising: h3-py raises on non-finite
    values and would wrap out-of-range ones, which in sensor data are errors, not positions. Large inputs use all
    cores (numba threads). The first call in a process compiles the kernels (about 10 s, then cached on disk by
    numba) and runs the self-check against h3-py (~50 ms).

    >>> points_to_cells([121.4737, 121.5], [31.2304, 31.25], 9)
    array([617848112076292095, 617848111721611263], dtype=uint64)
    >>> hex(int(points_to_cells(121.4737, 31.2304, 9)))
    '0x89309959d73ffff'
    >>> points_to_cells([np.nan, 200.0], [31.0, 31.0], 9)
    array([0, 0], dtype=uint64)
    """
    res = _check_res(res)
    lng_a = np.asarray(lng, dtype=np.float64)
    lat_a = np.asarray(lat, dtype=np.float64)
    lng_b, lat_b = np.broadcast_arrays(lng_a, lat_a)
    shape = lng_b.shape
    if not _ensure_checked():
        return points_to_cells_reference(lng_b, lat_b, res)
    lng_c = np.ascontiguousarray(lng_b).ravel()
    lat_c = np.ascontiguousarray(lat_b).ravel()
    out = np.empty(lng_c.size, dtype=np.int64)
    if lng_c.size < _SERIAL_BELOW:
        _points_to_cells_blocks_serial(lng_c, lat_c, res, out)
    else:
        _points_to_cells_blocks_parallel(lng_c, lat_c, res, out)
    return out.view(np.uint64).reshape(shape)


def cells_to_boundaries(cells: Any) -> tuple[np.ndarray, np.ndarray]:
    """Boundary vertices of H3 cells, as ``h3.cell_to_boundary`` gives them but in (lng, lat) order.

    Returns ``(vertices, counts)``: ``vertices`` is float64 (n, 10, 2) holding (lng, lat) degrees, ``counts`` int64
    (n,) the number of vertices of each cell (6 for a hexagon, 5 for a pentagon, up to 10 where a Class III cell
    crosses an icosahedron edge); rows past ``counts`` are NaN. Vertices run counter-clockwise, in H3's order.
    Invalid ids (0 included) get count 0. ``cells`` may be uint64/int64 ids or hex strings.

    >>> verts, counts = cells_to_boundaries([0x89309959d73ffff])
    >>> verts.shape, counts.tolist()
    ((1, 10, 2), [6])
    >>> verts[0, 0].round(6).tolist()
    [121.471894, 31.2296]
    """
    flat = _as_cells(cells)
    verts = np.full((flat.size, MAX_BOUNDARY_VERTS, 2), np.nan, dtype=np.float64)
    counts = np.zeros(flat.size, dtype=np.int64)
    if flat.size:
        _boundaries_kernel(flat, verts, counts)
    return verts, counts


def cell_centers(cells: Any) -> tuple[np.ndarray, np.ndarray]:
    """Centre points ``(lng, lat)`` in degrees of H3 cells, as ``h3.cell_to_latlng`` gives them (NaN if invalid).

    >>> lng, lat = cell_centers(np.array([0x89309959d73ffff], dtype=np.uint64))
    >>> round(float(lng[0]), 6), round(float(lat[0]), 6)
    (121.473701, 31.229297)
    """
    arr = np.asarray(cells)
    flat = _as_cells(arr)
    lng = np.empty(flat.size, dtype=np.float64)
    lat = np.empty(flat.size, dtype=np.float64)
    if flat.size:
        _centers_kernel(flat, lng, lat)
    return lng.reshape(arr.shape), lat.reshape(arr.shape)
