"""A source that reads one GeoJSON document over HTTP (a common vendor "export" endpoint).

Scene file::

    source: {type: geojson_url, url: "http://127.0.0.1:8000/pumps.geojson", token_env: PUMPS_TOKEN}
"""

from __future__ import annotations

import geopandas as gpd
from pydantic import Field

from twin.errors import SourceError
from twin.geo.crs import WGS84, geometries_to_wgs84, parse_crs
from twin.httpclient import HttpClient, HttpParams
from twin.source import BBox, Source

__all__ = ["GeoJsonUrlSource"]


class GeoJsonUrlParams(HttpParams):
    crs: str | None = Field(None, description="CRS of the coordinates if not WGS84 (e.g. GCJ02)")


class GeoJsonUrlSource(Source):
    """Features from a GeoJSON FeatureCollection at a URL (retries, timeouts, credentials from env)."""

    Params = GeoJsonUrlParams
    params: GeoJsonUrlParams

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._client = HttpClient(self.params, name=self.describe())

    def describe(self) -> str:
        return f"GeoJSON at {self.params.url}"

    def read(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        document, _ = self._client.get_json(self.params.url)
        if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
            raise SourceError(f"{self.describe()}: not a GeoJSON FeatureCollection")
        data = gpd.GeoDataFrame.from_features(document["features"], crs=WGS84.proj)
        if self.params.crs:
            data = data.set_geometry(geometries_to_wgs84(data.geometry.to_numpy(), parse_crs(self.params.crs)), crs=WGS84.proj)
        if bbox is not None and not data.empty:
            data = data.cx[bbox[0] : bbox[2], bbox[1] : bbox[3]]
        return data
