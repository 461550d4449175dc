"""OGC API – Features source against a real pygeoapi 0.21 on 127.0.0.1 (started here).

Two collections hold the same 250 generated outfalls near Shanghai (points and small
polygons): ``outfalls`` through the GeoJSON provider (which ignores ``datetime``) and
``outfalls_db`` through TinyDB with ``time_field`` (which filters server-side and offers
EPSG:4326 and EPSG:3857 besides CRS84).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shapely

from twin.errors import SourceError, TwinWarning
from twin_layers.ogcapi import OgcApiFeaturesSource

from servers import ServerProcess, feature_collection, start_pygeoapi

T0 = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
N = 250
C = "http://www.opengis.net/def/crs/"


def _features() -> list[dict[str, Any]]:
    rng = random.Random(7)
    features = []
    for i in range(N):
        lon, lat = 121.30 + rng.random() * 0.40, 31.10 + rng.random() * 0.30
        if i % 5 == 0:
            geometry = shapely.geometry.mapping(shapely.box(lon, lat, lon + 0.002, lat + 0.002))
            geometry = json.loads(json.dumps(geometry))  # tuples → lists
        else:
            geometry = {"type": "Point", "coordinates": [lon, lat]}
        features.append(
            {
                "type": "Feature",
                "id": i,
                "geometry": geometry,
                "properties": {
                    "fid": i,
                    "name": f"排口{i}",
                    "level": i % 7,
                    "depth": "n/a" if i % 50 == 0 else f"{rng.random() * 30:.2f}",
                    "open": "maybe" if i % 60 == 1 else ("true" if i % 2 else "false"),
                    "obs_time": (T0 + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            }
        )
    return features


FEATURES = _features()
GEOMS = {f["id"]: shapely.geometry.shape(f["geometry"]) for f in FEATURES}


@pytest.fixture(scope="module")
def oapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("pygeoapi")
    (work / "outfalls.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": FEATURES}, ensure_ascii=False), encoding="utf-8")
    (work / "outfalls.tinydb").write_text(json.dumps({"_default": {str(i + 1): f for i, f in enumerate(FEATURES)}}, ensure_ascii=False), encoding="utf-8")
    resources = {
        "outfalls": feature_collection("outfalls", {"name": "GeoJSON", "data": str(work / "outfalls.geojson"), "id_field": "fid"}),
        "outfalls_db": feature_collection(
            "outfalls_db",
            {
                "name": "TinyDB",
                "data": str(work / "outfalls.tinydb"),
                "id_field": "fid",
                "time_field": "obs_time",
                "crs": [C + "OGC/1.3/CRS84", C + "EPSG/0/4326", C + "EPSG/0/3857"],
            },
        ),
    }
    server = start_pygeoapi(work, resources, default_items=10, max_items=1000)
    try:
        yield server
    finally:
        server.stop()


def source(server: ServerProcess, collection: str = "outfalls", **params: Any) -> OgcApiFeaturesSource:
    return OgcApiFeaturesSource(url=server.url, collection=collection, limit=params.pop("limit", 40), timeout=10, **params)


def _same_geometry(frame: pd.DataFrame, tol: float = 1e-9) -> bool:
    expected = np.array([GEOMS[int(i)] for i in frame["fid"]], dtype=object)
    return bool(np.all(shapely.equals_exact(frame.geometry.to_numpy(), expected, tolerance=tol)))


def test_every_feature_arrives_once_across_pages(oapi: ServerProcess) -> None:
    src = source(oapi)
    frame = src.read()
    assert src.pages_read >= 3  # 250 features at 40 a page: 7 pages through `next` links
    assert len(frame) == N and sorted(frame["fid"]) == list(range(N))
    assert frame.crs.to_epsg() == 4326
    assert set(frame.geom_type) == {"Point", "Polygon"}
    assert _same_geometry(frame)
    assert frame.loc[frame["fid"] == 3, "name"].item() == "排口3"


def test_bbox_returns_only_the_features_inside(oapi: ServerProcess) -> None:
    bbox = (121.40, 31.15, 121.55, 31.30)
    box = shapely.box(*bbox)
    expected = sorted(i for i, g in GEOMS.items() if g.intersects(box))
    for collection in ("outfalls", "outfalls_db"):
        frame = source(oapi, collection).read(bbox=bbox)
        assert sorted(frame["fid"]) == expected, collection
        assert 0 < len(expected) < N


def test_datetime_is_filtered_by_the_server_with_a_time_field(oapi: ServerProcess) -> None:
    src = source(oapi, "outfalls_db", datetime="2024-06-02T08:00:00+08:00/2024-06-05T00:00:00Z")
    frame = src.read()
    # 2024-06-02T00:00Z .. 2024-06-05T00:00Z inclusive: hours 24..96
    assert sorted(frame["fid"]) == list(range(24, 97))
    assert src.pages_read == 2  # the server filtered: 73 features, not 250


def test_datetime_ignored_by_the_server_is_applied_client_side(oapi: ServerProcess) -> None:
    interval = "2024-06-02T00:00:00Z/2024-06-05T00:00:00Z"
    ignored = source(oapi, "outfalls", datetime=interval).read()
    assert len(ignored) == N  # the GeoJSON provider silently ignores datetime
    frame = source(oapi, "outfalls", datetime=interval, time_property="obs_time").read()
    assert sorted(frame["fid"]) == list(range(24, 97))
    assert isinstance(frame["obs_time"].dtype, pd.DatetimeTZDtype)
    open_ended = source(oapi, "outfalls", datetime="../2024-06-01T09:00:00Z", time_property="obs_time").read()
    assert sorted(open_ended["fid"]) == list(range(10))
    instant = source(oapi, "outfalls", datetime="2024-06-01T05:00:00Z", time_property="obs_time").read()
    assert instant["fid"].tolist() == [5]


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:3857"])
def test_crs_is_requested_where_offered_and_converted_back(oapi: ServerProcess, crs: str) -> None:
    bbox = (121.40, 31.15, 121.55, 31.30)
    frame = source(oapi, "outfalls_db", crs=crs).read(bbox=bbox)
    box = shapely.box(*bbox)
    assert sorted(frame["fid"]) == sorted(i for i, g in GEOMS.items() if g.intersects(box))
    assert _same_geometry(frame, tol=1e-7)  # EPSG:4326 came lat/lon (authority order) and was swapped back


def test_crs_not_offered_falls_back_to_crs84(oapi: ServerProcess, caplog: pytest.LogCaptureFixture) -> None:
    frame = source(oapi, "outfalls", crs="EPSG:3857").read()
    assert len(frame) == N and _same_geometry(frame)
    assert "does not offer crs EPSG:3857" in caplog.text


def test_schema_types_attributes_and_counts_what_does_not_parse(oapi: ServerProcess) -> None:
    src = source(oapi, schema={"level": "int", "depth": "float", "open": "bool", "obs_time": "datetime", "fid": "str"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = src.read()
    assert str(frame["level"].dtype) == "Int64" and frame["depth"].dtype == np.float64
    assert str(frame["open"].dtype) == "boolean" and isinstance(frame["obs_time"].dtype, pd.DatetimeTZDtype)
    assert frame["fid"].map(type).eq(str).all()
    assert int(frame["depth"].isna().sum()) == 5  # "n/a" at fid 0, 50, 100, 150, 200
    assert int(frame["open"].isna().sum()) == 5  # "maybe" at fid 1, 61, 121, 181, 241
    assert bool(frame.loc[frame["fid"] == "3", "open"].item()) is True
    assert frame["obs_time"].min() == pd.Timestamp(T0)
    messages = [str(w.message) for w in caught if issubclass(w.category, TwinWarning)]
    assert len(messages) == 1 and "depth: 5 values not float" in messages[0] and "open: 5 values not bool" in messages[0]


def test_max_features_stops_paging(oapi: ServerProcess) -> None:
    src = source(oapi, max_features=55)
    frame = src.read()
    assert len(frame) == 55 and src.pages_read == 2


def test_unknown_collection_names_the_ones_there_are(oapi: ServerProcess) -> None:
    with pytest.raises(SourceError, match=r"no collection 'drains'; collections: outfalls, outfalls_db"):
        source(oapi, "drains").read()


def test_a_scene_layer_reads_the_collection(oapi: ServerProcess) -> None:
    import twin

    scene = twin.Scene.from_dict(
        {
            "version": 1,
            "name": "outfalls",
            "layers": [{"id": "outfalls", "type": "vector", "source": {"type": "ogcapi", "url": oapi.url, "collection": "outfalls_db", "limit": 50, "schema": {"level": "int"}}, "color_by": "level"}],
        }
    )
    layer = scene.layers[0]
    assert len(layer.data()) == N
    assert scene.to_dict()["layers"][0]["source"] == {"type": "ogcapi", "url": oapi.url, "collection": "outfalls_db", "limit": 50, "schema": {"level": "int"}}
