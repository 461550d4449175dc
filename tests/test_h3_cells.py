"""twin.h3: vectorised points -> H3 cells, boundaries and centres, checked against h3-py cell for cell."""

from __future__ import annotations

import math
import warnings

import h3
import h3.api.basic_int as h3i
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.h3 import MAX_BOUNDARY_VERTS, cell_centers, cells_to_boundaries, points_to_cells, points_to_cells_reference
from twin.h3 import cells as kernel

SHANGHAI = (120.85, 30.67, 122.20, 31.88)  # lon/lat bounds of the city
CITY_RES = range(7, 13)  # the resolutions the viewer uses


def reference(lng: np.ndarray, lat: np.ndarray, res: int) -> np.ndarray:
    """h3-py, one call per point (integer API; h3 takes lat first)."""
    f = h3i.latlng_to_cell
    return np.array([f(y, x, res) for x, y in zip(lng.tolist(), lat.tolist())], dtype=np.uint64)


def literal(lng: np.ndarray, lat: np.ndarray, res: int) -> np.ndarray:
    """The line-by-line port of H3's code path (no fast path): the yardstick for many more points than h3-py."""
    out = np.empty(lng.size, dtype=np.int64)
    kernel._points_to_cells_serial(np.ascontiguousarray(lng), np.ascontiguousarray(lat), res, out)
    return out.view(np.uint64)


def assert_same_cells(lng: np.ndarray, lat: np.ndarray, res: int, expected: np.ndarray) -> None:
    got = points_to_cells(lng, lat, res)
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, (
        f"res {res}: {bad.size} of {got.size} differ, e.g. lng={lng[bad[0]]!r} lat={lat[bad[0]]!r} "
        f"got {int(got[bad[0]]):x} expected {int(expected[bad[0]]):x}"
    )


def shanghai_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(SHANGHAI[0], SHANGHAI[2], n), rng.uniform(SHANGHAI[1], SHANGHAI[3], n)


def world_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform on the sphere."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-180.0, 180.0, n), np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))


