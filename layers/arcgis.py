"""ArcGIS REST FeatureServer / MapServer layer source: ``query`` paged, in WGS84.

Scene file::

    source:
      type: arcgis
      url: https://onemap.example.gov.cn/arcgis/rest/services/drainage/FeatureServer/0   # the layer
      where: "status = 'open'"                # SQL filter (default 1=1)
      out_fields: [name, depth]               # default: all
      schema: {depth: float}
      token_param_env: ONEMAP_ARCGIS_TOKEN    # token sent as the ``token`` query parameter

The layer's metadata (``{layer}?f=json``, read once) gives its spatial reference, the page cap
``maxRecordCount``, the output formats (``supportedQueryFormats``) and whether it pages
(``advancedQueryCapabilities.supportsPagination``). Each read asks ``query`` for
``outSR=4326`` as GeoJSON (``f=geojson``) where the layer offers it, else as Esri JSON (``f=json``,
converted with ``arcgis2geojson``). A ``bbox`` goes to the server as an envelope in the layer's
spatial reference. Pages follow ``resultOffset``/``resultRecordCount`` (at most
``maxRecordCount`` each) while ``exceededTransferLimit`` is true (a GeoJSON answer without that
flag: while a page comes back full); a layer that cannot page is read by object ids
(``returnIdsOnly=true``, then ids in chunks, POSTed). An ``{"error": ...}`` answer (ArcGIS sends
them with HTTP 200) is a SourceError naming the layer URL and the server's message. Features
without geometry or with unreadable geometry are skipped and counted (``last_skipped``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import geopandas as gpd
from arcgis2geojson import arcgis2geojson
from pydantic import Field, field_validator, model_validator
from twin_layers.ogcapi import CoordSpace, FeatureParams, FeatureStats, _bbox_in, features_to_frame, finish_frame, parse_json

from twin.errors import CRSError, SourceError
from twin.geo.crs import WGS84, GeoCRS, parse_crs
from twin.http_source import HttpFeatureSource
from twin.httpclient import HttpResult, redact_url
from twin.source import BBox

__all__ = ["ArcGisFeatureSource", "ArcGisParams", "esri_crs", "esri_features_to_geojson", "token_query"]

log = logging.getLogger(__name__)

_SERVICE = re.compile(r"/(FeatureServer|MapServer)(/(?P<layer>\d+))?/?$", re.IGNORECASE)
_TOKEN_CODES = frozenset({498, 499})
_MAX_IDS_PER_REQUEST = 1000


def token_query(variable: str | None, where: str) -> dict[str, str]:
    """``{"token": value}`` from environment variable ``variable`` (none: ``{}``); redact_url hides it in messages.

    Raises SourceError naming the variable when it is not set."""
    if not variable:
        return {}
    value = os.environ.get(variable)
    if not value:
        raise SourceError(f"{where}: environment variable {variable} (a credential named in the scene) is not set")
    return {"token": value}


def esri_crs(reference: Any) -> GeoCRS | None:
    """The CRS of an Esri ``spatialReference`` (``latestWkid``, ``wkid`` — EPSG, else ESRI authority — or
    ``wkt``); None when it names none or one PROJ does not know.

    >>> esri_crs({"wkid": 102100, "latestWkid": 3857}).name
    'EPSG:3857'
    >>> esri_crs({"wkid": 102100}).name
    'ESRI:102100'
    """
    if not isinstance(reference, Mapping):
        return None
    for key in ("latestWkid", "wkid"):
        code = reference.get(key)
        if isinstance(code, int) and not isinstance(code, bool) and code > 0:
            for authority in ("EPSG", "ESRI"):
                try:
                    return parse_crs(f"{authority}:{code}")
                except CRSError:
                    continue
    wkt = reference.get("wkt")
    if isinstance(wkt, str) and wkt.strip():
        try:
            return parse_crs(wkt)
        except CRSError:
            return None
    return None


def esri_features_to_geojson(features: Sequence[Any], id_field: str | None, stats: FeatureStats) -> list[dict[str, Any]]:
    """Esri JSON features (``attributes`` + ``geometry`` with ``x/y``, ``points``, ``paths`` or ``rings``) as
    GeoJSON features (rings grouped into polygons with holes by orientation, as Esri defines them).
    Features that do not convert are skipped and counted as ``bad_geometry``."""
    out: list[dict[str, Any]] = []
    for feature in features:
        if not isinstance(feature, Mapping):
            stats.skip("bad_geometry")
            continue
        try:
            converted = arcgis2geojson(dict(feature), id_field)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError):
            stats.skip("bad_geometry")
            continue
        if converted.get("geometry") is None and feature.get("geometry"):
            converted["geometry"] = {"type": "unreadable"}  # e.g. an Esri geometry of no known kind: counted by features_to_frame
        out.append(converted)
    return out


class ArcGisParams(FeatureParams):
    """Parameters of an ArcGIS REST FeatureServer / MapServer layer."""

    layer: int | None = Field(None, ge=0, description="layer id when url is the service (…/FeatureServer); default: url is the layer (…/FeatureServer/0)")
    where: str = Field("1=1", min_length=1, description="SQL where clause sent to the server")
    out_fields: list[str] = Field(["*"], min_length=1, description="attributes to ask for (outFields); default all")
    page_size: int | None = Field(None, ge=1, le=100_000, description="features per request; default and cap: the layer's maxRecordCount")
    format: Literal["auto", "geojson", "json"] = Field("auto", description="query output: geojson where the layer offers it (auto), or Esri json")
    paging: Literal["auto", "offset", "ids"] = Field("auto", description="page by resultOffset where the layer supports it (auto), or by object ids")
    token_param_env: str | None = Field(None, description="environment variable with a token sent as the `token` query parameter")

    @field_validator("url")
    @classmethod
    def _service_url(cls, value: str) -> str:
        if not _SERVICE.search(urlsplit(value).path):
            raise ValueError(f"{value!r} is not an ArcGIS REST layer URL: expected …/FeatureServer/0 or …/MapServer/0 (or the service URL with layer)")
        return value

    @model_validator(mode="after")
    def _one_layer(self) -> ArcGisParams:
        match = _SERVICE.search(urlsplit(self.url).path)
        if match and match["layer"] is not None and self.layer is not None and int(match["layer"]) != self.layer:
            raise ValueError(f"url names layer {match['layer']} but layer is {self.layer}: give one")
        return self


@dataclass(frozen=True)
class _Layer:
    """What the layer's metadata says about querying it."""

    url: str
    name: str
    max_records: int | None
    formats: frozenset[str]
    pagination: bool
    id_field: str | None
    crs: GeoCRS | None
    reference: Mapping[str, Any] | None


