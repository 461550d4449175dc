"""Footprints -> one extruded mesh (twin.mesh): exact roofs, outward walls, bad input, every input format."""

from __future__ import annotations

import doctest
import json
import struct
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyproj
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.errors import LayerDataError, TwinWarning
from twin.geo.frame import Frame
from twin.mesh import _parallel, earcut, extrude, footprints, project, validity
from twin.mesh.earcut import polygon_areas, triangle_areas, triangulate
from twin.mesh.extrude import BUILDING_ID, extrude_footprints, mesh_nbytes
from twin.mesh.footprints import from_shapely, normalize

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
UTM = "EPSG:32651"
E0, N0 = 354_800.0, 3_456_400.0  # a point in Shanghai, UTM 51N
LOCAL = Frame.from_crs(UTM, 121.47, 31.23)


def suzhou_path() -> Path:
    path = SHARED_DATA / "suzhou_buildings.geojson"
    if not path.exists():
        pytest.fail(f"real sample data {path} is missing: clone the project with shared/ beside it (see shared/data/SOURCES.md)")
    return path


@pytest.fixture(scope="module")
def suzhou() -> gpd.GeoDataFrame:
    return gpd.read_file(suzhou_path())


# -- helpers ---------------------------------------------------------------------------------------
def stat(mesh, name: str) -> int:
    return int(mesh.field_data[name][0])


def triangles(mesh) -> tuple[np.ndarray, np.ndarray]:
    """The mesh's strips as plain triangles (VTK's own decomposition) and each triangle's building_id."""
    tri = mesh.triangulate()
    sizes = np.diff(np.asarray(mesh.GetStrips().GetOffsetsArray())) if mesh.n_cells else np.zeros(0, np.int64)
    assert tri.n_points == mesh.n_points and tri.n_cells == (sizes - 2).sum() and (tri.n_cells == 0 or tri.is_all_triangles)
    return np.asarray(tri.GetPolys().GetConnectivityArray()).reshape(-1, 3), np.asarray(tri.cell_data[BUILDING_ID])


def tri_conn(mesh) -> np.ndarray:
    return triangles(mesh)[0]


def tri_bid(mesh) -> np.ndarray:
    return triangles(mesh)[1]


def check_contract(x: np.ndarray, y: np.ndarray, ring_off: np.ndarray, poly_off: np.ndarray, res: earcut.Triangulation, rel: float = 1e-6) -> None:
    """Areas sum to the footprint area (holes subtracted) and every triangle lies inside it."""
    n_poly = poly_off.size - 1
    area = polygon_areas(x, y, ring_off, poly_off)
    ta = triangle_areas(x, y, res.triangles)
    t = res.triangles.astype(np.int64)
    edge2 = np.max([(x[t[:, i]] - x[t[:, j]]) ** 2 + (y[t[:, i]] - y[t[:, j]]) ** 2 for i, j in ((0, 1), (1, 2), (2, 0))], axis=0)
    assert (ta > -1e-12 * edge2).all(), "a roof triangle is clockwise"  # slivers from near-collinear vertices may round to 0
    poly_of_tri = np.repeat(np.arange(n_poly), np.diff(res.tri_off))
    sums = np.bincount(poly_of_tri, weights=ta, minlength=n_poly)
    np.testing.assert_array_less(np.abs(sums - area), rel * area + 1e-300)
    polys = np.empty(n_poly, dtype=object)
    for p in range(n_poly):
        rings = [np.column_stack([x[ring_off[r] : ring_off[r + 1]], y[ring_off[r] : ring_off[r + 1]]]) for r in range(poly_off[p], poly_off[p + 1])]
        polys[p] = shapely.Polygon(rings[0], rings[1:])
    tri_geoms = shapely.polygons(np.stack([np.column_stack([x[t[:, k]], y[t[:, k]]]) for k in (0, 1, 2, 0)], axis=1))
    owner = polys[poly_of_tri]
    cx, cy = x[t].mean(axis=1), y[t].mean(axis=1)
    assert shapely.contains_xy(owner, cx, cy).all(), "a triangle centroid lies outside its footprint"
    inside = shapely.area(shapely.intersection(tri_geoms, owner))
    np.testing.assert_array_less(ta - inside, 1e-6 * ta + 1e-9)


def flat_local(geoms: np.ndarray, crs: str, frame: Frame):
    """The normalized flat arrays of some geometries, projected (float64) into the frame."""
    flat = normalize(from_shapely(np.asarray(geoms, dtype=object))).flat
    px, py = frame.project(flat.x, flat.y, crs)
    return flat, np.asarray(px), np.asarray(py)


