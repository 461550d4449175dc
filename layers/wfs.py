"""WFS 2.0 source: GetFeature as GeoJSON, paged with ``count``/``startIndex``, in WGS84.

Scene file::

    source:
      type: wfs
      url: https://onemap.example.gov.cn/cgi-bin/mapserv?map=drainage   # service endpoint
      type_name: ms:outfalls
      count: 500                                                        # page size
      srs_name: urn:ogc:def:crs:EPSG::4326
      schema: {depth: float, pumps: int, open: bool, updated: datetime}  # MapServer sends strings
      poll_interval: 10m

The GetCapabilities document (read once) tells which GeoJSON ``outputFormat`` the server
names (MapServer 8 lists its OUTPUTFORMAT's MIMETYPE, typically ``application/json;
subtype=geojson``, or the format's bare name without one), whether it pages, its page cap
(``CountDefault``) and the feature type's CRSs. Paging trusts ``numberMatched`` when it is a
number: a short page (servers cap pages below COUNT without advertising it) is not the end
while ``startIndex`` + returned < numberMatched; with ``numberMatched="unknown"`` it reads until
an empty page; without one, a short page ends it. At most ``max_pages`` pages are read (more is
an error); a server that ignores ``startIndex`` (the same page twice) is an error, not an
endless loop. Features with bad geometry are skipped and counted (``last_skipped``). ``bbox`` is sent
in ``srs_name``'s axis order with the CRS as a suffix. GeoJSON coordinates are read lon/lat
unless the document's ``crs`` member names a lat/lon CRS by URN; ``data_crs`` overrides.
"""

from __future__ import annotations

import hashlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
from pydantic import Field
from twin_layers.ogcapi import (
    CoordSpace,
    FeatureParams,
    FeatureStats,
    _bbox_in,
    _full_url,
    _same_crs,
    crs_from_name,
    features_to_frame,
    finish_frame,
    parse_feature_collection,
)

from twin.errors import CRSError, SourceError
from twin.http_source import HttpFeatureSource
from twin.httpclient import redact_url
from twin.source import BBox

__all__ = ["WfsParams", "WfsSource"]

log = logging.getLogger(__name__)


class WfsParams(FeatureParams):
    type_name: str = Field(description="feature type to read (typeNames), e.g. ms:outfalls")
    count: int = Field(500, ge=1, le=100_000, description="features per page (capped by the server's CountDefault)")
    srs_name: str = Field("urn:ogc:def:crs:EPSG::4326", description="CRS to request (srsName); one the feature type lists")
    output_format: str | None = Field(None, description="GetFeature outputFormat; default: the GeoJSON format the capabilities list")
    version: str = Field("2.0.0", description="WFS version")


