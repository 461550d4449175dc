"""WFS 2.0 source against real MapServer 8 (Debian ``mapserver-bin``) run as CGI behind a tiny
Python HTTP front on 127.0.0.1. MapServer sends every attribute as a string; ``schema`` types them.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shapely

from twin.errors import SourceError, TwinWarning
from twin_layers.wfs import WfsSource

from servers import ThreadServer, mapserv_path, start_mapserver

N = 230
pytestmark = pytest.mark.skipif(mapserv_path() is None, reason="mapserv not installed (Debian mapserver-bin; scripts/setup.sh installs it)")


def _features() -> list[dict[str, Any]]:
    rng = random.Random(11)
    out = []
    for i in range(N):
        lon, lat = 121.30 + rng.random() * 0.40, 31.10 + rng.random() * 0.30
        out.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {
                    "fid": i,
                    "name": f"泵站{i}",
                    "depth": "n/a" if i % 40 == 0 else f"{rng.random() * 30:.2f}",
                    "active": i % 3 == 0,
                    "updated": (dt.datetime(2024, 6, 1, 8) + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%S"),
                },
            }
        )
    return out


FEATURES = _features()
POINTS = {f["properties"]["fid"]: shapely.Point(f["geometry"]["coordinates"]) for f in FEATURES}

MAPFILE = """MAP
  NAME "onemap"
  EXTENT 121 31 122 32
  PROJECTION "init=epsg:4326" END
  OUTPUTFORMAT
    NAME "geojson"
    DRIVER "OGR/GEOJSON"
    {mimetype}
    FORMATOPTION "STORAGE=stream"
    FORMATOPTION "FORM=SIMPLE"
  END
  WEB
    METADATA
      "wfs_title" "one map"
      "wfs_srs" "EPSG:4326 EPSG:3857 EPSG:4490"
      "wfs_enable_request" "*"
      "wfs_getfeature_formatlist" "geojson"
      "wfs_maxfeatures" "100"
    END
  END
  LAYER
    NAME "pumps"
    TYPE POINT
    STATUS ON
    CONNECTIONTYPE OGR
    CONNECTION "{data}"
    PROJECTION "init=epsg:4326" END
    METADATA
      "wfs_title" "pumping stations"
      "gml_include_items" "all"
      "gml_featureid" "fid"
    END
  END
END
"""


def _start(work: Path, mimetype: str) -> ThreadServer:
    work.mkdir(parents=True, exist_ok=True)
    data = work / "pumps.geojson"
    data.write_text(json.dumps({"type": "FeatureCollection", "features": FEATURES}, ensure_ascii=False), encoding="utf-8")
    mapfile = work / "onemap.map"
    mapfile.write_text(MAPFILE.format(mimetype=mimetype, data=data), encoding="utf-8")
    return start_mapserver(work, mapfile)


@pytest.fixture(scope="module")
def mapserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    server = _start(tmp_path_factory.mktemp("mapserver"), 'MIMETYPE "application/json; subtype=geojson"')
    try:
        yield server
    finally:
        server.stop()


def wfs(server: ThreadServer, **params: Any) -> WfsSource:
    return WfsSource(url=server.url, type_name=params.pop("type_name", "pumps"), timeout=10, **params)


def test_capabilities_name_the_geojson_format(mapserver: ThreadServer) -> None:
    caps = wfs(mapserver).capabilities()
    assert "application/json; subtype=geojson" in caps.formats
    assert caps.type_names == ["ms:pumps"] and caps.paging and caps.count_default == 100


@pytest.mark.parametrize("count", [50, 46])
def test_paging_reads_every_feature_once(mapserver: ThreadServer, count: int) -> None:
    src = wfs(mapserver, count=count)
    frame = src.read()
    assert len(frame) == N and sorted(frame["fid"].astype(int)) == list(range(N))
    # 50: 4 full pages and a short one; 46: 5 full pages and an empty one
    assert src.pages_read == (5 if count == 50 else 6)
    expected = np.array([POINTS[int(i)] for i in frame["fid"]], dtype=object)
    assert np.all(shapely.equals_exact(frame.geometry.to_numpy(), expected, tolerance=1e-9))
    assert frame.crs.to_epsg() == 4326


def test_page_size_is_capped_by_the_servers_count_default(mapserver: ThreadServer) -> None:
    src = wfs(mapserver, count=500)
    frame = src.read()
    assert len(frame) == N and src.pages_read == 3  # 100 + 100 + 30, not one 'short' page of 100


def test_strings_are_typed_by_schema(mapserver: ThreadServer) -> None:
    raw = wfs(mapserver, count=100).read()
    assert raw["fid"].map(type).eq(str).all() and raw["active"].isin(["0", "1"]).all()  # MapServer: everything is text
    src = wfs(mapserver, count=100, schema={"fid": "int", "depth": "float", "active": "bool", "updated": "datetime"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = src.read()
    assert str(frame["fid"].dtype) == "Int64" and frame["depth"].dtype == np.float64
    assert str(frame["active"].dtype) == "boolean" and isinstance(frame["updated"].dtype, pd.DatetimeTZDtype)
    row = frame.set_index("fid").loc[3]
    assert bool(row["active"]) is True
    assert row["updated"] == pd.Timestamp("2024-06-01T11:00:00+08:00")  # naive text read in Asia/Shanghai
    assert int(frame["depth"].isna().sum()) == 6  # "n/a" at 0, 40, ..., 200
    assert any("depth: 6 values not float" in str(w.message) for w in caught if issubclass(w.category, TwinWarning))


@pytest.mark.parametrize("srs_name", ["urn:ogc:def:crs:EPSG::4326", "EPSG:3857"])
def test_bbox_in_the_requested_crs(mapserver: ThreadServer, srs_name: str) -> None:
    bbox = (121.40, 31.15, 121.55, 31.30)
    box = shapely.box(*bbox)
    frame = wfs(mapserver, srs_name=srs_name, count=100).read(bbox=bbox)
    assert sorted(frame["fid"].astype(int)) == sorted(i for i, p in POINTS.items() if box.intersects(p))
    expected = np.array([POINTS[int(i)] for i in frame["fid"]], dtype=object)
    assert np.all(shapely.equals_exact(frame.geometry.to_numpy(), expected, tolerance=1e-7))


def test_unknown_type_name_lists_the_ones_there_are(mapserver: ThreadServer) -> None:
    with pytest.raises(SourceError, match=r"no feature type 'drains'; it has: ms:pumps"):
        wfs(mapserver, type_name="drains").read()


def test_format_without_mimetype_is_found_by_its_name(tmp_path: Path) -> None:
    server = _start(tmp_path, "")
    try:
        src = wfs(server, count=100)
        assert "geojson" in src.capabilities().formats  # MapServer lists the bare OUTPUTFORMAT name
        assert len(src.read()) == N
    finally:
        server.stop()
