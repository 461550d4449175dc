"""OGC API – Features source: a collection's items, paged through ``next`` links, in WGS84.

Scene file::

    source:
      type: ogcapi
      url: https://onemap.example.gov.cn/ogcapi/      # landing page
      collection: drainage_outfalls
      limit: 500                                       # page size
      datetime: 2024-06-01T00:00:00Z/..                # optional interval or instant
      time_property: updated                           # filter client-side too (servers may ignore datetime)
      schema: {depth: float, pumps: int, open: bool, updated: datetime}
      token_env: ONEMAP_TOKEN                          # credentials come from the environment
      poll_interval: 5m

The coordinates' CRS is, in order: ``data_crs`` (for servers that mislabel, e.g. GCJ-02 sold as
CRS84), the response's ``Content-Crs`` header, the requested ``crs`` (sent only where the
collection advertises it), else CRS84. URIs of lat/lon CRSs (``.../EPSG/0/4326``) are read in
their authority's axis order, as OGC API – Features Part 2 requires. Features without
geometry are skipped and counted; attributes are typed by ``schema`` (unparsable values become
missing and are counted). The helpers here are shared with the WFS source.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, unquote, urljoin, urlsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import requests
import shapely
from pydantic import Field, field_validator

from twin.errors import WARNED, CRSError, SourceError, TwinWarning
from twin.geo.crs import WGS84, GeoCRS, geometries_to_wgs84, parse_crs
from twin.http_source import HttpFeatureSource
from twin.httpclient import HttpClient, HttpResult, PagedParams, redact_url
from twin.source import BBox

__all__ = [
    "AttributeType",
    "FeatureParams",
    "FeatureStats",
    "OgcApiFeaturesSource",
    "OgcApiParams",
    "apply_schema",
    "check_same_resource",
    "crs_from_name",
    "crs_uri",
    "features_to_frame",
    "geometries_in_wgs84",
    "parse_feature_collection",
    "parse_interval",
]

log = logging.getLogger(__name__)

AttributeType = Literal["int", "float", "str", "bool", "datetime"]
CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})


# -- CRS names ---------------------------------------------------------------------------
_URI = re.compile(r"^https?://www\.opengis\.net/def/crs/(?P<auth>[^/]+)/(?P<ver>[^/]*)/(?P<code>[^/]+)/?$", re.IGNORECASE)
_URN = re.compile(r"^urn:ogc:def:crs:(?P<auth>[^:]+):(?P<ver>[^:]*):(?P<code>[^:]+)$", re.IGNORECASE)


def crs_from_name(name: str) -> GeoCRS:
    """A CRS from an OGC URI/URN (``http://www.opengis.net/def/crs/EPSG/0/4326``,
    ``urn:ogc:def:crs:EPSG::3857``, ``.../OGC/1.3/CRS84``) or anything :func:`parse_crs` reads.

    >>> crs_from_name("http://www.opengis.net/def/crs/EPSG/0/4490").name
    'EPSG:4490'
    >>> crs_from_name("urn:ogc:def:crs:OGC:1.3:CRS84").name
    'OGC:CRS84'
    """
    text = name.strip().strip("<>").strip()
    match = _URI.match(text) or _URN.match(text)
    if match:
        auth, code = match["auth"].upper(), match["code"]
        text = "OGC:CRS84" if auth == "OGC" and code.upper() in ("CRS84", "CRS84H") else f"{auth}:{code}"
    return parse_crs(text)


def crs_uri(crs: GeoCRS | str) -> str:
    """The OGC http URI of a CRS with an authority code (CRS84 for WGS84 lon/lat).

    >>> crs_uri("EPSG:4549")
    'http://www.opengis.net/def/crs/EPSG/0/4549'
    """
    geo = crs_from_name(crs) if isinstance(crs, str) else crs
    if geo.offset is not None:
        raise CRSError(f"{geo.name} is not a CRS a server can deliver; use it as data_crs")
    authority = geo.proj.to_authority()
    if authority is None:
        raise CRSError(f"CRS {geo.name!r} has no authority code, so a server cannot be asked for it")
    if authority[0] == "OGC" and authority[1].upper().startswith("CRS84"):
        return CRS84_URI
    return f"http://www.opengis.net/def/crs/{authority[0]}/0/{authority[1]}"


def _is_uri(name: str) -> bool:
    text = name.strip().strip("<>").strip()
    return bool(_URI.match(text) or _URN.match(text))


def _lat_first(crs: GeoCRS) -> bool:
    """Whether the CRS's authority axis order puts northing/latitude first (EPSG:4326, 4490)."""
    if crs.offset is not None:
        return False
    axes = crs.proj.axis_info
    return bool(axes) and axes[0].direction.lower() in ("north", "south")


