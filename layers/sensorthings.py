"""OGC SensorThings API 1.1 source of readings: Observations with their Things' locations.

Scene file::

    - id: gauges
      type: flood_points
      source:
        type: sensorthings
        url: https://iot.example.gov.cn/sensorthings/v1.1/
        datastreams: [积水深度-人民路, water-depth-07]   # names or @iot.ids; default: all
        sensor_id: thing_name
        token_env: IOT_TOKEN
        poll_interval: 30s

``readings(start, end)`` asks each Datastream (``Datastreams(id)/Observations``) for
``phenomenonTime gt START and phenomenonTime le END`` (UTC), in parallel up to
``max_concurrent``, paging with ``$top`` through ``@iot.nextLink`` (absolute or relative); it
never uses ``$orderby`` (django-ogc-sensorthings answers 500) and survives servers that reject
a ``$top`` above their maximum. ``query: expand`` makes one ``Observations`` query with
``$expand=Datastream($select=@iot.id)`` instead, for servers whose to-one ``$expand`` is right
(django-ogc-sensorthings 1.2 gives every row the first Datastream). Each Datastream's location
(its Thing's first Location) is cached, and re-read when an unknown Datastream appears.
``value`` is ``result`` as a float: non-numeric results are dropped and counted. Consecutive
polls (the next ``start`` is the last ``end``) never repeat an observation: besides the time
filter, ids returned near the last boundary are remembered and skipped; pages that overlap
are de-duplicated by ``@iot.id``.

A ``@iot.nextLink`` is followed only while it stays on the resource being paged (same host,
entity set and parent): one that leaves it (e.g. from ``Datastreams(7)/Observations`` to the
unfiltered ``/Observations``) is not followed; paging goes on with ``$skip`` on the right
resource, with a warning naming the link. An observation is shown only on the Datastream it
belongs to: one that carries another Datastream (``$expand``) is dropped, and one that cannot
be attributed is dropped, both counted in ``last_dropped`` with a warning. Locations sent with
swapped axes (lat, lon) are corrected as in the feature sources. The source keeps one worker
pool and one set of HTTP sessions for its life: ``close()`` (or ``with source:``) releases them.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import threading
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, unquote, urljoin, urlsplit

import pandas as pd
import shapely
from pydantic import Field
from twin_layers.ogcapi import CoordSpace, _full_url, _resource, crs_from_name, geometries_in_wgs84, parse_json

from twin.errors import WARNED, SourceError, TwinWarning
from twin.httpclient import HttpClient, HttpResult, PagedParams, redact_url
from twin.source import ReadingsSource, ReadingsSourceParams

__all__ = ["SensorThingsParams", "SensorThingsSource"]

log = logging.getLogger(__name__)

_BOUNDARY = pd.Timedelta(seconds=1)
"""Observations this close to a poll's end are remembered by id, to skip them next poll."""


class SensorThingsParams(PagedParams, ReadingsSourceParams):
    datastreams: list[str] | None = Field(None, description="Datastream names or @iot.ids to read (default: all)")
    sensor_id: Literal["datastream_id", "datastream_name", "thing_id", "thing_name"] = Field(
        "datastream_id", description="what becomes each reading's sensor_id"
    )
    page_size: int = Field(100, ge=1, le=10_000, description="$top: observations per page (the server may cap it)")
    max_observations: int = Field(1_000_000, ge=1, description="stop a poll after this many observations (per request chain)")
    query: Literal["per_datastream", "expand"] = Field(
        "per_datastream",
        description="per_datastream: Datastreams(id)/Observations for each one (right on every server); "
        "expand: one Observations query with $expand=Datastream (fewer requests; needs a server whose to-one $expand works)",
    )


@dataclass(frozen=True)
class _Datastream:
    id: Any
    name: str
    thing_id: Any
    thing_name: str
    lon: float
    lat: float
    link: str