def check_mesh(mesh, gdf: gpd.GeoDataFrame, frame: Frame, heights: np.ndarray, bases: np.ndarray | None = None) -> None:
    """Strips: a 3-id strip per roof triangle, one wall strip per ring (2 triangles per edge);
    outward normals, closed solid volume, building_id and heights per row."""
    bases = np.zeros(len(gdf)) if bases is None else bases
    flat, px, py = flat_local(gdf.geometry.values, gdf.crs.to_string(), frame)
    nv = flat.x.size
    assert mesh.n_points == 2 * nv
    pts = np.asarray(mesh.points, dtype=np.float64)
    assert mesh.points.dtype == np.float32
    check_strips(mesh, flat)
    conn, bid = triangles(mesh)
    cell_bid = np.asarray(mesh.cell_data[BUILDING_ID])
    sizes = np.diff(np.asarray(mesh.GetStrips().GetOffsetsArray()))
    assert bid.dtype == np.int32 and conn.shape[0] == bid.size
    np.testing.assert_array_equal(bid, np.repeat(cell_bid, sizes - 2))  # triangulate() carries every cell's id
    assert stat(mesh, "n_triangles") == conn.shape[0]
    # top points reproduce the float64 footprint, at the roof height
    np.testing.assert_allclose(pts[:nv, 0], px, atol=1e-3)
    np.testing.assert_allclose(pts[:nv, 1], py, atol=1e-3)
    p0, p1, p2 = pts[conn[:, 0]], pts[conn[:, 1]], pts[conn[:, 2]]
    normal = np.cross(p1 - p0, p2 - p0)
    is_roof = (conn < nv).all(axis=1)
    edge2 = np.max([((a - b)[:, :2] ** 2).sum(axis=1) for a, b in ((p0, p1), (p1, p2), (p2, p0))], axis=0)
    # roofs face up (a sliver from near-collinear vertices may flip within float32 rounding)
    assert (normal[is_roof, 2] > -1e-5 * edge2[is_roof]).all(), "roof normals must face up"
    assert normal[is_roof, 2].sum() > 0
    np.testing.assert_allclose(normal[~is_roof, 2], 0, atol=1e-3 * np.abs(normal[~is_roof, :2]).max(initial=1))
    edges = np.diff(flat.ring_off[flat.poly_off[flat.geom_off]])  # distinct vertices = ring edges, per row
    for row in range(len(gdf)):
        mine = bid == row
        if edges[row] == 0:
            assert not mine.any()
            continue
        walls = mine & ~is_roof
        assert walls.sum() == 2 * edges[row], f"row {row}: walls must be 2 per ring edge"
        rings = np.diff(flat.poly_off[flat.geom_off])[row]
        assert ((cell_bid == row) & (sizes > 3)).sum() == rings, f"row {row}: one wall strip per ring"
        zt = pts[conn[mine & is_roof]][..., 2]
        np.testing.assert_allclose(zt, heights[row], atol=1e-4)
        zw = pts[conn[walls]][..., 2]
        np.testing.assert_allclose([zw.min(), zw.max()], [bases[row], heights[row]], atol=1e-4)
        # outward: a step along each wall normal leaves the footprint, a step back enters it
        foot = shapely.transform(gdf.geometry.values[row], lambda c: np.column_stack(frame.project(c[:, 0], c[:, 1], gdf.crs.to_string())))
        size = np.sqrt(shapely.area(foot))
        n_xy = normal[walls, :2] / np.linalg.norm(normal[walls, :2], axis=1, keepdims=True)
        c_xy = (p0[walls] + p1[walls] + p2[walls])[:, :2] / 3
        step = 2e-3 * size
        assert not shapely.contains_xy(foot, *(c_xy + step * n_xy).T).any(), f"row {row}: a wall faces inward"
        assert shapely.contains_xy(foot, *(c_xy - step * n_xy).T).all(), f"row {row}: a wall faces inward"
        # closed solid (roof + walls + a virtual floor): signed volume = area x (height - base)
        roof = conn[mine & is_roof]
        floor = roof[:, ::-1] + nv
        solid = np.concatenate([conn[mine], floor])
        a, b, c = pts[solid[:, 0]], pts[solid[:, 1]], pts[solid[:, 2]]
        a = a - pts[solid[0, 0]]
        b = b - pts[solid[0, 0]]
        c = c - pts[solid[0, 0]]
        vol = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6
        np.testing.assert_allclose(vol, shapely.area(foot) * (heights[row] - bases[row]), rtol=2e-4)


def check_strips(mesh, flat) -> None:
    """Cell layout: only triangle strips (int32 offsets and connectivity); first each roof triangle
    (3 top vertices), then ring r's wall: top/bottom of each vertex around the ring and back to the
    first pair (2 n + 2 ids), with the ring's row as building_id."""
    nv = flat.x.size
    n_rings = flat.ring_off.size - 1
    assert mesh.GetNumberOfStrips() == mesh.n_cells and mesh.GetNumberOfPolys() == mesh.GetNumberOfLines() == mesh.GetNumberOfVerts() == 0
    strips = mesh.GetStrips()
    assert not strips.IsStorage64Bit() and strips.GetConnectivityArray().GetDataTypeSize() == 4
    off = np.asarray(strips.GetOffsetsArray()).astype(np.int64)
    ids = np.asarray(strips.GetConnectivityArray()).astype(np.int64)
    bid = np.asarray(mesh.cell_data[BUILDING_ID])
    assert bid.dtype == np.int32 and bid.size == mesh.n_cells
    n_roof = mesh.n_cells - n_rings
    assert (np.diff(off[: n_roof + 1]) == 3).all() and (ids[: 3 * n_roof] < nv).all()
    ring_len = np.diff(flat.ring_off)
    np.testing.assert_array_equal(np.diff(off[n_roof:]), 2 * ring_len + 2)
    ring_row = np.repeat(np.arange(flat.n_rows), np.diff(flat.poly_off[flat.geom_off]))
    np.testing.assert_array_equal(bid[n_roof:], ring_row)
    for r in range(n_rings):
        w = ids[off[n_roof + r] : off[n_roof + r + 1]]
        top, bottom = w[0::2], w[1::2]
        np.testing.assert_array_equal(bottom, top + nv)
        assert top[0] == top[-1] and sorted(top[:-1]) == list(range(flat.ring_off[r], flat.ring_off[r + 1]))


# -- polygons for property tests --------------------------------------------------------------------
@st.composite
def star_footprint(draw: st.DrawFn) -> shapely.Polygon:
    """A concave star-shaped polygon (random radii) with 0-3 holes inside its inner disc."""
    n = draw(st.integers(3, 120))
    radii = np.array(draw(st.lists(st.floats(0.35, 1.0), min_size=n, max_size=n)))
    jitter = np.array(draw(st.lists(st.floats(-0.3, 0.3), min_size=n, max_size=n)))
    scale = draw(st.floats(4.0, 60.0))
    ang = 2 * np.pi / n * (np.arange(n) + jitter) + draw(st.floats(0, 6.3))
    shell = np.column_stack([radii * np.cos(ang), radii * np.sin(ang)])
    gaps = np.diff(np.concatenate([ang, ang[:1] + 2 * np.pi]))
    inner = radii.min() * np.cos(min(gaps.max(), 3.0) / 2)
    holes = []
    k = draw(st.integers(0, 3)) if inner > 0.1 else 0
    for j in range(k):
        m = draw(st.integers(3, 7))
        hr = (0.45 * inner if k == 1 else 0.4 * inner * min(np.sin(np.pi / k), 1.0)) * draw(st.floats(0.3, 1.0))
        hc = np.zeros(2) if k == 1 else 0.5 * inner * np.array([np.cos(2 * np.pi * j / k), np.sin(2 * np.pi * j / k)])
        hj = np.array(draw(st.lists(st.floats(-0.3, 0.3), min_size=m, max_size=m)))
        ha = 2 * np.pi / m * (np.arange(m) + hj)
        hole = hc + hr * np.column_stack([np.cos(ha), np.sin(ha)])
        holes.append(hole[::-1] if draw(st.booleans()) else hole)
    if draw(st.booleans()):
        shell = shell[::-1]
    return shapely.Polygon(shell * scale, [h * scale for h in holes])


