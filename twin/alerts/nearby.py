"""Help within reach: resources (pumps, rescue teams, materials) within a radius of an alert.

Distances are great-circle distances on the mean Earth sphere (R = 6,371,008.8 m). Polygons
count from their representative point.

>>> import geopandas as gpd, shapely
>>> pumps = gpd.GeoDataFrame({"name": ["泵车1", "泵车2"]}, geometry=[shapely.Point(121.49, 31.23), shapely.Point(121.60, 31.23)], crs="EPSG:4326")
>>> found = resources_within(121.48, 31.23, {"pumps": pumps}, radius_m=3000)
>>> found[["layer", "name"]].values.tolist(), round(float(found.distance_m.iloc[0]))
([['pumps', '泵车1']], 951)
"""

from __future__ import annotations

from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike, NDArray

from twin.errors import LayerDataError

__all__ = ["EARTH_RADIUS_M", "great_circle_m", "reach_features", "resources_within"]

EARTH_RADIUS_M = 6_371_008.8


def great_circle_m(lon1: ArrayLike, lat1: ArrayLike, lon2: ArrayLike, lat2: ArrayLike) -> NDArray[np.float64]:
    """Haversine distance in metres between lon/lat points (degrees), vectorised."""
    lo1, la1, lo2, la2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lon1, lat1, lon2, lat2))
    a = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def resources_within(
    lon: float,
    lat: float,
    resources: Mapping[str, gpd.GeoDataFrame],
    *,
    radius_m: float = 3000.0,
    columns: tuple[str, ...] = ("name", "kind", "id"),
) -> pd.DataFrame:
    """Features of each resource layer within ``radius_m`` of (lon, lat), nearest first.

    Returns columns ``layer``, ``feature`` (row position in that layer), ``distance_m``,
    ``lon``, ``lat`` and whichever of ``columns`` the layers have.
    """
    if not (np.isfinite(lon) and np.isfinite(lat)):
        raise LayerDataError(f"cannot search around ({lon}, {lat}): not a finite lon/lat")
    if radius_m <= 0:
        raise LayerDataError(f"search radius {radius_m} m must be positive")
    frames = []
    for layer_id, data in resources.items():
        if data.empty:
            continue
        geoms = data.geometry.to_numpy()
        usable = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
        points = shapely.point_on_surface(geoms[usable])
        rows = np.flatnonzero(usable)
        px, py = shapely.get_x(points), shapely.get_y(points)
        # cheap box prefilter in degrees, then the exact great-circle distance
        dlat = np.degrees(radius_m / EARTH_RADIUS_M)
        dlon = dlat / max(np.cos(np.radians(min(abs(lat) + dlat, 89.9))), 1e-6)
        box = (np.abs(py - lat) <= dlat) & (np.abs(((px - lon + 180.0) % 360.0) - 180.0) <= dlon)
        distance = great_circle_m(lon, lat, px[box], py[box])
        near = distance <= radius_m
        picked = rows[box][near]
        frame = pd.DataFrame({"layer": layer_id, "feature": picked, "distance_m": distance[near], "lon": px[box][near], "lat": py[box][near]})
        for column in columns:
            if column in data.columns:
                frame[column] = data[column].to_numpy()[picked]
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["layer", "feature", "distance_m", "lon", "lat"])
    return pd.concat(frames, ignore_index=True).sort_values(["distance_m", "layer", "feature"], kind="stable").reset_index(drop=True)


def reach_features(lon: float, lat: float, found: pd.DataFrame, *, radius_m: float = 3000.0, segments: int = 96) -> gpd.GeoDataFrame:
    """What to highlight in the scene: the search circle (great-circle, as a line) and the resources found.

    ``found`` has one row per resource with ``layer``, ``lon``, ``lat`` and optional ``kind``,
    ``name``, ``distance_m`` (as :func:`resources_within` returns). Columns ``kind`` ("reach" for
    the circle, else the resource's kind or layer), ``name``, ``distance_m``; EPSG:4326.

    >>> found = pd.DataFrame({"layer": ["resources"], "kind": ["pump"], "name": ["泵车 1"], "lon": [121.50], "lat": [31.24], "distance_m": [950.0]})
    >>> features = reach_features(121.49, 31.24, found, radius_m=1500)
    >>> features["kind"].tolist(), features.geometry.geom_type.tolist()
    (['reach', 'pump'], ['LineString', 'Point'])
    """
    bearings = np.radians(np.linspace(0.0, 360.0, segments + 1))
    phi, lam, delta = np.radians(lat), np.radians(lon), radius_m / EARTH_RADIUS_M
    ring_lat = np.arcsin(np.sin(phi) * np.cos(delta) + np.cos(phi) * np.sin(delta) * np.cos(bearings))
    ring_lon = lam + np.arctan2(np.sin(bearings) * np.sin(delta) * np.cos(phi), np.cos(delta) - np.sin(phi) * np.sin(ring_lat))
    circle = shapely.LineString(np.column_stack([np.degrees(ring_lon), np.degrees(ring_lat)]))
    kinds = [
        str(k) if isinstance(k, str) and k else str(layer)
        for k, layer in zip(found.get("kind", pd.Series([None] * len(found))), found["layer"])
    ]
    names = [str(n) if isinstance(n, str) else "" for n in found.get("name", pd.Series([None] * len(found)))]
    return gpd.GeoDataFrame(
        {
            "kind": ["reach", *kinds],
            "name": [f"{radius_m / 1000:g} km", *names],
            "distance_m": [radius_m, *found["distance_m"].tolist()],
        },
        geometry=[circle, *shapely.points(found["lon"].to_numpy(), found["lat"].to_numpy())],
        crs="EPSG:4326",
    )
