"""A pygeoapi feature provider for tests: many points from a ``.npz`` (``fid``, ``lon``, ``lat``), bbox filtered with numpy.

pygeoapi's CSV and GeoJSON providers test each feature with shapely per request (seconds for
100k points on a busy CI machine); this one answers a bbox query over 100k points in
milliseconds, so a test can serve a city-sized collection. Configure it as::

    providers: [{type: feature, name: pygeoapi_points.NpzPointsProvider, data: /path/points.npz, id_field: fid}]

with this folder on the server's ``PYTHONPATH``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pygeoapi.provider.base import BaseProvider, ProviderItemNotFoundError


class NpzPointsProvider(BaseProvider):
    """Points ``(lon[i], lat[i])`` with id ``fid[i]`` and property ``kind = fid % 7``."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        super().__init__(provider_def)
        with np.load(self.data) as npz:
            self.fid, self.lon, self.lat = npz["fid"], npz["lon"], npz["lat"]
        self.get_fields()

    def get_fields(self) -> dict[str, Any]:
        self._fields = {"kind": {"type": "integer"}}
        return self._fields

    def _feature(self, i: int) -> dict[str, Any]:
        fid = int(self.fid[i])
        return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [float(self.lon[i]), float(self.lat[i])]}, "properties": {"kind": fid % 7}}

    def query(self, offset: int = 0, limit: int = 10, resulttype: str = "results", bbox: list[float] | None = None, **kwargs: Any) -> dict[str, Any]:
        keep = np.ones(len(self.fid), dtype=bool)
        if bbox:
            west, south, east, north = (float(v) for v in bbox)
            keep = (self.lon >= west) & (self.lon <= east) & (self.lat >= south) & (self.lat <= north)
        index = np.flatnonzero(keep)
        page = [] if resulttype == "hits" else [self._feature(int(i)) for i in index[offset : offset + limit]]
        return {"type": "FeatureCollection", "features": page, "numberMatched": len(index), "numberReturned": len(page)}

    def get(self, identifier: Any, **kwargs: Any) -> dict[str, Any]:
        hit = np.flatnonzero(self.fid == int(identifier))
        if not len(hit):
            raise ProviderItemNotFoundError(f"no feature {identifier}")
        return self._feature(int(hit[0]))
