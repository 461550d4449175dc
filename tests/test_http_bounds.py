"""Bounded I/O against misbehaving local servers: an overall deadline (a server that drips one
byte at a time, retries that would run past it), a size cap (an endless body, a lying
Content-Length, a gzip bomb), a page cap (endless distinct next pages), and a conditional-request
cache that one-off URLs (a live window that moves every poll) do not grow.
"""

from __future__ import annotations

import datetime as dt
import gzip
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from servers import Gauge, Reply, Seen, scripted, sta_route, wfs_capped_route
from twin_layers.ogcapi import OgcApiFeaturesSource
from twin_layers.sensorthings import SensorThingsSource
from twin_layers.wfs import WfsSource

from twin.errors import SourceError
from twin.httpclient import HttpClient, HttpParams

FAST: dict[str, Any] = {"timeout": 2.0, "retries": 0}
CAPS = b"""<?xml version="1.0"?><wfs:WFS_Capabilities xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns="http://www.opengis.net/wfs/2.0" version="2.0.0">
<ows:OperationsMetadata><ows:Operation name="GetFeature"><ows:Parameter name="outputFormat"><ows:AllowedValues><ows:Value>application/json; subtype=geojson</ows:Value></ows:AllowedValues></ows:Parameter></ows:Operation></ows:OperationsMetadata>
<FeatureTypeList><FeatureType><Name>ms:pumps</Name><DefaultCRS>urn:ogc:def:crs:EPSG::4326</DefaultCRS></FeatureType></FeatureTypeList></wfs:WFS_Capabilities>"""


def drip(every: float = 0.1, total: float = 30.0) -> Iterator[bytes]:
    """One byte every ``every`` seconds: each read gets an answer, the body never ends."""
    yield b'{"type": "FeatureCollection", "features": ['
    ends = time.monotonic() + total
    while time.monotonic() < ends:
        time.sleep(every)
        yield b" "


def endless(chunk: bytes = b" " * 65536) -> Iterator[bytes]:
    while True:
        yield chunk


def client(server: Any, **params: Any) -> HttpClient:
    return HttpClient(HttpParams(url=server.url, **{**FAST, **params}), name="test source")


def feature(i: int) -> dict[str, Any]:
    return {"type": "Feature", "id": i, "geometry": {"type": "Point", "coordinates": [121.4 + i * 1e-6, 31.2]}, "properties": {"n": i, "time": "2024-06-01T00:00:00Z"}}


# -- deadline -------------------------------------------------------------------------------------
def test_dripping_server_ends_at_the_deadline() -> None:
    with scripted(lambda seen: Reply(stream=drip())) as server:
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"^test source: GET http://127\.0\.0\.1:\d+/slow: no complete answer within the 1\.2 s deadline \(\d+ bytes of the body received\)$"):
            client(server, timeout=2.0, deadline="1.2s").get(server.url + "slow")
        elapsed = time.monotonic() - started
    assert 1.2 <= elapsed < 1.2 + 0.4  # never the read timeout again and again (each byte resets it)


def test_ogcapi_read_from_a_dripping_server_ends_at_the_deadline() -> None:
    def route(seen: Seen) -> Reply:
        if urlsplit(seen.path).path == "/collections/c":
            return Reply(body={"id": "c", "links": []})
        return Reply(stream=drip())

    with scripted(route) as server:
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"^ogcapi source 'c' at .*/collections/c/items\?limit=100: no complete answer within the 1 s deadline"):
            OgcApiFeaturesSource(url=server.url, collection="c", timeout=5, retries=3, deadline=1).read()
        assert time.monotonic() - started < 1.0 + 0.4


def test_retries_stop_at_the_deadline() -> None:
    with scripted(lambda seen: Reply(503, b"busy")) as server:
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"no complete answer within the 1 s deadline \(a retry would start after it; HTTP 503 before\)"):
            client(server, retries=10, backoff=0.2, deadline=1).get(server.url)
        assert time.monotonic() - started < 1.0 + 0.3
        assert 2 <= len(server.requests) < 11


# -- size cap -------------------------------------------------------------------------------------
def test_endless_body_ends_at_max_bytes_with_bounded_memory() -> None:
    with scripted(lambda seen: Reply(stream=endless())) as server:
        tracemalloc.start()
        try:
            with pytest.raises(SourceError, match=r"^test source: GET http://127\.0\.0\.1:\d+/big: the answer is over max_bytes=2000000 \(stopped reading at \d+ bytes\); ask for smaller pages or raise max_bytes$"):
                client(server, max_bytes=2_000_000).get(server.url + "big")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 12 * 2**20  # the cap plus buffers, not the answer


