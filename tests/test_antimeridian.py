"""Footprints at the antimeridian: the automatic frame centred on them, parts cut at +-180 (RFC 7946 3.1.9)
meeting again, corners converting back to lon/lat (../shared/cases/antimeridian)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely

from twin.errors import TwinWarning
from twin.geo.frame import Frame, bounds_center, lon_center, unwrap_lon
from twin.mesh.extrude import BUILDING_ID, extrude_footprints
from twin.plugins import layer_types

CASE = Path(__file__).resolve().parents[1].parent / "shared" / "cases" / "antimeridian" / "dateline_building.geojson"
GEOD = pyproj.Geod(ellps="WGS84")


@pytest.fixture()
def dateline() -> Path:
    if not CASE.exists():
        pytest.fail(f"{CASE} is missing: clone the project with shared/ beside it (see shared/cases/README.md)")
    return CASE


def wall_strips(mesh) -> int:
    """Cells with more than 3 ids: one wall strip per ring."""
    return int((np.diff(np.asarray(mesh.GetStrips().GetOffsetsArray())) > 3).sum())


def corners_back_within(mesh, corners: list[tuple[float, float]], tol_m: float) -> None:
    """Every expected lon/lat corner has a mesh vertex converting back to it within ``tol_m`` metres."""
    lon, lat, _ = Frame.of(mesh).local_to_lonlat(np.asarray(mesh.points))
    for clon, clat in corners:
        _, _, dist = GEOD.inv(np.full(lon.size, clon), np.full(lat.size, clat), lon, lat)
        assert dist.min() < tol_m, (clon, clat, dist.min())


def test_building_cut_at_the_antimeridian(dateline: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)  # valid RFC 7946 input: nothing to report
        mesh = extrude_footprints(dateline)
    lon0, lat0 = Frame.of(mesh).center_lonlat
    assert abs(abs(lon0) - 180.0) < 1e-6 and lat0 == pytest.approx(-16.8)
    pts = np.asarray(mesh.points, np.float64)
    assert np.abs(pts[:, :2]).max() < 100  # centred on the building, not 20,000 km away
    width, depth = np.ptp(pts[:, 0]), np.ptp(pts[:, 1])
    assert width == pytest.approx(32.0, abs=0.1) and depth == pytest.approx(22.1, abs=0.1)
    assert set(np.asarray(mesh.cell_data[BUILDING_ID]).tolist()) == {0} and int(mesh.field_data["n_repaired"][0]) == 0
    assert wall_strips(mesh) == 1  # the two parts joined: no wall along the cut
    corners_back_within(mesh, [(179.99985, -16.8001), (-179.99985, -16.8001), (-179.99985, -16.7999), (179.99985, -16.7999)], 0.01)


def test_cut_building_in_a_layer_whose_frame_is_off_centre(dateline: Path) -> None:
    frame = Frame.auto(-179.999, -16.8)  # the scene's frame, about 100 m east of the building
    mesh = layer_types().get("buildings")("b", source={"type": "file", "path": str(dateline)}).visual(frame).mesh
    pts = np.asarray(mesh.points, np.float64)
    assert np.abs(pts[:, 0] + 106.6).max() < 20 and np.abs(pts[:, 1]).max() < 12
    assert wall_strips(mesh) == 1
    corners_back_within(mesh, [(179.99985, -16.8001), (-179.99985, -16.7999)], 0.01)


@pytest.mark.parametrize("east", [-179.9997, 180.0003])
def test_one_polygon_straddling_the_line(east: float) -> None:
    """One ring whose longitudes jump from 179.9998 to -179.9997 (or run on to 180.0003: 0..360 style)."""
    ring = [(179.9998, 64.0), (east, 64.0), (east, 64.0002), (179.9998, 64.0002)]
    gdf = gpd.GeoDataFrame({"height": [6.0]}, geometry=[shapely.Polygon(ring)], crs=4326)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        mesh = extrude_footprints(gdf)
    pts = np.asarray(mesh.points, np.float64)
    want_width = GEOD.inv(179.9998, 64.0, -179.9997, 64.0)[2]  # about 24.5 m
    assert np.ptp(pts[:, 0]) == pytest.approx(want_width, abs=0.05) and np.ptp(pts[:, 1]) == pytest.approx(22.3, abs=0.1)
    assert np.abs(pts[:, :2]).max() < 20
    corners_back_within(mesh, [(179.9998, 64.0), (-179.9997, 64.0002)], 0.01)


def test_buildings_on_both_sides_and_far_from_the_line() -> None:
    """Several buildings either side of 180: one frame, every building near its true place."""
    lons = [179.998, -179.998, 179.9995, -179.9991]
    gdf = gpd.GeoDataFrame({"height": [5.0] * 4}, geometry=[shapely.box(x, 10.0, x + 1e-4, 10.0001) for x in lons], crs=4326)
    mesh = extrude_footprints(gdf)
    assert np.abs(np.asarray(mesh.points)[:, :2]).max() < 500  # 0.004 degrees of longitude ~ 440 m
    corners_back_within(mesh, [(x, 10.0) for x in lons], 0.01)


def test_frame_centre_of_points_near_the_line() -> None:
    assert lon_center([179.9, -179.9, 180.0]) == pytest.approx(-180.0)
    assert lon_center([170.0, -150.0]) == pytest.approx(-170.0)
    assert lon_center([121.4, 121.6]) == pytest.approx(121.5)  # ordinary data: the bounding-box centre, as before
    lon, lat = bounds_center([179.9999, -179.9999, np.inf], [-16.8, -16.8001, np.nan])
    frame = Frame.auto(lon, lat)
    x, y = frame.project([179.9999, -179.9999], [-16.8, -16.8001])
    assert np.abs(x).max() < 15 and np.abs(y).max() < 15  # points and lines on either side land next to each other
    np.testing.assert_allclose(unwrap_lon(np.array([-179.9, 179.9, 0.0, -0.1]), 180.0), [180.1, 179.9, 0.0, 359.9])  # into [0, 360)


def test_cut_building_from_geojson_text_matches_the_single_polygon(tmp_path: Path, dateline: Path) -> None:
    """The two-part file and the same building as one polygon over 180 give the same roof area."""
    doc = json.loads(dateline.read_text())
    one = {"type": "Polygon", "coordinates": [[[179.99985, -16.8001], [180.00015, -16.8001], [180.00015, -16.7999], [179.99985, -16.7999], [179.99985, -16.8001]]]}
    doc["features"].append({"type": "Feature", "properties": {"height": 9.0}, "geometry": one})
    path = tmp_path / "both.geojson"
    path.write_text(json.dumps(doc))
    mesh = extrude_footprints(path)
    tri = mesh.triangulate()
    conn = np.asarray(tri.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    bid = np.asarray(tri.cell_data[BUILDING_ID])
    p = np.asarray(tri.points, np.float64)
    roof = (conn < mesh.n_points // 2).all(axis=1)
    a, b, c = p[conn[roof, 0]], p[conn[roof, 1]], p[conn[roof, 2]]
    area = np.bincount(bid[roof], weights=0.5 * np.cross(b - a, c - a)[:, 2], minlength=2)
    assert area[0] == pytest.approx(area[1], rel=1e-6) and area[0] == pytest.approx(32.0 * 22.1, rel=0.01)


def test_a_scene_file_centres_its_auto_frame_on_the_dateline_building(dateline: Path, tmp_path: Path) -> None:
    """Through the scene file as a user writes it: the layer's extent crosses ±180 (west > east, RFC 7946 §5.2)
    and the automatic frame is centred on the building, not on lon 0 (the antipode)."""
    import twin

    scene_path = tmp_path / "dateline.yaml"
    scene_path.write_text(
        f"version: 1\nname: dateline\nframe: {{crs: auto}}\nlayers:\n  - id: b\n    type: buildings\n    source: {{type: file, path: '{dateline}'}}\n",
        encoding="utf-8",
    )
    scene = twin.Scene.from_file(scene_path)
    west, south, east, north = scene["b"].extent()
    assert west > 179.99 and east < -179.99 and west > east
    lon, lat = scene.frame.center_lonlat
    assert abs(abs(lon) - 180.0) < 0.01 and lat == pytest.approx(-16.8, abs=0.01)
    mesh = scene["b"].visual(scene.frame).mesh
    points = np.asarray(mesh.points)
    assert np.abs(points[:, :2]).max() < 100.0
    extent = points[:, :2].max(axis=0) - points[:, :2].min(axis=0)
    assert sorted(np.round(extent, 0)) == [22.0, 32.0]


def test_extents_on_one_side_of_the_line_keep_west_below_east(tmp_path: Path) -> None:
    from twin.plugins import layer_types

    Vector = layer_types().get("vector")
    layer = Vector("v", data=gpd.GeoDataFrame(geometry=[shapely.Point(121.4, 31.2), shapely.Point(121.6, 31.3)], crs="EPSG:4326"))
    assert layer.extent() == (121.4, 31.2, 121.6, 31.3)
    wide = Vector("w", data=gpd.GeoDataFrame(geometry=[shapely.Point(lon, 0.0) for lon in (-100.0, -20.0, 60.0, 100.0)], crs="EPSG:4326"))
    assert wide.extent() == (-100.0, 0.0, 100.0, 0.0)  # spread over 200°, but the widest gap is the one across ±180
    around = Vector("a", data=gpd.GeoDataFrame(geometry=[shapely.Point(lon, 0.0) for lon in (-170.0, -60.0, 50.0, 160.0)], crs="EPSG:4326"))
    assert around.extent() == (-60.0, 0.0, -170.0, 0.0)  # the shortest arc holding them (250°) crosses ±180
