"""Network sources against servers that misbehave on purpose (scripted http.server threads on
127.0.0.1): down, flaky, slow, malformed, truncated, looping, mislabelled CRS, no geometry,
conditional requests, credentials, and a polled layer that keeps its last good data.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyproj
import pytest
import shapely

from twin.errors import SourceError, TwinWarning
from twin_layers.ogcapi import OgcApiFeaturesSource
from twin_layers.sensorthings import SensorThingsSource
from twin_layers.wfs import WfsSource

from servers import Reply, ScriptedServer, Seen, closed_port, scripted

FAST = {"timeout": 1.0, "retries": 2, "backoff": 0.01}
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def point(i: int, lon: float = 121.47, lat: float = 31.23) -> dict[str, Any]:
    return {"type": "Feature", "id": i, "geometry": {"type": "Point", "coordinates": [lon + i * 1e-3, lat]}, "properties": {"n": i}}


def page(features: list[dict[str, Any]], next_href: str | None = None) -> dict[str, Any]:
    links = [{"rel": "next", "type": "application/geo+json", "href": next_href}] if next_href else []
    return {"type": "FeatureCollection", "features": features, "links": links}


def ogc(items: Callable[[Seen, dict[str, list[str]]], Reply]) -> Callable[[Seen], Reply]:
    """An OGC API route: a collection document, and ``items`` for /collections/c/items."""

    def route(seen: Seen) -> Reply:
        parts = urlsplit(seen.path)
        if parts.path.rstrip("/") == "/collections/c":
            return Reply(body={"id": "c", "links": [], "crs": [CRS84]})
        if parts.path == "/collections/c/items":
            return items(seen, parse_qs(parts.query))
        return Reply(404, {"detail": "not found"})

    return route


def items_requests(server: ScriptedServer) -> list[Seen]:
    return [s for s in server.requests if "/items" in s.path]


def src(server: ScriptedServer | str, **params: Any) -> OgcApiFeaturesSource:
    url = server if isinstance(server, str) else server.url
    return OgcApiFeaturesSource(url=url, collection="c", **{**FAST, **params})


def test_server_down_fails_fast_naming_source_and_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        src(url).read()
    assert time.monotonic() - started < 2.0
    message = str(err.value)
    assert message.startswith("ogcapi source 'c' at http://127.0.0.1:") and url + "collections/c" in message
    assert "cannot connect" in message and "after 3 attempts" in message


def test_http_500_then_success_is_retried() -> None:
    calls = {"items": 0}

    def items(seen: Seen, q: dict[str, list[str]]) -> Reply:
        calls["items"] += 1
        return Reply(500, b"oops") if calls["items"] == 1 else Reply(body=page([point(1), point(2)]))

    with scripted(ogc(items)) as server:
        frame = src(server).read()
    assert len(frame) == 2 and calls["items"] == 2


def test_always_503_gives_up_after_the_retries() -> None:
    with scripted(ogc(lambda s, q: Reply(503, b"busy"))) as server:
        source = src(server, retries=3)
        with pytest.raises(SourceError, match=r"^ogcapi source 'c' at .*: GET http://127\.0\.0\.1:\d+/collections/c/items\?limit=100: HTTP 503 \(after 4 attempts\)$"):
            source.read()
        assert len(items_requests(server)) == 4


def test_slow_server_is_abandoned_at_the_timeout() -> None:
    with scripted(ogc(lambda s, q: Reply(body=page([point(1)]), delay=3.0))) as server:
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"no answer within 0\.3 s \(after 2 attempts\)"):
            src(server, timeout=0.3, retries=1, backoff=0.05).read()
        elapsed = time.monotonic() - started
    # two attempts of 0.3 s plus at most 1.5 × backoff, and slack: never the server's 3 s
    assert elapsed < 2 * 0.3 + 0.075 + 0.8


def test_malformed_json_names_the_url() -> None:
    with scripted(ogc(lambda s, q: Reply(body=b'{"type": "FeatureCollection", "features": [}'))) as server:
        with pytest.raises(SourceError, match=r"GET http://127\.0\.0\.1:\d+/collections/c/items\?limit=100: malformed JSON"):
            src(server).read()


def test_truncated_pages_are_errors_not_partial_data() -> None:
    body = b'{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [121.4'
    # a body cut short of its Content-Length (the connection closes early)
    with scripted(ogc(lambda s, q: Reply(body=body, content_length=len(body) + 500))) as server:
        with pytest.raises(SourceError, match=r"^ogcapi source 'c' at .*/collections/c/items"):
            src(server).read()
    # a body whose JSON is cut (the length is right)
    with scripted(ogc(lambda s, q: Reply(body=body))) as server:
        with pytest.raises(SourceError, match="malformed JSON"):
            src(server).read()


def test_page_loop_is_detected() -> None:
    def items(seen: Seen, q: dict[str, list[str]]) -> Reply:
        offset = int(q.get("offset", ["0"])[0])
        nxt = "/collections/c/items?offset=2&limit=2" if offset == 0 else "/collections/c/items?limit=2"  # page 2 points back to page 1
        return Reply(body=page([point(offset), point(offset + 1)], nxt))

    with scripted(ogc(items)) as server:
        with pytest.raises(SourceError, match=r"page loop: the next link of page 2 points back to page 1"):
            src(server, limit=2).read()
        assert len(items_requests(server)) == 2  # stopped before asking again


def test_server_that_ignores_offset_is_a_page_loop() -> None:
    def items(seen: Seen, q: dict[str, list[str]]) -> Reply:
        offset = int(q.get("offset", ["0"])[0])
        return Reply(body=page([point(0), point(1)], f"/collections/c/items?offset={offset + 2}&limit=2"))  # same page, new links

    with scripted(ogc(items)) as server, pytest.raises(SourceError, match="page loop: page 2 .* the server ignores paging"):
        src(server, limit=2).read()


def test_next_links_relative_and_paged_in_full() -> None:
    def items(seen: Seen, q: dict[str, list[str]]) -> Reply:
        offset = int(q.get("offset", ["0"])[0])
        nxt = f"items?offset={offset + 2}&limit=2" if offset < 4 else None  # relative to the items URL
        return Reply(body=page([point(offset), point(offset + 1)], nxt))

    with scripted(ogc(items)) as server:
        frame = src(server, limit=2).read()
    assert frame["n"].tolist() == [0, 1, 2, 3, 4, 5]


MERCATOR = list(pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(121.4753, 31.2266))


def test_content_crs_header_is_honoured() -> None:
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": MERCATOR}, "properties": {}}
    header = {"Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/3857>"}
    with scripted(ogc(lambda s, q: Reply(body=page([feature]), headers=header))) as server:
        geom = src(server).read().geometry.iloc[0]
    assert abs(geom.x - 121.4753) < 1e-9 and abs(geom.y - 31.2266) < 1e-9
    latlon = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [31.23, 121.47]}, "properties": {}}
    header = {"Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/4326>"}  # authority axis order: lat, lon
    with scripted(ogc(lambda s, q: Reply(body=page([latlon]), headers=header))) as server:
        assert src(server).read().geometry.iloc[0].equals_exact(shapely.Point(121.47, 31.23), 1e-12)


def test_missing_crs_is_read_as_crs84_and_projected_coordinates_are_refused() -> None:
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": MERCATOR}, "properties": {}}
    with scripted(ogc(lambda s, q: Reply(body=page([feature])))) as server:
        with pytest.raises(SourceError, match=r"not valid in CRS84.*set data_crs"):
            src(server).read()
        geom = src(server, data_crs="EPSG:3857").read().geometry.iloc[0]
    assert abs(geom.x - 121.4753) < 1e-9 and abs(geom.y - 31.2266) < 1e-9


def test_features_without_geometry_are_skipped_and_counted_once() -> None:
    features = [point(1), {"type": "Feature", "geometry": None, "properties": {"n": 2}}, {"type": "Feature", "properties": {"n": 3}}, point(4)]
    with scripted(ogc(lambda s, q: Reply(body=page(features)))) as server:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = src(server).read()
    assert frame["n"].tolist() == [1, 4]
    messages = [str(w.message) for w in caught if issubclass(w.category, TwinWarning)]
    assert len(messages) == 1 and "skipped 2 features (2 without geometry)" in messages[0]


def test_etag_makes_the_next_read_conditional() -> None:
    def items(seen: Seen, q: dict[str, list[str]]) -> Reply:
        if seen.headers.get("If-None-Match") == '"v1"':
            return Reply(304, b"", headers={"ETag": '"v1"'})
        return Reply(body=page([point(1), point(2)]), headers={"ETag": '"v1"'})

    with scripted(ogc(items)) as server:
        source = src(server)
        first = source.read()
        source.read()  # a URL is kept for conditional requests from its second request on (one-off URLs never are)
        third = source.read()
        sent = items_requests(server)
    assert len(sent) == 3 and "If-None-Match" not in sent[0].headers and "If-None-Match" not in sent[1].headers
    assert sent[2].headers["If-None-Match"] == '"v1"'
    assert third.equals(first) and len(third) == 2


TOKEN = "s3cr3t-token-value-9f8e7d"


def test_token_from_the_environment_never_leaks(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import twin

    monkeypatch.setenv("ONEMAP_TOKEN", TOKEN)
    fail = {"now": False}

    def route(seen: Seen) -> Reply:
        if seen.headers.get("Authorization") != f"Bearer {TOKEN}":
            return Reply(401, {"detail": "no token"})
        return Reply(503, b"down") if fail["now"] else ogc(lambda s, q: Reply(body=page([point(1)])))(seen)

    caplog.set_level(logging.DEBUG)
    with scripted(route) as server:
        spec = {"type": "ogcapi", "url": server.url, "collection": "c", "token_env": "ONEMAP_TOKEN", "poll_interval": "1s", **FAST}
        scene = twin.Scene.from_dict({"version": 1, "name": "t", "layers": [{"id": "pois", "type": "vector", "source": spec}]})
        layer = scene.layers[0]
        assert len(layer.data()) == 1
        fail["now"] = True
        layer.refresh(layer.health.last_success + dt.timedelta(seconds=2))
        assert layer.health.error and "HTTP 503" in layer.health.error
        with pytest.raises(SourceError) as err:
            layer.source.read()
    assert TOKEN not in str(err.value) and TOKEN not in layer.health.error
    assert TOKEN not in caplog.text and TOKEN not in repr(scene.to_dict())
    assert scene.to_dict()["layers"][0]["source"]["token_env"] == "ONEMAP_TOKEN"

    monkeypatch.delenv("ONEMAP_TOKEN")
    with pytest.raises(SourceError, match="environment variable ONEMAP_TOKEN .* is not set"):
        src("http://127.0.0.1:9/", token_env="ONEMAP_TOKEN").read()


def test_next_link_to_another_host_gets_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEMAP_TOKEN", TOKEN)
    with scripted(ogc(lambda s, q: Reply(body=page([point(1)], "http://203.0.113.9/collections/c/items?offset=1")))) as server:
        with pytest.raises(SourceError, match="leaves the service's host; not sending credentials there"):
            src(server, token_env="ONEMAP_TOKEN").read()


def test_polled_layer_keeps_its_last_good_data() -> None:
    from twin.plugins import layer_types

    state = {"mode": "ok"}

    def items(seen: Seen, q: dict[str, list[str]]) -> Reply:
        if state["mode"] == "ok":
            return Reply(body=page([point(1), point(2), point(3)]))
        if state["mode"] == "garbage":
            return Reply(body=b"<html>maintenance</html>", headers={"Content-Type": "text/html"})
        return Reply(500, b"")

    with scripted(ogc(items)) as server:
        layer = layer_types().get("vector")("outfalls", source={"type": "ogcapi", "url": server.url, "collection": "c", "poll_interval": "10s", **FAST})
        good = layer.data()
        t0 = layer.health.last_success
        assert len(good) == 3
        for step, mode in enumerate(["down", "garbage"], start=1):
            state["mode"] = mode
            layer.refresh(t0 + dt.timedelta(seconds=11 * step))
            assert layer.health.error is not None and layer.data() is good
        assert "expected JSON, got XML/HTML" in layer.health.error
        state["mode"] = "ok"
        layer.refresh(t0 + dt.timedelta(seconds=40))
        assert layer.health.error is None and len(layer.data()) == 3


# -- WFS and SensorThings faults -------------------------------------------------------------------
CAPS = b"""<?xml version="1.0"?>
<wfs:WFS_Capabilities xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns="http://www.opengis.net/wfs/2.0" version="2.0.0">
 <ows:OperationsMetadata>
  <ows:Operation name="GetFeature"><ows:Parameter name="outputFormat"><ows:AllowedValues>
   <ows:Value>text/xml; subtype=gml/3.2.1</ows:Value><ows:Value>application/json; subtype=geojson</ows:Value>
  </ows:AllowedValues></ows:Parameter></ows:Operation>
  <ows:Constraint name="ImplementsResultPaging"><ows:NoValues/><ows:DefaultValue>TRUE</ows:DefaultValue></ows:Constraint>
 </ows:OperationsMetadata>
 <FeatureTypeList><FeatureType><Name>ms:pumps</Name><DefaultCRS>urn:ogc:def:crs:EPSG::4326</DefaultCRS></FeatureType></FeatureTypeList>