@dataclass
class _Capabilities:
    type_names: list[str]
    formats: list[str]
    paging: bool
    count_default: int | None
    crs: dict[str, list[str]] = field(default_factory=dict)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def parse_capabilities(body: bytes, where: str) -> _Capabilities:
    """The parts of a WFS 2.0 GetCapabilities document this source uses."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise SourceError(f"{where}: GetCapabilities is not XML ({exc})") from None
    if _local(root.tag) == "ExceptionReport":
        texts = [t.text or "" for t in root.iter() if _local(t.tag) == "ExceptionText"]
        raise SourceError(f"{where}: GetCapabilities: service exception: {' '.join(texts).strip()[:300]}")
    formats: list[str] = []
    paging = True
    count_default: int | None = None
    for element in root.iter():
        name = _local(element.tag)
        if name == "Operation" and element.get("name") == "GetFeature":
            for parameter in element.iter():
                if _local(parameter.tag) == "Parameter" and parameter.get("name", "").lower() == "outputformat":
                    formats += [(v.text or "").strip() for v in parameter.iter() if _local(v.tag) == "Value"]
        elif name == "Constraint" and element.get("name") in ("ImplementsResultPaging", "CountDefault"):
            default = next(((d.text or "").strip() for d in element.iter() if _local(d.tag) == "DefaultValue"), "")
            if element.get("name") == "ImplementsResultPaging":
                paging = default.upper() != "FALSE"
            elif default.isdigit():
                count_default = int(default)
    type_names: list[str] = []
    crs: dict[str, list[str]] = {}
    for element in root.iter():
        if _local(element.tag) == "FeatureType":
            names = _children(element, "Name")
            if not names or not (names[0].text or "").strip():
                continue
            type_name = (names[0].text or "").strip()
            type_names.append(type_name)
            crs[type_name] = [(c.text or "").strip() for c in element if _local(c.tag) in ("DefaultCRS", "OtherCRS", "DefaultSRS", "OtherSRS")]
    return _Capabilities(type_names, [f for f in formats if f], paging, count_default, crs)


def choose_geojson(formats: list[str]) -> str | None:
    """The GeoJSON output format among those a server lists (``geojson`` named first).

    >>> choose_geojson(["text/xml; subtype=gml/3.2.1", "application/json; subtype=geojson"])
    'application/json; subtype=geojson'
    """
    for test in (lambda f: "geojson" in f.lower() or "geo+json" in f.lower(), lambda f: "json" in f.lower()):
        for fmt in formats:
            if test(fmt):
                return fmt
    return None


class WfsSource(HttpFeatureSource):
    """Features of one WFS 2.0 feature type."""

    type_name = "wfs"
    Params = WfsParams
    params: WfsParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._caps: _Capabilities | None = None

    def check_params(self) -> None:
        try:
            crs_from_name(self.params.srs_name)
        except CRSError as exc:
            raise SourceError(f"{self.describe()}: srs_name: {exc}") from None

    def describe(self) -> str:
        return f"wfs source {self.params.type_name!r} at {redact_url(self.params.url)}"

    def capabilities(self) -> _Capabilities:
        """GetCapabilities, read once and checked against ``type_name``."""
        if self._caps is None:
            query = {"SERVICE": "WFS", "REQUEST": "GetCapabilities", "ACCEPTVERSIONS": self.params.version}
            result = self.client.get(self.params.url, query, accept="application/xml, text/xml")
            caps = parse_capabilities(result.body, self.describe())
            if caps.type_names and self._type_name(caps) is None:
                raise SourceError(f"{self.describe()}: the server has no feature type {self.params.type_name!r}; it has: {', '.join(caps.type_names)}")
            self._caps = caps
        return self._caps

    def _type_name(self, caps: _Capabilities) -> str | None:
        wanted = self.params.type_name
        if wanted in caps.type_names:
            return wanted
        local = [n for n in caps.type_names if n.split(":")[-1] == wanted.split(":")[-1]]
        return local[0] if len(local) == 1 else None

    def _srs_name(self, caps: _Capabilities, type_name: str) -> str:
        offered = caps.crs.get(type_name) or []
        wanted = crs_from_name(self.params.srs_name)
        if not offered or any(_same_crs(crs_from_name(o), wanted) for o in offered if _parses(o)):
            return self.params.srs_name
        log.warning("%s: %s is not among the feature type's CRSs (%s); using %s", self.describe(), self.params.srs_name, ", ".join(offered), offered[0])
        return offered[0]

    def read(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        p = self.params
        where = self.describe()
        caps = self.capabilities()
        type_name = self._type_name(caps) or p.type_name
        fmt = p.output_format or choose_geojson(caps.formats)
        if fmt is None:
            raise SourceError(
                f"{where}: the server lists no GeoJSON output format for GetFeature (it lists: {', '.join(caps.formats) or 'none'}); "
                "on MapServer add an OUTPUTFORMAT with DRIVER \"OGR/GEOJSON\" to wfs_getfeature_formatlist, or set output_format"
            )
        srs = self._srs_name(caps, type_name)
        request_space = CoordSpace.named(srs, label="srsName")
        query: dict[str, Any] = {"SERVICE": "WFS", "VERSION": p.version, "REQUEST": "GetFeature", "TYPENAMES": type_name, "OUTPUTFORMAT": fmt, "SRSNAME": srs}
        if bbox is not None:
            query["BBOX"] = ",".join(f"{v:.9g}" for v in _bbox_in(bbox, request_space)) + f",{srs}"
        page = min(p.count, caps.count_default or p.count, p.max_features or p.count)
        override = CoordSpace(crs_from_name(p.data_crs), False, f"data_crs {p.data_crs}") if p.data_crs else None
        stats = FeatureStats()
        self.last_skipped = stats.skipped
        pages: list[gpd.GeoDataFrame] = []
        start = read = 0
        previous: str | None = None
        while True:
            if read >= p.max_pages:
                raise SourceError(f"{where}: stopped at max_pages={p.max_pages} (startIndex={start}): the server keeps sending features; set max_features or a larger count, or raise max_pages")
            if caps.paging:
                query.update(COUNT=page, STARTINDEX=start)
            elif p.max_features:
                query["COUNT"] = p.max_features
            result = self.client.get(_full_url(p.url, query), accept="application/geo+json, application/json;q=0.9, */*;q=0.1")
            self.pages_read += 1
            read += 1
            doc, features = parse_feature_collection(result, where)
            returned = len(features)
            digest = hashlib.sha1(result.body).hexdigest()
            if features and digest == previous:
                raise SourceError(f"{where}: page loop: startIndex={start} returned the same features as the page before; the server ignores startIndex")
            previous = digest
            if p.max_features is not None:
                features = features[: p.max_features - start]
            space = override or _document_space(doc, request_space)
            pages.append(features_to_frame(features, space, where=where, stats=stats))
            start += returned
            if not caps.paging or not returned or (p.max_features is not None and start >= p.max_features) or _last_page(doc.get("numberMatched"), start, returned, page):
                break
        return finish_frame(pages, params=p, where=where, stats=stats, bbox=bbox)


def _last_page(matched: Any, start: int, returned: int, page: int) -> bool:
    """Whether paging ends after a page of ``returned`` features that brought the total to ``start``:
    a numeric ``numberMatched`` decides; ``"unknown"`` reads on (to an empty page); none: a short page ends."""
    if isinstance(matched, int) and not isinstance(matched, bool):
        return start >= matched
    if isinstance(matched, str) and matched.strip().lower() == "unknown":
        return False
    return returned < page


def _parses(name: str) -> bool:
    try:
        crs_from_name(name)
    except CRSError:
        return False
    return True


def _document_space(doc: Mapping[str, Any], requested: CoordSpace) -> CoordSpace:
    """The CRS a GeoJSON document declares in its (2008-style) ``crs`` member, else x/y in the
    requested CRS: GeoJSON writers (MapServer's OGR driver) keep lon/lat order for EPSG:4326."""
    member = doc.get("crs")
    if isinstance(member, Mapping):
        name = (member.get("properties") or {}).get("name")
        if isinstance(name, str) and _parses(name):
            return CoordSpace.named(name, label="GeoJSON crs")
    return CoordSpace(requested.crs, False, f"{requested.label} (x/y as GeoJSON)")
