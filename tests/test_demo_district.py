"""The synthetic demo district: deterministic, well-formed, located in Huangpu, cached."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal

from twin.demo import district as dd
from twin.demo.district import (
    BUILDING_KINDS,
    CENTER_LAT,
    CENTER_LON,
    DemoDistrict,
    cached_district,
    generate_district,
)
from twin.geo.frame import Frame

N = 2500
LAYERS = ("boundary", "river", "roads", "buildings", "flood_points", "sensor_sites", "resources")


@pytest.fixture(scope="module")
def district() -> DemoDistrict:
    return generate_district(seed=7, n_buildings=N)


@pytest.fixture(scope="module")
def frame() -> Frame:
    return Frame.auto(CENTER_LON, CENTER_LAT)


def _assert_same(a: DemoDistrict, b: DemoDistrict) -> None:
    for name in LAYERS:
        la, lb = getattr(a, name), getattr(b, name)
        assert list(la.geometry.to_wkb()) == list(lb.geometry.to_wkb()), name
        assert_geodataframe_equal(la, lb)


def test_deterministic_per_seed(district: DemoDistrict) -> None:
    _assert_same(district, generate_district(seed=7, n_buildings=N))
    other = generate_district(seed=8, n_buildings=N)
    assert list(other.buildings.geometry.to_wkb()) != list(district.buildings.geometry.to_wkb())
    assert list(other.roads.geometry.to_wkb()) != list(district.roads.geometry.to_wkb())


def test_layers_counts_columns_and_dtypes(district: DemoDistrict) -> None:
    for name in LAYERS:
        layer = getattr(district, name)
        assert layer.crs is not None and layer.crs.to_epsg() == 4326, name
        assert len(layer) > 0 and not layer.geometry.is_empty.any(), name
    assert list(district.boundary.geom_type) == ["Polygon"] and district.boundary["name"][0] == "示范区"
    assert list(district.river.geom_type) == ["Polygon"]

    b = district.buildings
    assert list(b.columns) == ["building_id", "kind", "height", "floors", "name", "geometry"]
    assert len(b) == N and b["building_id"].tolist() == list(range(N))
    assert b["building_id"].dtype == np.int64 and b["floors"].dtype == np.int64 and b["height"].dtype == np.float64
    assert set(b["kind"]) == set(BUILDING_KINDS)
    assert set(b.geom_type) == {"Polygon", "MultiPolygon"}
    assert all(v is None or (isinstance(v, str) and v) for v in b["name"])
    assert b["name"].notna().any()

    r = district.roads
    assert list(r.columns) == ["name", "kind", "width_m", "geometry"]
    assert set(r.geom_type) == {"LineString"} and set(r["kind"]) == {"primary", "secondary", "pedestrian"}
    assert r["width_m"].dtype == np.float64 and (r["width_m"] > 5).all()
    assert "南京路步行街" in set(r.loc[r["kind"] == "pedestrian", "name"])
    assert "中山东一路" in set(r["name"])

    fp = district.flood_points
    assert list(fp.columns) == ["id", "name", "road", "hidden_danger", "geometry"]
    assert len(fp) == 40 and fp["id"].tolist()[:2] == ["FP001", "FP002"] and fp["id"].is_unique
    assert fp["name"].is_unique and all(n.endswith("积水点") for n in fp["name"])
    assert set(fp["road"]) <= set(r["name"]) and fp["hidden_danger"].dtype == bool
    assert 0.15 <= fp["hidden_danger"].mean() <= 0.35

    s = district.sensor_sites
    assert list(s.columns) == ["id", "kind", "geometry"] and len(s) == 500 and s["id"].is_unique
    assert set(s["kind"]) == {"crowd_camera", "water_level", "air_quality", "noise"}

    res = district.resources
    assert list(res.columns) == ["id", "kind", "name", "geometry"] and len(res) == 60 and res["id"].is_unique
    assert set(res["kind"]) == {"pump", "rescue_team", "materials"} and res["name"].is_unique
    for layer in (fp, s, res):
        assert set(layer.geom_type) == {"Point"}


def test_geometries_valid_with_holes_and_multipolygons(district: DemoDistrict) -> None:
    for name in LAYERS:
        assert shapely.is_valid(getattr(district, name).geometry.values).all(), name
    g = district.buildings.geometry.values
    holes = shapely.get_num_interior_rings(shapely.get_geometry(g, 0)) > 0
    assert 0.07 <= holes.mean() <= 0.13
    multi = shapely.get_type_id(g) == 6
    assert 0.01 <= multi.mean() <= 0.04
    rings = shapely.get_num_coordinates(shapely.get_exterior_ring(shapely.get_geometry(g, 0))) - 1
    assert np.median(rings) <= 12 and np.mean((rings >= 4) & (rings <= 12)) > 0.9


def test_buildings_clear_of_each_other_roads_and_river(district: DemoDistrict, frame: Frame) -> None:
    b = district.buildings.to_crs(frame.crs).geometry.values
    i, j = shapely.STRtree(b).query(b, predicate="intersects")
    assert np.all(i == j), "buildings overlap"
    roads = district.roads.to_crs(frame.crs)
    corridors = shapely.buffer(roads.geometry.values, roads["width_m"].to_numpy() / 2, cap_style="flat")
    hit_b, _ = shapely.STRtree(corridors).query(b, predicate="intersects")
    assert hit_b.size == 0, "buildings on roads"
    river = district.river.to_crs(frame.crs).geometry.iloc[0]
    assert not shapely.intersects(b, river).any()
    boundary = district.boundary.to_crs(frame.crs).geometry.iloc[0]
    assert shapely.within(b, boundary).all()


def test_heights_and_floors(district: DemoDistrict) -> None:
    b = district.buildings
    h, f = b["height"].to_numpy(), b["floors"].to_numpy()
    assert (h > 0).all() and (h <= 600).all() and (f >= 1).all()
    ratio = h / f
    assert ratio.min() >= 3.0 - 0.06 and ratio.max() <= 4.0 + 0.06
    towers = b[b["kind"] == "tower"]
    assert towers["height"].min() >= 80
    landmarks = towers[towers["height"] >= 400]
    assert 1 <= len(landmarks) <= 5 and landmarks["name"].notna().all()
    assert (towers["height"] < 400).sum() > 0 and towers.loc[towers["height"] < 400, "height"].max() <= 300
    houses = b[b["kind"] == "house"]
    assert houses["floors"].between(2, 4).all()


def test_location_and_extent(district: DemoDistrict, frame: Frame) -> None:
    x0, y0, x1, y1 = district.boundary.total_bounds
    assert abs((x0 + x1) / 2 - CENTER_LON) < 0.02 and abs((y0 + y1) / 2 - CENTER_LAT) < 0.02
    for name in LAYERS:
        bx0, by0, bx1, by1 = getattr(district, name).total_bounds
        assert x0 - 1e-9 <= bx0 and bx1 <= x1 + 1e-9 and y0 - 1e-9 <= by0 and by1 <= y1 + 1e-9, name
    bm = district.boundary.to_crs(frame.crs).total_bounds
    assert 5500 < bm[2] - bm[0] < 6500 and 4500 < bm[3] - bm[1] < 5500
    river = district.river.to_crs(frame.crs)
    assert 300 <= river["width_m"].iloc[0] <= 400 and river.area.iloc[0] > 1.5e6


def test_points_lie_on_roads(district: DemoDistrict, frame: Frame) -> None:
    roads = district.roads.to_crs(frame.crs)
    fp = district.flood_points.to_crs(frame.crs)
    by_name = roads.dissolve("name").geometry
    for road, point in zip(fp["road"], fp.geometry, strict=True):
        assert by_name[road].distance(point) < 0.01


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        generate_district(seed=-1, n_buildings=10)
    with pytest.raises(ValueError):
        generate_district(seed=0, n_buildings=0)


def test_cache_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cached_district(seed=3, n_buildings=1500, cache_dir=tmp_path)
    folder = tmp_path / f"demo-v{dd.GENERATOR_VERSION}-s3-n1500"
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{n}.parquet" for n in LAYERS] + ["meta.json"])
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no temporary left behind

    def boom(*args: object, **kwargs: object) -> DemoDistrict:
        raise AssertionError("regenerated instead of reading the cache")

    monkeypatch.setattr(dd, "generate_district", boom)
    second = cached_district(seed=3, n_buildings=1500, cache_dir=tmp_path)
    _assert_same(first, second)
    monkeypatch.undo()
    _assert_same(first, generate_district(seed=3, n_buildings=1500))


def test_cache_dir_from_environment_and_broken_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_CACHE_DIR", str(tmp_path))
    assert dd.default_cache_dir() == tmp_path
    folder = tmp_path / f"demo-v{dd.GENERATOR_VERSION}-s1-n300"
    folder.mkdir()
    (folder / "buildings.parquet").write_text("not parquet")
    d = cached_district(seed=1, n_buildings=300)
    assert len(d.buildings) == 300 and (folder / "buildings.parquet").stat().st_size > 100


def test_model_side_imports_no_rendering() -> None:
    code = (
        "import sys, twin.demo.district; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('vtk', 'pyvista', 'trame') "
        "or m.startswith(('twin.render', 'twin.app'))]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_default_size_is_fast_and_complete() -> None:
    t0 = time.perf_counter()
    d = generate_district()
    elapsed = time.perf_counter() - t0
    assert len(d.buildings) == 30_000 and d.buildings["building_id"].is_unique
    assert elapsed < 10, f"generate_district() took {elapsed:.1f} s"
    g = d.buildings.geometry.values
    assert shapely.is_valid(g).all()
    rng = np.random.default_rng(0)
    sample = g[rng.choice(len(g), 3000, replace=False)]
    hits, _ = shapely.STRtree(g).query(sample, predicate="intersects")
    assert len(hits) == len(sample), "sampled buildings overlap a neighbour"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