def near(lng: np.ndarray, lat: np.ndarray, offsets: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each point, and the point moved by each offset (degrees) in 8 directions."""
    angles = np.arange(8) * (np.pi / 4) + 0.1
    d_lng = [0.0] + [o * math.cos(a) for o in offsets for a in angles]
    d_lat = [0.0] + [o * math.sin(a) for o in offsets for a in angles]
    out_lng = (np.asarray(lng)[:, None] + np.array(d_lng)[None, :]).ravel()
    out_lat = (np.asarray(lat)[:, None] + np.array(d_lat)[None, :]).ravel()
    return np.clip(out_lng, -180.0, 180.0), np.clip(out_lat, -90.0, 90.0)


def boundary_points(cells: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Boundary vertices and edge midpoints (lng, lat) of cells, from h3."""
    lng, lat = [], []
    for c in cells:
        ring = np.array(h3i.cell_to_boundary(c))  # (lat, lng)
        mid = (ring + np.roll(ring, -1, axis=0)) / 2
        for la, lo in np.vstack([ring, mid]):
            lat.append(la)
            lng.append(lo)
    return np.array(lng), np.array(lat)


# ---------------------------------------------------------------------------------------------------------------
# points_to_cells


@pytest.mark.parametrize("res", CITY_RES)
def test_one_million_random_points_over_shanghai(res: int) -> None:
    lng, lat = shanghai_points(1_000_000, seed=res)
    assert_same_cells(lng, lat, res, reference(lng, lat, res))


@pytest.mark.parametrize("res", CITY_RES)
def test_points_within_1e9_degrees_of_cell_edges_and_vertices(res: int) -> None:
    # cells around the centre and cells spread over the whole city
    centre = h3i.latlng_to_cell(31.2304, 121.4737, res)
    lng, lat = shanghai_points(300, seed=100 + res)
    cells = sorted(set(h3i.grid_disk(centre, 5)) | set(reference(lng, lat, res).tolist()))
    v_lng, v_lat = boundary_points(cells)
    p_lng, p_lat = near(v_lng, v_lat, (1e-9, 1e-11, 1e-13))
    assert p_lng.size > 100_000
    assert_same_cells(p_lng, p_lat, res, reference(p_lng, p_lat, res))


def test_worldwide_random_points_every_resolution() -> None:
    lng, lat = world_points(60_000, seed=7)
    for res in range(16):
        assert_same_cells(lng, lat, res, reference(lng, lat, res))


def test_fast_path_equals_the_literal_port_on_many_more_points() -> None:
    """The fast pipeline (polynomial sin/cos, algebraic projection, 4-level digit tables) against the literal port."""
    lng, lat = world_points(1_000_000, seed=8)
    for res in range(16):
        assert_same_cells(lng, lat, res, literal(lng, lat, res))


def test_around_the_twelve_pentagons() -> None:
    rng = np.random.default_rng(12)
    lng, lat = [], []
    for p in h3i.get_pentagons(0):
        c_lat, c_lng = h3i.cell_to_latlng(p)
        for scale in (1e-9, 1e-6, 1e-3, 0.05, 2.0):
            lat.append(c_lat + rng.normal(0.0, scale, 60))
            lng.append(c_lng + rng.normal(0.0, scale, 60))
    lng_a = np.clip(np.concatenate(lng), -180.0, 180.0)
    lat_a = np.clip(np.concatenate(lat), -90.0, 90.0)
    for res in range(16):
        assert_same_cells(lng_a, lat_a, res, reference(lng_a, lat_a, res))
    # edges and vertices of the pentagons themselves and of their neighbours
    for res in (7, 8, 9):
        cells = [c for p in h3i.get_pentagons(res) for c in h3i.grid_disk(p, 1)]
        p_lng, p_lat = near(*boundary_points(cells), (1e-9, 1e-12))
        assert_same_cells(p_lng, p_lat, res, reference(p_lng, p_lat, res))


def test_across_icosahedron_face_edges() -> None:
    """Points on and beside the 30 boundaries between icosahedron faces, where H3 changes projection."""
    fcp = kernel._FCP
    rng = np.random.default_rng(30)
    lng, lat = [], []
    for f in range(20):
        for g in range(f + 1, 20):
            if kernel._ADJ_DIR[f, g] < 0:
                continue
            mid = (fcp[f] + fcp[g]) / np.linalg.norm(fcp[f] + fcp[g])
            along = np.cross(fcp[f], fcp[g])
            along /= np.linalg.norm(along)
            across = fcp[f] - fcp[g]
            across /= np.linalg.norm(across)
            t = rng.uniform(-0.5, 0.5, 400)
            s = rng.choice([0.0, 1e-15, -1e-15, 1e-12, -1e-12, 1e-9, -1e-9, 1e-5, -1e-5], 400)
            v = mid[None, :] + t[:, None] * along[None, :] + s[:, None] * across[None, :]
            v /= np.linalg.norm(v, axis=1)[:, None]
            lat.append(np.degrees(np.arcsin(v[:, 2])))
            lng.append(np.degrees(np.arctan2(v[:, 1], v[:, 0])))
    lng_a, lat_a = np.concatenate(lng), np.concatenate(lat)
    for res in range(16):
        assert_same_cells(lng_a, lat_a, res, reference(lng_a, lat_a, res))
        assert_same_cells(lng_a, lat_a, res, literal(lng_a, lat_a, res))


def test_poles_antimeridian_and_extreme_coordinates() -> None:
    lng = np.array([0.0, 180.0, -180.0, 180.0, -180.0, 179.9999999999, -179.9999999999, 45.0, -0.0, 0.0, 5e-324])
    lat = np.array([90.0, 0.0, 0.0, 90.0, -90.0, 89.9999999999, -89.9999999999, -90.0, -0.0, 5e-324, 0.0])
    p_lng, p_lat = near(lng, lat, (1e-9,))
    for res in range(16):
        assert_same_cells(p_lng, p_lat, res, reference(p_lng, p_lat, res))


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=-180.0, max_value=180.0, allow_nan=False),
    st.floats(min_value=-90.0, max_value=90.0, allow_nan=False),
    st.integers(min_value=0, max_value=15),
)
def test_any_valid_float_point(lng: float, lat: float, res: int) -> None:
    assert int(points_to_cells(lng, lat, res)) == h3i.latlng_to_cell(lat, lng, res)