@st.composite
def grid_footprint(draw: st.DrawFn) -> shapely.Polygon | shapely.MultiPolygon:
    """Rectilinear, not star-shaped: a union of grid cells (courtyards, touching corners, several parts)."""
    cells = draw(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=30, unique=True))
    size = draw(st.floats(2.0, 15.0))
    boxes = [shapely.box(i * size, j * size, (i + 1) * size, (j + 1) * size) for i, j in cells]
    return shapely.normalize(shapely.union_all(boxes))


def gdf_local(geoms: list, heights: np.ndarray | None = None) -> gpd.GeoDataFrame:
    """Footprints given in metres around the UTM origin of LOCAL."""
    moved = [shapely.affinity.translate(g, E0 + 150 * (k % 5), N0 + 150 * (k // 5)) for k, g in enumerate(geoms)]
    data = {"height": heights if heights is not None else np.linspace(5, 50, len(geoms))}
    return gpd.GeoDataFrame(data, geometry=moved, crs=UTM)


FOOTPRINT = st.one_of(star_footprint(), grid_footprint())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FOOTPRINT, min_size=1, max_size=6))
def test_property_roofs_exact_walls_outward(geoms: list) -> None:
    gdf = gdf_local(geoms)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)  # valid input: nothing to repair
        mesh = extrude_footprints(gdf, frame=LOCAL)
    assert stat(mesh, "n_buildings") == len(gdf) and stat(mesh, "n_roof_inexact") == 0
    # exactness on float64 coordinates (the kernel's own input), with and without the fan shortcut
    flat, px, py = flat_local(gdf.geometry.values, UTM, LOCAL)
    for fan in (True, False):
        check_contract(px, py, flat.ring_off, flat.poly_off, triangulate(px, py, flat.ring_off, flat.poly_off, fan=fan))
    check_mesh(mesh, gdf, LOCAL, gdf["height"].to_numpy())


COORD = st.tuples(st.integers(0, 8).map(float), st.integers(0, 8).map(float)) | st.tuples(st.floats(0, 8), st.floats(0, 8))


@settings(max_examples=80, deadline=None)
@given(
    st.lists(COORD, min_size=3, max_size=9),
    st.lists(COORD, min_size=3, max_size=5),
    st.lists(st.tuples(st.floats(0.2, 1.0), st.floats(-0.6, 0.6)), min_size=3, max_size=12),
)
def test_property_validity_precheck_is_conservative(shell: list, hole: list, radial: list) -> None:
    """Every geometry GEOS calls invalid is flagged by the numba pre-check (it may flag more).

    Random rings (grid coordinates make touching and collinear cases common), rings with holes,
    overlapping MultiPolygon parts, and nearly star-shaped rings (angles that may go backwards)
    for the O(n) star-shaped shortcut."""
    n = len(radial)
    ang = np.array([2 * np.pi / n * (k + j) for k, (_, j) in enumerate(radial)])
    star = np.column_stack([[r for r, _ in radial] * np.cos(ang), [r for r, _ in radial] * np.sin(ang)]) * 4 + 4
    geoms = np.array(
        [
            shapely.Polygon(shell),
            shapely.Polygon(shell, [hole]),
            shapely.Polygon(star),
            shapely.Polygon(star, [hole]),
            shapely.MultiPolygon([shapely.box(0, 0, 4, 4), shapely.Polygon(shell)]),
            shapely.MultiPolygon([shapely.Polygon(star), shapely.Polygon(hole)]),
        ],
        dtype=object,
    )
    norm = normalize(from_shapely(geoms))
    suspect = validity.suspect_rows(norm.flat) | norm.degenerate
    invalid = ~shapely.is_valid(geoms)
    assert not (invalid & ~suspect).any(), f"rows {np.flatnonzero(invalid & ~suspect)} are invalid but passed"