def _same_crs(a: GeoCRS, b: GeoCRS) -> bool:
    return a.offset == b.offset and a.proj.equals(b.proj, ignore_axis_order=True)


@dataclass(frozen=True)
class CoordSpace:
    """How to read a response's coordinates: their CRS and whether y comes first."""

    crs: GeoCRS
    lat_first: bool = False
    label: str = "CRS84"

    @classmethod
    def named(cls, name: str, *, label: str) -> CoordSpace:
        """From a CRS name as a server wrote it: URIs follow the authority's axis order, short names x/y."""
        geo = crs_from_name(name)
        return cls(geo, _is_uri(name) and _lat_first(geo), f"{label} {name.strip().strip('<>')}")


def _lonlat_ok(geoms: np.ndarray) -> np.ndarray:
    """Per geometry: whether all its coordinates lie within lon −180..180, lat −90..90 (NaN: no)."""
    if len(geoms) == 0:
        return np.zeros(0, dtype=bool)
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        b = shapely.bounds(geoms)
        return (b[:, 0] >= -180.0) & (b[:, 2] <= 180.0) & (b[:, 1] >= -90.0) & (b[:, 3] <= 90.0)


def _swap_xy(geoms: np.ndarray) -> np.ndarray:
    return np.asarray(shapely.transform(geoms, lambda c: c[:, ::-1].copy()), dtype=object)