def test_invalid_coordinates_give_zero_instead_of_raising() -> None:
    bad_lng = np.array([np.nan, 121.5, np.inf, 121.5, -np.inf, 180.0000001, -181.0, 121.5, 121.5, np.nan])
    bad_lat = np.array([31.2, np.nan, 31.2, -np.inf, 31.2, 31.2, 31.2, 90.0000001, -91.0, np.nan])
    out = points_to_cells(bad_lng, bad_lat, 9)
    assert out.dtype == np.uint64
    assert out.tolist() == [0] * bad_lng.size
    mixed = points_to_cells([121.5, np.nan], [31.2, 31.2], 9)
    assert mixed[0] == h3i.latlng_to_cell(31.2, 121.5, 9) and mixed[1] == 0


def test_shapes_dtypes_and_scalars() -> None:
    empty = points_to_cells(np.array([]), np.array([]), 9)
    assert empty.dtype == np.uint64 and empty.shape == (0,)
    scalar = points_to_cells(121.4737, 31.2304, 9)
    assert scalar.dtype == np.uint64 and scalar.shape == ()
    assert int(scalar) == h3.str_to_int(h3.latlng_to_cell(31.2304, 121.4737, 9))
    grid = points_to_cells(np.linspace(121.0, 122.0, 4)[None, :], np.linspace(31.0, 31.5, 3)[:, None], 8)
    assert grid.shape == (3, 4)
    assert grid[2, 1] == h3i.latlng_to_cell(31.5, float(np.linspace(121.0, 122.0, 4)[1]), 8)
    as_lists = points_to_cells([121.4, 121.6], [31.1, 31.3], 10)
    assert as_lists.tolist() == [h3i.latlng_to_cell(31.1, 121.4, 10), h3i.latlng_to_cell(31.3, 121.6, 10)]
    f32 = points_to_cells(np.array([121.4], dtype=np.float32), np.array([31.1], dtype=np.float32), 9)
    assert f32[0] == h3i.latlng_to_cell(float(np.float32(31.1)), float(np.float32(121.4)), 9)
    strided = np.linspace(121.0, 122.0, 40_000)[::2]  # large and not contiguous: the parallel kernel
    assert_same_cells(strided, np.full(strided.size, 31.2), 11, reference(strided, np.full(strided.size, 31.2), 11))
    for bad_res in (-1, 16, 9.0, True, "9"):
        with pytest.raises(ValueError):
            points_to_cells(121.0, 31.0, bad_res)  # type: ignore[arg-type]


def test_reference_function_matches_h3() -> None:
    lng, lat = shanghai_points(1000, seed=3)
    assert np.array_equal(points_to_cells_reference(lng, lat, 9), reference(lng, lat, 9))
    assert points_to_cells_reference([np.nan, 200.0], [0.0, 0.0], 9).tolist() == [0, 0]


