"""The geographic frame: CRS parsing, GCJ-02/BD-09, float32 local origins."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from coord_convert import transform as reference

from twin.errors import CRSError
from twin.geo import Frame, parse_crs, to_wgs84
from twin.geo import chinese

GEOD = pyproj.Geod(ellps="WGS84")
SHANGHAI = (120.85, 30.67, 122.20, 31.88)  # lon/lat bounds of the city


def metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


def shanghai_points(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(SHANGHAI[0], SHANGHAI[2], n), rng.uniform(SHANGHAI[1], SHANGHAI[3], n)


def test_gcj02_forward_matches_independent_implementation() -> None:
    lon, lat = shanghai_points(500)
    ours = chinese.wgs84_to_gcj02(lon, lat)
    theirs = np.array([reference.wgs2gcj(x, y) for x, y in zip(lon, lat)])
    assert metres(ours[0], ours[1], theirs[:, 0], theirs[:, 1]).max() < 0.001
    bd = chinese.wgs84_to_bd09(lon, lat)
    theirs_bd = np.array([reference.wgs2bd(x, y) for x, y in zip(lon, lat)])
    assert metres(bd[0], bd[1], theirs_bd[:, 0], theirs_bd[:, 1]).max() < 0.001


@pytest.mark.parametrize(("forward", "inverse"), [
    (chinese.wgs84_to_gcj02, chinese.gcj02_to_wgs84),
    (chinese.wgs84_to_bd09, chinese.bd09_to_wgs84),
])
def test_round_trip_within_half_a_metre_anywhere_in_shanghai(forward, inverse) -> None:
    lon, lat = shanghai_points(20_000)
    back = inverse(*forward(lon, lat))
    assert metres(lon, lat, back[0], back[1]).max() < 0.5
    # the offset itself is real (hundreds of metres), so the round trip is not trivially the identity
    moved = forward(lon, lat)
    assert metres(lon, lat, moved[0], moved[1]).min() > 100


def test_outside_china_is_unchanged() -> None:
    lon, lat = chinese.wgs84_to_gcj02([2.35, -74.0], [48.85, 40.7])
    np.testing.assert_array_equal(lon, [2.35, -74.0])
    np.testing.assert_array_equal(lat, [48.85, 40.7])


def test_gcj02_district_file_lands_within_a_metre_of_wgs84(shared_data: Path) -> None:
    from twin_layers.file_source import FileSource

    raw = gpd.read_file(shared_data / "shanghai_districts_gcj02.geojson")
    converted = FileSource(path=str(shared_data / "shanghai_districts_gcj02.geojson"), crs="GCJ02").read()
    raw_xy = shapely.get_coordinates(raw.geometry.to_numpy())
    ours = shapely.get_coordinates(converted.geometry.to_numpy())
    assert len(raw_xy) == len(ours) > 1000
    idx = np.linspace(0, len(raw_xy) - 1, 2000).astype(int)
    expected = np.array([reference.gcj2wgs(x, y) for x, y in raw_xy[idx]])
    assert metres(ours[idx, 0], ours[idx, 1], expected[:, 0], expected[:, 1]).max() < 1.0
    shift = metres(raw_xy[idx, 0], raw_xy[idx, 1], ours[idx, 0], ours[idx, 1])
    assert 300 < np.median(shift) < 700  # the ~500 m GCJ-02 offset was removed


def test_cgcs2000_and_wgs84_inputs_agree() -> None:
    frame = Frame.auto(121.48, 31.23)
    lon, lat = shanghai_points(1000)
    x1, y1 = frame.project(lon, lat, "EPSG:4326")
    x2, y2 = frame.project(lon, lat, "EPSG:4490")
    assert np.hypot(x1 - x2, y1 - y2).max() < 0.01


@pytest.mark.parametrize("crs", ["EPSG:32651", "EPSG:4549", 32651, "+proj=tmerc +lat_0=31.2 +lon_0=121.46 +k=1 +x_0=0 +y_0=-3457000 +ellps=WGS84 +units=m"])
def test_projected_inputs_and_frames(crs) -> None:
    lon, lat = shanghai_points(200, seed=3)
    src = parse_crs(crs)
    x, y = pyproj.Transformer.from_crs(4326, src.proj, always_xy=True).transform(lon, lat)
    back_lon, back_lat = to_wgs84(x, y, crs)
    assert metres(lon, lat, back_lon, back_lat).max() < 0.001
    frame = Frame.from_crs(crs, 121.48, 31.23)
    local = frame.lonlat_to_local(lon, lat)
    again = frame.local_to_lonlat(local)
    assert metres(lon, lat, again[0], again[1]).max() < 0.05  # float32 over the whole city (~80 km)


def test_float32_local_vertices_hold_centimetres_across_20_km() -> None:
    frame = Frame.auto(121.48, 31.23)
    rng = np.random.default_rng(7)
    dx, dy = rng.uniform(-10_000, 10_000, (2, 100_000))
    lon, lat = frame.local_to_lonlat(np.column_stack([dx, dy, np.zeros_like(dx)]))[:2]
    exact_x, exact_y = frame.project(lon, lat)
    local = frame.lonlat_to_local(lon, lat)
    assert local.dtype == np.float32
    assert np.hypot(local[:, 0] - exact_x, local[:, 1] - exact_y).max() < 0.01
    back = frame.local_to_lonlat(local)
    assert metres(lon, lat, back[0], back[1]).max() < 0.001  # picked points back to lon/lat within 1 mm


def test_frame_travels_with_meshes() -> None:
    import pyvista as pv

    frame = Frame.from_crs("EPSG:32651", 121.48, 31.23)
    mesh = frame.attach(pv.PolyData(frame.lonlat_to_local([121.49], [31.24], 5.0)))
    again = Frame.of(mesh)
    assert again == frame
    lon, lat, z = again.local_to_lonlat(mesh.points)
    assert metres(lon, lat, [121.49], [31.24]).max() < 0.001 and z[0] == pytest.approx(5.0)


@pytest.mark.parametrize("bad", ["EPSG:999999", "not a crs", "WGS99"])
def test_unknown_crs_names_the_input(bad) -> None:
    with pytest.raises(CRSError, match=bad.split(":")[0]):
        parse_crs(bad)


def test_scene_frame_must_be_projected() -> None:
    with pytest.raises(CRSError, match="not projected"):
        Frame.from_crs("EPSG:4326", 121.48, 31.23)
    with pytest.raises(CRSError, match="not projected"):
        Frame.from_crs("GCJ02", 121.48, 31.23)
