"""Tile sources (XYZ, WMTS KVP/REST), the disk cache and the base-map layer, against a local tile server.

The server (127.0.0.1, a thread per test) draws each tile in a colour derived from its z/x/y and
writes z/x/y (and a content version) into its first pixels, answers ETag / If-None-Match with
304, counts requests, can require a bearer token or a ``tk`` key, and fails chosen tiles.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import re
import struct
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
from PIL import Image
from twin_layers.basemap import BaseMapLayer
from twin_layers.tiles import (
    WmtsTileSource,
    XyzTileSource,
    lonlat_to_tile,
    tile_to_lonlat,
)

import twin
from twin.errors import SourceError, TwinWarning
from twin.geo.chinese import gcj02_to_wgs84, wgs84_to_gcj02
from twin.params import ParamError
from twin.plugins import layer_types, source_types

TOKEN = "s3cr3t-Tile-Token-4711"
BUND = (121.4900, 31.2400)


# -- the tile server -----------------------------------------------------------------------


def tile_color(z: int, x: int, y: int) -> tuple[int, int, int]:
    """Neighbouring tiles differ by at least 45 in red (columns) or green (rows)."""
    return (30 + (x % 5) * 50, 30 + (y % 5) * 50, 60 + (z % 8) * 25)


@functools.lru_cache(maxsize=512)
def tile_png(z: int, x: int, y: int, version: int = 1) -> bytes:
    pixels = np.empty((256, 256, 3), dtype=np.uint8)
    pixels[:] = tile_color(z, x, y)
    code = np.frombuffer(struct.pack(">BIIB", z, x, y, version) + b"\0\0", dtype=np.uint8).reshape(4, 3)
    pixels[0, :4] = code
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def decode(tile: np.ndarray) -> tuple[int, int, int, int]:
    """(z, x, y, version) written into a tile's first four pixels."""
    z, x, y, version = struct.unpack(">BIIB", tile[0, :4, :3].tobytes()[:10])
    return z, x, y, version


class TileServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail: dict[tuple[int, int, int], int | str] = {}
        self.version = 1
        self.require_token: str | None = None
        self.require_key: str | None = None
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def count(self, **match: Any) -> int:
        with self._lock:
            return sum(all(r.get(k) == v for k, v in match.items()) for r in self.requests)

    def _route(self, path: str, query: dict[str, str]) -> dict[str, Any] | None:
        if m := re.fullmatch(r"/xyz/(\w+)/(\d+)/(\d+)/(\d+)\.png", path):
            return {"kind": "xyz", "s": m.group(1), "z": int(m.group(2)), "x": int(m.group(3)), "y": int(m.group(4))}
        if m := re.fullmatch(r"/wmts/rest/roads/(\w+)/(\w+)/(\d+)/(\d+)/(\d+)\.png", path):
            return {"kind": "rest", "style": m.group(1), "set": m.group(2), "z": int(m.group(3)), "y": int(m.group(4)), "x": int(m.group(5))}
        if path == "/wmts":
            expected = {"SERVICE": "WMTS", "REQUEST": "GetTile", "VERSION": "1.0.0", "LAYER": "roads", "FORMAT": "image/png"}
            if any(query.get(k) != v for k, v in expected.items()) or not {"STYLE", "TILEMATRIXSET"} <= set(query):
                return None
            matrix = query.get("TILEMATRIX", "").rsplit(":", 1)[-1]
            return {"kind": "kvp", "matrix": query.get("TILEMATRIX"), "z": int(matrix), "y": int(query["TILEROW"]), "x": int(query["TILECOL"])}
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = dict(parse_qsl(parts.query))
        route = self._route(parts.path, query)
        record: dict[str, Any] = {"path": handler.path, "query": query, "headers": dict(handler.headers), **(route or {})}
        status, body, headers = self._answer(handler, route, query)
        record["status"] = status
        with self._lock:
            self.requests.append(record)
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _answer(self, handler: BaseHTTPRequestHandler, route: dict[str, Any] | None, query: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        if self.require_token and handler.headers.get("Authorization") != f"Bearer {self.require_token}":
            return 401, b"no token", {}
        if self.require_key and query.get("tk") != self.require_key:
            return 403, b"bad key", {}
        if route is None:
            return 400, b"bad request", {}
        key = (route["z"], route["x"], route["y"])
        failure = self.fail.get(key)
        if failure == "garbage":
            return 200, b"<html>not a tile</html>", {"Content-Type": "text/html"}
        if isinstance(failure, int):
            return failure, b"failed on purpose", {}
        etag = f'"t{key[0]}-{key[1]}-{key[2]}-v{self.version}"'
        if handler.headers.get("If-None-Match") == etag:
            return 304, b"", {"ETag": etag}
        return 200, tile_png(*key, self.version), {"Content-Type": "image/png", "ETag": etag}


@pytest.fixture()
def server() -> Iterator[TileServer]:
    srv = TileServer()
    try:
        yield srv
    finally:
        srv.stop()


def xyz(server: TileServer, folder: Path, **params: Any) -> XyzTileSource:
    defaults: dict[str, Any] = {"subdomains": ["a", "b", "c"], "cache_dir": str(folder), "retries": 0, "backoff": 0.0}
    return XyzTileSource(url=server.url + "/xyz/{s}/{z}/{x}/{y}.png", **{**defaults, **params})


def bbox_around(lon: float, lat: float, metres: float) -> tuple[float, float, float, float]:
    dlat = metres / 111_320.0
    dlon = dlat / math.cos(math.radians(lat))
    return (lon - dlon, lat - dlat, lon + dlon, lat + dlat)


# -- sources -------------------------------------------------------------------------------


def test_plugins_are_registered() -> None:
    assert source_types().get("xyz") is XyzTileSource
    assert source_types().get("wmts") is WmtsTileSource
    assert layer_types().get("basemap") is BaseMapLayer


def test_xyz_url_templating_and_subdomains(server: TileServer, tmp_path: Path) -> None:
    src = xyz(server, tmp_path)
    urls = [src.tile_url(15, x, 13390) for x in range(27440, 27443)]
    assert [u.split("/xyz/")[1] for u in urls] == [f"{'abc'[(x + 13390) % 3]}/15/{x}/13390.png" for x in range(27440, 27443)]
    tms = XyzTileSource(url="https://t.example.com/{z}/{x}/{-y}.png")
    assert tms.tile_url(3, 1, 2) == "https://t.example.com/3/1/5.png"
    for x in range(27440, 27443):
        tile = src.fetch_tile(15, x, 13390)
        assert tile.shape == (256, 256, 4) and tile.dtype == np.uint8
        assert decode(tile)[:3] == (15, x, 13390)
        assert tuple(tile[128, 128, :3]) == tile_color(15, x, 13390)
    assert sorted(r["s"] for r in server.requests) == sorted("abc"[(x + 13390) % 3] for x in range(27440, 27443))
    for bad, words in [
        ({"url": "https://t.example.com/{z}/{x}.png"}, "{y}"),
        ({"url": "https://t.example.com/{z}/{x}/{y}.png?k={apikey}"}, "url_key_env"),
        ({"url": "https://{s}.example.com/{z}/{x}/{y}.png"}, "subdomains"),
        ({"url": "https://t.example.com/{z}/{x}/{y}.png", "offset_crs": "EPSG:3857"}, "offset_crs"),
    ]:
        with pytest.raises(ParamError, match=re.escape(words)):
            XyzTileSource(**bad)
    assert XyzTileSource(url="https://t.example.com/{z}/{x}/{y}.png", offset_crs="gcj-02").params.offset_crs == "GCJ02"


def test_wmts_kvp_and_rest_map_to_the_same_tiles_as_xyz(server: TileServer, tmp_path: Path) -> None:
    common: dict[str, Any] = {"cache_dir": str(tmp_path), "retries": 0, "max_tiles": 9}
    kvp = WmtsTileSource(url=server.url + "/wmts", layer="roads", style="default", tile_matrix_set="EPSG:3857", tile_matrix="EPSG:3857:{z}", **common)
    rest = WmtsTileSource(
        url=server.url + "/wmts/rest/roads/{Style}/{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}.png",
        layer="roads", tile_matrix_set="GoogleMapsCompatible", **common,
    )
    plain = xyz(server, tmp_path, max_tiles=9)
    bbox = bbox_around(*BUND, 1200)
    mosaics = [src.mosaic(bbox) for src in (plain, kvp, rest)]
    assert len({m.zoom for m in mosaics}) == 1 and len({m.tiles for m in mosaics}) == 1
    for m in mosaics[1:]:
        assert np.array_equal(m.image, mosaics[0].image)
    z, (x0, y0, x1, y1) = mosaics[0].zoom, mosaics[0].tiles
    wanted = {(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)}
    kvp_requests = [r for r in server.requests if r.get("kind") == "kvp"]
    assert {(r["z"], r["x"], r["y"]) for r in kvp_requests} == wanted
    one = kvp_requests[0]["query"]
    assert one["TILEMATRIX"] == f"EPSG:3857:{z}" and one["TILEMATRIXSET"] == "EPSG:3857" and one["STYLE"] == "default"
    assert {int(r["query"]["TILECOL"]) for r in kvp_requests} == set(range(x0, x1 + 1))
    assert {int(r["query"]["TILEROW"]) for r in kvp_requests} == set(range(y0, y1 + 1))
    rest_requests = [r for r in server.requests if r.get("kind") == "rest"]
    assert {(r["z"], r["x"], r["y"]) for r in rest_requests} == wanted
    assert rest_requests[0]["set"] == "GoogleMapsCompatible" and rest_requests[0]["style"] == "default"
    assert server.count(status=400) == 0
    # other tile matrix sets are refused clearly
    for bad in ({"tile_matrix_set": "WorldCRS84Quad"}, {"tile_matrix_set": "c"}, {"crs": "EPSG:4490"}):
        with pytest.raises(ParamError, match="GoogleMapsCompatible"):
            WmtsTileSource(url=server.url + "/wmts", layer="roads", **bad)
    with pytest.raises(ParamError, match="TileRow"):
        WmtsTileSource(url=server.url + "/rest/{TileMatrix}/{TileCol}.png", layer="roads")


def test_mosaic_covers_the_bbox_at_the_chosen_zoom(server: TileServer, tmp_path: Path) -> None:
    src = xyz(server, tmp_path, max_tiles=16, max_zoom=18)
    bbox = bbox_around(*BUND, 1500)
    mosaic = src.mosaic(bbox)
    image, bounds = mosaic  # unpacks like a tuple
    z = mosaic.zoom
    assert src.tile_count(bbox, z) <= 16 < src.tile_count(bbox, z + 1)
    # independent tile arithmetic: the corners of the bbox fall in the first / last tiles
    n = 2**z
    x0 = int((bbox[0] + 180) / 360 * n)
    y0 = int((1 - math.asinh(math.tan(math.radians(bbox[3]))) / math.pi) / 2 * n)
    x1 = int((bbox[2] + 180) / 360 * n)
    y1 = int((1 - math.asinh(math.tan(math.radians(bbox[1]))) / math.pi) / 2 * n)
    assert mosaic.tiles == (x0, y0, x1, y1)
    assert bounds[0] <= bbox[0] and bounds[1] <= bbox[1] and bounds[2] >= bbox[2] and bounds[3] >= bbox[3]
    assert image.shape == ((y1 - y0 + 1) * 256, (x1 - x0 + 1) * 256, 4)
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            block = image[(y - y0) * 256 : (y - y0 + 1) * 256, (x - x0) * 256 : (x - x0 + 1) * 256]
            assert decode(block)[:3] == (z, x, y)
            assert (block[..., 3] == 255).all()
    col, row = mosaic.pixel([bbox[0], bbox[2]], [bbox[3], bbox[1]])
    assert (0 <= col).all() and (col <= image.shape[1]).all() and (0 <= row).all() and (row <= image.shape[0]).all()
    assert mosaic.missing == 0 and mosaic.total == len(server.requests)
    with pytest.raises(SourceError, match="max_tiles"):
        src.mosaic(bbox, zoom=18)
    footprints = src.read(bbox)
    assert len(footprints) == mosaic.total and set(footprints.z) == {z}
    assert footprints.total_bounds[0] <= bbox[0] and footprints.total_bounds[3] >= bbox[3]


def test_disk_cache_avoids_requests_and_revalidates_after_max_age(server: TileServer, tmp_path: Path) -> None:
    tile = (16, 54882, 26774)
    first = xyz(server, tmp_path).fetch_tile(*tile)
    assert server.count(status=200) == 1
    path = xyz(server, tmp_path).cache_path(*tile)
    assert path is not None and path.is_file() and path.is_relative_to(tmp_path)
    assert not list(path.parent.glob("*.tmp"))  # written atomically, nothing left behind
    again = xyz(server, tmp_path).fetch_tile(*tile)  # a new source: the disk cache, not memory
    assert np.array_equal(first, again) and len(server.requests) == 1
    # past cache_max_age: a conditional GET, answered 304, keeps the cached tile
    expired = xyz(server, tmp_path, cache_max_age=0)
    assert np.array_equal(expired.fetch_tile(*tile), first)
    assert server.count(status=304) == 1
    assert server.requests[-1]["headers"].get("If-None-Match") == f'"t{tile[0]}-{tile[1]}-{tile[2]}-v1"'
    # new content on the server: the re-validation gets it and the cache is updated
    server.version = 2
    assert decode(expired.fetch_tile(*tile))[3] == 2
    assert decode(xyz(server, tmp_path).fetch_tile(*tile))[3] == 2 and server.count(status=200) == 2
    # the server fails while the tile is stale: the old copy is used, with a warning
    server.fail[tile] = 500
    west, south = tile_to_lonlat(tile[1] + 0.4, tile[2] + 0.6, 16)
    east, north = tile_to_lonlat(tile[1] + 0.6, tile[2] + 0.4, 16)
    with pytest.warns(TwinWarning, match="old cached copy"):
        mosaic = expired.mosaic((float(west), float(south), float(east), float(north)), zoom=16)
    assert mosaic.total == 1 and mosaic.stale == 1 and mosaic.missing == 0
    assert decode(mosaic.image)[3] == 2
    # cache: false never writes
    nocache = xyz(server, tmp_path / "none", cache=False)
    nocache.fetch_tile(16, 1, 1)
    assert not (tmp_path / "none").exists()


def test_failed_tiles_are_counted_not_fatal(server: TileServer, tmp_path: Path) -> None:
    src = xyz(server, tmp_path, retries=1, backoff=0.0, max_tiles=16)
    bbox = bbox_around(*BUND, 1500)
    z = src.choose_zoom(bbox)
    x0, y0, x1, y1 = src.tile_range(bbox, z)
    server.fail = {(z, x0, y0): 500, (z, x1, y1): 404, (z, x0, y1): "garbage"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mosaic = src.mosaic(bbox)
    ours = [w for w in caught if issubclass(w.category, TwinWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert f"3 of {mosaic.total} tiles" in str(ours[0].message)
    assert mosaic.missing == 3
    assert server.count(z=z, x=x0, y=y0) == 2  # 500 is retried once
    assert server.count(z=z, x=x1, y=y1) == 1  # 404 is not
    assert (mosaic.image[:256, :256, 3] == 0).all()  # blank and transparent
    assert (mosaic.image[-256:, -256:, 3] == 0).all()
    assert decode(mosaic.image[:256, 256:512])[:3] == (z, x0 + 1, y0)
    # nothing broken is cached: once the server recovers, the tiles come back
    server.fail = {}
    assert xyz(server, tmp_path, max_tiles=16).mosaic(bbox).missing == 0
    # a single tile asked for explicitly raises, naming the source
    server.fail = {(z, x0, y0): 404}
    with pytest.raises(SourceError, match="xyz tile source .*HTTP 404"):
        xyz(server, tmp_path / "other").fetch_tile(z, x0, y0)


def test_secrets_never_reach_cache_paths_or_logs(server: TileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.require_token = TOKEN
    with pytest.raises(SourceError, match="TILE_TOKEN"):
        xyz(server, tmp_path, token_env="TILE_TOKEN").mosaic(bbox_around(*BUND, 300))
    monkeypatch.setenv("TILE_TOKEN", TOKEN)
    src = xyz(server, tmp_path, token_env="TILE_TOKEN", max_tiles=4)
    bbox = bbox_around(*BUND, 300)
    z = src.choose_zoom(bbox)
    x0, y0, _, _ = src.tile_range(bbox, z)
    server.fail = {(z, x0, y0): 500}
    with pytest.warns(TwinWarning) as record:
        mosaic = src.mosaic(bbox)
    assert mosaic.missing == 1 and server.count(status=200) == mosaic.total - 1
    assert all(r["headers"].get("Authorization") == f"Bearer {TOKEN}" for r in server.requests)
    header_phase = [r.getMessage() for r in caplog.records]  # urllib3's request lines included
    assert header_phase and all(TOKEN not in text for text in header_phase)
    # a key the service wants in the query string (Tianditu's tk)
    server.require_token = None
    server.require_key = TOKEN
    monkeypatch.setenv("TIANDITU_TK", TOKEN)
    keyed = xyz(server, tmp_path, url_key_env="TIANDITU_TK", url_key_param="tk", max_tiles=4)
    with pytest.warns(TwinWarning) as keyed_record:
        assert keyed.mosaic(bbox).missing == 1
    monkeypatch.setenv("TIANDITU_TK", "another-key-value")  # a rotated key keeps the cache
    assert keyed.cache_path(z, x0 + 1, y0) == xyz(server, tmp_path, url_key_env="TIANDITU_TK", url_key_param="tk").cache_path(z, x0 + 1, y0)
    assert TOKEN not in keyed.tile_url(z, x0, y0)
    shown = [str(w.message) for w in [*record, *keyed_record]]
    assert any("1 of" in s for s in shown)
    files = list(tmp_path.rglob("*"))
    assert files and all(TOKEN not in str(f) for f in files)
    assert all(TOKEN.encode() not in f.read_bytes() for f in files if f.is_file())
    # twin's own messages never carry it (urllib3's DEBUG log shows request lines with the query: key-in-URL services only)
    logged = [r.getMessage() for r in caplog.records if not r.name.startswith("urllib3")]
    assert all(TOKEN not in text for text in [*shown, *logged, src.describe(), str(src.to_dict()), str(keyed.to_dict())])


# -- the base-map layer ----------------------------------------------------------------------


def _view(scene: twin.Scene, size: int = 500):  # type: ignore[no-untyped-def]
    from twin.render.view import SceneView

    view = SceneView(scene, size=(size, size), strict=True)
    view.sync()
    return view


def _to_pixel(view: Any, frame: Any, lon: float, lat: float, z: float) -> tuple[float, float]:
    """(column, row from the top) of a lon/lat on the rendered image."""
    point = frame.lonlat_to_local([lon], [lat], z)[0]
    renderer = view.renderer
    renderer.SetWorldPoint(float(point[0]), float(point[1]), float(point[2]), 1.0)
    renderer.WorldToDisplay()
    dx, dy, _ = renderer.GetDisplayPoint()
    height = view.window.GetSize()[1]
    return dx, height - dy


def _scene(server: TileServer, tmp_path: Path, **source: Any) -> twin.Scene:
    scene = twin.Scene(name="basemap", center=BUND, cameras={"top": {"target": BUND, "heading": 0, "pitch": 90, "range": 5600}}, camera="top")
    spec = {"type": "xyz", "url": server.url + "/xyz/{s}/{z}/{x}/{y}.png", "subdomains": ["a", "b", "c"], "cache_dir": str(tmp_path), "retries": 0, "max_tiles": 36, **source}
    scene.add(BaseMapLayer("map", source=spec, radius=2000, grid=32))
    return scene


def test_basemap_drapes_tiles_where_they_belong(server: TileServer, tmp_path: Path) -> None:
    scene = _scene(server, tmp_path)
    layer = scene["map"]
    view = _view(scene)
    image = view.image()
    assert layer.mosaic is not None and layer.mosaic.missing == 0
    z = layer.mosaic.zoom
    visual = layer.visual(scene.frame)
    assert visual.lighting is False and visual.meta["zoom"] == z
    assert visual.style.texture is not None and visual.style.texture.shape[2] == 3
    assert set(np.unique(visual.mesh.cell_data["feature_id"])) == {0} and "tcoords" in visual.mesh.point_data
    frame = scene.frame
    elevation = layer.params.elevation
    checked = 0
    for lon in np.linspace(BUND[0] - 0.012, BUND[0] + 0.012, 13):
        for lat in np.linspace(BUND[1] - 0.011, BUND[1] + 0.011, 13):
            fx, fy = lonlat_to_tile(lon, lat, z)
            col, row = _to_pixel(view, frame, lon, lat, elevation)
            # pixels per tile here, to keep 3 px away from tile edges
            c2, _ = _to_pixel(view, frame, *(float(v) for v in tile_to_lonlat(fx + 0.01, fy + 0.01, z)), elevation)
            px_per_tile = abs(c2 - col) / 0.01
            edge = min(fx % 1, 1 - fx % 1, fy % 1, 1 - fy % 1) * px_per_tile
            if edge < 3 or not (3 <= col < 497 and 3 <= row < 497) or (fy % 1 < 0.05 and fx % 1 < 0.05):
                continue
            got = image[int(row), int(col)].astype(int)
            want = np.array(tile_color(z, int(fx), int(fy)))
            assert np.abs(got - want).max() <= 12, (lon, lat, got, want)
            checked += 1
    assert checked > 80
    # tile edges on the image lie within 2 px of where the tile grid says
    _assert_edges_match(view, image, frame, elevation, z, offset=None)


def _edges(line: np.ndarray) -> list[float]:
    """Positions (sub-pixel; pixel i spans i..i+1) where the colour steps along a line of pixels.

    Interpolation and anti-aliasing spread a step over a pixel or two: consecutive changes are
    merged and the step is placed at their weighted centre.
    """
    change = np.abs(np.diff(line.astype(int), axis=0)).sum(axis=1).astype(float)
    edges: list[float] = []
    i = 0
    while i < len(change):
        if change[i] <= 6:
            i += 1
            continue
        j = i
        while j + 1 < len(change) and change[j + 1] > 6:
            j += 1
        weights = change[i : j + 1]
        if weights.sum() > 40:
            edges.append(float((np.arange(i, j + 1) * weights).sum() / weights.sum()) + 1.0)
        i = j + 1
    return edges


def _assert_edges_match(view: Any, image: np.ndarray, frame: Any, elevation: float, z: int, offset: str | None) -> None:
    """The tile edges crossing a row and a column of the image lie within 1.5 px of where the tile grid
    (in the tiles' own lon/lat: WGS84 or GCJ-02) puts them."""
    to_tiles = (lambda lo, la: wgs84_to_gcj02(lo, la)) if offset == "GCJ02" else (lambda lo, la: (np.asarray(lo), np.asarray(la)))
    from_tiles = (lambda lo, la: gcj02_to_wgs84(lo, la)) if offset == "GCJ02" else (lambda lo, la: (np.asarray(lo), np.asarray(la)))
    size = image.shape[0]
    # pick a scan row/column in the middle of a tile (in the tiles' own lon/lat), away from horizontal/vertical edges
    tlon, tlat = (float(v) for v in to_tiles(*BUND))
    fx, fy = lonlat_to_tile(tlon, tlat, z)
    mid_lon, mid_lat = (float(v) for v in tile_to_lonlat(np.floor(fx) + 0.5, np.floor(fy) + 0.5, z))
    scan_lon, scan_lat = (float(v) for v in from_tiles(mid_lon, mid_lat))
    col_c, row_c = _to_pixel(view, frame, scan_lon, scan_lat, elevation)
    row, col = round(row_c), round(col_c)
    for axis in ("x", "y"):
        line = image[row, :, :] if axis == "x" else image[:, col, :]
        found = [p for p in _edges(line) if 5 < p < size - 5]
        expected = []
        for k in range(-4, 6):
            if axis == "x":
                lon_e, lat_e = tile_to_lonlat(np.floor(fx) + k, fy, z)
                lo, la = from_tiles(float(lon_e), mid_lat)
                p = _to_pixel(view, frame, float(lo), float(la), elevation)[0]
            else:
                lon_e, lat_e = tile_to_lonlat(fx, np.floor(fy) + k, z)
                lo, la = from_tiles(mid_lon, float(lat_e))
                p = _to_pixel(view, frame, float(lo), float(la), elevation)[1]
            if 5 < p < size - 5:
                expected.append(p)
        assert len(found) == len(expected) >= 2, (axis, found, expected)
        assert np.abs(np.array(found) - np.array(expected)).max() <= 1.5, (axis, found, expected)


def test_gcj02_tiles_are_shifted_by_the_offset_near_the_bund(server: TileServer, tmp_path: Path) -> None:
    plain = _scene(server, tmp_path)
    mars = _scene(server, tmp_path, offset_crs="GCJ02")
    plain_view, mars_view = _view(plain), _view(mars)
    plain_image, mars_image = plain_view.image(), mars_view.image()
    frame = plain.frame
    z = plain["map"].mosaic.zoom
    assert mars["map"].mosaic.zoom == z
    elevation = -0.5
    _assert_edges_match(plain_view, plain_image, frame, elevation, z, offset=None)
    _assert_edges_match(mars_view, mars_image, frame, elevation, z, offset="GCJ02")
    # measure the shift of the picture itself: the tile that a GCJ-02 map shows at a WGS84 point is the one
    # covering that point's GCJ-02 coordinates, i.e. the map content moves by the inverse offset
    metres_per_px = 2 * 5600 * math.tan(math.radians(15)) / plain_image.shape[0]
    gx, gy = wgs84_to_gcj02(*BUND)
    east = (float(gx) - BUND[0]) * 111_320 * math.cos(math.radians(BUND[1]))
    north = (float(gy) - BUND[1]) * 111_320
    assert 400 < math.hypot(east, north) < 600  # the ~500 m GCJ-02 offset in central Shanghai
    # (east, north) is where GCJ-02 puts a place relative to WGS84; the map content therefore moves by minus that.
    # Find the integer pixel shift that best aligns the two renders (columns right, rows down).
    exp_dx, exp_dy = -east / metres_per_px, north / metres_per_px
    a = plain_image[100:400, 100:400].astype(int)
    best = min(
        ((float(np.abs(mars_image[100 + dy : 400 + dy, 100 + dx : 400 + dx].astype(int) - a).mean()), dx, dy)
         for dx in range(int(exp_dx) - 6, int(exp_dx) + 7) for dy in range(int(exp_dy) - 6, int(exp_dy) + 7)),
    )
    _, dx, dy = best
    assert abs(dx - exp_dx) <= 2 and abs(dy - exp_dy) <= 2, (dx, dy, exp_dx, exp_dy)
    assert 400 < math.hypot(dx, dy) * metres_per_px < 600
    for lon, lat in [(BUND[0] + 0.004, BUND[1] - 0.003), (BUND[0] - 0.005, BUND[1] + 0.002)]:
        col, row = _to_pixel(mars_view, frame, lon, lat, elevation)
        tx, ty = lonlat_to_tile(*wgs84_to_gcj02(lon, lat), z)
        if min(tx % 1, 1 - tx % 1, ty % 1, 1 - ty % 1) > 0.05:
            assert np.abs(mars_image[int(row), int(col)].astype(int) - tile_color(z, int(tx), int(ty))).max() <= 12


def test_basemap_params_extent_and_scene_files(server: TileServer, tmp_path: Path) -> None:
    layer = BaseMapLayer("m", source={"type": "xyz", "url": server.url + "/xyz/{s}/{z}/{x}/{y}.png", "subdomains": ["a"], "cache_dir": str(tmp_path)})
    assert layer.extent() is None  # follows the frame: never moves the scene centre
    assert layer.params.radius == 5000 and layer.params.elevation == -0.5 and layer.params.grid == 64
    assert layer.geometry_keys == {"zoom", "extent", "radius", "grid", "elevation"}
    extent = (121.48, 31.23, 121.50, 31.25)
    scene = twin.Scene.from_dict({
        "version": 1, "name": "s",
        "layers": [{"id": "m", "type": "basemap", "opacity": 0.8, "extent": list(extent), "grid": 8, "zoom": 15,
                    "source": {"type": "wmts", "url": server.url + "/wmts", "layer": "roads", "cache_dir": str(tmp_path), "cache_max_age": "12h"}}],
    })
    m = scene["m"]
    assert m.extent() == extent and scene.frame is not None  # the extent centres the frame
    visual = m.visual(scene.frame)
    assert visual.mesh.n_points == 64 and visual.mesh.n_cells == 2 * 7 * 7 and visual.opacity == 0.8
    assert m.mosaic is not None and m.mosaic.zoom == 15 and m.mosaic.missing == 0
    uv = np.asarray(visual.mesh.point_data["tcoords"])
    assert (uv >= 0).all() and (uv <= 1).all()
    picked = m.pick(scene.frame, 0, np.asarray(visual.mesh.points[0]))
    assert picked["attributes"]["tile"].startswith("15/") and abs(picked["lon"] - extent[0]) < 1e-6
    again = twin.Scene.from_dict(scene.to_dict())
    assert again["m"].to_dict() == m.to_dict() and again["m"].source.params.cache_max_age.total_seconds() == 43200
    requests_before = len(server.requests)
    m.update(background="black")  # style only: no new tiles
    m.visual(scene.frame)
    assert len(server.requests) == requests_before
    with pytest.raises(ParamError):
        BaseMapLayer("bad", source={"type": "xyz", "url": server.url + "/{z}/{x}/{y}"}, extent=(121.5, 31.2, 121.4, 31.3))
    import geopandas as gpd
    import shapely

    from twin.errors import LayerDataError

    wrong = BaseMapLayer("w", data=gpd.GeoDataFrame(geometry=[shapely.Point(121.49, 31.24)], crs="EPSG:4326"))
    with pytest.raises(LayerDataError, match="tile source"):
        wrong.visual(scene.frame)
