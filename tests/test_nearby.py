"""Nearby resources equal a brute-force great-circle check on random data."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely

from twin.alerts.nearby import EARTH_RADIUS_M, resources_within
from twin.errors import LayerDataError

SPHERE = pyproj.Geod(a=EARTH_RADIUS_M, b=EARTH_RADIUS_M)


def random_layer(rng: np.random.Generator, n: int, kind: str) -> gpd.GeoDataFrame:
    lon = rng.uniform(121.40, 121.56, n)
    lat = rng.uniform(31.16, 31.30, n)
    return gpd.GeoDataFrame({"name": [f"{kind}{i}" for i in range(n)], "kind": kind}, geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_great_circle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    layers = {"pumps": random_layer(rng, 400, "pump"), "teams": random_layer(rng, 150, "team"), "materials": random_layer(rng, 300, "depot")}
    for _ in range(20):
        lon, lat = rng.uniform(121.42, 121.54), rng.uniform(31.18, 31.28)
        radius = rng.choice([500.0, 1500.0, 3000.0])
        found = resources_within(lon, lat, layers, radius_m=radius)
        expected = []
        for layer_id, data in layers.items():
            x, y = data.geometry.x.to_numpy(), data.geometry.y.to_numpy()
            dist = np.asarray(SPHERE.inv(np.full(len(x), lon), np.full(len(x), lat), x, y)[2])
            expected += [(d, layer_id, i) for i, d in enumerate(dist) if d <= radius]
        expected.sort()
        got = list(zip(found.distance_m, found.layer, found.feature))
        assert [(l, f) for _, l, f in got] == [(l, f) for _, l, f in expected]
        np.testing.assert_allclose([d for d, _, _ in got], [d for d, _, _ in expected], rtol=1e-9, atol=1e-6)
        assert list(found.distance_m) == sorted(found.distance_m)


def test_columns_polygons_and_empty() -> None:
    depot = gpd.GeoDataFrame({"name": ["仓库"], "kind": ["materials"]}, geometry=[shapely.box(121.481, 31.231, 121.482, 31.232)], crs="EPSG:4326")
    found = resources_within(121.48, 31.23, {"depots": depot, "none": depot.iloc[:0]})
    assert found[["layer", "name", "kind"]].values.tolist() == [["depots", "仓库", "materials"]]
    assert found.distance_m.iloc[0] < 300
    assert resources_within(121.48, 31.23, {}).empty


def test_bad_location() -> None:
    with pytest.raises(LayerDataError, match="not a finite lon/lat"):
        resources_within(float("nan"), 31.2, {})
