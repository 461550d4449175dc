"""Extrusion hardening: heights written with units, empty and degenerate rings, non-finite and out-of-range
coordinates, inconsistent arrays at the low-level entry points (cases from ../shared/cases)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.errors import CRSError, LayerDataError, TwinWarning
from twin.geo.frame import Frame, bounds_center
from twin.mesh.earcut import triangle_areas, triangulate
from twin.mesh.extrude import BUILDING_ID, extrude_footprints
from twin.mesh.footprints import FlatGeoms, normalize
from twin.mesh.heights import FOOT, INCH, parse_count, parse_length
from twin.plugins import layer_types

CASES = Path(__file__).resolve().parents[1].parent / "shared" / "cases"


def case(folder: str, name: str) -> Path:
    path = CASES / folder / name
    if not path.exists():
        pytest.fail(f"{path} is missing: clone the project with shared/ beside it (see shared/cases/README.md)")
    return path


def stat(mesh, name: str) -> int:
    return int(mesh.field_data[name][0])


def roofs(mesh, n: int) -> np.ndarray:
    """Roof height of each input row (the highest vertex of its cells; NaN for rows not drawn)."""
    tri = mesh.triangulate()
    conn = np.asarray(tri.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    bid = np.asarray(tri.cell_data[BUILDING_ID])
    top = np.full(n, -np.inf)
    np.maximum.at(top, bid, np.asarray(tri.points)[conn, 2].max(axis=1))
    return np.where(np.isfinite(top), top, np.nan)


def roof_areas(mesh, n: int) -> np.ndarray:
    """Roof area of each input row in m2 (triangles whose three vertices are roof vertices)."""
    tri = mesh.triangulate()
    conn = np.asarray(tri.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    bid = np.asarray(tri.cell_data[BUILDING_ID])
    roof = (conn < mesh.n_points // 2).all(axis=1)
    p = np.asarray(mesh.points, np.float64)
    return np.bincount(bid[roof], weights=triangle_areas(p[:, 0], p[:, 1], conn[roof]), minlength=n)


def boxes(n: int, lon: float = 121.47, lat: float = 31.23) -> list:
    return [shapely.box(lon + k * 3e-4, lat, lon + k * 3e-4 + 2e-4, lat + 2e-4) for k in range(n)]


# -- heights written with units ---------------------------------------------------------------------
def test_osm_heights_with_units_give_the_right_roofs() -> None:
    path = case("height-units", "osm_buildings.geojson")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)  # nothing falls back
        mesh = extrude_footprints(path)
    np.testing.assert_allclose(roofs(mesh, 3), [12.0, 8.5, 15.0], atol=1e-5)
    assert stat(mesh, "n_height_fallback") == 0


def test_osm_heights_with_units_in_the_buildings_layer() -> None:
    path = case("height-units", "osm_buildings.geojson")
    layer = layer_types().get("buildings")("osm", source={"type": "file", "path": str(path)})
    mesh = layer.visual(Frame.auto(121.471, 31.2301)).mesh
    np.testing.assert_allclose(roofs(mesh, 3), [12.0, 8.5, 15.0], atol=1e-5)
    tall = layer_types().get("buildings")("osm", source={"type": "file", "path": str(path)}, filter={"height": {"min": 10}})
    assert sorted(set(np.asarray(tall.visual(Frame.auto(121.471, 31.2301)).mesh.cell_data[BUILDING_ID]).tolist())) == [0, 2]  # "8.5 m" < 10


def test_feet_inches_decimal_comma_and_unparsable_text() -> None:
    heights = ["40 ft", "10'6\"", "8,5", " 12 metres ", "33'", "tall", "", "1,200", None, 7.5]
    gdf = gpd.GeoDataFrame({"height": heights}, geometry=boxes(len(heights)), crs=4326)
    with pytest.warns(TwinWarning) as rec:
        mesh = extrude_footprints(gdf, default_height=9.0, label="layer 'osm'")
    want = [40 * FOOT, 10 * FOOT + 6 * INCH, 8.5, 12.0, 33 * FOOT, 9.0, 9.0, 9.0, 9.0, 7.5]
    np.testing.assert_allclose(roofs(mesh, len(heights)), want, atol=1e-5)
    (msg,) = [str(w.message) for w in rec]
    assert msg.startswith("layer 'osm': 4 rows have no usable height in column 'height'") and "rows [5, 6, 7, 8]" in msg
    assert "3 values of column 'height' are not a length (e.g. 'tall', '', '1,200') and count as missing" in msg
    assert "\n" not in msg and stat(mesh, "n_height_fallback") == 4


def test_floors_as_text_and_a_base_with_a_unit() -> None:
    gdf = gpd.GeoDataFrame(
        {"building:levels": ["3", " 3.0 ", "2", "three"], "min_height": ["3 m", "10 ft", None, "0"]}, geometry=boxes(4), crs=4326
    )
    with pytest.warns(TwinWarning, match=r"1 rows have no usable height in column 'building:levels' x 3 m.*rows \[3\].*1 values of column 'building:levels' are not a number \(e.g. 'three'\)"):
        mesh = extrude_footprints(gdf, base="min_height", default_height=5.0)
    np.testing.assert_allclose(roofs(mesh, 4), [9.0, 9.0, 6.0, 5.0], atol=1e-5)
    tri = mesh.triangulate()
    bid = np.asarray(tri.cell_data[BUILDING_ID])
    conn = np.asarray(tri.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    low = np.full(4, np.inf)
    np.minimum.at(low, bid, np.asarray(tri.points)[conn, 2].min(axis=1))
    np.testing.assert_allclose(low, [3.0, 10 * FOOT, 0.0, 0.0], atol=1e-5)


_UNITS = [("", 1.0), (" m", 1.0), ("m", 1.0), (" meters", 1.0), (" Metre", 1.0), (" ft", FOOT), (" FEET", FOOT), ("'", FOOT)]


@settings(max_examples=150, deadline=None)
@given(st.floats(0.0, 999.0), st.sampled_from(_UNITS), st.booleans(), st.text(" ", max_size=2))
def test_length_text_round_trips(value: float, unit: tuple[str, float], comma: bool, pad: str) -> None:
    text = f"{value:.2f}".replace(".", ",") if comma else f"{value:.3f}"  # a decimal comma; "12,500" would be ambiguous
    parsed = parse_length(np.array([pad + text + unit[0] + pad], dtype=object))
    assert parsed.values[0] == pytest.approx(float(text.replace(",", ".")) * unit[1], rel=1e-12) and not parsed.unparsable[0]


def test_counts_take_no_units() -> None:
    p = parse_count(np.array(["3", "3.0", " 4 ", "3 m", "2'", "", None], dtype=object))
    np.testing.assert_array_equal(p.values[:3], [3.0, 3.0, 4.0])
    assert np.isnan(p.values[3:]).all() and p.unparsable.tolist() == [False, False, False, True, True, True, False]


# -- empty and degenerate rings -----------------------------------------------------------------------
def test_empty_interior_ring_is_ignored() -> None:
    path = case("empty-interior-ring", "empty_ring.geojson")
    with pytest.warns(TwinWarning, match=r"1 rows repaired \(rings of < 3 distinct vertices dropped: 1 rows \[0\]\)"):
        mesh = extrude_footprints(path)
    assert stat(mesh, "n_buildings") == 1 and stat(mesh, "n_skipped") == 0 and stat(mesh, "n_repaired") == 1
    frame = Frame.of(mesh)
    doc = json.loads(path.read_text())
    shell, hole, _empty = doc["features"][0]["geometry"]["coordinates"]
    want = shapely.transform(shapely.Polygon(shell, [hole]), lambda c: np.column_stack(frame.project(c[:, 0], c[:, 1])))
    assert roof_areas(mesh, 1)[0] == pytest.approx(shapely.area(want), rel=1e-6)
    assert mesh.n_cells == stat(mesh, "n_triangles") - 2 * (4 + 3) + 2  # roofs + one wall strip per kept ring (shell, hole)
    np.testing.assert_allclose(roofs(mesh, 1), [20.0])


def test_empty_interior_ring_in_the_buildings_layer() -> None:
    path = case("empty-interior-ring", "empty_ring.geojson")
    layer = layer_types().get("buildings")("b", source={"type": "file", "path": str(path)})
    with pytest.warns(TwinWarning, match=r"^layer 'b': 1 rows repaired"):
        mesh = layer.visual(Frame.auto(121.48, 31.23)).mesh
    assert set(np.asarray(mesh.cell_data[BUILDING_ID]).tolist()) == {0}


def _geoarrow(path: Path, rows: list) -> None:
    xy = pa.list_(pa.float64(), 2)
    meta = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": {"encoding": "multipolygon", "geometry_types": []}}}
    table = pa.table({"height": [10.0] * len(rows), "geometry": pa.array(rows, type=pa.list_(pa.list_(pa.list_(xy))))})
    pq.write_table(table.replace_schema_metadata({b"geo": json.dumps(meta).encode()}), path)


def test_degenerate_rings_of_every_kind_are_dropped_or_skipped(tmp_path: Path) -> None:
    sq = [[121.47, 31.23], [121.4702, 31.23], [121.4702, 31.2302], [121.47, 31.2302], [121.47, 31.23]]
    hole = [[121.4705, 31.2305], [121.4705, 31.2306], [121.4706, 31.2306], [121.4706, 31.2305], [121.4705, 31.2305]]
    outer = [[121.4704, 31.2304], [121.4708, 31.2304], [121.4708, 31.2308], [121.4704, 31.2308], [121.4704, 31.2304]]
    rows = [
        [[sq, []]],  # 0 empty hole
        [[outer, hole, [[121.4705, 31.2305], [121.4706, 31.2306]]]],  # 1 a two-point hole beside a good one
        [[sq], [[[121.48, 31.23]]]],  # 2 a one-point part of a MultiPolygon
        [[[], hole]],  # 3 an empty shell (its hole goes with it): nothing left
        [[[[121.47, 31.23], [121.47, 31.23], [121.47, 31.23], [121.47, 31.23]]]],  # 4 one point repeated
        [[]],  # 5 a polygon without rings
        [[sq]],  # 6 a good one
    ]
    path = tmp_path / "degenerate.parquet"
    _geoarrow(path, rows)
    with pytest.warns(TwinWarning) as rec:
        mesh = extrude_footprints(path, frame=Frame.auto(121.47, 31.23))
    (msg,) = [str(w.message) for w in rec]
    assert "3 of 7 rows skipped: rows [3, 4, 5]" in msg and "no ring of 3 distinct vertices: [3, 4, 5]" in msg
    assert "rings of < 3 distinct vertices dropped: 3 rows [0, 1, 2]" in msg
    assert sorted(set(np.asarray(mesh.cell_data[BUILDING_ID]).tolist())) == [0, 1, 2, 6]
    area = roof_areas(mesh, 7)
    assert area[0] == pytest.approx(area[6], rel=1e-6) and area[2] == pytest.approx(area[6], rel=1e-6)  # the square, nothing else
    assert stat(mesh, "n_polygons") == 4


def test_low_level_entry_points_reject_inconsistent_offsets() -> None:
    x = np.array([0.0, 1.0, 1.0, 0.0])
    y = np.array([0.0, 0.0, 1.0, 1.0])
    with pytest.raises(LayerDataError, match=r"^triangulate: the ring offsets ends at 9, not at the 4 items it indexes$"):
        triangulate(x, y, np.array([0, 9]), np.array([0, 1]))
    with pytest.raises(LayerDataError, match=r"^triangulate: the polygon offsets decreases at position 2$"):
        triangulate(x, y, np.array([0, 2, 4]), np.array([0, 2, 1, 2]))
    with pytest.raises(LayerDataError, match=r"^triangulate: 1 vertices are not finite \(first: vertex 2\)$"):
        triangulate(x, np.array([0.0, 0.0, np.inf, 1.0]), np.array([0, 4]), np.array([0, 1]))
    bad = FlatGeoms(x, y, np.array([0, 4]), np.array([0, 1]), np.array([0, 2]), np.zeros(1, np.int8), np.full(1, 3, np.int32))
    with pytest.raises(LayerDataError, match=r"^footprints: the row offsets ends at 2, not at the 1 items it indexes$"):
        normalize(bad)


# -- non-finite and out-of-range coordinates ---------------------------------------------------------------
def test_nonfinite_case_file_is_one_line_error_naming_the_point() -> None:
    path = case("non-finite-coordinates", "nonfinite_Infinity.geojson")
    with pytest.raises(LayerDataError, match=r"^nonfinite_Infinity.geojson: footprints must be Polygon/MultiPolygon, but 1 of 6 rows are Point: rows \[5\]$"):
        extrude_footprints(path)


def test_nonfinite_and_out_of_range_footprints_are_skipped_and_counted(tmp_path: Path) -> None:
    doc = json.loads(case("non-finite-coordinates", "nonfinite_Infinity.geojson").read_text())
    good = [f for f in doc["features"] if f["geometry"]["type"] == "Polygon"]
    bad = [
        [[float("inf"), 31.2], [121.48, 31.2], [121.48, 31.21], [float("inf"), 31.2]],  # the case's Infinity, as a footprint
        [[1e300, 31.2], [121.48, 31.2], [121.48, 31.21], [1e300, 31.2]],  # finite but no longitude
        [[121.48, 95.0], [121.49, 95.0], [121.49, 95.1], [121.48, 95.0]],  # latitude beyond the pole
        [[float("nan"), 31.2], [121.48, 31.2], [121.48, 31.21], [float("nan"), 31.2]],
    ]
    feats = good + [{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}} for ring in bad]
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    with pytest.warns(TwinWarning) as rec:
        mesh = extrude_footprints(path)
    (msg,) = [str(w.message) for w in rec]
    assert "4 of 9 rows skipped: rows [5, 6, 7, 8]" in msg
    assert "non-finite coordinates: [5, 8]" in msg and "coordinates outside the CRS's range: [6, 7]" in msg
    assert stat(mesh, "n_buildings") == 5 and sorted(set(np.asarray(mesh.cell_data[BUILDING_ID]).tolist())) == [0, 1, 2, 3, 4]
    assert np.isfinite(mesh.points).all() and np.abs(mesh.points[:, :2]).max() < 2000  # the frame centred on the good ones
    lon, lat = Frame.of(mesh).center_lonlat
    assert (lon, lat) == pytest.approx((121.4795, 31.2215), abs=1e-9)


def test_projected_footprints_far_outside_the_frame_are_skipped() -> None:
    e0, n0 = 354_800.0, 3_456_400.0  # UTM 51N, Shanghai
    geoms = [shapely.box(e0, n0, e0 + 20, n0 + 20), shapely.box(1e300, n0, 1e300 + 20, n0 + 20), shapely.box(5e7, n0, 5e7 + 20, n0 + 20)]
    gdf = gpd.GeoDataFrame({"height": [10.0, 10.0, 10.0]}, geometry=geoms, crs="EPSG:32651")
    with pytest.warns(TwinWarning) as rec:
        mesh = extrude_footprints(gdf)
    (msg,) = [str(w.message) for w in rec]
    assert "2 of 3 rows skipped: rows [1, 2]" in msg and "coordinates outside the CRS's range: [1, 2]" in msg  # 5e7 m: far outside UTM 51N
    assert stat(mesh, "n_buildings") == 1 and np.abs(mesh.points[:, :2]).max() < 20  # the frame centred on the good one
    far = gpd.GeoDataFrame({"height": [10.0, 10.0]}, geometry=boxes(1) + [shapely.box(30.0, 0.0, 30.0002, 0.0002)], crs=4326)
    with pytest.warns(TwinWarning, match=r"not placeable in the frame \(over 2e\+07 m away\): \[1\]"):
        mesh = extrude_footprints(far, frame=Frame.auto(121.47, 31.23))  # 90 degrees from the frame's meridian: no transverse Mercator
    assert stat(mesh, "n_buildings") == 1


def test_frame_centre_ignores_nonfinite_points() -> None:
    lon, lat = bounds_center([121.47, np.inf, 121.49, np.nan, -np.inf], [31.22, 31.2, 31.24, np.nan, 0.0])
    assert (lon, lat) == pytest.approx((121.48, 31.23))
    with pytest.raises(CRSError, match="no point with finite coordinates"):
        bounds_center([np.inf], [np.nan])
