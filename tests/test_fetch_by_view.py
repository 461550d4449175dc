"""Fetch by view (twin.viewfetch): the camera's ground footprint, tile cache, LRU, de-duplication, debounce,
and a camera moved across a 100,000-point collection served by a real pygeoapi 0.21 on 127.0.0.1.

The request log is pygeoapi's own (werkzeug writes one line per request into its log file).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import geopandas as gpd
import numpy as np
import pytest
import shapely
from servers import ServerProcess, feature_collection, start_pygeoapi
from twin_layers.vector import VectorLayer

import twin
from twin.errors import SourceError, TwinWarning
from twin.geo import Frame
from twin.params import ParamError
from twin.plugins import source_types
from twin.scene.camera import CameraPreset
from twin.source import BBox, Source
from twin.viewfetch import ViewFetcher, ViewSource, follow_view, tile_bbox, tiles_for_extent, view_extent, view_footprint

N = 100_000
CITY = (121.20, 31.00, 121.80, 31.40)
CENTER = (121.50, 31.20)
TESTS = Path(__file__).resolve().parent


def _points() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(16)
    lon = CITY[0] + rng.random(N) * (CITY[2] - CITY[0])
    lat = CITY[1] + rng.random(N) * (CITY[3] - CITY[1])
    return np.arange(N), lon, lat


FID, LON, LAT = _points()


def _inside(bbox: BBox) -> np.ndarray:
    west, south, east, north = bbox
    return (LON >= west) & (LON <= east) & (LAT >= south) & (LAT <= north)


@pytest.fixture(scope="module")
def pygeoapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("pygeoapi-100k")
    np.savez(work / "points.npz", fid=FID, lon=LON, lat=LAT)
    provider = {"name": "pygeoapi_points.NpzPointsProvider", "data": str(work / "points.npz"), "id_field": "fid"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(TESTS))
        server = start_pygeoapi(work, {"points": feature_collection("points", provider, bbox=CITY)}, max_items=10_000)
    try:
        yield server
    finally:
        server.stop()


def _item_requests(server: ServerProcess) -> list[BBox]:
    """The bbox of every items request in pygeoapi's log, in order."""
    out = []
    for path in re.findall(r'"GET (/collections/points/items\?\S+) HTTP', server.log()):
        query = dict(parse_qsl(urlsplit(path).query))
        west, south, east, north = (float(v) for v in query["bbox"].split(","))
        out.append((west, south, east, north))
    return out


def _camera_extent(frame: Frame, lon: float, lat: float, *, range_m: float = 2500.0, pitch: float = 90.0, heading: float = 0.0) -> BBox:
    camera = CameraPreset(target=(lon, lat), heading=heading, pitch=pitch, range=range_m, view_angle=30.0)
    position, focal, up = camera.resolve(frame)
    return view_extent(frame, view_footprint(position, focal, up, camera.view_angle, 1.0))


# -- the camera's footprint ----------------------------------------------------------------------