def test_declared_oversize_is_refused_before_reading() -> None:
    lying = scripted(lambda seen: Reply(body=b"{}", content_length=200_000_000))
    with lying as server, pytest.raises(SourceError, match=r"the answer is 200000000 bytes, over max_bytes=67108864"):
        client(server).get(server.url)


def test_gzip_bomb_is_capped_after_decompression() -> None:
    bomb = gzip.compress(b" " * (40 * 2**20), compresslevel=9)
    with scripted(lambda seen: Reply(body=bomb, headers={"Content-Encoding": "gzip"})) as server:
        tracemalloc.start()
        try:
            with pytest.raises(SourceError, match=r"over max_bytes=1000000"):
                client(server, max_bytes=1_000_000).get(server.url)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert len(bomb) < 1_000_000 and peak < 12 * 2**20


# -- page cap -------------------------------------------------------------------------------------
def test_endless_ogcapi_pages_end_at_max_pages() -> None:
    def route(seen: Seen) -> Reply:
        parts = urlsplit(seen.path)
        if parts.path == "/collections/c":
            return Reply(body={"id": "c", "links": []})
        offset = int(parse_qs(parts.query).get("offset", ["0"])[0])
        return Reply(body={"type": "FeatureCollection", "features": [feature(offset)], "links": [{"rel": "next", "href": f"/collections/c/items?offset={offset + 1}"}]})

    with scripted(route) as server:
        with pytest.raises(SourceError, match=r"stopped at max_pages=20: the server still links a next page \(http://127\.0\.0\.1:\d+/collections/c/items\?offset=20\)"):
            OgcApiFeaturesSource(url=server.url, collection="c", max_pages=20, **FAST).read()
        assert sum("/items" in s.path for s in server.requests) == 20


def test_endless_wfs_pages_end_at_max_pages() -> None:
    many = [feature(i) for i in range(1000)]
    with scripted(wfs_capped_route(CAPS, many, cap=10, number_matched="unknown")) as server, pytest.raises(SourceError, match=r"stopped at max_pages=5 \(startIndex=50\)"):
        WfsSource(url=server.url, type_name="pumps", count=10, max_pages=5, **FAST).read()


def test_endless_sensorthings_pages_end_at_max_pages() -> None:
    obs = [(i, f"2024-06-01T00:00:{i % 60:02d}Z", float(i)) for i in range(100)]
    route = sta_route([Gauge(1, "east", 121.5, 31.2, obs)], lambda path, skip, top: f"{path}?$top={top}&$skip={skip + top}")
    capped = pytest.raises(SourceError, match=r"stopped at max_pages=7 on http://127\.0\.0\.1:\d+/v1\.1/Datastreams\(1\)/Observations")
    with scripted(route) as server, SensorThingsSource(url=server.url + "v1.1", page_size=2, max_pages=7, **FAST) as source, capped:
        source.readings(dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc), dt.datetime(2024, 6, 1, 1, tzinfo=dt.timezone.utc))


# -- the conditional-request cache ------------------------------------------------------------------
def test_one_off_urls_do_not_grow_the_cache_and_repeating_ones_are_cached() -> None:
    def route(seen: Seen) -> Reply:
        if urlsplit(seen.path).path == "/collections/c":
            return Reply(body={"id": "c", "links": []})
        if seen.headers.get("If-None-Match") == '"v1"':
            return Reply(304, b"", headers={"ETag": '"v1"'})
        return Reply(body={"type": "FeatureCollection", "features": [feature(i) for i in range(50)], "links": []}, headers={"ETag": '"v1"'})

    t0 = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
    with scripted(route) as server:
        live = OgcApiFeaturesSource(url=server.url, collection="c", **FAST)
        for minute in range(60):  # what a live readings layer does each poll: a window that moves
            start = t0 + dt.timedelta(minutes=minute)
            live.params.datetime = f"{start:%Y-%m-%dT%H:%M:%SZ}/{start + dt.timedelta(minutes=1):%Y-%m-%dT%H:%M:%SZ}"
            assert len(live.read()) == 50
        assert live.client.cached_urls == 0 and live.client.cached_bytes == 0
        fixed = OgcApiFeaturesSource(url=server.url, collection="c", **FAST)
        for _ in range(3):
            fixed.read()
        assert fixed.client.cached_urls == 1 and [s.headers.get("If-None-Match") for s in server.requests if "datetime" not in s.path and "/items" in s.path] == [None, None, '"v1"']