class SensorThingsSource(ReadingsSource):
    """Time-stamped Observations of a SensorThings service, located by their Things."""

    type_name = "sensorthings"
    Params = SensorThingsParams
    params: SensorThingsParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.client = HttpClient(self.params, name=self.describe())
        self._datastreams: dict[str, _Datastream] | None = None
        self._datastreams_read_at = 0.0
        self._boundaries: dict[pd.Timestamp, set[str]] = {}
        """Recent polls' ends → ids of observations returned within a second of that end."""
        self._top = self.params.page_size
        self.pages_read = 0
        self.last_dropped: dict[str, int] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def close(self) -> None:
        """Stop the worker threads and close the HTTP sessions (a later poll opens them anew)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.client.close()

    def _workers(self) -> ThreadPoolExecutor:
        """The source's worker pool (``max_concurrent`` threads), made on first use and kept."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.params.max_concurrent, thread_name_prefix="sensorthings")
            return self._pool

    def describe(self) -> str:
        return f"sensorthings source at {redact_url(self.params.url)}"

    @property
    def _root(self) -> str:
        parts = urlsplit(self.params.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/"

    # -- paging ------------------------------------------------------------------------------
    def _first_page(self, url: str, query: Mapping[str, Any]) -> tuple[str, HttpResult, dict[str, Any]]:
        """GET the first page (its URL, the answer and the query sent); a server that rejects ``$top``
        above its maximum with HTTP 400/422 (django-ogc-sensorthings does, instead of capping) is
        asked again with half the size."""
        query = dict(query)
        while True:
            if "$top" in query:
                query["$top"] = min(int(query["$top"]), self._top)
            full = _full_url(url, query)
            try:
                return full, self.client.get(full, conditional=False), query
            except SourceError as exc:
                rejected = exc.status in (400, 422)
                if not (rejected and "$top" in query and query["$top"] > 1):
                    raise
                self._top = max(1, int(query["$top"]) // 2)
                log.warning("%s: the server rejected $top=%s; trying $top=%d", self.describe(), query["$top"], self._top)

    def _pages(self, url: str, query: Mapping[str, Any]) -> Any:
        """Yield the ``value`` list of each page, following ``@iot.nextLink`` while it stays on
        ``url``'s resource; past a link that leaves it, the next page is asked for with ``$skip``."""
        where = self.describe()
        seen: set[str] = set()
        first: HttpResult | None
        next_url: str | None
        next_url, first, sent = self._first_page(url, query)
        consumed = 0
        while next_url is not None:
            if next_url in seen:
                raise SourceError(f"{where}: page loop: @iot.nextLink points back to {redact_url(next_url)}")
            if len(seen) >= self.params.max_pages:
                raise SourceError(f"{where}: stopped at max_pages={self.params.max_pages} on {redact_url(url)}: the server still links a next page; raise page_size or max_pages")
            seen.add(next_url)
            result, first = first or self.client.get(next_url, conditional=False), None
            self.pages_read += 1
            doc = parse_json(result, where)
            if not isinstance(doc, Mapping) or not isinstance(doc.get("value"), list):
                raise SourceError(f"{where}: GET {result.url}: not a SensorThings collection (no 'value' list)")
            yield doc["value"]
            consumed += len(doc["value"])
            link = doc.get("@iot.nextLink")
            if not link or not doc["value"]:
                break
            next_url = urljoin(next_url, str(link))
            if _resource(next_url) != _resource(url):
                message = f"{where}: @iot.nextLink {redact_url(next_url)} leaves {redact_url(url)}; not followed: reading on with $skip={consumed}"
                log.warning(message, extra=WARNED)
                warnings.warn(message, TwinWarning, stacklevel=2)
                next_url = _full_url(url, {**sent, "$skip": int(sent.get("$skip", 0)) + consumed})

    # -- datastreams -------------------------------------------------------------------------
    def datastreams(self, *, refresh: bool = False) -> dict[str, _Datastream]:
        """Datastream id → name, Thing and location (cached), read as Things with their Locations
        and Datastreams: to-many ``$expand`` (django-ogc-sensorthings 1.2 gets every to-one
        ``$expand``, Datastream→Thing or Observation→Datastream, wrong: all rows get the first entity)."""
        if self._datastreams is None or refresh:
            query = {"$select": "@iot.id,name", "$expand": "Locations($select=location),Datastreams($select=@iot.id,name)", "$top": self.params.page_size}
            things: list[tuple[Mapping[str, Any], list[Any]]] = []
            for page in self._pages(urljoin(self._root, "Things"), query):
                for thing in page:
                    if not isinstance(thing, Mapping) or "@iot.id" not in thing:
                        continue
                    streams = list(thing.get("Datastreams") or [])
                    if thing.get("Datastreams@iot.nextLink"):  # more than one page of them: ask the Thing itself
                        streams = []
                        path = urljoin(self._root, f"Things({_literal(thing['@iot.id'])})/Datastreams")
                        for more in self._pages(path, {"$select": "@iot.id,name", "$top": self.params.page_size}):
                            streams += more
                    things.append((thing, streams))
            found: dict[str, _Datastream] = {}
            for (thing, streams), (lon, lat) in zip(things, self._locations([t for t, _ in things])):
                for entity in streams:
                    ds = self._datastream(entity, thing, lon, lat)
                    if ds is not None:
                        found[str(ds.id)] = ds
            self._datastreams = found
            self._datastreams_read_at = time.monotonic()
        return self._datastreams

    def _locations(self, things: list[Mapping[str, Any]]) -> list[tuple[float, float]]:
        """Each Thing's lon/lat (its first readable Location), NaN where none is usable; locations
        with swapped axes are corrected as in the feature sources, ones out of range are NaN."""
        points: list[tuple[float, float]] = []
        for thing in things:
            found = (math.nan, math.nan)
            for location in thing.get("Locations") or []:
                point = _point(location.get("location") if isinstance(location, Mapping) else None)
                if point is not None:
                    found = point
                    break
            points.append(found)
        usable = [i for i, (x, y) in enumerate(points) if math.isfinite(x) and math.isfinite(y)]
        if usable:
            geoms = shapely.points([points[i] for i in usable])
            fixed, ok = geometries_in_wgs84(geoms, CoordSpace(crs_from_name("OGC:CRS84")), where=f"{self.describe()}: Thing locations")
            for i, geom, good in zip(usable, fixed, ok):
                points[i] = (float(geom.x), float(geom.y)) if good else (math.nan, math.nan)
        return points

    def _datastream(self, entity: Any, thing: Mapping[str, Any], lon: float, lat: float) -> _Datastream | None:
        if not isinstance(entity, Mapping) or "@iot.id" not in entity:
            return None
        ident = entity["@iot.id"]
        link = urljoin(self._root, f"Datastreams({_literal(ident)})")
        return _Datastream(ident, str(entity.get("name", "")), thing.get("@iot.id"), str(thing.get("name", "")), lon, lat, link)

    def _selected(self) -> list[_Datastream] | None:
        wanted = self.params.datastreams
        if not wanted:
            return None
        known = self.datastreams()
        chosen: dict[str, _Datastream] = {}
        missing = []
        for entry in wanted:
            hits = [ds for key, ds in known.items() if key == str(entry) or ds.name == entry]
            if not hits and self._datastreams_read_at < time.monotonic() - 1.0:
                known = self.datastreams(refresh=True)  # a datastream added since the cache was read
                hits = [ds for key, ds in known.items() if key == str(entry) or ds.name == entry]
            if not hits:
                missing.append(entry)
            chosen.update({str(ds.id): ds for ds in hits})
        if missing:
            names = ", ".join(sorted({ds.name for ds in known.values()})[:30])
            raise SourceError(f"{self.describe()}: no datastream named or with id {', '.join(map(repr, missing))}; datastreams: {names}")
        return list(chosen.values())

    # -- readings ----------------------------------------------------------------------------
    def readings(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        where = self.describe()
        if start.tzinfo is None or end.tzinfo is None:
            raise SourceError(f"{where}: readings() needs timezone-aware start and end")
        lo, hi = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
        columns = ["sensor_id", "lon", "lat", "time", "value"]
        if hi <= lo:
            return pd.DataFrame({c: [] for c in columns}).astype({"sensor_id": object, "time": "datetime64[ns, UTC]", "value": float, "lon": float, "lat": float})
        skip_ids: set[str] = set()
        for boundary, ids in self._boundaries.items():
            if abs(lo - boundary) <= _BOUNDARY:  # this poll continues that one
                skip_ids |= ids
        time_filter = f"phenomenonTime gt {_iso(lo)} and phenomenonTime le {_iso(hi)}"
        select = "@iot.id,phenomenonTime,result"
        selected = self._selected()
        targets: list[tuple[str, dict[str, Any], _Datastream | None]]
        if self.params.query == "expand" and selected is None:
            self.datastreams()
            query = {"$filter": time_filter, "$select": select, "$expand": "Datastream($select=@iot.id)", "$top": self.params.page_size}
            targets = [(urljoin(self._root, "Observations"), query, None)]
        else:
            streams = selected if selected is not None else list(self.datastreams().values())
            targets = [(ds.link + "/Observations", {"$filter": time_filter, "$select": select, "$top": self.params.page_size}, ds) for ds in streams]

        def fetch(target: tuple[str, dict[str, Any], _Datastream | None]) -> list[tuple[Any, _Datastream | None]]:
            url, query, fixed = target
            out: list[tuple[Any, _Datastream | None]] = []
            for page in self._pages(url, query):
                out += [(obs, fixed) for obs in page]
                if len(out) >= self.params.max_observations:
                    log.warning("%s: stopped after max_observations=%d", where, self.params.max_observations)
                    break
            return out

        if len(targets) > 1 and self.params.max_concurrent > 1:
            batches = list(self._workers().map(fetch, targets))
        else:
            batches = [fetch(t) for t in targets]

        rows: dict[str, tuple[Any, ...]] = {}
        dropped: dict[str, int] = {}
        refreshed = False

        def drop(reason: str) -> None:
            dropped[reason] = dropped.get(reason, 0) + 1

        for batch in batches:
            for obs, fixed in batch:
                if not isinstance(obs, Mapping) or "@iot.id" not in obs:
                    drop("malformed")
                    continue
                oid = str(obs["@iot.id"])
                if oid in rows or oid in skip_ids:
                    continue  # pages that overlap, or the last poll's boundary
                when = _phenomenon_time(obs.get("phenomenonTime"))
                if when is None:
                    drop("bad_time")
                    continue
                if not lo < when <= hi:
                    continue
                value = _number(obs.get("result"))
                if value is None:
                    drop("non_numeric_result")
                    continue
                ds = fixed
                carried = _carried_datastream(obs)
                if ds is not None and carried is not None and carried != str(ds.id):
                    drop("other_datastream")  # a page of one Datastream that holds another's observation
                    continue
                if ds is None:
                    ds_id = carried or ""
                    ds = (self._datastreams or {}).get(ds_id)
                    if ds is None and not refreshed:
                        refreshed = True
                        ds = self.datastreams(refresh=True).get(ds_id)
                    if ds is None:
                        drop("unknown_datastream")
                        continue
                if not (math.isfinite(ds.lon) and math.isfinite(ds.lat)):
                    drop("no_location")
                    continue
                rows[oid] = (self._sensor(ds), ds.lon, ds.lat, when, value)
        self.last_dropped = dropped
        if dropped:
            parts = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(dropped.items()))
            message = f"{where}: dropped {sum(dropped.values())} observation(s) between {_iso(lo)} and {_iso(hi)}: {parts}"
            log.warning(message, extra=WARNED)
            warnings.warn(message, TwinWarning, stacklevel=2)
        frame = pd.DataFrame.from_records(list(rows.values()), columns=columns)
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        frame["value"] = frame["value"].astype(float)
        frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
        near = [oid for oid, row in rows.items() if row[3] > hi - _BOUNDARY]
        self._boundaries[hi] = set(near) | (skip_ids if hi - lo <= _BOUNDARY else set())
        while len(self._boundaries) > 8:
            self._boundaries.pop(next(iter(self._boundaries)))
        return frame

    def _sensor(self, ds: _Datastream) -> str:
        return str({"datastream_id": ds.id, "datastream_name": ds.name, "thing_id": ds.thing_id, "thing_name": ds.thing_name}[self.params.sensor_id])


_NAVIGATION = re.compile(r"Datastreams\(([^)]*)\)")


def _carried_datastream(obs: Mapping[str, Any]) -> str | None:
    """The @iot.id of the Datastream an observation says it belongs to (an expanded
    ``Datastream``, or a ``Datastream@iot.navigationLink`` naming ``Datastreams(id)``), else None."""
    expanded = obs.get("Datastream")
    if isinstance(expanded, Mapping) and "@iot.id" in expanded:
        return str(expanded["@iot.id"])
    match = _NAVIGATION.search(str(obs.get("Datastream@iot.navigationLink") or ""))
    if match:
        return unquote(match.group(1)).strip("'").replace("''", "'")
    return None


def _literal(ident: Any) -> str:
    """An OData key literal: numbers bare, strings quoted."""
    if isinstance(ident, (int, float)) and not isinstance(ident, bool):
        return str(ident)
    return "'" + quote(str(ident).replace("'", "''"), safe="") + "'"


def _iso(stamp: pd.Timestamp) -> str:
    utc = stamp.tz_convert("UTC")
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def _phenomenon_time(value: Any) -> pd.Timestamp | None:
    """An instant, or the start of an interval ``a/b``, in UTC (naive times read as UTC)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.split("/", 1)[0].strip()
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        return None
    if stamp is pd.NaT:
        return None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _point(location: Any) -> tuple[float, float] | None:
    """lon/lat of a GeoJSON geometry or Feature (a representative point for lines and areas)."""
    if not isinstance(location, Mapping):
        return None
    if location.get("type") == "Feature":
        location = location.get("geometry")
        if not isinstance(location, Mapping):
            return None
    try:
        geom = shapely.geometry.shape(location)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError, shapely.errors.ShapelyError):
        return None
    if geom.is_empty:
        return None
    try:
        point = geom if geom.geom_type == "Point" else geom.representative_point()
    except shapely.errors.GEOSException:
        return None
    return float(point.x), float(point.y)