def geometries_in_wgs84(geoms: np.ndarray, space: CoordSpace, *, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Shapely geometries read in ``space`` → (WGS84 lon/lat geometries, per-geometry ``ok`` mask).

    Axis order, the same for every source: in a geographic CRS a geometry that fits lon/lat
    ranges only when its axes are swapped (a common server or data-entry slip: lat, lon) is
    swapped; when no geometry fits only as declared, the whole batch is read swapped (so
    ambiguous ones follow the rest). ``ok`` is False where a geometry fits neither reading
    (callers skip and count those as ``out_of_range``). Logs one warning naming ``where``.
    """
    geoms = np.asarray(geoms, dtype=object)
    out = geometries_to_wgs84(_swap_xy(geoms) if space.lat_first else geoms, space.crs)
    ok = _lonlat_ok(out)
    if ok.all() or not space.crs.is_geographic:
        return out, ok
    other = geometries_to_wgs84(geoms if space.lat_first else _swap_xy(geoms), space.crs)
    ok_other = _lonlat_ok(other)
    swap = ~ok & ok_other
    if swap.any():
        if not (ok & ~ok_other).any():
            swap = ok_other  # nothing fits only as declared: the whole batch came in the other order
        out = np.where(swap, other, out)
        ok = ok | swap
        log.warning("%s: %d geometr%s came in the other axis order than %s declares; swapped them", where, int(swap.sum()), "y" if swap.sum() == 1 else "ies", space.label)
    return out, ok


# -- time ----------------------------------------------------------------------------------
def _parse_instant(text: str, *, what: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(text.strip())
    except (ValueError, TypeError):
        raise ValueError(f"{what} {text!r} is not an ISO 8601 date-time") from None
    if stamp.tzinfo is None:
        raise ValueError(f"{what} {text!r} has no time zone: add Z (UTC) or an offset like +08:00")
    return stamp.tz_convert("UTC")


def parse_interval(text: str) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """An OGC ``datetime`` (instant, ``start/end``, either end ``..`` or empty) as UTC bounds.

    >>> parse_interval("2024-06-01T08:00:00+08:00/..")
    (Timestamp('2024-06-01 00:00:00+0000', tz='UTC'), None)
    """
    text = text.strip()
    if "/" not in text:
        instant = _parse_instant(text, what="datetime")
        return instant, instant
    begin, end = (part.strip() for part in text.split("/", 1))
    lo = None if begin in ("", "..") else _parse_instant(begin, what="datetime start")
    hi = None if end in ("", "..") else _parse_instant(end, what="datetime end")
    if lo is None and hi is None:
        raise ValueError("datetime '../..' is open at both ends: leave datetime out instead")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"datetime {text!r} ends before it starts")
    return lo, hi


def iso_z(stamp: pd.Timestamp) -> str:
    """RFC 3339 in UTC with Z (whole seconds unless there is a fraction): servers that compare
    strings (pygeoapi's TinyDB provider) then see the same form as their stored data."""
    utc = stamp.tz_convert("UTC")
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return utc.strftime(fmt)


def _interval_param(lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> str:
    if lo is not None and hi is not None and lo == hi:
        return iso_z(lo)
    return f"{'..' if lo is None else iso_z(lo)}/{'..' if hi is None else iso_z(hi)}"


def to_utc_times(values: Iterable[Any] | pd.Series, time_zone: str) -> pd.Series:
    """Parse ISO 8601 text (or datetimes) to UTC; naive values are read in ``time_zone``."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)

    def one(value: Any) -> pd.Timestamp | None:
        if value is None or (isinstance(value, float) and np.isnan(value)) or isinstance(value, bool):
            return None
        if isinstance(value, str) and not value.strip():
            return None
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError, OverflowError):
            return None
        if stamp is pd.NaT:
            return None
        if stamp.tzinfo is None:
            try:
                stamp = stamp.tz_localize(time_zone, ambiguous="NaT", nonexistent="NaT")
            except (ValueError, TypeError):
                return None
            if stamp is pd.NaT:
                return None
        return stamp.tz_convert("UTC")

    return pd.Series(pd.to_datetime([one(v) for v in series], utc=True), index=series.index, dtype="datetime64[ns, UTC]")


# -- attribute typing ----------------------------------------------------------------------
def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        number = float(str(value).strip()) if not isinstance(value, (float, np.floating)) else float(value)
    except ValueError:
        return None
    return int(number) if np.isfinite(number) and number.is_integer() else None


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, (int, float, np.number)) else float(str(value).strip())
    except ValueError:
        return None
    return number if np.isfinite(number) else None


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def apply_schema(frame: pd.DataFrame, schema: Mapping[str, str], *, time_zone: str = "Asia/Shanghai") -> tuple[pd.DataFrame, dict[str, int]]:
    """Type the columns named in ``schema`` (int, float, str, bool, datetime); values that do
    not parse become missing (NaN, <NA>, NaT) and are counted per column. A column the data
    lacks is added, all missing, and counted as ``-1``.

    >>> df, bad = apply_schema(pd.DataFrame({"n": ["1", "x", None], "ok": ["1", "0", "yes"]}), {"n": "int", "ok": "bool"})
    >>> df["n"].tolist(), df["ok"].tolist(), bad
    ([1, <NA>, <NA>], [True, False, True], {'n': 1})
    """
    out = frame.copy()
    bad: dict[str, int] = {}
    for column, kind in schema.items():
        if column not in out.columns:
            bad[column] = -1
            raw = pd.Series([None] * len(out), index=out.index, dtype=object)
        else:
            raw = out[column]
        missing = np.array([_missing(v) for v in raw], dtype=bool)
        if kind == "datetime":
            typed: pd.Series = to_utc_times(raw, time_zone)
            failed = typed.isna().to_numpy() & ~missing
        elif kind == "str":
            typed = pd.Series([None if m else str(v) for v, m in zip(raw, missing)], index=out.index, dtype=object)
            failed = np.zeros(len(raw), dtype=bool)
        else:
            convert = {"int": _to_int, "float": _to_float, "bool": _to_bool}[kind]
            values = [None if m else convert(v) for v, m in zip(raw, missing)]
            failed = np.array([v is None for v in values], dtype=bool) & ~missing
            dtype = {"int": "Int64", "float": "float64", "bool": "boolean"}[kind]
            typed = pd.Series([np.nan if v is None and kind == "float" else v for v in values], index=out.index, dtype=dtype)  # type: ignore[call-overload]
        out[column] = typed
        if failed.any() and bad.get(column) != -1:
            bad[column] = int(failed.sum())
    return out, bad


def warn_schema(where: str, bad: Mapping[str, int], schema: Mapping[str, str]) -> None:
    """One warning naming each column whose values did not parse (or that is missing)."""
    if not bad:
        return
    parts = [f"{c}: column missing" if n < 0 else f"{c}: {n} value{'s' if n != 1 else ''} not {schema[c]}" for c, n in bad.items()]
    message = f"{where}: attributes that do not match schema set to missing ({'; '.join(parts)})"
    log.warning(message, extra=WARNED)
    warnings.warn(message, TwinWarning, stacklevel=3)


# -- GeoJSON features ------------------------------------------------------------------------
_GEOJSON_TYPES = frozenset({"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection"})
_MAX_DEPTH = 64
_TOO_DEEP: Mapping[str, Any] = {"type": "Feature"}
"""Stands in for a feature too deep for the JSON parser (skipped as ``nesting_too_deep``)."""
"""Deepest nesting of containers accepted in a feature's properties (deeper: skipped)."""
_SKIP_REASONS = {
    "no_geometry": "without geometry",
    "bad_geometry_type": "with a geometry type GeoJSON does not have",
    "bad_geometry": "with unreadable geometry",
    "non_finite_coordinates": "with non-finite coordinates",
    "out_of_range": "with coordinates outside lon/lat ranges",
    "nesting_too_deep": "nested too deep",
}


@dataclass
class FeatureStats:
    """What a read skipped, by reason (keys of ``_SKIP_REASONS``), for one warning per read."""

    skipped: dict[str, int] = field(default_factory=dict)
    outside_time: int = 0
    kept: int = 0
    range_problem: str = ""
    """For an error when every feature is out of range: where the coordinates lie and in which CRS."""

    def skip(self, reason: str, count: int = 1) -> None:
        if count:
            self.skipped[reason] = self.skipped.get(reason, 0) + count


def _too_deep(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit`` in ``value`` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, Mapping) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (Mapping, list)))
    return False


def _feature_geometry(feature: Any) -> tuple[Any, str | None]:
    """A feature's shapely geometry, or (None, the reason to skip it)."""
    if feature is _TOO_DEEP:
        return None, "nesting_too_deep"
    if not isinstance(feature, Mapping):
        return None, "bad_geometry"
    geometry = feature.get("geometry")
    if not geometry:
        return None, "no_geometry"
    if not isinstance(geometry, Mapping) or geometry.get("type") not in _GEOJSON_TYPES:
        return None, "bad_geometry_type"
    props = feature.get("properties")
    if _too_deep(props, _MAX_DEPTH):
        return None, "nesting_too_deep"
    try:
        geom = shapely.geometry.shape(geometry)
    except shapely.errors.GeometryTypeError:
        return None, "bad_geometry_type"
    except RecursionError:
        return None, "nesting_too_deep"
    except OverflowError:  # a JSON integer beyond the double range (> 1.8e308): no finite coordinate
        return None, "non_finite_coordinates"
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, shapely.errors.ShapelyError):
        return None, "bad_geometry"
    return (None, "no_geometry") if geom.is_empty else (geom, None)