def test_normalize_takes_the_one_pass_path_for_clean_rings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Closed rings without duplicates go through ``_norm_fast`` alone, with the two-pass result."""
    geoms = np.array(
        [
            shapely.Polygon([(0, 0), (4, 0), (4, 3), (2, 5), (0, 3)]),
            shapely.Polygon([(0, 0), (9, 0), (9, 9), (0, 9)], [[(3, 3), (3, 6), (6, 6), (6, 3)]]),
            shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(2, 0, 3, 1)]),
            None,
        ],
        dtype=object,
    )
    raw = from_shapely(geoms)

    def all_bad(i0: int, i1: int, *args: np.ndarray) -> None:
        args[-1][i0:i1] = True

    with monkeypatch.context() as m:
        m.setattr(footprints, "_norm_fast", all_bad)
        slow = normalize(raw)
    with monkeypatch.context() as m:
        m.setattr(footprints, "_norm_count", None)  # the two-pass path would fail
        fast = normalize(raw)
    for name in ("x", "y", "ring_off", "poly_off", "geom_off"):
        np.testing.assert_array_equal(getattr(fast.flat, name), getattr(slow.flat, name))
    for name in ("unclosed", "duplicates", "degenerate", "nonfinite", "null"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
    # a last vertex repeating the first (before the closing one) is a duplicate, found by the two passes
    dup = normalize(from_shapely(np.array([shapely.Polygon([(0, 0), (1, 0), (1, 1), (0, 1), (0, 0), (0, 0)])], dtype=object)))
    assert dup.duplicates.tolist() == [True] and dup.flat.x.size == 4


def test_large_polygons_use_z_order_hashing_and_stay_exact() -> None:
    rng = np.random.default_rng(3)
    geoms = []
    for n in (81, 300, 2000):
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = rng.uniform(60, 100, n)
        holes = [shapely.Point(cx, cy).buffer(5, quad_segs=8).exterior.coords for cx, cy in [(-20, 0), (20, 0), (0, 25)]]
        geoms.append(shapely.Polygon(np.column_stack([r * np.cos(ang), r * np.sin(ang)]), holes))
    flat, px, py = flat_local(gdf_local(geoms).geometry.values, UTM, LOCAL)
    res = triangulate(px, py, flat.ring_off, flat.poly_off, fan=False)
    assert res.n_fallback == 0
    check_contract(px, py, flat.ring_off, flat.poly_off, res)


def test_failed_roof_check_goes_to_the_fallback() -> None:
    """An ear-clipped roof that fails the area check is redone (here: a bow-tie, which has no exact answer)."""
    x = np.array([0.0, 1.0, 1.0, 0.0])
    y = np.array([0.0, 1.0, 0.0, 1.0])
    res = triangulate(x, y, np.array([0, 4]), np.array([0, 1]), fan=False)
    assert res.n_fallback == 1 and res.fallback_polygons.tolist() == [0]


def test_fallback_triangulation_keeps_the_contract() -> None:
    poly = shapely.Polygon([(0, 0), (10, 0), (10, 10), (5, 4), (0, 10)], [[(2, 1), (3, 1), (3, 2), (2, 2)]])
    flat, px, py = flat_local(gdf_local([poly]).geometry.values, UTM, LOCAL)
    tris = earcut._fallback_one(px, py, flat.ring_off, 0, 2)
    assert tris is not None
    res = earcut.Triangulation(tris.astype(np.int32), np.array([0, len(tris)]), 1, 0, np.array([0]), np.zeros(0, np.int64))
    check_contract(px, py, flat.ring_off, flat.poly_off, res)


def test_roofs_that_drop_collinear_vertices_leave_no_empty_cells() -> None:
    """Ear clipping drops exactly collinear vertices, so such a roof has fewer triangles than slots."""
    exact = Frame(pyproj.CRS.from_user_input(UTM), (E0, N0, 0.0))  # integer metres stay exact
    shell = [(1, 4), (1, 5), (2, 5), (2, 6), (3, 6), (4, 6), (4, 5), (4, 4), (4, 3), (3, 3), (2, 3), (1, 3)]
    hole = [(2, 4), (3, 4), (3, 5), (2, 5)]  # touches the shell at (2, 5)
    geoms = [shapely.box(0, 0, 4, 4), shapely.affinity.scale(shapely.Polygon(shell, [hole]), 3, 3, origin=(0, 0)), shapely.box(0, 0, 5, 4)]
    gdf = gdf_local(geoms)
    mesh = extrude_footprints(gdf, frame=exact)
    conn, bid = triangles(mesh)
    roof = (conn < mesh.n_points // 2).all(axis=1)
    assert (roof & (bid == 1)).sum() < 16 + 2 * 1 - 2  # fewer than vertices + 2 x holes - 2
    assert ((~roof) & (bid == 1)).sum() == 2 * 16
    flat, px, py = flat_local(gdf.geometry.values, UTM, exact)
    check_contract(px, py, flat.ring_off, flat.poly_off, triangulate(px, py, flat.ring_off, flat.poly_off))
    check_mesh(mesh, gdf, exact, gdf["height"].to_numpy())


def test_hole_touching_shell_is_valid_and_exact() -> None:
    """GEOS-valid polygons whose hole touches the shell at a vertex (a hard case for ear clipping)."""
    touching = shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(0, 5), (4, 3), (4, 7)]])
    assert shapely.is_valid(touching)
    gdf = gdf_local([touching, shapely.box(0, 0, 3, 3)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        mesh = extrude_footprints(gdf, frame=LOCAL)
    flat, px, py = flat_local(gdf.geometry.values, UTM, LOCAL)
    check_contract(px, py, flat.ring_off, flat.poly_off, triangulate(px, py, flat.ring_off, flat.poly_off))
    check_mesh(mesh, gdf, LOCAL, gdf["height"].to_numpy())


# -- real data --------------------------------------------------------------------------------------------
def test_suzhou_heights_exactness_and_size(suzhou: gpd.GeoDataFrame) -> None:
    assert len(suzhou) == 3076
    mesh = extrude_footprints(suzhou)
    frame = Frame.of(mesh)
    assert stat(mesh, "n_buildings") == 3076 and stat(mesh, "n_skipped") == 0 and stat(mesh, "n_height_fallback") == 0
    flat, px, py = flat_local(suzhou.geometry.values, "EPSG:4326", frame)
    nv = flat.x.size
    # roofs at the `height` column; float32 points + origin reproduce float64 projected positions < 1 cm
    pts = np.asarray(mesh.points, dtype=np.float64) + np.asarray(frame.origin)
    ox, oy = px + frame.origin[0], py + frame.origin[1]
    assert max(np.abs(pts[:nv, 0] - ox).max(), np.abs(pts[:nv, 1] - oy).max(), np.abs(pts[nv:, 0] - ox).max()) < 0.01
    row_of_vertex = np.repeat(np.arange(len(suzhou)), np.diff(flat.ring_off[flat.poly_off[flat.geom_off]]))
    np.testing.assert_allclose(pts[:nv, 2], suzhou["height"].to_numpy()[row_of_vertex], atol=1e-4)
    np.testing.assert_allclose(pts[nv:, 2], 0.0)
    # exact roofs for every real building (float64)
    check_contract(px, py, flat.ring_off, flat.poly_off, triangulate(px, py, flat.ring_off, flat.poly_off))
    # per-building areas from the float32 mesh too
    conn, bid = triangles(mesh)
    roof = (conn < nv).all(axis=1)
    a = triangle_areas(np.asarray(mesh.points[:, 0], np.float64), np.asarray(mesh.points[:, 1], np.float64), conn[roof])
    per_building = np.bincount(bid[roof], weights=a, minlength=len(suzhou))
    foot = shapely.area(shapely.transform(suzhou.geometry.values, lambda c: np.column_stack(frame.project(c[:, 0], c[:, 1]))))
    np.testing.assert_allclose(per_building, foot, rtol=1e-4)
    assert mesh_nbytes(mesh) / len(suzhou) <= 500
    check_strips(mesh, flat)  # only strips, int32 offsets and connectivity
    strips = mesh.GetStrips()
    legacy = __import__("vtkmodules.vtkCommonCore", fromlist=["vtkIdTypeArray"]).vtkIdTypeArray()
    strips.ExportLegacyFormat(legacy)  # what trame/vtk.js serialisers read (verts, lines, polys, strips)
    assert legacy.GetNumberOfValues() == strips.GetNumberOfConnectivityIds() + mesh.n_cells


def test_suzhou_floors_times_floor_height(suzhou: gpd.GeoDataFrame) -> None:
    mesh = extrude_footprints(suzhou, height=None, floors="Floor", floor_height=3.0)
    conn, bid = triangles(mesh)
    top = np.zeros(len(suzhou))
    np.maximum.at(top, bid, mesh.points[conn[:, 0], 2])
    np.testing.assert_allclose(top, suzhou["Floor"].to_numpy() * 3.0, atol=1e-4)
    ids = np.unique(bid)
    assert np.array_equal(ids, np.arange(len(suzhou)))


def test_suzhou_mesh_checks_on_a_sample(suzhou: gpd.GeoDataFrame) -> None:
    sample = suzhou.iloc[::97].reset_index(drop=True)
    frame = Frame.auto(120.607, 31.300)
    mesh = extrude_footprints(sample, frame=frame)
    check_mesh(mesh, sample, frame, sample["height"].to_numpy())


# -- bad input ---------------------------------------------------------------------------------------------
def lonlat(wkt: str | None) -> shapely.Geometry | None:
    """A WKT in 'metres' placed near the Bund in lon/lat (1 unit = ~10 m)."""
    if wkt is None:
        return None
    g = shapely.from_wkt(wkt)
    return shapely.transform(g, lambda c: np.column_stack([121.47 + c[:, 0] * 1e-4, 31.23 + c[:, 1] * 1e-4]))


def test_broken_geometries_are_repaired_or_skipped_and_reported() -> None:
    wkts = [
        "POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))",  # 0 valid
        "POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))",  # 1 bow-tie
        "POLYGON((0 0, 1 0, 1 0, 1 1, 0 1, 0 1, 0 0))",  # 2 duplicate points
        "POLYGON EMPTY",  # 3 empty
        None,  # 4 missing
        "POLYGON((0 0, 2 0, 2 2, 0 2, 0 0), (3 3, 4 3, 4 4, 3 4, 3 3))",  # 5 hole outside its shell
        "POLYGON((0 0, 1 0, 2 0, 0 0))",  # 6 zero area
        "POLYGON((0 0, 4 0, 4 4, 2 4, 2 6, 2 4, 0 4, 0 0))",  # 7 spike
        "MULTIPOLYGON(((0 0, 2 0, 2 2, 0 2, 0 0)), ((1 1, 3 1, 3 3, 1 3, 1 1)))",  # 8 overlapping parts
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # shapely notices the NaN
        geoms = [lonlat(w) for w in wkts] + [shapely.Polygon([(121.47, 31.23), (121.4701, 31.23), (np.nan, 31.2301)])]  # 9 NaN
    gdf = gpd.GeoDataFrame({"height": np.arange(1.0, 11.0)}, geometry=geoms, crs="EPSG:4326")
    with pytest.warns(TwinWarning) as rec:
        mesh = extrude_footprints(gdf)
    msgs = " ".join(str(w.message) for w in rec)
    assert len(rec) == 1
    assert "4 of 10 rows skipped" in msgs and "rows [3, 4, 6, 9]" in msgs
    assert "make_valid: 4 rows [1, 5, 7, 8]" in msgs and "duplicate vertices removed: 1 rows [2]" in msgs
    assert stat(mesh, "n_skipped") == 4 and stat(mesh, "n_repaired") == 5 and stat(mesh, "n_buildings") == 6
    bid = np.asarray(mesh.cell_data[BUILDING_ID])
    assert set(np.unique(bid).tolist()) == {0, 1, 2, 5, 7, 8}
    # repaired roofs have the area of the repaired footprint
    frame = Frame.of(mesh)
    conn, bid = triangles(mesh)
    nv = mesh.n_points // 2
    roof = (conn < nv).all(axis=1)
    p = np.asarray(mesh.points, np.float64)
    area = np.bincount(bid[roof], weights=triangle_areas(p[:, 0], p[:, 1], conn[roof]), minlength=10)
    for row in (1, 5, 7, 8):
        fixed = shapely.make_valid(gdf.geometry.values[row])
        fixed = shapely.transform(fixed, lambda c: np.column_stack(frame.project(c[:, 0], c[:, 1])))
        np.testing.assert_allclose(area[row], shapely.area(fixed), rtol=1e-4)


def _unclosed_geoarrow_table() -> pa.Table:
    ring = [{"x": 121.47, "y": 31.23}, {"x": 121.4702, "y": 31.23}, {"x": 121.4702, "y": 31.2302}, {"x": 121.47, "y": 31.2302}]
    closed = ring + ring[:1]
    coord = pa.struct([pa.field("x", pa.float64(), False), pa.field("y", pa.float64(), False)])
    geom = pa.array([[ring], [[{"x": c["x"] + 0.001, "y": c["y"]} for c in closed]]], type=pa.list_(pa.list_(coord)))
    return pa.table({"height": [12.0, 15.0], "geometry": geom})


def _write_geoparquet(table: pa.Table, path: Path, encoding: str) -> None:
    meta = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": {"encoding": encoding, "geometry_types": []}}}
    table = table.replace_schema_metadata({b"geo": json.dumps(meta).encode()})
    pq.write_table(table, path)


def _wkb_polygon(rings: list[list[tuple[float, float]]]) -> bytes:
    out = struct.pack("<BII", 1, 3, len(rings))
    for ring in rings:
        out += struct.pack("<I", len(ring)) + b"".join(struct.pack("<dd", *c) for c in ring)
    return out


def test_unclosed_rings_are_closed_and_reported(tmp_path: Path) -> None:
    ring = [(121.47, 31.23), (121.4702, 31.23), (121.4702, 31.2302), (121.47, 31.2302)]
    # GeoArrow GeoParquet
    ga = tmp_path / "unclosed_geoarrow.parquet"
    _write_geoparquet(_unclosed_geoarrow_table(), ga, "polygon")
    # WKB GeoParquet
    wk = tmp_path / "unclosed_wkb.parquet"
    _write_geoparquet(pa.table({"height": [12.0, 15.0], "geometry": pa.array([_wkb_polygon([ring]), _wkb_polygon([[(x + 0.001, y) for x, y in ring + ring[:1]]])], pa.binary())}), wk, "WKB")
    # GeoJSON written by hand (GDAL passes unclosed rings through)
    gj = tmp_path / "unclosed.geojson"
    feats = [
        {"type": "Feature", "properties": {"height": 12.0}, "geometry": {"type": "Polygon", "coordinates": [[list(c) for c in ring]]}},
        {"type": "Feature", "properties": {"height": 15.0}, "geometry": {"type": "Polygon", "coordinates": [[[x + 0.001, y] for x, y in ring + ring[:1]]]}},
    ]
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    meshes = []
    for path in (ga, wk, gj):
        with pytest.warns(TwinWarning, match=r"unclosed rings closed: 1 rows \[0\]"):
            mesh = extrude_footprints(path, frame=Frame.auto(121.47, 31.23))
        assert stat(mesh, "n_repaired") == 1 and stat(mesh, "n_buildings") == 2
        assert mesh.n_cells == 2 * (2 + 1)  # per building: 2 roof triangles, 1 wall strip
        assert mesh.triangulate().n_cells == 2 * (2 + 8)  # 2 roof + 2 x 4 wall triangles
        meshes.append(mesh)
    for other in meshes[1:]:
        np.testing.assert_array_equal(other.points, meshes[0].points)
        np.testing.assert_array_equal(tri_conn(other), tri_conn(meshes[0]))


def test_geoarrow_interleaved_and_multipolygon_encodings(tmp_path: Path) -> None:
    ring = [[121.47, 31.23], [121.4702, 31.23], [121.4702, 31.2302], [121.47, 31.2302], [121.47, 31.23]]
    hole = [[121.4705, 31.2305], [121.4705, 31.2306], [121.4706, 31.2306], [121.4706, 31.2305], [121.4705, 31.2305]]
    outer = [[121.4704, 31.2304], [121.4708, 31.2304], [121.4708, 31.2308], [121.4704, 31.2308], [121.4704, 31.2304]]
    xy = pa.list_(pa.float64(), 2)
    inter = tmp_path / "interleaved.parquet"
    _write_geoparquet(pa.table({"height": [5.0, 7.0], "geometry": pa.array([[ring], [outer, hole]], type=pa.list_(pa.list_(xy)))}), inter, "polygon")
    multi = tmp_path / "multi.parquet"
    _write_geoparquet(pa.table({"height": [5.0, 7.0], "geometry": pa.array([[[ring]], [[outer, hole]]], type=pa.list_(pa.list_(pa.list_(xy))))}), multi, "multipolygon")
    ref = gpd.GeoDataFrame(
        {"height": [5.0, 7.0]}, geometry=[shapely.Polygon(ring), shapely.Polygon(outer, [hole])], crs="OGC:CRS84"
    )
    frame = Frame.auto(121.47, 31.23)
    want = extrude_footprints(ref, frame=frame)
    for path in (inter, multi):
        got = extrude_footprints(path, frame=frame)
        np.testing.assert_array_equal(got.points, want.points)
        np.testing.assert_array_equal(tri_conn(got), tri_conn(want))
    assert want.n_cells == (2 + 1) + (8 + 2)  # roof triangles + one wall strip per ring
    assert want.triangulate().n_cells == (2 + 8) + (8 + 2 * 8)


def test_bad_heights_fall_back_and_are_counted() -> None:
    geoms = [lonlat(f"POLYGON(({k * 3} 0, {k * 3 + 2} 0, {k * 3 + 2} 2, {k * 3} 2, {k * 3} 0))") for k in range(6)]
    gdf = gpd.GeoDataFrame(
        {"height": [10.0, np.nan, -5.0, 5000.0, 20.0, 0.0], "levels": [1, 2, np.nan, 3, 4, 400]}, geometry=geoms, crs=4326
    )
    with pytest.warns(TwinWarning, match=r"4 rows have no usable height.*rows \[1, 2, 3, 5\]"):
        mesh = extrude_footprints(gdf, floors="levels", default_height=7.0)
    assert stat(mesh, "n_height_fallback") == 4
    conn, bid = triangles(mesh)
    top = np.zeros(6)
    np.maximum.at(top, bid, mesh.points[conn[:, 0], 2])
    np.testing.assert_allclose(top, [10.0, 6.0, 7.0, 9.0, 20.0, 7.0])  # 400 floors x 3 m > max_height


def test_base_column_lifts_walls(tmp_path: Path) -> None:
    geoms = [shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10), shapely.box(40, 0, 50, 10), shapely.box(60, 0, 70, 10)]
    gdf = gdf_local(geoms, heights=np.array([20.0, 20.0, 20.0, 20.0]))
    gdf["min_height"] = [0.0, 5.0, np.nan, 30.0]
    with pytest.warns(TwinWarning, match=r"base 'min_height'.*rows \[3\]"):
        mesh = extrude_footprints(gdf, base="min_height", frame=LOCAL)
    assert stat(mesh, "n_base_fallback") == 1
    check_mesh(mesh, gdf, LOCAL, np.full(4, 20.0), bases=np.array([0.0, 5.0, 0.0, 0.0]))


def test_empty_input_gives_an_empty_mesh(tmp_path: Path) -> None:
    empty = gpd.GeoDataFrame({"height": []}, geometry=[], crs=4326)
    mesh = extrude_footprints(empty)
    assert mesh.n_points == 0 and mesh.n_cells == 0 and stat(mesh, "n_buildings") == 0 and stat(mesh, "n_triangles") == 0
    path = tmp_path / "empty.parquet"
    empty.to_parquet(path)  # WKB (geopandas cannot write an empty GeoArrow column)
    mesh = extrude_footprints(path, frame=LOCAL)
    assert mesh.n_cells == 0 and Frame.of(mesh) == LOCAL
    ga = tmp_path / "empty_geoarrow.parquet"
    _write_geoparquet(_unclosed_geoarrow_table().slice(0, 0), ga, "polygon")
    assert extrude_footprints(ga).n_cells == 0


def test_points_and_lines_are_a_layer_error(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame(
        geometry=[lonlat("POLYGON((0 0, 1 0, 1 1, 0 0))"), shapely.Point(121.47, 31.23), shapely.LineString([(121.47, 31.23), (121.48, 31.24)])],
        crs=4326,
    )
    with pytest.raises(LayerDataError, match=r"2 of 3 rows are LineString, Point: rows \[1, 2\]"):
        extrude_footprints(gdf)
    pts = gpd.GeoDataFrame(geometry=[shapely.Point(121.47, 31.23)] * 3, crs=4326)
    path = tmp_path / "points.parquet"
    pts.to_parquet(path, geometry_encoding="geoarrow")
    with pytest.raises(LayerDataError, match="Point"):
        extrude_footprints(path)


def test_column_names(suzhou: gpd.GeoDataFrame) -> None:
    with pytest.raises(LayerDataError, match=r"no column 'Hoehe' for height; available columns: Id, Floor, height, x, y"):
        extrude_footprints(suzhou.iloc[:5], height="Hoehe")
    with pytest.raises(LayerDataError, match="no column 'min_h' for base"):
        extrude_footprints(suzhou.iloc[:5], base="min_h")
    bare = suzhou.iloc[:5][["geometry"]]
    mesh = extrude_footprints(bare, default_height=12.0)  # no height/floors columns: the default
    assert float(mesh.points[:, 2].max()) == 12.0 and stat(mesh, "n_height_fallback") == 0


# -- input formats ----------------------------------------------------------------------------------------
def test_every_format_gives_the_same_mesh(tmp_path: Path, suzhou: gpd.GeoDataFrame) -> None:
    gdf = suzhou.iloc[:400].copy()
    # add courtyards and a MultiPolygon, so holes and parts go through every reader
    gdf.loc[gdf.index[3], "geometry"] = shapely.Polygon(
        shapely.get_coordinates(gdf.geometry.iloc[3].buffer(2e-4).exterior), [shapely.get_coordinates(gdf.geometry.iloc[3].exterior)[::-1]]
    )
    gdf.loc[gdf.index[4], "geometry"] = shapely.MultiPolygon([gdf.geometry.iloc[4], gdf.geometry.iloc[5]])
    frame = Frame.auto(120.6, 31.3)
    ref = extrude_footprints(gdf, frame=frame)
    paths = {
        "geoarrow": tmp_path / "b_geoarrow.parquet",
        "wkb": tmp_path / "b_wkb.parquet",
        "gpkg": tmp_path / "b.gpkg",
        "geojson": tmp_path / "b.geojson",
    }
    gdf.to_parquet(paths["geoarrow"], geometry_encoding="geoarrow")
    gdf.to_parquet(paths["wkb"])
    gdf.to_file(paths["gpkg"], driver="GPKG")
    gdf.to_file(paths["geojson"], driver="GeoJSON")
    for name, path in paths.items():
        mesh = extrude_footprints(path, frame=frame)
        np.testing.assert_array_equal(tri_conn(mesh), tri_conn(ref), err_msg=name)
        np.testing.assert_array_equal(mesh.cell_data[BUILDING_ID], ref.cell_data[BUILDING_ID], err_msg=name)
        np.testing.assert_allclose(mesh.points, ref.points, atol=1e-3 if name == "geojson" else 0, err_msg=name)
        assert stat(mesh, "n_buildings") == 400
    series = extrude_footprints(gdf.geometry, frame=frame, default_height=10.0)  # a GeoSeries: no columns
    np.testing.assert_array_equal(tri_conn(series), tri_conn(ref))


def test_projected_input_and_large_counts_use_the_fitted_projection() -> None:
    rng = np.random.default_rng(0)
    n = 6000  # > MIN_POINTS_FOR_FIT vertices: the polynomial projection path
    cx, cy = E0 + rng.uniform(-20_000, 20_000, n), N0 + rng.uniform(-20_000, 20_000, n)
    gdf = gpd.GeoDataFrame({"height": rng.uniform(3, 90, n)}, geometry=shapely.box(cx, cy, cx + 12, cy + 8), crs=UTM)
    frame = Frame.auto(121.47, 31.23)  # a different CRS: UTM -> local transverse Mercator
    mesh = extrude_footprints(gdf, frame=frame)
    flat = normalize(from_shapely(gdf.geometry.values)).flat
    assert flat.x.size >= project.MIN_POINTS_FOR_FIT
    px, py = frame.project(flat.x, flat.y, UTM)
    nv = flat.x.size
    assert np.abs(mesh.points[:nv, 0] - px).max() < 0.01 and np.abs(mesh.points[:nv, 1] - py).max() < 0.01
    fx, fy = project.project_xy(frame, flat.x, flat.y, UTM)
    assert max(np.abs(fx - px).max(), np.abs(fy - py).max()) < 1e-6


def test_default_frame_is_centred_on_the_data(suzhou: gpd.GeoDataFrame) -> None:
    mesh = extrude_footprints(suzhou.iloc[:50])
    frame = Frame.of(mesh)
    minx, miny, maxx, maxy = suzhou.iloc[:50].total_bounds
    assert frame == Frame.auto((minx + maxx) / 2, (miny + maxy) / 2)


def test_model_modules_do_not_import_rendering() -> None:
    import subprocess
    import sys

    code = "import sys, twin.mesh.extrude; print(sorted(m for m in sys.modules if m.startswith(('twin.render', 'twin.app', 'trame'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("module", [earcut, footprints, validity, project, extrude, _parallel])
def test_doctests(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# -- strips downstream: VTK filters, rendering, picking, colouring ------------------------------------
def test_strips_behave_in_vtk_filters() -> None:
    """triangulate, compute_normals, extract_cells on the strip mesh: ids carried, walls outward."""
    geoms = [
        shapely.Polygon([(0, 0), (30, 0), (30, 10), (10, 10), (10, 25), (0, 25)]),  # concave L
        shapely.Polygon([(0, 0), (40, 0), (40, 40), (0, 40)], [[(10, 10), (10, 30), (30, 30), (30, 10)]]),  # courtyard
        shapely.MultiPolygon([shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 12)]),
    ]
    gdf = gdf_local(geoms, heights=np.array([20.0, 30.0, 12.0]))
    mesh = extrude_footprints(gdf, frame=LOCAL)
    check_mesh(mesh, gdf, LOCAL, gdf["height"].to_numpy())
    conn, bid = triangles(mesh)
    # VTK's own normals (strips decomposed by vtkPolyDataNormals) agree with the triangles' winding
    normals = mesh.compute_normals(cell_normals=True, point_normals=False, split_vertices=False, consistent_normals=False, auto_orient_normals=False)
    np.testing.assert_array_equal(np.asarray(normals.cell_data[BUILDING_ID]), bid)
    p = np.asarray(mesh.points, np.float64)
    mine = np.cross(p[conn[:, 1]] - p[conn[:, 0]], p[conn[:, 2]] - p[conn[:, 0]])
    mine /= np.linalg.norm(mine, axis=1, keepdims=True)
    assert (np.einsum("ij,ij->i", mine, np.asarray(normals.cell_data["Normals"])) > 0.99).all()
    # one building's cells, extracted by id, are that building: its roofs and one strip per ring
    cells = np.flatnonzero(np.asarray(mesh.cell_data[BUILDING_ID]) == 1)
    part = mesh.extract_cells(cells)
    assert part.n_cells == cells.size and set(np.asarray(part.cell_data[BUILDING_ID]).tolist()) == {1}
    assert (np.asarray(part.celltypes) == 6).all()  # VTK_TRIANGLE_STRIP
    assert part.extract_surface(algorithm="dataset_surface").triangulate().n_cells == (conn[bid == 1]).shape[0] == 8 + 2 * 8


def test_strips_render_pick_and_colour_by_attribute() -> None:
    """Offscreen: each building shows its category colour; picking a roof and a wall finds its row."""
    from vtkmodules.vtkRenderingCore import vtkCellPicker

    import twin
    from twin.plugins import layer_types
    from twin.render.view import SceneView

    lon0, lat0 = 121.47, 31.23
    dx, dy = 1 / (111_320 * np.cos(np.radians(lat0))), 1 / 111_320  # degrees per metre
    local = [
        shapely.Polygon([(0, 0), (30, 0), (30, 10), (10, 10), (10, 25), (0, 25)]),
        shapely.Polygon([(0, 0), (40, 0), (40, 40), (0, 40)], [[(10, 10), (10, 30), (30, 30), (30, 10)]]),
        shapely.box(0, 0, 30, 20),
    ]
    x_at = [-90.0, -20.0, 50.0]
    geoms = [shapely.transform(g, lambda c, x0=x0: np.column_stack([lon0 + (c[:, 0] + x0) * dx, lat0 + c[:, 1] * dy])) for g, x0 in zip(local, x_at)]
    gdf = gpd.GeoDataFrame({"height": [20.0, 30.0, 25.0], "kind": ["a", "b", "c"]}, geometry=geoms, crs="EPSG:4326")
    colours = {"a": "#ff0000", "b": "#00ff00", "c": "#0000ff"}
    scene = twin.Scene(
        "strips", center=(lon0, lat0), cameras={"c": {"target": [lon0, lat0 + 15 * dy], "heading": 0, "pitch": 35, "range": 320}}, camera="c",
        settings={"background": "#000000", "background_top": None, "show_legend": False},
    )
    scene.add(layer_types().get("buildings")("b", data=gdf, color_by="kind", categories=colours))
    view = SceneView(scene, size=(480, 320))
    try:
        view.sync()
        image = view.image()
        mesh = scene.layers[0].visual(scene.frame).mesh  # the drawn (cached) mesh
        strips = np.diff(np.asarray(mesh.GetStrips().GetOffsetsArray()))
        frame = scene.frame
        for row, (g, x0) in enumerate(zip(local, x_at)):
            h = gdf["height"][row]
            roof = shapely.get_coordinates(g.point_on_surface())[0] + (x0, 0)
            wall = ((g.bounds[0] + g.bounds[2]) / 2 + x0, 0.0)  # middle of the south wall, facing the camera
            for (x, y), z, is_wall in ((roof, h, False), (wall, h / 2, True)):
                local_xyz = frame.lonlat_to_local([lon0 + x * dx], [lat0 + y * dy], z)[0]
                view.renderer.SetWorldPoint(*local_xyz, 1.0)
                view.renderer.WorldToDisplay()
                px, py, _ = view.renderer.GetDisplayPoint()
                px, py = round(px), round(py)
                picked = view.pick(px, py)
                assert picked is not None and picked["feature"] == row, (row, is_wall, picked)
                picker = vtkCellPicker()
                picker.SetTolerance(0.0005)
                assert picker.Pick(px, py, 0, view.renderer)
                assert (strips[picker.GetCellId()] > 3) == is_wall  # a wall strip, or a roof triangle
                assert abs(picked["z"] - z) < (2.0 if not is_wall else h / 2)
                r, gch, b = image[image.shape[0] - 1 - py, px].astype(int)
                want = "abc".index(gdf["kind"][row])
                rgb = [r, gch, b]
                assert rgb[want] > 60 and rgb[want] > 2 * max(v for k, v in enumerate(rgb) if k != want), (row, is_wall, rgb)
    finally:
        view.close()