</wfs:WFS_Capabilities>"""


def test_wfs_server_that_ignores_start_index_is_a_page_loop() -> None:
    def route(seen: Seen) -> Reply:
        if "GetCapabilities" in seen.path:
            return Reply(body=CAPS, headers={"Content-Type": "text/xml"})
        return Reply(body={"type": "FeatureCollection", "features": [point(1), point(2)]})

    with scripted(route) as server:
        with pytest.raises(SourceError, match="the server ignores startIndex"):
            WfsSource(url=server.url, type_name="pumps", count=2, **FAST).read()


def test_wfs_exception_report_instead_of_json() -> None:
    report = b'<?xml version="1.0"?><ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Exception><ows:ExceptionText>msWFSGetFeature(): no such layer</ows:ExceptionText></ows:Exception></ows:ExceptionReport>'

    def route(seen: Seen) -> Reply:
        return Reply(body=CAPS if "GetCapabilities" in seen.path else report, headers={"Content-Type": "text/xml"})

    with scripted(route) as server:
        with pytest.raises(SourceError, match=r"expected JSON, got a service exception: msWFSGetFeature\(\): no such layer"):
            WfsSource(url=server.url, type_name="pumps", **FAST).read()


def sta_route(observations: list[dict[str, Any]], per_page: int = 2) -> Callable[[Seen], Reply]:
    """A SensorThings service with one Thing/Datastream; Observations with relative next links."""

    def route(seen: Seen) -> Reply:
        parts = urlsplit(seen.path)
        q = parse_qs(parts.query)
        if parts.path.endswith("/Things"):
            thing = {"@iot.id": 7, "name": "gauge-7", "Locations": [{"location": {"type": "Point", "coordinates": [121.45, 31.21]}}], "Datastreams": [{"@iot.id": 70, "name": "depth-7"}]}
            return Reply(body={"value": [thing]})
        if parts.path.endswith("/Observations"):
            skip = int(q.get("$skip", ["0"])[0])
            chunk = observations[skip : skip + per_page]
            body: dict[str, Any] = {"value": chunk}
            if skip + per_page < len(observations):
                body["@iot.nextLink"] = f"Observations?$skip={skip + per_page}"  # relative
            return Reply(body=body)
        return Reply(404, {"detail": "?"})

    return route


def test_sensorthings_relative_next_links_and_non_numeric_results() -> None:
    t = "2024-06-01T00:{:02d}:00Z"
    observations = [
        {"@iot.id": 1, "phenomenonTime": t.format(1), "result": 3.5, "Datastream": {"@iot.id": 70}},
        {"@iot.id": 2, "phenomenonTime": t.format(2), "result": "n/a", "Datastream": {"@iot.id": 70}},
        {"@iot.id": 3, "phenomenonTime": t.format(3) + "/" + t.format(4), "result": 4, "Datastream": {"@iot.id": 70}},
        {"@iot.id": 4, "phenomenonTime": t.format(5), "result": {"depth": 3}, "Datastream": {"@iot.id": 70}},
        {"@iot.id": 5, "phenomenonTime": t.format(6), "result": "5.25", "Datastream": {"@iot.id": 70}},
    ]
    for query in ("per_datastream", "expand"):
        with scripted(sta_route(observations)) as server:
            source = SensorThingsSource(url=server.url + "v1.1", query=query, sensor_id="thing_name", **FAST)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                frame = source.readings(dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc), dt.datetime(2024, 6, 1, 1, tzinfo=dt.timezone.utc))
            paths = [s.path for s in server.requests]
        assert frame["value"].tolist() == [3.5, 4.0, 5.25], query
        assert set(frame["sensor_id"]) == {"gauge-7"} and frame["lon"].eq(121.45).all()
        assert source.last_dropped == {"non_numeric_result": 2}
        assert any("2 non numeric result" in str(w.message) for w in caught)
        expected = "/v1.1/Datastreams(70)/Observations" if query == "per_datastream" else "/v1.1/Observations"
        assert sum(p.startswith(expected) for p in paths) == 3  # 5 observations at 2 a page


@pytest.mark.parametrize("module", ["twin_layers.ogcapi", "twin_layers.wfs", "twin_layers.sensorthings"])
def test_scene_file_snippets_in_the_docstrings_are_valid(module: str) -> None:
    import importlib
    import textwrap

    import yaml

    from twin.plugins import build_source

    doc = importlib.import_module(module).__doc__ or ""
    snippet = textwrap.dedent(doc.split("Scene file::", 1)[1].split("\n\n", 2)[1])
    data = yaml.safe_load(snippet)
    spec = data[0]["source"] if isinstance(data, list) else data["source"]
    source = build_source(spec)
    assert source.to_dict()["type"] == spec["type"]