def features_to_frame(features: Sequence[Mapping[str, Any]], space: CoordSpace, *, where: str, stats: FeatureStats) -> gpd.GeoDataFrame:
    """GeoJSON features → GeoDataFrame in WGS84. Features without geometry, with a geometry type
    GeoJSON lacks, unreadable or non-finite coordinates, coordinates outside lon/lat ranges (after
    the axis-order check of :func:`geometries_in_wgs84`), or properties nested deeper than 64 are
    skipped and counted in ``stats`` by reason. A feature ``id`` becomes column ``id`` unless a
    property has that name."""
    rows: list[Mapping[str, Any]] = []
    geoms: list[Any] = []
    ids: list[Any] = []
    for feature in features:
        geom, reason = _feature_geometry(feature)
        if reason is not None:
            stats.skip(reason)
            continue
        props = feature.get("properties") or {}
        rows.append(props if isinstance(props, Mapping) else {})
        geoms.append(geom)
        ids.append(feature.get("id"))
    array = np.asarray(geoms, dtype=object)
    keep = _finite(array)
    stats.skip("non_finite_coordinates", int((~keep).sum()))
    geometry = np.asarray([], dtype=object)
    if keep.any():
        geometry, ok = geometries_in_wgs84(array[keep], space, where=where)
        if not ok.all():
            stats.skip("out_of_range", int((~ok).sum()))
            if not stats.range_problem:
                minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(array[keep][~ok]))
                stats.range_problem = f"coordinates ({minx:.6g}, {miny:.6g}) .. ({maxx:.6g}, {maxy:.6g}) are not valid in {space.label}"
            geometry = geometry[ok]
            keep[np.flatnonzero(keep)[~ok]] = False
    rows = [r for r, k in zip(rows, keep) if k]
    ids = [i for i, k in zip(ids, keep) if k]
    stats.kept += len(rows)
    frame = pd.DataFrame(rows, index=pd.RangeIndex(len(rows)))
    if rows and any(i is not None for i in ids) and "id" not in frame.columns:
        frame.insert(0, "id", ids)
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometry, index=frame.index, crs=WGS84.proj), crs=WGS84.proj)


def _finite(geoms: np.ndarray) -> np.ndarray:
    """Per geometry: whether every coordinate (x, y and z) is finite."""
    ok = np.ones(len(geoms), dtype=bool)
    if len(geoms):
        coords, index = shapely.get_coordinates(geoms, include_z=True, return_index=True)
        bad = ~np.isfinite(coords).all(axis=1) & ~(np.isnan(coords[:, 2]) & np.isfinite(coords[:, :2]).all(axis=1))
        ok[np.unique(index[bad])] = False
    return ok


