"""The ArcGIS REST FeatureServer source against Koop (an open-source FeatureServer implementation,
npm ``@koopjs/koop-core`` with ``@koopjs/provider-file-geojson``, installed by scripts/setup.sh into
tests/koop/node_modules) on 127.0.0.1, serving the real bus stops and districts from ../shared/data;
and against scripted servers for what Koop does not do (projected layers, token errors, broken paging)."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import geopandas as gpd
import pytest
import shapely
from servers import Reply, Seen, ServerProcess, free_port, scripted, start_process
from twin_layers.arcgis import ArcGisFeatureSource

from twin.errors import SourceError, TwinError
from twin.plugins import source_types

KOOP = Path(__file__).resolve().parent / "koop"
STOPS_PAGE = 10  # the stops layer's maxRecordCount


def _koop_data(folder: Path, shared_data: Path) -> None:
    """GeoJSON files Koop serves: the 49 real bus stops with maxRecordCount 10; the 16 real districts;
    a square with a hole and a two-part polygon made here (Esri rings with holes and parts)."""
    stops = json.loads((shared_data / "bund_busstops_71.geojson").read_text(encoding="utf-8"))
    stops["metadata"] = {"maxRecordCount": STOPS_PAGE}
    (folder / "stops.geojson").write_text(json.dumps(stops), encoding="utf-8")
    districts = json.loads((shared_data / "shanghai_districts_gcj02.geojson").read_text(encoding="utf-8"))
    for f in districts["features"]:
        f["properties"] = {"adcode": f["properties"]["adcode"], "name": f["properties"]["name"]}
    (folder / "districts.geojson").write_text(json.dumps(districts), encoding="utf-8")
    holed = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"name": "ring"}, "geometry": shapely.geometry.mapping(_ring())},
            {"type": "Feature", "properties": {"name": "two"}, "geometry": shapely.geometry.mapping(_two_parts())},
        ],
    }
    (folder / "holed.geojson").write_text(json.dumps(holed), encoding="utf-8")


def _ring() -> shapely.Polygon:
    return shapely.Polygon([(121.40, 31.10), (121.50, 31.10), (121.50, 31.20), (121.40, 31.20)], [[(121.43, 31.13), (121.47, 31.13), (121.47, 31.17), (121.43, 31.17)]])


def _two_parts() -> shapely.MultiPolygon:
    return shapely.MultiPolygon([shapely.box(121.6, 31.0, 121.7, 31.1), shapely.box(121.8, 31.0, 121.9, 31.1)])


@pytest.fixture(scope="module")
def koop(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[ServerProcess]:
    if not (KOOP / "node_modules" / "@koopjs" / "koop-core").is_dir() or shutil.which("node") is None:
        pytest.fail("Koop is not installed: run scripts/setup.sh (it runs `npm ci --prefix tests/koop`)")
    work = tmp_path_factory.mktemp("koop")
    (work / "data").mkdir()
    _koop_data(work / "data", shared_data)
    port = free_port()
    server = start_process("koop", ["node", str(KOOP / "server.js"), str(port), str(work / "data")], port=port, log_path=work / "koop.log", cwd=work)
    try:
        yield server
    finally:
        server.stop()


def _layer(koop: ServerProcess, name: str) -> str:
    return f"{koop.url}file-geojson/rest/services/{name}/FeatureServer/0"


@pytest.fixture(scope="module")
def stops(shared_data: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(shared_data / "bund_busstops_71.geojson")


def _points(frame: gpd.GeoDataFrame) -> list[tuple[float, float, str]]:
    return sorted((round(g.x, 9), round(g.y, 9), str(n)) for g, n in zip(frame.geometry, frame["stopname"]))


# -- against Koop ------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["geojson", "json"])
def test_pages_by_offset_until_the_last_page(koop: ServerProcess, stops: gpd.GeoDataFrame, fmt: str) -> None:
    source = ArcGisFeatureSource(url=_layer(koop, "stops"), format=fmt)
    frame = source.read()
    assert len(frame) == 49 and source.pages_read == 5  # 49 stops in pages of maxRecordCount 10
    assert _points(frame) == _points(stops)
    assert str(frame.crs) == "EPSG:4326"


def test_a_smaller_page_size_reads_more_pages(koop: ServerProcess, stops: gpd.GeoDataFrame) -> None:
    source = ArcGisFeatureSource(url=_layer(koop, "stops"), page_size=7, format="json")
    assert len(source.read()) == 49 and source.pages_read == 7


def test_bbox_is_an_envelope_on_the_server(koop: ServerProcess, stops: gpd.GeoDataFrame) -> None:
    bbox = (121.46, 31.22, 121.48, 31.24)
    source = ArcGisFeatureSource(url=_layer(koop, "stops"))
    frame = source.read(bbox)
    expected = stops.loc[stops.intersects(shapely.box(*bbox))]
    assert 0 < len(expected) < STOPS_PAGE
    assert _points(frame) == _points(expected)
    assert source.pages_read == 1  # the server filtered: one short page, not all five


def test_where_filter_and_envelope_across_pages(koop: ServerProcess, stops: gpd.GeoDataFrame) -> None:
    bbox = (121.3, 31.15, 121.5, 31.25)
    source = ArcGisFeatureSource(url=_layer(koop, "stops"), where="lat > 31.2", page_size=4)
    frame = source.read(bbox)
    expected = stops.loc[(stops["lat"] > 31.2) & stops.intersects(shapely.box(*bbox))]
    assert len(expected) > 8
    assert _points(frame) == _points(expected)
    assert source.pages_read >= 3


def test_where_with_text(koop: ServerProcess, stops: gpd.GeoDataFrame) -> None:
    frame = ArcGisFeatureSource(url=_layer(koop, "stops"), where="stopname = '西藏中路'", out_fields=["stopname"]).read()
    assert _points(frame) == _points(stops.loc[stops["stopname"] == "西藏中路"])
    assert list(frame.columns) == ["stopname", "geometry"]


def test_pages_by_object_ids(koop: ServerProcess, stops: gpd.GeoDataFrame) -> None:
    source = ArcGisFeatureSource(url=_layer(koop, "stops"), paging="ids", format="json", max_features=25)
    frame = source.read()
    assert len(frame) == 25 and source.pages_read == 3  # 25 ids in chunks of 10
    assert set(_points(frame)) <= set(_points(stops))


@pytest.mark.parametrize("fmt", ["geojson", "json"])
def test_polygons_keep_parts_and_holes(koop: ServerProcess, fmt: str) -> None:
    frame = ArcGisFeatureSource(url=_layer(koop, "holed"), format=fmt).read().set_index("name")
    assert frame.geometry["ring"].equals(_ring()) or shapely.MultiPolygon([_ring()]).equals(frame.geometry["ring"])
    assert frame.geometry["ring"].area == pytest.approx(_ring().area)
    assert frame.geometry["two"].equals(_two_parts())


def test_real_districts_come_back_whole(koop: ServerProcess, shared_data: Path) -> None:
    truth = gpd.read_file(shared_data / "shanghai_districts_gcj02.geojson").set_index("name")
    frame = ArcGisFeatureSource(url=_layer(koop, "districts"), format="json", out_fields=["name", "adcode"], schema={"adcode": "int"}).read().set_index("name")
    assert sorted(frame.index) == sorted(truth.index)
    for name, geom in truth.geometry.items():
        assert frame.geometry[name].symmetric_difference(geom).area < 1e-9 * geom.area
    assert frame["adcode"].dtype == "Int64"


def test_a_bad_where_is_one_line_naming_the_layer(koop: ServerProcess) -> None:
    with pytest.raises(SourceError) as info:
        ArcGisFeatureSource(url=_layer(koop, "stops"), where="bogus==").read()
    message = str(info.value)
    assert "\n" not in message and "stops/FeatureServer/0/query" in message and 'Invalid "where" parameter: bogus==' in message


def test_a_missing_layer_names_the_url(koop: ServerProcess) -> None:
    with pytest.raises(SourceError, match=r"nothere/FeatureServer/0.*ArcGIS error 404.*nothere\.json not found"):
        ArcGisFeatureSource(url=_layer(koop, "nothere")).read()


def test_registered_as_a_source_plugin() -> None:
    assert source_types().get("arcgis") is ArcGisFeatureSource


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/arcgis/rest/services/x", "ftp://h/x/FeatureServer/0"])
def test_a_url_that_is_no_layer_is_refused(url: str) -> None:
    with pytest.raises(TwinError, match="url"):
        ArcGisFeatureSource(url=url)


# -- scripted servers: what Koop cannot show ---------------------------------------------------
def _q(seen: Seen) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(seen.path).query))


_MERCATOR_LAYER = {
    "type": "Feature Layer",
    "maxRecordCount": 2,
    "supportedQueryFormats": "JSON",
    "advancedQueryCapabilities": {"supportsPagination": True},
    "objectIdField": "FID",
    "extent": {"xmin": 0, "ymin": 0, "xmax": 1, "ymax": 1, "spatialReference": {"wkid": 102100, "latestWkid": 3857}},
}


def _mercator_route(pages: list[dict[str, Any]]) -> Any:
    def route(seen: Seen) -> Reply:
        q = _q(seen)
        if not seen.path.split("?")[0].endswith("/query"):
            return Reply(body=_MERCATOR_LAYER)
        return Reply(body=pages[min(int(q["resultOffset"]) // 2, len(pages) - 1)])

    return route


def test_envelope_in_the_layers_projected_reference_and_answers_in_it() -> None:
    """The layer is web Mercator (wkid 102100): the bbox goes as metres; a server that ignores
    outSR=4326 and answers in 3857 (as its spatialReference says) is read in 3857."""
    radius = 6378137.0  # web Mercator: x = R·lon, y = R·ln tan(45° + lat/2)
    x, y = radius * math.radians(121.49), radius * math.log(math.tan(math.pi / 4 + math.radians(31.24) / 2))
    page = {"spatialReference": {"wkid": 102100, "latestWkid": 3857}, "features": [{"attributes": {"FID": 1}, "geometry": {"x": x, "y": y}}]}
    with scripted(_mercator_route([page])) as server:
        frame = ArcGisFeatureSource(url=f"{server.url}arcgis/rest/services/s/FeatureServer", layer=0).read((121.4, 31.2, 121.6, 31.3))
        query = _q(next(s for s in server.requests if "/query" in s.path))
    xmin, ymin, xmax, ymax = map(float, query["geometry"].split(","))
    assert query["inSR"] == "102100" and query["geometryType"] == "esriGeometryEnvelope" and query["outSR"] == "4326"
    assert xmin == pytest.approx(radius * math.radians(121.4), abs=0.01) and xmax == pytest.approx(radius * math.radians(121.6), abs=0.01)
    assert ymin == pytest.approx(radius * math.log(math.tan(math.pi / 4 + math.radians(31.2) / 2)), abs=0.01)
    assert ymax == pytest.approx(radius * math.log(math.tan(math.pi / 4 + math.radians(31.3) / 2)), abs=0.01)
    assert frame.geometry[0].x == pytest.approx(121.49, abs=1e-9) and frame.geometry[0].y == pytest.approx(31.24, abs=1e-9)


def test_exceeded_transfer_limit_false_ends_a_full_page() -> None:
    full = {"features": [{"attributes": {"FID": i}, "geometry": {"x": 121.5, "y": 31.2}} for i in (1, 2)], "exceededTransferLimit": False}
    with scripted(_mercator_route([full, full])) as server:
        source = ArcGisFeatureSource(url=f"{server.url}rest/services/s/MapServer/0")
        assert len(source.read()) == 2 and source.pages_read == 1


def test_a_server_that_ignores_result_offset_is_an_error_not_a_loop() -> None:
    same = {"features": [{"attributes": {"FID": i}, "geometry": {"x": 121.5, "y": 31.2}} for i in (1, 2)], "exceededTransferLimit": True}
    with scripted(_mercator_route([same])) as server, pytest.raises(SourceError, match="repeats the one before; the server ignores resultOffset"):
        ArcGisFeatureSource(url=f"{server.url}rest/services/s/FeatureServer/0").read()


def test_more_promised_but_an_empty_page_is_an_error() -> None:
    first = {"features": [{"attributes": {"FID": i}, "geometry": {"x": 121.5, "y": 31.2 + i}} for i in (1, 2)], "exceededTransferLimit": True}
    empty = {"features": [], "exceededTransferLimit": True}
    with scripted(_mercator_route([first, empty])) as server, pytest.raises(SourceError, match="exceededTransferLimit.*empty page at resultOffset=2"):
        ArcGisFeatureSource(url=f"{server.url}rest/services/s/FeatureServer/0").read()


def test_features_without_geometry_are_skipped_and_counted() -> None:
    page = {"features": [{"attributes": {"FID": 1}, "geometry": {"x": 121.5, "y": 31.2}}, {"attributes": {"FID": 2}}, {"attributes": {"FID": 3}, "geometry": {"curve": 1}}], "exceededTransferLimit": False}
    with scripted(_mercator_route([page])) as server:
        source = ArcGisFeatureSource(url=f"{server.url}rest/services/s/FeatureServer/0")
        with pytest.warns(UserWarning, match=r"skipped 2 features \(1 without geometry, 1 with a geometry type"):
            frame = source.read()
    assert frame["FID"].tolist() == [1] and source.last_skipped == {"no_geometry": 1, "bad_geometry_type": 1}


def test_token_from_the_environment_and_a_token_error(monkeypatch: pytest.MonkeyPatch) -> None:
    error = {"error": {"code": 498, "message": "Invalid token.", "details": []}}
    with scripted(lambda seen: Reply(body=error)) as server:
        source = ArcGisFeatureSource(url=f"{server.url}rest/services/s/FeatureServer/0", token_param_env="ONEMAP_ARCGIS_TOKEN")
        with pytest.raises(SourceError, match="environment variable ONEMAP_ARCGIS_TOKEN .* is not set"):
            source.read()
        monkeypatch.setenv("ONEMAP_ARCGIS_TOKEN", "s3cret")
        with pytest.raises(SourceError) as info:
            source.read()
        assert _q(server.requests[-1])["token"] == "s3cret"
    message = str(info.value)
    assert "ArcGIS error 498: Invalid token.; set token_param_env" in message and "s3cret" not in message and "token=***" in message