class ArcGisFeatureSource(HttpFeatureSource):
    """Features of one ArcGIS REST FeatureServer or MapServer layer (also served by SuperMap, MapGIS IGServer, Koop)."""

    type_name = "arcgis"
    Params = ArcGisParams
    params: ArcGisParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._layer: _Layer | None = None

    def describe(self) -> str:
        return f"arcgis source {redact_url(self.layer_url)}"

    @property
    def layer_url(self) -> str:
        """The layer's URL (…/FeatureServer/N), without a query."""
        parts = urlsplit(self.params.url)
        path = parts.path.rstrip("/")
        match = _SERVICE.search(path)
        if match and match["layer"] is None:
            path = f"{path}/{self.params.layer or 0}"
        return f"{parts.scheme}://{parts.netloc}{path}"

    # -- requests --------------------------------------------------------------------------
    def _json(self, result: HttpResult) -> Mapping[str, Any]:
        """A JSON object answer; an ``error`` member (ArcGIS sends those with HTTP 200) is a SourceError."""
        where = self.describe()
        doc = parse_json(result, where)
        if not isinstance(doc, Mapping):
            raise SourceError(f"{where}: {result.url}: expected a JSON object, got {type(doc).__name__}")
        error = doc.get("error")
        if isinstance(error, Mapping):
            code = error.get("code")
            details = [str(d) for d in error.get("details") or [] if d]
            text = " ".join([str(error.get("message") or "error"), *details])[:300]
            hint = "; set token_param_env (or token_env) to a valid token" if code in _TOKEN_CODES else ""
            raise SourceError(f"{where}: {result.url}: ArcGIS error {code}: {text}{hint}", status=code if isinstance(code, int) else None)
        return doc

    def _get(self, url: str, query: Mapping[str, Any]) -> Mapping[str, Any]:
        q = {**query, **token_query(self.params.token_param_env, self.describe())}
        return self._json(self.client.get(url, q, accept="application/geo+json, application/json;q=0.9"))

    def _post(self, url: str, query: Mapping[str, Any]) -> Mapping[str, Any]:
        form = {**query, **token_query(self.params.token_param_env, self.describe())}
        body = urlencode({k: str(v) for k, v in form.items()}).encode("ascii")
        return self._json(self.client.post(url, data=body, content_type="application/x-www-form-urlencoded"))

    def layer_info(self) -> _Layer:
        """The layer's metadata (read once per source)."""
        if self._layer is not None:
            return self._layer
        where = self.describe()
        doc = self._get(self.layer_url, {"f": "json"})
        kind = str(doc.get("type") or "")
        if kind and kind not in ("Feature Layer", "Table"):
            subs = ", ".join(f"{s.get('id')} {s.get('name')!r}" for s in doc.get("subLayers") or [] if isinstance(s, Mapping))
            raise SourceError(f"{where}: layer is a {kind!r}, not a feature layer" + (f"; its sublayers: {subs}" if subs else ""))
        advanced = doc.get("advancedQueryCapabilities")
        pagination = bool((advanced if isinstance(advanced, Mapping) else {}).get("supportsPagination", doc.get("supportsPagination", False)))
        extent = doc.get("extent") if isinstance(doc.get("extent"), Mapping) else {}
        reference = doc.get("sourceSpatialReference") or extent.get("spatialReference")
        maximum = doc.get("maxRecordCount")
        self._layer = _Layer(
            url=self.layer_url,
            name=str(doc.get("name") or ""),
            max_records=maximum if isinstance(maximum, int) and maximum > 0 else None,
            formats=frozenset(f.strip().lower() for f in str(doc.get("supportedQueryFormats") or "JSON").split(",")),
            pagination=pagination,
            id_field=_id_field(doc),
            crs=esri_crs(reference),
            reference=reference if isinstance(reference, Mapping) else None,
        )
        return self._layer

    # -- reading ---------------------------------------------------------------------------
    def read(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        p = self.params
        where = self.describe()
        layer = self.layer_info()
        fmt = p.format if p.format != "auto" else ("geojson" if "geojson" in layer.formats else "json")
        query: dict[str, Any] = {"where": p.where, "outFields": ",".join(p.out_fields), "returnGeometry": "true", "outSR": 4326, "f": fmt}
        if bbox is not None:
            query.update(_envelope(bbox, layer))
        size = min(p.page_size or layer.max_records or 1000, layer.max_records or 100_000)
        stats = FeatureStats()
        self.last_skipped = stats.skipped
        by_ids = p.paging == "ids" or (p.paging == "auto" and not layer.pagination)
        pages = self._read_by_ids(layer, query, size, stats) if by_ids else self._read_by_offset(layer, query, size, stats)
        return finish_frame(pages, params=p, where=where, stats=stats, bbox=bbox)

    def _page_frame(self, doc: Mapping[str, Any], layer: _Layer, stats: FeatureStats, room: int | None) -> tuple[gpd.GeoDataFrame, int]:
        """One query answer (GeoJSON or Esri JSON) → (WGS84 frame of at most ``room`` features, features returned)."""
        raw = doc.get("features")
        if not isinstance(raw, list):
            raise SourceError(f"{self.describe()}: a query answer has no features list (keys: {', '.join(map(str, doc))})")
        returned = len(raw)
        raw = raw if room is None else raw[:room]
        if doc.get("type") == "FeatureCollection":
            features: list[Any] = raw
            space = CoordSpace(WGS84, False, "GeoJSON (outSR 4326)")
        else:
            features = esri_features_to_geojson(raw, layer.id_field, stats)
            crs = esri_crs(doc.get("spatialReference")) or WGS84
            space = CoordSpace(crs, False, f"the answer's spatialReference {crs.name}")
        if self.params.data_crs:
            space = CoordSpace(parse_crs(self.params.data_crs), False, f"data_crs {self.params.data_crs}")
        self.pages_read += 1
        return features_to_frame(features, space, where=self.describe(), stats=stats), returned

    def _read_by_offset(self, layer: _Layer, query: Mapping[str, Any], size: int, stats: FeatureStats) -> list[gpd.GeoDataFrame]:
        """Pages by ``resultOffset``/``resultRecordCount`` while the server says more remain."""
        p = self.params
        where = self.describe()
        pages: list[gpd.GeoDataFrame] = []
        offset = count = 0
        previous = ""
        url = f"{layer.url}/query"
        while True:
            if len(pages) >= p.max_pages:
                raise SourceError(f"{where}: stopped at max_pages={p.max_pages} with more features on the server (offset {offset}); set max_features or page_size, or raise max_pages")
            doc = self._get(url, {**query, "resultOffset": offset, "resultRecordCount": size})
            digest = hashlib.sha1(json.dumps(doc.get("features"), sort_keys=True, default=str).encode()).hexdigest()
            if offset and doc.get("features") and digest == previous:
                raise SourceError(f"{where}: page loop: the page at resultOffset={offset} repeats the one before; the server ignores resultOffset (set paging: ids)")
            previous = digest
            room = None if p.max_features is None else p.max_features - count
            frame, returned = self._page_frame(doc, layer, stats, room)
            pages.append(frame)
            count += min(returned, room) if room is not None else returned
            offset += returned
            exceeded = _exceeded(doc)
            if p.max_features is not None and count >= p.max_features:
                log.info("%s: stopped at max_features=%d", where, p.max_features)
                break
            more = exceeded if exceeded is not None else returned >= size
            if more and not returned:
                raise SourceError(f"{where}: the server says more features remain (exceededTransferLimit) but sent an empty page at resultOffset={offset}")
            if not more:
                break
        return pages

    def _read_by_ids(self, layer: _Layer, query: Mapping[str, Any], size: int, stats: FeatureStats) -> list[gpd.GeoDataFrame]:
        """All matching object ids (``returnIdsOnly`` has no cap), then the features in chunks of ``size``."""
        p = self.params
        where = self.describe()
        url = f"{layer.url}/query"
        ids_query = {k: v for k, v in query.items() if k not in ("outFields", "outSR", "returnGeometry")}
        doc = self._get(url, {**ids_query, "returnIdsOnly": "true", "f": "json"})
        ids = doc.get("objectIds")
        if ids is None:
            return []
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise SourceError(f"{where}: returnIdsOnly answered objectIds that are not a list of integers")
        ids = sorted(ids)[: p.max_features]
        chunk = min(size, _MAX_IDS_PER_REQUEST)
        if -(-len(ids) // chunk) > p.max_pages:
            raise SourceError(f"{where}: {len(ids)} features need {-(-len(ids) // chunk)} requests of {chunk}, over max_pages={p.max_pages}; set max_features, or raise max_pages")
        fetch = {k: v for k, v in query.items() if k not in ("where", "geometry", "geometryType", "inSR", "spatialRel")}
        pages = []
        for start in range(0, len(ids), chunk):
            page = self._post(url, {**fetch, "objectIds": ",".join(map(str, ids[start : start + chunk]))})
            pages.append(self._page_frame(page, layer, stats, None)[0])
        return pages


def _id_field(doc: Mapping[str, Any]) -> str | None:
    """The object id field: ``objectIdField``, else the field of type esriFieldTypeOID."""
    if isinstance(doc.get("objectIdField"), str):
        return str(doc["objectIdField"])
    for f in doc.get("fields") or []:
        if isinstance(f, Mapping) and f.get("type") == "esriFieldTypeOID":
            return str(f.get("name"))
    return None


def _exceeded(doc: Mapping[str, Any]) -> bool | None:
    """``exceededTransferLimit`` at the top (Esri JSON) or in ``properties`` (ArcGIS GeoJSON); None when absent."""
    props = doc.get("properties")
    for holder in (doc, props if isinstance(props, Mapping) else {}):
        value = holder.get("exceededTransferLimit")
        if isinstance(value, bool):
            return value
    return None


def _envelope(bbox: BBox, layer: _Layer) -> dict[str, Any]:
    """Query parameters selecting ``bbox`` (WGS84) as an envelope in the layer's spatial reference
    (Esri envelopes are always x/y = east/north); WGS84 (inSR 4326) where the layer names none."""
    crs = layer.crs or WGS84
    xmin, ymin, xmax, ymax = _bbox_in(bbox, CoordSpace(crs))
    if layer.crs is None or layer.reference is None:
        in_sr: Any = 4326
    else:
        code = layer.reference.get("wkid") or layer.reference.get("latestWkid")
        in_sr = code if isinstance(code, int) else json.dumps({"wkt": layer.reference.get("wkt")})
    return {
        "geometry": ",".join(f"{v:.10g}" for v in (xmin, ymin, xmax, ymax)),
        "geometryType": "esriGeometryEnvelope",
        "inSR": in_sr,
        "spatialRel": "esriSpatialRelIntersects",
    }