def test_footprint_of_a_camera_looking_down_and_a_tilted_one() -> None:
    # straight down from 1000 m, 30° vertical view angle, 16:9: a rectangle 2·1000·tan 15° high
    corners = view_footprint((0, 0, 1000), (0, 0, 0), (0, 1, 0), 30.0, 16 / 9)
    half_h = 1000 * math.tan(math.radians(15))
    assert np.allclose(np.abs(corners[:, 1]), half_h) and np.allclose(np.abs(corners[:, 0]), half_h * 16 / 9)
    # looking north, 45° down, from 1000 m: the near edge at 1000/tan(60°), the far one at 1000/tan(30°)
    pos = (0.0, -1000.0, 1000.0)
    corners = view_footprint(pos, (0, 0, 0), (0, 0, 1), 30.0, 1.0)
    ys = sorted(corners[:, 1] - pos[1])
    assert math.isclose(ys[0], 1000 / math.tan(math.radians(60)), rel_tol=1e-9)
    assert math.isclose(ys[-1], 1000 / math.tan(math.radians(30)), rel_tol=1e-9)
    # a camera looking at the horizon: its upper corners are cut at max_range
    corners = view_footprint((0, 0, 100), (0, 5000, 100), (0, 0, 1), 30.0, 1.0, max_range=3000)
    assert corners[:, 1].max() <= 3000 and corners[:, 1].max() > 2800
    for bad in [((0, 0, 5), (0, 0, 5), (0, 0, 1)), ((0, 0, 5), (0, 0, 0), (0, 0, 1))]:
        with pytest.raises(ValueError, match="focal point|parallel"):
            view_footprint(*bad, 30.0, 1.0)
    # to lon/lat, with a margin of 25 % on every side
    frame = Frame.auto(*CENTER)
    plain = _camera_extent(frame, *CENTER)
    west, south, east, north = plain
    assert west < CENTER[0] < east and south < CENTER[1] < north
    metres = (north - south) * 111_320
    assert abs(metres - 2 * half_h * 2.5) < 20  # 2·2500·tan 15° ≈ 1340 m tall
    grown = view_extent(frame, view_footprint(*CameraPreset(target=CENTER, pitch=90, range=2500).resolve(frame), 30.0, 1.0), margin=0.25)
    assert math.isclose((grown[3] - grown[1]) / (north - south), 1.5, rel_tol=1e-3)


def test_tiles_for_an_extent_fit_the_view() -> None:
    extent = (121.49, 31.23, 121.51, 31.25)
    tiles = tiles_for_extent(extent, max_tiles=16)
    z = tiles[0][0]
    assert z < 16 and len(tiles) <= 16 < len(tiles_for_extent(extent, max_tiles=10**6, min_zoom=z + 1, max_zoom=z + 1))
    union = shapely.union_all([shapely.box(*tile_bbox(t)) for t in tiles])
    assert union.contains(shapely.box(*extent))
    # known tiles: the north-west quarter of the world, and a tile of zoom 2 (north edge at 66.513°)
    assert np.allclose(tile_bbox((1, 0, 0)), (-180.0, 0.0, 0.0, 85.0511287798066))
    assert np.allclose(tile_bbox((2, 1, 1)), (-90.0, 0.0, 0.0, 66.51326044311186))
    assert tiles_for_extent(CITY, max_tiles=4, min_zoom=12) == []  # too wide: nothing rather than the whole city
    with pytest.raises(ValueError, match="west, south, east, north"):
        tiles_for_extent((1.0, 2.0, math.nan, 3.0))


# -- the fetcher, with an in-memory source ------------------------------------------------------