def finish_frame(
    pages: list[gpd.GeoDataFrame],
    *,
    params: FeatureParams,
    where: str,
    stats: FeatureStats,
    bbox: BBox | None,
    interval: tuple[pd.Timestamp | None, pd.Timestamp | None] | None = None,
    time_property: str | None = None,
) -> gpd.GeoDataFrame:
    """Concatenate pages, type attributes, filter by time and bbox client-side, warn once.

    Raises SourceError when every feature with coordinates was outside lon/lat ranges (the
    server sends projected coordinates without saying so: ``data_crs`` fixes that)."""
    if stats.kept == 0 and stats.skipped.get("out_of_range"):
        raise SourceError(f"{where}: {stats.range_problem}; the server may send projected coordinates (e.g. EPSG:3857) without saying so: set data_crs")
    pages = [p for p in pages if len(p)]
    frame = gpd.GeoDataFrame(pd.concat(pages, ignore_index=True), crs=WGS84.proj) if pages else gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=WGS84.proj), crs=WGS84.proj)
    if params.schema:
        typed, bad = apply_schema(frame, params.schema, time_zone=params.time_zone)
        frame = gpd.GeoDataFrame(typed, geometry=frame.geometry.name, crs=WGS84.proj)
        warn_schema(where, bad, params.schema)
    if interval is not None and time_property:
        if time_property not in frame.columns:
            if len(frame):
                raise SourceError(f"{where}: time_property {time_property!r} is not an attribute; attributes: {', '.join(map(str, frame.columns.drop(frame.geometry.name)))}")
        else:
            col = frame[time_property]
            times = col if isinstance(col.dtype, pd.DatetimeTZDtype) else to_utc_times(col, params.time_zone)
            frame[time_property] = times
            lo, hi = interval
            keep = times.notna().to_numpy().copy()
            if lo is not None:
                keep &= (times >= lo).fillna(False).to_numpy(dtype=bool)
            if hi is not None:
                keep &= (times <= hi).fillna(False).to_numpy(dtype=bool)
            stats.outside_time = int((~keep).sum())
            frame = frame.loc[keep].reset_index(drop=True)
    if bbox is not None and len(frame):
        box = shapely.box(*bbox)
        frame = frame.loc[frame.geometry.intersects(box).to_numpy()].reset_index(drop=True)
    warn_skipped(where, stats.skipped)
    if stats.outside_time:
        log.info("%s: %d features outside the datetime interval dropped client-side", where, stats.outside_time)
    return frame


def warn_skipped(where: str, skipped: Mapping[str, int]) -> None:
    """One warning naming the source and counting skipped features by reason."""
    total = sum(skipped.values())
    if not total:
        return
    parts = [f"{skipped[reason]} {text}" for reason, text in _SKIP_REASONS.items() if skipped.get(reason)]
    message = f"{where}: skipped {total} feature{'s' if total != 1 else ''} ({', '.join(parts)})"
    log.warning(message, extra=WARNED)
    warnings.warn(message, TwinWarning, stacklevel=4)


def parse_json(result: HttpResult, where: str) -> Any:
    """The JSON body of a response, or a SourceError naming the (redacted) URL."""
    body = result.body
    if body.lstrip()[:1] == b"<":
        raise SourceError(f"{where}: GET {result.url}: expected JSON, got {_xml_problem(body)}")
    try:
        return json.loads(body)
    except RecursionError:
        raise SourceError(f"{where}: GET {result.url}: JSON nested too deep to read") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        declared = result.headers.get("Content-Length")
        hint = f" (body {len(body)} bytes, Content-Length {declared}: truncated?)" if declared and declared.isdigit() and int(declared) != len(body) else ""
        raise SourceError(f"{where}: GET {result.url}: malformed JSON ({exc}){hint}") from None


def parse_feature_collection(result: HttpResult, where: str) -> tuple[Mapping[str, Any], list[Any]]:
    """A GeoJSON FeatureCollection response → (document, its features). A feature nested too deep
    for the JSON parser is replaced by a stand-in that :func:`features_to_frame` skips and counts
    (``nesting_too_deep``), so the list keeps the length the server sent; anything else that is
    not a FeatureCollection is a SourceError naming the URL."""
    try:
        doc = parse_json(result, where)
    except SourceError:
        if not _deep_json(result.body):
            raise
        doc = _parse_deep_collection(result, where)
    if not isinstance(doc, Mapping) or not isinstance(doc.get("features"), list):
        raise SourceError(f"{where}: GET {result.url}: not a GeoJSON FeatureCollection")
    return doc, doc["features"]


def _deep_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except RecursionError:
        return True
    except ValueError:
        return False
    return False


_STRUCTURAL = np.frombuffer(b'"{}[],', dtype=np.uint8)