def test_falls_back_to_h3_when_the_self_check_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    lng, lat = shanghai_points(500, seed=4)
    expected = reference(lng, lat, 10)
    monkeypatch.setattr(kernel, "_STATE", {"checked": False, "exact": True})
    monkeypatch.setattr(kernel, "_self_check", lambda: False)
    with pytest.warns(RuntimeWarning, match="falls back to h3-py"):
        got = points_to_cells(lng, lat, 10)
    assert np.array_equal(got, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(points_to_cells(lng, lat, 10), expected)  # warned once only


def test_self_check_passes_here() -> None:
    assert kernel._self_check()


def test_digit_helpers_are_exact() -> None:
    # lround(n / 7) in integers, negative numerators included
    ns = list(range(-3000, 3000)) + [-(2**36) + 3, 2**36 - 5, -(7 * 2**33) - 4, 7 * 2**33 + 4]
    assert [kernel._round_div7(n) for n in ns] == [round(n / 7) for n in ns]  # n / 7 never ties
    # the four-level table agrees with four single H3 levels (_upAp7 / _upAp7r) for every residue mod 49
    rng = np.random.default_rng(49)

    def up(cls: int, a: int, b: int) -> tuple[int, int, int]:
        if cls:  # Class III child
            p, q = round((3 * a - b) / 7), round((a + 2 * b) / 7)
            c_a, c_b = 2 * p + q, 3 * q - p
        else:
            p, q = round((2 * a + b) / 7), round((3 * b - a) / 7)
            c_a, c_b = 3 * p - q, p + 2 * q
        digit = {(0, 0): 0, (-1, -1): 1, (0, 1): 2, (-1, 0): 3, (1, 0): 4, (0, -1): 5, (1, 1): 6}[(a - c_a, b - c_b)]
        return p, q, digit

    for cls in (0, 1):
        for row in range(49 * 49):
            a = row // 49 + 49 * int(rng.integers(-(10**6), 10**6))
            b = row % 49 + 49 * int(rng.integers(-(10**6), 10**6))
            packed, lead, o_a, o_b = (int(v) for v in kernel._BLOCK[cls, row])
            p, q, digits = a, b, []
            for n in range(4):
                p, q, d = up((cls + n) & 1, p, q)
                digits.append(d)
            assert packed == sum(d << (3 * n) for n, d in enumerate(digits))
            assert lead == next((d for d in reversed(digits) if d), 0)
            assert (a - o_a) // 49 == p and (b - o_b) // 49 == q and (a - o_a) % 49 == 0 and (b - o_b) % 49 == 0


# ---------------------------------------------------------------------------------------------------------------
# cells_to_boundaries, cell_centers


def boundary_test_cells() -> list[int]:
    cells: set[int] = set()
    lng, lat = shanghai_points(3000, seed=5)
    w_lng, w_lat = world_points(1500, seed=6)
    for res in range(16):
        cells |= set(reference(lng[:300], lat[:300], res).tolist()) if res in CITY_RES else set()
        cells |= set(reference(w_lng, w_lat, res).tolist())
        for p in h3i.get_pentagons(res):
            cells |= set(h3i.grid_disk(p, 2))
    return sorted(cells)


def test_boundaries_match_h3_cell_to_boundary_in_lng_lat_order() -> None:
    cells = boundary_test_cells()
    verts, counts = cells_to_boundaries(np.array(cells, dtype=np.uint64))
    assert verts.shape == (len(cells), MAX_BOUNDARY_VERTS, 2) and verts.dtype == np.float64
    assert counts.dtype == np.int64
    seen_counts = set()
    for n, c in enumerate(cells):
        ring = np.array(h3i.cell_to_boundary(c))[:, ::-1]  # (lat, lng) -> (lng, lat)
        assert counts[n] == len(ring), hex(c)
        seen_counts.add(len(ring))
        np.testing.assert_allclose(verts[n, : counts[n]], ring, rtol=0, atol=1e-12, err_msg=hex(c))
        assert np.isnan(verts[n, counts[n] :]).all()
    assert {5, 6, 7, 8, 10} <= seen_counts  # pentagons, hexagons, cells cut by icosahedron edges


def test_centres_match_h3_cell_to_latlng() -> None:
    cells = boundary_test_cells()
    lng, lat = cell_centers(np.array(cells, dtype=np.uint64))
    ref = np.array([h3i.cell_to_latlng(c) for c in cells])
    np.testing.assert_allclose(lat, ref[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(lng, ref[:, 1], rtol=0, atol=1e-12)


def test_boundaries_and_centres_of_invalid_ids_strings_and_empty_input() -> None:
    good = h3i.latlng_to_cell(31.23, 121.47, 9)
    bad = [0, 1, good | (1 << 63), good ^ (7 << 3), h3i.get_pentagons(5)[0] + (1 << (3 * 9))]
    assert not any(h3i.is_valid_cell(int(b) & (2**64 - 1)) for b in bad)
    verts, counts = cells_to_boundaries(np.array([good, *bad], dtype=np.uint64))
    assert counts.tolist() == [6, 0, 0, 0, 0, 0] and np.isnan(verts[1:]).all()
    lng, lat = cell_centers(np.array([good, *bad], dtype=np.uint64))
    assert np.isfinite(lng[0]) and np.isnan(lng[1:]).all() and np.isnan(lat[1:]).all()
    v_str, c_str = cells_to_boundaries([h3.int_to_str(good)])
    assert c_str.tolist() == [6] and np.array_equal(v_str, verts[:1], equal_nan=True)
    assert np.array_equal(cells_to_boundaries(np.array([good], dtype=np.int64))[0], verts[:1], equal_nan=True)
    e_verts, e_counts = cells_to_boundaries(np.array([], dtype=np.uint64))
    assert e_verts.shape == (0, MAX_BOUNDARY_VERTS, 2) and e_counts.shape == (0,)
    grid_lng, _ = cell_centers(np.array([[good, good]], dtype=np.uint64))
    assert grid_lng.shape == (1, 2)
    with pytest.raises(TypeError):
        cells_to_boundaries(np.array([1.5]))
