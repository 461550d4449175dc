"""SuperMap iServer REST data service source: ``featureResults`` queries over one dataset, paged, in WGS84.

Scene file::

    source:
      type: iserver
      url: http://onemap.example.gov.cn:8090/iserver/services/data-drainage/rest/data   # the data service
      dataset: "drainage:outfalls"             # datasource:dataset
      attribute_filter: "DEPTH > 2"            # SQL (optional)
      page_size: 1000                          # the service answers 20 per request unless asked for more
      schema: {DEPTH: float}                   # overrides the dataset's own field types

A read POSTs ``{url}/featureResults.json?returnContent=true&fromIndex=i&toIndex=j`` with a JSON
body: ``getFeatureMode`` ``BOUNDS`` (``BOUNDS_ATTRIBUTEFILTER`` with a filter) when a bbox is given,
the bbox in the dataset's coordinate system (``prjCoordSys.epsgCode`` of
``datasources/{ds}/datasets/{dt}.json``); ``SQL`` without one; ``ID`` with ``ids``; and
``targetEpsgCode`` (default 4326) so coordinates come back as lon/lat. With ``return_content:
false`` the POST creates a result resource (``newResourceLocation``) that is then read by GET,
page by page. Pages follow ``fromIndex``/``toIndex`` until ``totalCount`` features are read.

iServer's native JSON gives each feature ``fieldNames`` with string ``fieldValues``: they are
typed by the dataset's field types (``returnDatasetInfoOnly=true``: INT16/32/64 → int, SINGLE/DOUBLE
→ float, BOOLEAN → bool, DATE/TIME/TIMESTAMP → datetime, text → str), then by ``schema``. Geometry is
``{type: POINT|LINE|REGION, points: [{x, y}], parts: [counts]}``; a REGION's parts are islands and
holes by ``partTopo`` (1 island, -1 hole of the island before it), or, from servers before 9D
without ``partTopo``, by containment. Features without geometry or with unreadable geometry are
skipped and counted (``last_skipped``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import geopandas as gpd
import shapely
from pydantic import Field, field_validator
from twin_layers.arcgis import token_query
from twin_layers.ogcapi import CoordSpace, FeatureParams, FeatureStats, _bbox_in, apply_schema, features_to_frame, finish_frame, parse_json, warn_schema

from twin.errors import CRSError, SourceError
from twin.geo.crs import WGS84, GeoCRS, parse_crs
from twin.http_source import HttpFeatureSource
from twin.httpclient import HttpResult, redact_url
from twin.source import BBox

__all__ = ["IServerFeatureSource", "IServerParams", "iserver_geometry"]

log = logging.getLogger(__name__)

_FIELD_KINDS = {
    "BOOLEAN": "bool",
    "BYTE": "int",
    "INT16": "int",
    "INT32": "int",
    "INT64": "int",
    "SINGLE": "float",
    "DOUBLE": "float",
    "DATE": "datetime",
    "TIME": "datetime",
    "TIMESTAMP": "datetime",
    "CHAR": "str",
    "TEXT": "str",
    "WTEXT": "str",
}


def _rings(geometry: Mapping[str, Any]) -> list[list[tuple[float, float]]]:
    """The point lists of each part (``parts`` counts points; none: one part of all points)."""
    points = [(float(p["x"]), float(p["y"])) for p in geometry.get("points") or []]
    counts = geometry.get("parts") or [len(points)]
    if sum(int(c) for c in counts) != len(points):
        raise ValueError(f"parts {counts} do not add up to the {len(points)} points")
    out, start = [], 0
    for count in counts:
        out.append(points[start : start + int(count)])
        start += int(count)
    return out


def _region(rings: list[list[tuple[float, float]]], topo: Sequence[Any] | None) -> shapely.Geometry:
    """Rings → (Multi)Polygon: by ``partTopo`` (1 island, -1 hole of the island before it), else by
    containment (a ring inside an island is its hole, inside a hole an island again)."""
    polys = [shapely.Polygon(r) for r in rings]
    if topo and len(topo) == len(rings):
        islands: list[tuple[list[tuple[float, float]], list[list[tuple[float, float]]]]] = []
        for ring, kind in zip(rings, topo):
            if kind == -1 and islands:
                islands[-1][1].append(ring)
            else:
                islands.append((ring, []))
        parts = [shapely.Polygon(shell, holes) for shell, holes in islands]
    else:
        order = sorted(range(len(polys)), key=lambda i: -polys[i].area)
        depth: dict[int, int] = {}
        parent: dict[int, int] = {}
        for n, i in enumerate(order):
            inside = [j for j in order[:n] if polys[j].contains(polys[i])]
            depth[i] = depth[inside[-1]] + 1 if inside else 0
            if inside:
                parent[i] = inside[-1]
        holes = {i: [rings[k] for k in parent if parent[k] == i and depth[k] % 2] for i in order if depth[i] % 2 == 0}
        parts = [shapely.Polygon(rings[i], holes[i]) for i in order if depth[i] % 2 == 0]
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def iserver_geometry(geometry: Any) -> shapely.Geometry | None:
    """An iServer ``ServerGeometry`` (POINT, LINE/LINEM, REGION with ``parts``/``partTopo``) as shapely.

    >>> iserver_geometry({"type": "LINE", "points": [{"x": 0, "y": 0}, {"x": 1, "y": 1}, {"x": 5, "y": 5}, {"x": 6, "y": 5}], "parts": [2, 2]}).geom_type
    'MultiLineString'

    Raises ValueError (TypeError) for a geometry of another type or with unreadable points; None for none.
    """
    if not geometry:
        return None
    if not isinstance(geometry, Mapping):
        raise TypeError("geometry is not an object")
    kind = str(geometry.get("type") or "").upper()
    rings = _rings(geometry)
    if kind == "POINT":
        return shapely.Point(rings[0][0]) if len(rings) == 1 else shapely.MultiPoint([r[0] for r in rings])
    if kind in ("LINE", "LINEM"):
        lines = [shapely.LineString(r) for r in rings]
        return lines[0] if len(lines) == 1 else shapely.MultiLineString(lines)
    if kind == "REGION":
        return _region(rings, geometry.get("partTopo"))
    raise ValueError(f"geometry type {kind or 'none'} is not POINT, LINE or REGION")


class IServerParams(FeatureParams):
    """Parameters of a SuperMap iServer REST data service dataset."""

    dataset: str = Field(description="datasource:dataset, e.g. World:Countries")
    attribute_filter: str | None = Field(None, description="SQL where clause (attributeFilter)")
    ids: list[int] | None = Field(None, min_length=1, description="read these SmIDs only (getFeatureMode ID)")
    fields: list[str] | None = Field(None, min_length=1, description="attributes to ask for; default all")
    page_size: int = Field(1000, ge=1, le=100_000, description="features per request (fromIndex..toIndex); the service's default is 20")
    target_epsg_code: int = Field(4326, ge=1, description="EPSG code the service reprojects coordinates to (targetEpsgCode)")
    return_content: bool = Field(True, description="answer in the POST (returnContent=true), else read the created result resource by GET")
    token_param_env: str | None = Field(None, description="environment variable with a token sent as the `token` query parameter")

    @field_validator("dataset")
    @classmethod
    def _named(cls, value: str) -> str:
        source, _, dataset = value.partition(":")
        if not source.strip() or not dataset.strip():
            raise ValueError(f"{value!r} is not datasource:dataset (e.g. World:Countries)")
        return value

    @field_validator("url")
    @classmethod
    def _data_service(cls, value: str) -> str:
        if not urlsplit(value).path.rstrip("/").endswith("/rest/data"):
            raise ValueError(f"{value!r} is not an iServer data service URL: expected …/iserver/services/<service>/rest/data")
        return value


@dataclass(frozen=True)
class _Dataset:
    crs: GeoCRS
    kinds: dict[str, str]


class IServerFeatureSource(HttpFeatureSource):
    """Features of one dataset of a SuperMap iServer REST data service."""

    type_name = "iserver"
    Params = IServerParams
    params: IServerParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._dataset: _Dataset | None = None

    def describe(self) -> str:
        return f"iserver source {self.params.dataset!r} at {redact_url(self.params.url)}"

    @property
    def _base(self) -> str:
        return self.params.url.rstrip("/") + "/"

    def _token(self) -> dict[str, str]:
        return token_query(self.params.token_param_env, self.describe())

    def _answer(self, result: HttpResult) -> Any:
        doc = parse_json(result, self.describe())
        if isinstance(doc, Mapping) and doc.get("succeed") is False:
            error = doc.get("error") if isinstance(doc.get("error"), Mapping) else {}
            raise SourceError(f"{self.describe()}: {result.url}: iServer error {error.get('code')}: {error.get('errorMsg') or 'no message'}")
        return doc

    def _post(self, query: Mapping[str, Any], body: Mapping[str, Any]) -> Any:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        url = urljoin(self._base, "featureResults.json")
        return self._answer(self.client.post(url, {**query, **self._token()}, data=data, content_type="application/json;charset=utf-8"))

    def dataset_info(self) -> _Dataset:
        """The dataset's CRS (``prjCoordSys.epsgCode``) and field types (read once per source)."""
        if self._dataset is not None:
            return self._dataset
        source, _, name = self.params.dataset.partition(":")
        url = urljoin(self._base, f"datasources/{quote(source, safe='')}/datasets/{quote(name, safe='')}.json")
        info = self._answer(self.client.get(url, self._token()))
        prj = (info.get("datasetInfo") or {}).get("prjCoordSys") if isinstance(info, Mapping) else None
        code = prj.get("epsgCode") if isinstance(prj, Mapping) else None
        try:
            crs = parse_crs(int(code)) if isinstance(code, int) and code > 0 else WGS84
        except CRSError:
            crs = WGS84
        if crs is WGS84 and code not in (4326, None):
            log.warning("%s: dataset's epsgCode %r is unknown; sending bounds as WGS84", self.describe(), code)
        described = self._post({"returnContent": "true", "returnDatasetInfoOnly": "true"}, self._body(None))
        fields = described[0].get("fieldInfos") if isinstance(described, list) and described and isinstance(described[0], Mapping) else None
        kinds = {str(f["name"]): _FIELD_KINDS[str(f.get("type")).upper()] for f in fields or [] if isinstance(f, Mapping) and str(f.get("type")).upper() in _FIELD_KINDS}
        self._dataset = _Dataset(crs, kinds)
        return self._dataset

    def _body(self, bbox: BBox | None, crs: GeoCRS = WGS84) -> dict[str, Any]:
        """The featureResults query (JSON body) for the configured mode."""
        p = self.params
        body: dict[str, Any] = {"datasetNames": [p.dataset], "targetEpsgCode": p.target_epsg_code}
        if p.fields:
            body["queryParameter"] = {"name": p.dataset, "fields": p.fields}
        if p.ids is not None:
            return {**body, "getFeatureMode": "ID", "ids": p.ids}
        if bbox is not None:
            x0, y0, x1, y1 = _bbox_in(bbox, CoordSpace(crs))
            body.update(getFeatureMode="BOUNDS", bounds={"leftBottom": {"x": x0, "y": y0}, "rightTop": {"x": x1, "y": y1}}, spatialQueryMode="INTERSECT")
            if p.attribute_filter:
                body.update(getFeatureMode="BOUNDS_ATTRIBUTEFILTER", attributeFilter=p.attribute_filter)
            return body
        query = {**body.get("queryParameter", {"name": p.dataset}), "attributeFilter": p.attribute_filter or "1=1"}
        return {**body, "getFeatureMode": "SQL", "queryParameter": query}

    def read(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        p = self.params
        where = self.describe()
        dataset = self.dataset_info()
        body = self._body(bbox, dataset.crs)
        location = None
        if not p.return_content:
            created = self._post({}, body)
            location = created.get("newResourceLocation") if isinstance(created, Mapping) else None
            if not isinstance(location, str):
                raise SourceError(f"{where}: the POST to featureResults created no result resource (no newResourceLocation)")
        stats = FeatureStats()
        self.last_skipped = stats.skipped
        space = CoordSpace(parse_crs(p.data_crs) if p.data_crs else parse_crs(p.target_epsg_code), False, f"targetEpsgCode {p.target_epsg_code}")
        pages: list[gpd.GeoDataFrame] = []
        start = count = 0
        while True:
            if len(pages) >= p.max_pages:
                raise SourceError(f"{where}: stopped at max_pages={p.max_pages} at fromIndex={start}; set max_features or a larger page_size, or raise max_pages")
            window = {"fromIndex": start, "toIndex": start + p.page_size - 1}
            if location is None:
                doc = self._post({"returnContent": "true", **window}, body)
            else:
                doc = self._answer(self.client.get(location, {**window, **self._token()}))
            features, total = _page(doc, where)
            room = None if p.max_features is None else p.max_features - count
            kept = features if room is None else features[:room]
            pages.append(features_to_frame([_geojson(f) for f in kept], space, where=where, stats=stats))
            self.pages_read += 1
            count += len(kept)
            start += len(features)
            if (room is not None and count >= p.max_features) or not features:
                break
            if (total is not None and start >= total) or (total is None and len(features) < p.page_size):
                break
        return self._typed(finish_frame(pages, params=p.model_copy(update={"schema": {}}), where=where, stats=stats, bbox=bbox), dataset)

    def _typed(self, frame: gpd.GeoDataFrame, dataset: _Dataset) -> gpd.GeoDataFrame:
        """String field values typed by the dataset's field types, then by ``schema``; one warning for values that do not parse."""
        columns = {str(c).upper(): c for c in frame.columns}  # fieldInfos say SmID where fieldNames say SMID
        kinds = {columns[c.upper()]: k for c, k in dataset.kinds.items() if c.upper() in columns}
        schema = {**kinds, **self.params.schema}
        if not schema:
            return frame
        typed, bad = apply_schema(frame, schema, time_zone=self.params.time_zone)
        warn_schema(self.describe(), bad, schema)
        return gpd.GeoDataFrame(typed, geometry=frame.geometry.name, crs=frame.crs)


def _page(doc: Any, where: str) -> tuple[list[Any], int | None]:
    """A featureResults answer's features and ``totalCount``."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("features"), list):
        raise SourceError(f"{where}: a featureResults answer has no features list")
    total = doc.get("totalCount")
    return doc["features"], total if isinstance(total, int) and not isinstance(total, bool) else None


def _geojson(feature: Any) -> Mapping[str, Any]:
    """An iServer feature as a GeoJSON feature (``fieldNames`` zipped with ``fieldValues``; ``ID`` as id);
    one whose geometry does not convert becomes a feature of an unknown geometry type (skipped and counted)."""
    if not isinstance(feature, Mapping):
        return {"type": "Feature", "geometry": {"type": "unreadable"}}
    names, values = feature.get("fieldNames") or [], feature.get("fieldValues") or []
    props = dict(zip(map(str, names), values)) if isinstance(names, list) and isinstance(values, list) else {}
    try:
        geom = iserver_geometry(feature.get("geometry"))
    except (ValueError, TypeError, KeyError, IndexError, shapely.errors.ShapelyError):
        return {"type": "Feature", "properties": props, "geometry": {"type": "unreadable"}}
    mapped = shapely.geometry.mapping(geom) if geom is not None and not geom.is_empty else None
    return {"type": "Feature", "id": feature.get("ID"), "properties": props, "geometry": mapped}