def _parse_deep_collection(result: HttpResult, where: str) -> dict[str, Any]:
    """Read a FeatureCollection that the JSON parser finds nested too deep: split its top-level
    ``features`` array at its commas (outside strings), parse each feature alone, put a stand-in
    for the ones still too deep. Raises SourceError when the depth is elsewhere or the JSON is malformed."""
    body = result.body
    plain = re.sub(rb"\\.", b"__", body, flags=re.DOTALL)  # escapes out of the way: every quote left is real
    chars = np.frombuffer(plain, dtype=np.uint8)
    where_special = np.flatnonzero(np.isin(chars, _STRUCTURAL))
    special = chars[where_special]
    quote = special == ord('"')
    outside = (np.cumsum(quote) % 2 == 0) & ~quote
    step = np.where(outside & np.isin(special, (ord("{"), ord("["))), 1, 0) - np.where(outside & np.isin(special, (ord("}"), ord("]"))), 1, 0)
    depth = np.cumsum(step)
    for match in re.finditer(rb'"features"\s*:\s*\[', plain):
        k = int(np.searchsorted(where_special, match.end() - 1))
        if not (outside[k] and depth[k] == 2):
            continue
        ends = np.flatnonzero(depth[k:] == 1)
        if not len(ends):
            break
        end = k + int(ends[0])
        commas = k + 1 + np.flatnonzero(outside[k + 1 : end] & (special[k + 1 : end] == ord(",")) & (depth[k + 1 : end] == 2))
        bounds = [int(where_special[k]) + 1, *(int(where_special[c]) + 1 for c in commas), int(where_special[end]) + 1]
        features: list[Any] = []
        for lo, hi in itertools.pairwise(bounds):
            try:
                features.append(json.loads(body[lo : hi - 1]))
            except RecursionError:
                features.append(_TOO_DEEP)
            except ValueError as exc:
                raise SourceError(f"{where}: GET {result.url}: malformed JSON in feature {len(features) + 1} ({exc})") from None
        rest = body[: int(where_special[k]) + 1] + body[int(where_special[end]) :]
        try:
            doc = json.loads(rest)
        except (RecursionError, ValueError):
            break
        if isinstance(doc, dict):
            doc["features"] = features
            return doc
        break
    raise SourceError(f"{where}: GET {result.url}: JSON nested too deep to read (outside the features)")


def _xml_problem(body: bytes) -> str:
    texts = re.findall(rb"<(?:\w+:)?ExceptionText>(.*?)</(?:\w+:)?ExceptionText>", body, re.DOTALL)
    if texts:
        return "a service exception: " + " ".join(t.decode("utf-8", "replace").strip() for t in texts)[:500]
    return "XML/HTML"


def check_origin(base: str, link: str, client: HttpClient, where: str) -> None:
    """Refuse to send credentials to another host than the configured service."""
    a, b = urlsplit(base), urlsplit(link)
    if (a.scheme, a.hostname, a.port) != (b.scheme, b.hostname, b.port):
        p = client.params
        if p.token_env or p.api_key_env or p.username_env:
            raise SourceError(f"{where}: next link {redact_url(link)} leaves the service's host; not sending credentials there")
        log.info("%s: following a next link to another host: %s", where, redact_url(link))


# -- parameters --------------------------------------------------------------------------------
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class FeatureParams(PagedParams):
        """Parameters shared by feature services (OGC API – Features, WFS)."""

        schema: dict[str, AttributeType] = Field({}, description="attribute types to apply: {column: int|float|str|bool|datetime}")
        time_zone: str = Field("Asia/Shanghai", description="time zone of datetime attributes that carry none")
        data_crs: str | None = Field(None, description="CRS the coordinates really are in, overriding what the server declares (e.g. GCJ02)")
        max_features: int | None = Field(None, ge=1, description="stop after this many features")

        @field_validator("data_crs")
        @classmethod
        def _known_crs(cls, value: str | None) -> str | None:
            if value is not None:
                try:
                    crs_from_name(value)
                except CRSError as exc:
                    raise ValueError(str(exc)) from None
            return value

        @field_validator("time_zone")
        @classmethod
        def _zone(cls, value: str) -> str:
            try:
                pd.Timestamp("2024-01-01").tz_localize(value)
            except (KeyError, ValueError, TypeError):
                raise ValueError(f"unknown time zone {value!r} (use an IANA name like Asia/Shanghai)") from None
            return value