class CountingSource(Source):
    """Features in memory; counts reads, fails the reads of the bboxes in ``fail`` (rounded to 9 decimals)."""

    type_name: ClassVar[str] = "counting"

    def __init__(self, data: gpd.GeoDataFrame) -> None:
        super().__init__()
        self.data = data
        self.reads: list[BBox] = []
        self.fail: set[tuple[float, ...]] = set()

    def read(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        assert bbox is not None
        self.reads.append(bbox)
        if tuple(round(v, 9) for v in bbox) in self.fail:
            raise SourceError(f"counting source: HTTP 503 for bbox {bbox}", status=503)
        return self.data.loc[self.data.intersects(shapely.box(*bbox))].reset_index(drop=True)


def test_features_in_two_tiles_come_once_and_failed_tiles_are_counted_and_retried() -> None:
    tiles = tiles_for_extent((121.49, 31.23, 121.51, 31.25), max_tiles=4)
    assert len(tiles) >= 2
    (z, x, y), second = tiles[0], tiles[1]
    w, s, e, n = tile_bbox((z, x, y))
    # a road crossing the edge of two tiles, with an id; a park without an id, crossing it too
    road = shapely.LineString([(w + (e - w) * 0.5, (s + n) / 2), (e + (e - w) * 0.5, (s + n) / 2)])
    park = shapely.box(e - 0.0005, s + 0.001, e + 0.0005, s + 0.002)
    inner = shapely.Point((w + e) / 2, (s + n) / 2)
    ided = CountingSource(gpd.GeoDataFrame({"id": [7, 8]}, geometry=[road, inner], crs="EPSG:4326"))
    fetcher = ViewFetcher(ided, max_tiles=4, min_zoom=0)
    got = fetcher.fetch((121.49, 31.23, 121.51, 31.25))
    assert sorted(got["id"]) == [7, 8]
    no_ids = CountingSource(gpd.GeoDataFrame({"name": ["park"]}, geometry=[park], crs="EPSG:4326"))
    assert len(ViewFetcher(no_ids, max_tiles=4, min_zoom=0).fetch((121.49, 31.23, 121.51, 31.25))) == 1
    # one tile fails: the others are shown, one warning names the source and the tile, the tile is asked again later
    flaky = CountingSource(ided.data)
    flaky.fail = {tuple(round(v, 9) for v in tile_bbox(second))}
    fetcher = ViewFetcher(flaky, max_tiles=4, min_zoom=0)
    with pytest.warns(TwinWarning, match=rf"counting source: 1 of {len(tiles)} view tiles could not be fetched .*tile {second[0]}/{second[1]}/{second[2]} .*HTTP 503"):
        got = fetcher.fetch((121.49, 31.23, 121.51, 31.25))
    assert 8 in set(got["id"]) and fetcher.stats.failed == 1 and second not in fetcher.cached_tiles
    flaky.fail = set()
    reads_before = len(flaky.reads)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(fetcher.fetch((121.49, 31.23, 121.51, 31.25))["id"]) == [7, 8]
    assert flaky.reads[reads_before:] == [tile_bbox(second)]  # only the failed tile, once
    # an id column that is not there is one clear line
    with pytest.raises(SourceError, match="id_column 'gid' is not an attribute"):
        ViewFetcher(CountingSource(ided.data), max_tiles=4, min_zoom=0, id_column="gid").fetch((121.49, 31.23, 121.51, 31.25))


def test_debounce_waits_for_the_camera_to_rest_but_not_forever() -> None:
    fetcher = ViewFetcher(CountingSource(gpd.GeoDataFrame(geometry=[], crs="EPSG:4326")), debounce=0.3, min_move=0.1, max_wait=2.0)
    a = (121.40, 31.20, 121.42, 31.22)
    assert fetcher.due(a, now=0.0)  # the first view: at once
    fetcher.fetch(a)
    assert not fetcher.due((121.401, 31.20, 121.421, 31.22), now=0.1)  # moved 5 % of the view: nothing to fetch
    b = (121.43, 31.20, 121.45, 31.22)
    assert not fetcher.due(b, now=1.0)  # just moved
    assert not fetcher.due(b, now=1.2)
    assert fetcher.due(b, now=1.31)  # at rest for 0.3 s
    fetcher.fetch(b)
    # a camera that keeps moving gets a fetch every max_wait seconds
    fetched_at = []
    for i in range(18):  # every 0.25 s from t = 2 to 6.25, a quarter of the view each time
        t, lon = 2.0 + i * 0.25, 121.43 + (i + 1) * 0.005
        extent = (lon, 31.20, lon + 0.02, 31.22)
        if fetcher.due(extent, now=t):
            fetcher.fetch(extent)
            fetched_at.append(t)
    assert fetched_at == [4.0, 6.25]


# -- the camera moved across a city-wide collection served by pygeoapi -----------------------------


def test_camera_moved_across_100k_points_fetches_only_what_is_in_view(pygeoapi: ServerProcess) -> None:
    budget = 3000
    spec: dict[str, Any] = {
        "type": "view", "margin": 0.25, "max_tiles": 16, "min_zoom": 13, "max_cached_features": budget, "debounce": 0.3,
        "source": {"type": "ogcapi", "url": pygeoapi.url, "collection": "points", "limit": 10_000, "retries": 0},
    }
    scene = twin.Scene(name="view", center=CENTER)
    scene.add(VectorLayer("points", source=spec, color="red"))
    layer = scene["points"]
    source = layer.source
    assert isinstance(source, ViewSource) and source_types().get("view") is ViewSource
    assert len(layer.data()) == 0  # no view yet: nothing pulled
    frame = scene.frame
    before = len(_item_requests(pygeoapi))
    t = 0.0
    for step, lon in enumerate(np.arange(121.30, 121.701, 0.02)):
        extent = _camera_extent(frame, float(lon), 31.2)
        assert follow_view(layer, extent, now=t) is (step == 0)  # the first view at once; later ones once the camera rests
        assert follow_view(layer, extent, now=t + 0.35) is (step > 0)
        assert not follow_view(layer, extent, now=t + 0.5)  # same view: nothing to do
        shown = layer.data()
        view = source.view
        assert view is not None
        ids = set(shown["id"].astype(int))
        assert len(ids) == len(shown)  # each feature once
        assert set(FID[_inside(view)]) <= ids  # everything in view (with the margin) is shown
        tiles = source.fetcher.tiles(view)
        in_tiles = np.zeros(N, dtype=bool)
        for tile in tiles:
            in_tiles |= _inside(tile_bbox(tile))
        assert ids == set(FID[in_tiles])  # and nothing beyond the view's tiles
        # memory: the LRU stays within its budget, except for the tiles the view itself needs
        assert source.fetcher.cached_features <= max(budget, len(shown))
        t += 1.0
    requests = _item_requests(pygeoapi)[before:]
    stats = source.fetcher.stats
    assert len(requests) == stats.requests == len(stats.fetched_tiles) > 20
    assert len({tuple(round(v, 7) for v in r) for r in requests}) == len(requests)  # each tile asked once
    for bbox, tile in zip(sorted(requests), sorted(tile_bbox(t) for t in stats.fetched_tiles)):
        assert np.allclose(bbox, tile, atol=1e-7)
    fetched = sum(int(_inside(r).sum()) for r in requests)
    assert fetched == stats.features_fetched < N // 10  # a strip across the city: under 10 % of the collection
    assert stats.evicted > 0
    # the camera comes back to the last view: served from the cache, no request
    def rest_at(extent: BBox, t: float) -> bool:
        """The camera jumps to ``extent`` at ``t`` and rests there: not due at once, due 0.35 s later."""
        return not follow_view(layer, extent, now=t) and follow_view(layer, extent, now=t + 0.35)

    assert rest_at(_camera_extent(frame, 121.68, 31.2), t + 5)  # the view before: cached
    layer.data()
    assert len(_item_requests(pygeoapi)) - before == len(requests)
    assert rest_at(_camera_extent(frame, 121.30, 31.2), t + 10)  # the first view: evicted, fetched again
    assert len(layer.data()) > 0
    assert len(_item_requests(pygeoapi)) - before > len(requests)
    # zoomed out over the whole city: nothing is pulled, the layer says why
    again = len(_item_requests(pygeoapi))
    assert rest_at(_camera_extent(frame, *CENTER, range_m=30_000), t + 15)
    with pytest.warns(TwinWarning, match="too wide to fetch"):
        wide = layer.data()
    assert len(wide) == 0
    assert len(_item_requests(pygeoapi)) == again


def test_view_source_params_and_scene_files(pygeoapi: ServerProcess) -> None:
    spec = {"type": "view", "source": {"type": "ogcapi", "url": pygeoapi.url, "collection": "points"}, "margin": 0.5, "min_zoom": 12}
    scene = twin.Scene.from_dict({"version": 1, "name": "s", "layers": [{"id": "p", "type": "vector", "source": spec}]})
    assert scene["p"].source.to_dict() == spec
    assert twin.Scene.from_dict(scene.to_dict())["p"].source.to_dict() == spec
    for bad, words in [
        ({**spec, "min_zoom": 17}, "min_zoom 17 is above max_zoom 16"),
        ({**spec, "source": {"url": pygeoapi.url}}, "source needs a 'type'"),
        ({**spec, "source": spec}, "cannot wrap another view source"),
        ({**spec, "margin": -1}, "margin"),
    ]:
        with pytest.raises(ParamError, match=re.escape(words)):
            ViewSource(**{k: v for k, v in bad.items() if k != "type"})
    plain = VectorLayer("plain", data=gpd.GeoDataFrame(geometry=[shapely.Point(*CENTER)], crs="EPSG:4326"))
    assert follow_view(plain, (121.4, 31.1, 121.6, 31.3)) is False  # static layers are read whole, as before
