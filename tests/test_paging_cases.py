"""Paging faults from public bug reports (``../shared/cases``), against scripted local servers:
a WFS that caps pages below COUNT without saying so, OGC API next links that leave the
collection, and a SensorThings ``@iot.nextLink`` that leaves its Datastream.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from servers import Gauge, Reply, Seen, scripted, sta_route, wfs_capped_route
from twin_layers.ogcapi import OgcApiFeaturesSource
from twin_layers.sensorthings import SensorThingsSource
from twin_layers.wfs import WfsSource

from twin.errors import SourceError, TwinWarning

CASES = Path(__file__).resolve().parents[1].parent / "shared" / "cases"
FAST = {"timeout": 2.0, "retries": 0}


def points(n: int) -> list[dict[str, Any]]:
    return [{"type": "Feature", "id": i, "geometry": {"type": "Point", "coordinates": [121.3 + i * 1e-4, 31.2]}, "properties": {"n": i}} for i in range(n)]


def getfeature_requests(server: Any) -> list[Seen]:
    return [s for s in server.requests if "GetFeature" in s.path]


# -- WFS: short pages -----------------------------------------------------------------------------
def test_wfs_short_page_case_reads_all_250_features() -> None:
    capabilities = (CASES / "wfs-short-page" / "capabilities.xml").read_bytes()
    with scripted(wfs_capped_route(capabilities, points(250), cap=100, number_matched=250)) as server:
        source = WfsSource(url=server.url, type_name="ms:outfalls", count=500, **FAST)
        frame = source.read()
        sent = getfeature_requests(server)
    assert len(frame) == 250 and sorted(frame["n"]) == list(range(250))
    assert [parse_qs(urlsplit(s.path).query)["STARTINDEX"] for s in sent] == [["0"], ["100"], ["200"]]


def test_wfs_page_capped_at_37_with_number_matched_100() -> None:
    capabilities = (CASES / "wfs-short-page" / "capabilities.xml").read_bytes()
    with scripted(wfs_capped_route(capabilities, points(100), cap=37, number_matched=100)) as server:
        frame = WfsSource(url=server.url, type_name="outfalls", count=50, **FAST).read()
        assert len(getfeature_requests(server)) == 3  # 37 + 37 + 26, and no extra request after 100
    assert sorted(frame["n"]) == list(range(100))


def test_wfs_number_matched_unknown_reads_to_an_empty_page() -> None:
    capabilities = (CASES / "wfs-short-page" / "capabilities.xml").read_bytes()
    with scripted(wfs_capped_route(capabilities, points(80), cap=30, number_matched="unknown")) as server:
        source = WfsSource(url=server.url, type_name="outfalls", count=50, **FAST)
        frame = source.read()
    assert sorted(frame["n"]) == list(range(80))
    assert source.pages_read == 4  # 30 + 30 + 20 + an empty page


def test_wfs_without_number_matched_still_ends_at_a_short_page() -> None:
    capabilities = (CASES / "wfs-short-page" / "capabilities.xml").read_bytes()
    with scripted(wfs_capped_route(capabilities, points(70), cap=100, number_matched=None)) as server:
        source = WfsSource(url=server.url, type_name="outfalls", count=50, **FAST)
        assert len(source.read()) == 70 and source.pages_read == 2


# -- OGC API Features -----------------------------------------------------------------------------
def ogc_route(items: Any) -> Any:
    def route(seen: Seen) -> Reply:
        parts = urlsplit(seen.path)
        if parts.path.rstrip("/") in ("/collections/c", "/collections/other"):
            return Reply(body={"id": parts.path.rsplit("/", 1)[-1], "links": []})
        if parts.path.startswith("/collections/"):
            return items(parts.path, parse_qs(parts.query))
        return Reply(404, {"detail": "not found"})

    return route


def page(features: list[dict[str, Any]], nxt: str | None, matched: int | None = None) -> Reply:
    body: dict[str, Any] = {"type": "FeatureCollection", "features": features, "links": [{"rel": "next", "type": "application/geo+json", "href": nxt}] if nxt else []}
    if matched is not None:
        body["numberMatched"] = matched
    return Reply(body=body)


def test_ogcapi_next_link_into_another_collection_is_refused() -> None:
    def items(path: str, q: dict[str, list[str]]) -> Reply:
        if path == "/collections/c/items" and "offset" not in q:
            return page(points(3), "/collections/other/items?offset=3&limit=3")
        return page(points(6)[3:], None)

    with scripted(ogc_route(items)) as server:
        with pytest.raises(SourceError, match=r"^ogcapi source 'c' at .*: a next link leaves the collection's items \(http://127\.0\.0\.1:\d+/collections/c/items\): http://127\.0\.0\.1:\d+/collections/other/items\?offset=3&limit=3; stopped"):
            OgcApiFeaturesSource(url=server.url, collection="c", limit=3, **FAST).read()
        assert not any("/collections/other/items" in s.path for s in server.requests)


def test_ogcapi_next_link_to_another_host_is_refused_without_credentials() -> None:
    leaving = ogc_route(lambda path, q: page(points(2), "http://203.0.113.9/collections/c/items?offset=2"))
    with scripted(leaving) as server, pytest.raises(SourceError, match=r"a next link leaves the collection's items .*: http://203\.0\.113\.9/collections/c/items\?offset=2"):
        OgcApiFeaturesSource(url=server.url, collection="c", **FAST).read()


def test_ogcapi_short_pages_are_followed_and_a_missing_rest_is_warned() -> None:
    feats = points(10)

    def items(path: str, q: dict[str, list[str]]) -> Reply:
        offset = int(q.get("offset", ["0"])[0])
        chunk = feats[offset : offset + 3]  # capped at 3 whatever the limit
        nxt = f"/collections/c/items?offset={offset + 3}" if offset + 3 < 7 else None  # the server forgets the last 3
        return page(chunk, nxt, matched=10)

    with scripted(ogc_route(items)) as server, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = OgcApiFeaturesSource(url=server.url, collection="c", limit=5, **FAST).read()
    assert sorted(frame["n"]) == list(range(9))  # short pages (3 < 5) were not taken for the end
    messages = [str(w.message) for w in caught if issubclass(w.category, TwinWarning)]
    assert any("numberMatched=10 but its pages ended after 9 features (no next link)" in m for m in messages)


# -- SensorThings: a next link that leaves its Datastream ---------------------------------------
T = "2024-06-01T00:{:02d}:00Z"
EAST = Gauge(1, "east", 121.50, 31.24, [(11, T.format(1), 5.0), (12, T.format(2), 6.0), (13, T.format(3), 7.0)])
WEST = Gauge(2, "west", 121.40, 31.22, [(21, T.format(1), 30.0), (22, T.format(2), 31.0), (23, T.format(3), 32.0)])
START, END = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc), dt.datetime(2024, 6, 1, 1, tzinfo=dt.timezone.utc)


def by_gauge(frame: Any) -> dict[str, list[float]]:
    return {name: sorted(rows["value"]) for name, rows in frame.groupby("sensor_id")}


def test_sta_next_link_to_the_unfiltered_collection_case() -> None:
    route = sta_route([EAST, WEST], lambda path, skip, top: f"/v1.1/Observations?$top={top}&$skip={skip + top}")
    with scripted(route) as server:
        source = SensorThingsSource(url=server.url + "v1.1", sensor_id="thing_name", page_size=2, **FAST)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = source.readings(START, END)
        source.close()
        unfiltered = [s.path for s in server.requests if s.path.startswith("/v1.1/Observations")]
    assert by_gauge(frame) == {"east": [5.0, 6.0, 7.0], "west": [30.0, 31.0, 32.0]}
    assert frame.loc[frame["sensor_id"] == "east", "lon"].eq(121.50).all()
    assert unfiltered == []  # the link that left the Datastream was never followed
    messages = [str(w.message) for w in caught if issubclass(w.category, TwinWarning)]
    assert any("@iot.nextLink http://127.0.0.1:" in m and "/v1.1/Observations?$top=2&$skip=2 leaves" in m and "Datastreams(1)/Observations" in m for m in messages)
    assert source.last_dropped == {}


def test_sta_next_link_into_another_datastream() -> None:
    route = sta_route([EAST, WEST], lambda path, skip, top: f"/v1.1/Datastreams(2)/Observations?$top={top}&$skip={skip + top}")
    leaving = r"Datastreams\(2\)/Observations\?\$top=2&\$skip=2 leaves .*Datastreams\(1\)/Observations"
    with scripted(route) as server, SensorThingsSource(url=server.url + "v1.1", sensor_id="thing_name", page_size=2, **FAST) as source, pytest.warns(TwinWarning, match=leaving):
        frame = source.readings(START, END)
    assert by_gauge(frame) == {"east": [5.0, 6.0, 7.0], "west": [30.0, 31.0, 32.0]}


def test_sta_expand_next_link_that_drops_the_expand_is_dropped_and_counted() -> None:
    """query: expand attributes each observation by its own Datastream; a next page without it
    cannot be attributed: dropped and counted, never put on a gauge."""
    route = sta_route([EAST, WEST], lambda path, skip, top: f"{path}?$top={top}&$skip={skip + top}")  # same path, $expand lost
    with scripted(route) as server:
        source = SensorThingsSource(url=server.url + "v1.1", sensor_id="thing_name", page_size=2, query="expand", **FAST)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = source.readings(START, END)
    assert by_gauge(frame) == {"east": [5.0, 6.0]}  # the first page: east's 11 and 12
    assert source.last_dropped == {"unknown_datastream": 4}
    assert any("dropped 4 observation(s)" in str(w.message) and "4 unknown datastream" in str(w.message) for w in caught)


def test_sta_page_holding_another_datastreams_observation_drops_it() -> None:
    def route(seen: Seen) -> Reply:
        if "/Datastreams(1)/Observations" in seen.path:  # east's page also holds one of west's
            return Reply(body={"value": [{"@iot.id": 11, "phenomenonTime": T.format(1), "result": 5.0}, {"@iot.id": 21, "phenomenonTime": T.format(1), "result": 30.0, "Datastream": {"@iot.id": 2}}]})
        if "/Datastreams(2)/Observations" in seen.path:
            return Reply(body={"value": [{"@iot.id": 22, "phenomenonTime": T.format(2), "result": 31.0, "Datastream@iot.navigationLink": "http://x/v1.1/Datastreams(2)"}]})
        return sta_route([EAST, WEST], lambda *a: None)(seen)

    with scripted(route) as server, SensorThingsSource(url=server.url + "v1.1", sensor_id="thing_name", **FAST) as source, pytest.warns(TwinWarning, match="1 other datastream"):
        frame = source.readings(START, END)
    assert by_gauge(frame) == {"east": [5.0], "west": [31.0]}
    assert source.last_dropped == {"other_datastream": 1}