class OgcApiParams(FeatureParams):
    collection: str = Field(description="collection id")
    limit: int = Field(100, ge=1, le=100_000, description="features per page")
    datetime: str | None = Field(None, description="instant or interval (ISO 8601 with time zone, '..' for open ends)")
    time_property: str | None = Field(None, description="attribute with each feature's time: datetime is also applied client-side")
    crs: str | None = Field(None, description="CRS to request where the collection offers it (e.g. EPSG:4490); default CRS84")

    @field_validator("datetime")
    @classmethod
    def _valid_datetime(cls, value: str | None) -> str | None:
        if value is not None:
            parse_interval(value)
        return value

    @field_validator("crs")
    @classmethod
    def _requestable(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                crs_uri(value)
            except CRSError as exc:
                raise ValueError(str(exc)) from None
        return value


@dataclass
class _Collection:
    items_url: str
    crs: list[str]


class OgcApiFeaturesSource(HttpFeatureSource):
    """Features of one OGC API – Features collection."""

    type_name = "ogcapi"
    Params = OgcApiParams
    params: OgcApiParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._collection: _Collection | None = None
        self._last: tuple[tuple[str, ...], gpd.GeoDataFrame] | None = None

    def describe(self) -> str:
        return f"ogcapi source {self.params.collection!r} at {redact_url(self.params.url)}"

    @property
    def _base(self) -> str:
        parts = urlsplit(self.params.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/"

    def _collection_info(self) -> _Collection:
        if self._collection is not None:
            return self._collection
        where = self.describe()
        url = urljoin(self._base, f"collections/{quote(self.params.collection, safe='')}")
        try:
            doc = parse_json(self.client.get(url, accept="application/json"), where)
        except SourceError as exc:
            if exc.status == 404:
                raise SourceError(f"{where}: no collection {self.params.collection!r}{self._known_collections()}") from None
            raise
        if not isinstance(doc, Mapping):
            raise SourceError(f"{where}: GET {redact_url(url)}: not a collection document")
        items = urljoin(url + "/", "items")
        for link in doc.get("links") or []:
            if isinstance(link, Mapping) and link.get("rel") == "items" and link.get("href") and link.get("type") in (None, "application/geo+json", "application/json"):
                items = urljoin(url, str(link["href"]))
                break
        crs = [str(c) for c in doc.get("crs") or [] if isinstance(c, str)]
        if "#/crs" in crs:
            try:
                top = parse_json(self.client.get(urljoin(self._base, "collections"), accept="application/json"), where)
                crs = [c for c in crs if c != "#/crs"] + [str(c) for c in top.get("crs") or []]
            except SourceError as exc:
                log.info("%s: cannot read the global CRS list: %s", where, exc)
        self._collection = _Collection(items, crs)
        return self._collection

    def _known_collections(self) -> str:
        try:
            doc = parse_json(self.client.get(urljoin(self._base, "collections"), accept="application/json"), self.describe())
            names = [str(c.get("id")) for c in doc.get("collections") or [] if isinstance(c, Mapping)]
        except (SourceError, AttributeError):
            return ""
        return f"; collections: {', '.join(names)}" if names else ""

    def _requested_crs(self, collection: _Collection) -> str | None:
        """The URI to send as ``crs``, or None for the CRS84 default."""
        if self.params.crs is None:
            return None
        wanted = crs_from_name(self.params.crs)
        if _same_crs(wanted, crs_from_name("OGC:CRS84")) and not _lat_first(wanted):
            return None
        for offered in collection.crs:
            try:
                if _same_crs(crs_from_name(offered), wanted) and _lat_first(crs_from_name(offered)) == _lat_first(wanted):
                    return offered
            except CRSError:
                continue
        log.warning("%s: collection does not offer crs %s (offers: %s); asking for CRS84", self.describe(), self.params.crs, ", ".join(collection.crs) or "none listed")
        return None

    def read(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        where = self.describe()
        p = self.params
        collection = self._collection_info()
        crs = self._requested_crs(collection)
        query: dict[str, Any] = {"limit": min(p.limit, p.max_features or p.limit)}
        if crs is not None:
            query["crs"] = crs
        if bbox is not None:
            if crs is not None:
                space = CoordSpace.named(crs, label="crs")
                query["bbox"] = ",".join(f"{v:.9g}" for v in _bbox_in(bbox, space))
                query["bbox-crs"] = crs
            else:
                query["bbox"] = ",".join(f"{v:.9g}" for v in bbox)
        interval = parse_interval(p.datetime) if p.datetime else None
        if interval is not None:
            query["datetime"] = _interval_param(*interval)
        default_space = CoordSpace.named(crs, label="requested crs") if crs else CoordSpace(crs_from_name("OGC:CRS84"))
        override = CoordSpace(crs_from_name(p.data_crs), False, f"data_crs {p.data_crs}") if p.data_crs else None

        stats = FeatureStats()
        self.last_skipped = stats.skipped
        pages: list[gpd.GeoDataFrame] = []
        seen: dict[str, int] = {}
        all_cached = True
        count = 0
        matched: int | None = None
        previous: str | None = None
        url: str | None = _full_url(collection.items_url, query)
        while url is not None:
            if url in seen:
                raise SourceError(
                    f"{where}: page loop: the next link of page {len(seen)} points back to page {seen[url] + 1} ({redact_url(url)})"
                )
            if len(seen) >= p.max_pages:
                raise SourceError(f"{where}: stopped at max_pages={p.max_pages}: the server still links a next page ({redact_url(url)}); set max_features or a larger limit, or raise max_pages")
            seen[url] = len(seen)
            result = self.client.get(url, accept="application/geo+json, application/json;q=0.9")
            self.pages_read += 1
            all_cached &= result.not_modified
            doc, features = parse_feature_collection(result, where)
            digest = hashlib.sha1(json.dumps(features, sort_keys=True, default=str).encode()).hexdigest()
            if features and digest == previous:
                raise SourceError(f"{where}: page loop: page {len(seen)} ({result.url}) has the same features as the page before; the server ignores paging")
            previous = digest
            matched = _number_matched(doc, matched)
            returned = len(features)
            if p.max_features is not None:
                features = features[: p.max_features - count]
            count += len(features)
            if override is not None:
                space = override
            elif result.headers.get("Content-Crs"):
                space = CoordSpace.named(str(result.headers["Content-Crs"]), label="Content-Crs")
            else:
                space = default_space
            pages.append(features_to_frame(features, space, where=where, stats=stats))
            if p.max_features is not None and count >= p.max_features:
                log.info("%s: stopped at max_features=%d", where, p.max_features)
                break
            nxt = _next_link(doc.get("links"))
            if nxt is None or not returned:
                if matched is not None and count < matched:
                    _warn(f"{where}: the server reported numberMatched={matched} but its pages ended after {count} features ({'an empty page' if not returned else 'no next link'}); the rest are missing")
                break
            url = urljoin(url, nxt)
            check_origin(self.params.url, url, self.client, where)
            check_same_resource(collection.items_url, url, where, what="the collection's items")
        chain = tuple(seen)
        if all_cached and self._last is not None and self._last[0] == chain:
            log.debug("%s: not modified", where)
            return self._last[1].copy()
        frame = finish_frame(pages, params=p, where=where, stats=stats, bbox=bbox, interval=interval, time_property=p.time_property)
        self._last = (chain, frame)
        return frame.copy()


def _full_url(url: str, params: Mapping[str, Any]) -> str:
    """``url`` with ``params`` encoded into its query (as requests would send it)."""
    return requests.Request("GET", url, params=dict(params)).prepare().url or url


def _next_link(links: Any) -> str | None:
    best: str | None = None
    for link in links or []:
        if not isinstance(link, Mapping) or link.get("rel") != "next" or not link.get("href"):
            continue
        kind = str(link.get("type") or "")
        if kind in ("", "application/geo+json", "application/json") or "json" in kind and "ld+json" not in kind:
            return str(link["href"])
        best = best or (str(link["href"]) if "html" not in kind else None)
    return best


def _number_matched(doc: Mapping[str, Any], before: int | None) -> int | None:
    """``numberMatched`` when it is a whole number (not "unknown"), else what an earlier page said."""
    value = doc.get("numberMatched")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else before


def _resource(url: str) -> tuple[str, str | None, int | None, str]:
    parts = urlsplit(url)
    return (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port, unquote(parts.path).rstrip("/"))


def check_same_resource(first: str, link: str, where: str, *, what: str) -> None:
    """Refuse a next link that leaves the resource being paged (another host, collection or entity
    set): its pages would be someone else's data. Raises SourceError naming both URLs."""
    if _resource(first) != _resource(link):
        raise SourceError(f"{where}: a next link leaves {what} ({redact_url(first)}): {redact_url(link)}; stopped, as its pages would be other data")


def _warn(message: str) -> None:
    log.warning(message, extra=WARNED)
    warnings.warn(message, TwinWarning, stacklevel=3)


def _bbox_in(bbox: BBox, space: CoordSpace) -> tuple[float, float, float, float]:
    """A WGS84 bbox in ``space``'s CRS and axis order."""
    if space.crs.offset is not None or space.crs.proj.equals(WGS84.proj, ignore_axis_order=True):
        x0, y0, x1, y1 = bbox
    else:
        t = pyproj.Transformer.from_crs(WGS84.proj, space.crs.proj, always_xy=True)
        x0, y0, x1, y1 = t.transform_bounds(*bbox, densify_pts=21)
    return (y0, x0, y1, x1) if space.lat_first else (x0, y0, x1, y1)
