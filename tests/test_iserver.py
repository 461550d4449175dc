"""The SuperMap iServer source against the documented-shape test server (tests/iserver_server.py):
bounds, SQL filter, ids, paging past the service's 20-feature default, REGIONs with holes and
several parts, string-typed values typed by the dataset's fields, the two-step result resource."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from iserver_server import Dataset, IServer, iserver
from twin_layers.iserver import IServerFeatureSource, iserver_geometry

from twin.errors import SourceError, TwinError
from twin.plugins import source_types

HOLED = shapely.Polygon([(121.40, 31.10), (121.50, 31.10), (121.50, 31.20), (121.40, 31.20)], [[(121.43, 31.13), (121.47, 31.13), (121.47, 31.17), (121.43, 31.17)]])
TWO_PARTS = shapely.MultiPolygon([HOLED, shapely.box(121.8, 31.0, 121.9, 31.1)])


@pytest.fixture(scope="module")
def stops(shared_data: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(shared_data / "bund_busstops_71.geojson")


@pytest.fixture(scope="module")
def server(stops: gpd.GeoDataFrame, shared_data: Path) -> Iterator[IServer]:
    districts = json.loads((shared_data / "shanghai_districts_gcj02.geojson").read_text(encoding="utf-8"))["features"]
    line = gpd.read_file(shared_data / "bund_busline_71.geojson")
    datasets = {
        "bus:stops": Dataset({"stopname": "WTEXT", "lat": "DOUBLE", "lon": "DOUBLE"}, stops.drop(columns="geometry").to_dict("records"), list(stops.geometry)),
        "shanghai:districts": Dataset({"name": "WTEXT", "adcode": "INT32"}, [f["properties"] for f in districts], [shapely.geometry.shape(f["geometry"]) for f in districts]),
        "made:regions": Dataset({"name": "TEXT", "open": "BOOLEAN"}, [{"name": "holed", "open": "true"}, {"name": "two", "open": "false"}], [HOLED, TWO_PARTS]),
        "bus:line": Dataset({}, [{}] * len(line), list(line.geometry)),
    }
    with iserver(datasets) as running:
        yield running


def _points(frame: gpd.GeoDataFrame) -> list[tuple[float, float, str]]:
    return sorted((round(g.x, 9), round(g.y, 9), str(n)) for g, n in zip(frame.geometry, frame["stopname"]))


def test_pages_past_the_default_twenty(server: IServer, stops: gpd.GeoDataFrame) -> None:
    source = IServerFeatureSource(url=server.url, dataset="bus:stops", page_size=20)
    frame = source.read()
    assert len(frame) == 49 and source.pages_read == 3
    assert _points(frame) == _points(stops)
    assert [p["query"]["toIndex"] for p in server.posts[-3:]] == ["19", "39", "59"]


def test_bounds_go_to_the_server(server: IServer, stops: gpd.GeoDataFrame) -> None:
    bbox = (121.46, 31.22, 121.48, 31.24)
    frame = IServerFeatureSource(url=server.url, dataset="bus:stops").read(bbox)
    assert _points(frame) == _points(stops.loc[stops.intersects(shapely.box(*bbox))])
    body = server.posts[-1]["body"]
    assert body["getFeatureMode"] == "BOUNDS" and body["bounds"] == {"leftBottom": {"x": 121.46, "y": 31.22}, "rightTop": {"x": 121.48, "y": 31.24}}


def test_sql_filter_alone_and_with_bounds(server: IServer, stops: gpd.GeoDataFrame) -> None:
    sql = IServerFeatureSource(url=server.url, dataset="bus:stops", attribute_filter="stopname = '西藏中路'").read()
    assert _points(sql) == _points(stops.loc[stops["stopname"] == "西藏中路"])
    bbox = (121.3, 31.15, 121.5, 31.25)
    both = IServerFeatureSource(url=server.url, dataset="bus:stops", attribute_filter="lat > 31.2", page_size=5).read(bbox)
    assert _points(both) == _points(stops.loc[(stops["lat"] > 31.2) & stops.intersects(shapely.box(*bbox))])
    assert server.posts[-1]["body"]["getFeatureMode"] == "BOUNDS_ATTRIBUTEFILTER"


def test_string_values_typed_by_the_dataset_fields(server: IServer, stops: gpd.GeoDataFrame) -> None:
    frame = IServerFeatureSource(url=server.url, dataset="bus:stops", ids=[1, 2, 3]).read()
    assert frame["SMID"].tolist() == [1, 2, 3] and frame["SMID"].dtype == "Int64"
    assert frame["lat"].dtype == "float64" and frame["lat"].tolist() == stops["lat"].iloc[:3].tolist()
    regions = IServerFeatureSource(url=server.url, dataset="made:regions", schema={"name": "str"}).read()
    assert regions["open"].tolist() == [True, False]


def test_regions_with_holes_and_parts(server: IServer) -> None:
    frame = IServerFeatureSource(url=server.url, dataset="made:regions").read().set_index("name")
    assert frame.geometry["holed"].equals(HOLED) and len(frame.geometry["holed"].interiors) == 1
    assert frame.geometry["two"].equals(TWO_PARTS)


def test_real_districts_come_back_whole(server: IServer, shared_data: Path) -> None:
    truth = gpd.read_file(shared_data / "shanghai_districts_gcj02.geojson").set_index("name")
    frame = IServerFeatureSource(url=server.url, dataset="shanghai:districts", page_size=7).read().set_index("name")
    assert sorted(frame.index) == sorted(truth.index) and frame["adcode"].dtype == "Int64"
    for name, geom in truth.geometry.items():
        assert frame.geometry[name].equals(geom)


def test_lines_with_parts(server: IServer, shared_data: Path) -> None:
    truth = gpd.read_file(shared_data / "bund_busline_71.geojson")
    frame = IServerFeatureSource(url=server.url, dataset="bus:line").read()
    assert all(a.equals(shapely.force_2d(b)) for a, b in zip(frame.geometry, truth.geometry)) and len(frame) == len(truth)


def test_two_step_result_resource(server: IServer, stops: gpd.GeoDataFrame) -> None:
    source = IServerFeatureSource(url=server.url, dataset="bus:stops", return_content=False, page_size=20)
    assert _points(source.read()) == _points(stops) and source.pages_read == 3


def test_region_without_part_topo_by_containment() -> None:
    """Servers before 9D send no partTopo: an island, its hole, an island in the hole, and a second island."""
    rings = [[(0, 0), (10, 0), (10, 10), (0, 10)], [(2, 2), (8, 2), (8, 8), (2, 8)], [(4, 4), (6, 4), (6, 6), (4, 6)], [(20, 0), (22, 0), (22, 2)]]
    geometry = {"type": "REGION", "parts": [len(r) for r in rings], "points": [{"x": x, "y": y} for r in rings for x, y in r]}
    got = iserver_geometry(geometry)
    want = shapely.MultiPolygon([shapely.Polygon(rings[0], [rings[1]]), shapely.Polygon(rings[2]), shapely.Polygon(rings[3])])
    assert got.symmetric_difference(want).area == pytest.approx(0)


def test_unknown_dataset_is_one_line(server: IServer) -> None:
    with pytest.raises(SourceError) as info:
        IServerFeatureSource(url=server.url, dataset="World1:Countries").read()
    assert "\n" not in str(info.value) and "World1:Countries" in str(info.value) and "HTTP 404" in str(info.value)


def test_bad_sql_names_the_service(server: IServer) -> None:
    with pytest.raises(SourceError, match=r"iserver source 'bus:stops'.*featureResults\.json.*HTTP 400.*nosuch"):
        IServerFeatureSource(url=server.url, dataset="bus:stops", attribute_filter="nosuch = 1").read()


def test_bad_geometry_is_skipped_and_counted(server: IServer) -> None:
    broken = {"type": "REGION", "parts": [5], "points": [{"x": 121.5, "y": 31.2}]}  # parts promise 5 points, 1 came
    text = {"type": "TEXT", "parts": [1], "points": [{"x": 121.5, "y": 31.2}]}
    server.datasets["bad:mixed"] = Dataset({}, [{}, {}, {}], [shapely.Point(121.5, 31.2), broken, text])
    source = IServerFeatureSource(url=server.url, dataset="bad:mixed")
    with pytest.warns(UserWarning, match=r"iserver source 'bad:mixed'.*skipped 2 features"):
        frame = source.read()
    assert frame["SMID"].tolist() == [1] and source.last_skipped == {"bad_geometry_type": 2}


@pytest.mark.parametrize(("params", "key"), [({"dataset": "nodataset"}, "dataset"), ({"dataset": "a:b", "url": "http://h/iserver/services/x"}, "url")])
def test_bad_parameters_are_refused(params: dict[str, str], key: str) -> None:
    with pytest.raises(TwinError, match=key):
        IServerFeatureSource(**{"url": "http://127.0.0.1:9/iserver/services/d/rest/data", **params})


def test_registered_as_a_source_plugin() -> None:
    assert source_types().get("iserver") is IServerFeatureSource
