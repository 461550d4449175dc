"""Feature-level faults in OGC API / WFS answers: one bad feature (a geometry type GeoJSON lacks,
non-finite or out-of-range coordinates, nesting too deep to read) is skipped and counted with a
warning naming the source; the rest are read. Swapped axes are corrected the same way in every
source (SensorThings Thing locations included).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servers import Gauge, Reply, Seen, scripted, sta_route
from twin_layers.ogcapi import CoordSpace, FeatureStats, OgcApiFeaturesSource, crs_from_name, features_to_frame
from twin_layers.sensorthings import SensorThingsSource
from twin_layers.wfs import WfsSource

from twin.errors import TwinError, TwinWarning

CASES = Path(__file__).resolve().parents[1].parent / "shared" / "cases"
FAST: dict[str, Any] = {"timeout": 2.0, "retries": 0}
CAPS = b"""<?xml version="1.0"?><wfs:WFS_Capabilities xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns="http://www.opengis.net/wfs/2.0" version="2.0.0">
<ows:OperationsMetadata><ows:Operation name="GetFeature"><ows:Parameter name="outputFormat"><ows:AllowedValues><ows:Value>application/json; subtype=geojson</ows:Value></ows:AllowedValues></ows:Parameter></ows:Operation></ows:OperationsMetadata>
<FeatureTypeList><FeatureType><Name>ms:pumps</Name><DefaultCRS>urn:ogc:def:crs:EPSG::4326</DefaultCRS></FeatureType></FeatureTypeList></wfs:WFS_Capabilities>"""


def point(n: int, lon: float = 121.47, lat: float = 31.23) -> str:
    return json.dumps({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": {"n": n}})


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


# Each bad feature is written as raw JSON text: Infinity and deep nesting as a server would send them.
BAD = [
    '{"type": "Feature", "geometry": {"type": "Circle", "coordinates": [121.4, 31.2], "radius": 5}, "properties": {"n": 90}}',
    '{"type": "Feature", "geometry": {"type": 5, "coordinates": [121.4, 31.2]}, "properties": {"n": 91}}',
    '{"type": "Feature", "geometry": {"type": "GeometryCollection", "geometries": [{"type": "Sphere", "coordinates": []}]}, "properties": {"n": 92}}',
    '{"type": "Feature", "geometry": {"type": "Point", "coordinates": [Infinity, 31.2]}, "properties": {"n": 93}}',
    '{"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[121.4, 31.2], [NaN, 31.3]]}, "properties": {"n": 94}}',
    '{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1e300, 31.2]}, "properties": {"n": 95}}',
    '{"type": "Feature", "geometry": {"type": "Point", "coordinates": [121.4, 31.2]}, "properties": {"n": 96, "x": ' + nested(100) + "}}",
    '{"type": "Feature", "geometry": {"type": "Point", "coordinates": [121.4, 31.2]}, "properties": {"n": 97, "x": ' + nested(20_000) + "}}",
]
EXPECTED_SKIPS = {"bad_geometry_type": 3, "non_finite_coordinates": 2, "out_of_range": 1, "nesting_too_deep": 2}


def collection(features: list[str], extra: str = "") -> bytes:
    return ('{"type": "FeatureCollection", "features": [' + ", ".join(features) + "]" + extra + "}").encode()


def ogc(body: bytes) -> Any:
    def route(seen: Seen) -> Reply:
        if urlsplit(seen.path).path == "/collections/c":
            return Reply(body={"id": "c", "links": []})
        return Reply(body=body)

    return route


def wfs(body: bytes) -> Any:
    return lambda seen: Reply(body=CAPS if "GetCapabilities" in seen.path else body)


def read_warned(source: Any) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = source.read()
    return frame, [str(w.message) for w in caught if issubclass(w.category, TwinWarning)]


@pytest.mark.parametrize("kind", ["ogcapi", "wfs"])
def test_bad_features_are_skipped_and_counted_by_reason(kind: str) -> None:
    body = collection([point(1), *BAD, point(2, lon=121.48)], ', "numberMatched": 10')
    with scripted(ogc(body) if kind == "ogcapi" else wfs(body)) as server:
        source = OgcApiFeaturesSource(url=server.url, collection="c", **FAST) if kind == "ogcapi" else WfsSource(url=server.url, type_name="pumps", **FAST)
        frame, messages = read_warned(source)
    assert frame["n"].tolist() == [1, 2]
    assert source.last_skipped == EXPECTED_SKIPS
    name = "ogcapi source 'c'" if kind == "ogcapi" else "wfs source 'pumps'"
    assert len(messages) == 1 and messages[0].startswith(f"{name} at http://127.0.0.1:")
    assert "skipped 8 features (3 with a geometry type GeoJSON does not have, 2 with non-finite coordinates, 1 with coordinates outside lon/lat ranges, 2 nested too deep)" in messages[0]


def test_non_finite_coordinates_case_draws_the_good_features() -> None:
    body = (CASES / "non-finite-coordinates" / "nonfinite_Infinity.geojson").read_bytes()
    with scripted(ogc(body)) as server:
        source = OgcApiFeaturesSource(url=server.url, collection="c", **FAST)
        frame, messages = read_warned(source)
    assert len(frame) == 5 and frame.geometry.geom_type.eq("Polygon").all()
    assert math.isfinite(frame.total_bounds.sum())
    assert source.last_skipped == {"non_finite_coordinates": 1}
    assert any("skipped 1 feature (1 with non-finite coordinates)" in m for m in messages)


def test_json_too_deep_outside_the_features_is_one_clear_error() -> None:
    body = collection([point(1)], ', "links": ' + nested(20_000))
    too_deep = pytest.raises(TwinError, match=r"^ogcapi source 'c' at .*/collections/c/items\?limit=100: JSON nested too deep to read \(outside the features\)$")
    with scripted(ogc(body)) as server, too_deep:
        OgcApiFeaturesSource(url=server.url, collection="c", **FAST).read()


def test_one_swapped_feature_among_good_ones_is_corrected() -> None:
    body = collection([point(1), point(2, lon=31.24, lat=121.48), point(3, lon=121.49)])  # feature 2 written lat, lon
    with scripted(ogc(body)) as server:
        source = OgcApiFeaturesSource(url=server.url, collection="c", **FAST)
        frame, _ = read_warned(source)
    assert [(round(g.x, 6), round(g.y, 6)) for g in frame.geometry] == [(121.47, 31.23), (121.48, 31.24), (121.49, 31.23)]
    assert source.last_skipped == {}


def test_sensorthings_swapped_location_is_corrected_not_dropped() -> None:
    gauges = [Gauge(1, "east", 121.50, 31.24, [(11, "2024-06-01T00:01:00Z", 5.0)]), Gauge(2, "west", 121.40, 31.22, [(21, "2024-06-01T00:01:00Z", 30.0)])]
    swapped = {2: [31.22, 121.40]}  # west's Location written lat, lon
    route = sta_route(gauges, lambda *a: None, location=lambda g: swapped.get(g.datastream, [g.lon, g.lat]))
    with scripted(route) as server, SensorThingsSource(url=server.url + "v1.1", sensor_id="thing_name", **FAST) as source:
        frame = source.readings(dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc), dt.datetime(2024, 6, 1, 1, tzinfo=dt.timezone.utc))
    located = {row.sensor_id: (row.lon, row.lat, row.value) for row in frame.itertuples()}
    assert located == {"east": (121.50, 31.24, 5.0), "west": (121.40, 31.22, 30.0)}
    assert source.last_dropped == {}


# -- any feature: a TwinError or a counted skip, never another exception ------------------------
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**400), 10**400), st.sampled_from([121.4, 31.2, -200.0, 95.0]))
coordinates = st.recursive(st.lists(numbers, max_size=4), lambda inner: st.lists(inner, max_size=4), max_leaves=30)
junk = st.recursive(st.none() | st.booleans() | numbers | st.text(max_size=5), lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=20)
geometries = st.fixed_dictionaries(
    {"type": st.sampled_from(["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection", "Circle", "", 7])},
    optional={"coordinates": coordinates | junk, "geometries": st.lists(st.fixed_dictionaries({"type": st.sampled_from(["Point", "Polygon", "Box"]), "coordinates": coordinates}), max_size=3)},
)
features = st.fixed_dictionaries({"type": st.just("Feature")}, optional={"geometry": geometries | junk, "properties": junk, "id": junk})


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(features, junk), max_size=6))
def test_any_feature_is_read_or_skipped_and_counted(items: list[Any]) -> None:
    stats = FeatureStats()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = features_to_frame(items, CoordSpace(crs_from_name("OGC:CRS84")), where="fuzz", stats=stats)
    assert len(frame) + sum(stats.skipped.values()) == len(items)
    if len(frame):
        bounds = frame.geometry.bounds.to_numpy()
        assert ((bounds[:, [0, 2]] >= -180) & (bounds[:, [0, 2]] <= 180)).all() and ((bounds[:, [1, 3]] >= -90) & (bounds[:, [1, 3]] <= 90)).all()


def test_integer_coordinate_beyond_double_range_is_counted_non_finite() -> None:
    """Found by the fuzz test above: JSON allows integers no double holds (10**400); such a feature is skipped as non-finite."""
    good = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [121.4, 31.2]}, "properties": {"n": 1}}
    huge = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[10**400, 31.2], [121.5, 31.2], [121.5, 31.3], [10**400, 31.2]]]}}
    stats = FeatureStats()
    frame = features_to_frame([good, huge], CoordSpace(crs_from_name("OGC:CRS84")), where="fuzz", stats=stats)
    assert frame["n"].tolist() == [1]
    assert stats.skipped == {"non_finite_coordinates": 1}
