"""WMTS GetCapabilities: layers, styles, formats and tile matrix sets, with Tianditu's CGCS2000 ``c`` set and its web-Mercator ``w`` set.

The capabilities documents are built here after the OGC WMTS 1.0 schema (07-057r7) and the shape of
Tianditu's public ``vec_c`` capabilities, as quoted in GeoDaoyu's "ArcGIS-JS-API加载天地图" (2020,
attachment "天地图-经纬度投影-切片方案"): TileMatrixSet ``c`` with SupportedCRS
``urn:ogc:def:crs:EPSG::4490``, TopLeftCorner ``90.0 -180.0`` (latitude first), TileWidth 256,
matrix 1 of 2 × 1 tiles with ScaleDenominator 2.958293554545656E8 (a 96-DPI value: 0.703125°/px),
then halving. The tile server draws each tile from the matrix maths written out independently here:
three known polygons near the Bund, so the rendered base map can be compared pixel by pixel with the
same polygons drawn as a vector layer.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import geopandas as gpd
import numpy as np
import pytest
import shapely
from PIL import Image, ImageDraw
from twin_layers.basemap import BaseMapLayer
from twin_layers.tiles import WmtsTileSource
from twin_layers.vector import VectorLayer
from twin_layers.wmts_capabilities import DPI96_PIXEL, OGC_PIXEL, parse_capabilities

import twin
from twin.errors import SourceError
from twin.params import ParamError

BUND = (121.4900, 31.2400)
R = 6378137.0
HALF = math.pi * R
TIANDITU_TOP_SCALE = 2.958293554545656e8  # Tianditu's level 1 (c and w), 96 DPI
OGC_CRS84_TOP_SCALE = 279541132.0143589  # OGC WorldCRS84Quad level 0 at 0.28 mm
COLORS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 180, 60)}
SHAPES = {
    "red": shapely.box(121.4830, 31.2350, 121.4880, 31.2390),
    "blue": shapely.Polygon([(121.4920, 31.2360), (121.4980, 31.2360), (121.4950, 31.2420)]),
    "green": shapely.box(121.4860, 31.2420, 121.4940, 31.2450),
}


# -- capabilities documents ---------------------------------------------------------------------


def _matrix(ident: str, scale: float, corner: str, cols: int, rows: int) -> str:
    return (f"<TileMatrix><ows:Identifier>{ident}</ows:Identifier><ScaleDenominator>{scale!r}</ScaleDenominator>"
            f"<TopLeftCorner>{corner}</TopLeftCorner><TileWidth>256</TileWidth><TileHeight>256</TileHeight>"
            f"<MatrixWidth>{cols}</MatrixWidth><MatrixHeight>{rows}</MatrixHeight></TileMatrix>")


def capabilities(base: str) -> str:
    """Tianditu-shaped: layer ``vec`` (format ``tiles``) on sets ``c`` (EPSG:4490) and ``w`` (EPSG:3857), plus ``q``:
    a CRS84 set written lon first with standard 0.28 mm scales, and ``utm`` in a CRS twin cannot drape."""
    c = "".join(_matrix(str(i), TIANDITU_TOP_SCALE / 2 ** (i - 1), "90.0 -180.0", 2**i, 2 ** (i - 1)) for i in range(1, 19))
    w = "".join(_matrix(str(i), TIANDITU_TOP_SCALE / 2 ** (i - 1), "-20037508.3427892 20037508.3427892", 2**i, 2**i) for i in range(1, 19))
    q = "".join(_matrix(f"CRS84:{i}", OGC_CRS84_TOP_SCALE / 2**i, "-180 90", 2 ** (i + 1), 2**i) for i in range(18))
    utm = _matrix("0", 1e6, "166021.44 9329005.18", 4, 4)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Capabilities xmlns="http://www.opengis.net/wmts/1.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink" version="1.0.0">
  <ows:OperationsMetadata>
    <ows:Operation name="GetTile"><ows:DCP><ows:HTTP><ows:Get xlink:href="{base}/vec/wmts?">
      <ows:Constraint name="GetEncoding"><ows:AllowedValues><ows:Value>KVP</ows:Value></ows:AllowedValues></ows:Constraint>
    </ows:Get></ows:HTTP></ows:DCP></ows:Operation>
  </ows:OperationsMetadata>
  <Contents>
    <Layer>
      <ows:Title>vec</ows:Title><ows:Identifier>vec</ows:Identifier>
      <Style><ows:Identifier>default</ows:Identifier></Style>
      <Format>tiles</Format>
      <TileMatrixSetLink><TileMatrixSet>c</TileMatrixSet></TileMatrixSetLink>
      <TileMatrixSetLink><TileMatrixSet>w</TileMatrixSet></TileMatrixSetLink>
      <TileMatrixSetLink><TileMatrixSet>q</TileMatrixSet></TileMatrixSetLink>
    </Layer>
    <Layer>
      <ows:Identifier>utm_only</ows:Identifier>
      <Style isDefault="true"><ows:Identifier>dark</ows:Identifier></Style>
      <Format>image/png</Format>
      <TileMatrixSetLink><TileMatrixSet>utm</TileMatrixSet></TileMatrixSetLink>
    </Layer>
    <TileMatrixSet><ows:Identifier>c</ows:Identifier><ows:SupportedCRS>urn:ogc:def:crs:EPSG::4490</ows:SupportedCRS>{c}</TileMatrixSet>
    <TileMatrixSet><ows:Identifier>w</ows:Identifier><ows:SupportedCRS>urn:ogc:def:crs:EPSG::3857</ows:SupportedCRS>{w}</TileMatrixSet>
    <TileMatrixSet><ows:Identifier>q</ows:Identifier><ows:SupportedCRS>urn:ogc:def:crs:OGC:1.3:CRS84</ows:SupportedCRS>{q}</TileMatrixSet>
    <TileMatrixSet><ows:Identifier>utm</ows:Identifier><ows:SupportedCRS>urn:ogc:def:crs:EPSG::32651</ows:SupportedCRS>{utm}</TileMatrixSet>
  </Contents>
</Capabilities>"""


# -- tiles drawn from the matrix maths, written out independently ---------------------------------


def pixel_of(tms: str, level: int, lon: float, lat: float) -> tuple[float, float]:
    """Global pixel (from the set's top-left corner) of lon/lat in matrix ``level`` of set ``tms``."""
    if tms == "c":  # 0.703125°/px at level 1 (Tianditu, 96 DPI), halving
        res = 0.703125 / 2 ** (level - 1)
        return (lon + 180.0) / res, (90.0 - lat) / res
    if tms == "q":  # OGC: 279541132.0143589 × 0.28 mm / (2π·6378137/360) = 0.703125°/px at level 0
        res = 0.703125 / 2**level
        return (lon + 180.0) / res, (90.0 - lat) / res
    res = 2 * HALF / (256 * 2**level)  # "w": 2^level tiles across the Mercator square
    x, y = R * math.radians(lon), R * math.asinh(math.tan(math.radians(lat)))
    return (x + HALF) / res, (HALF - y) / res


def draw_tile(tms: str, level: int, row: int, col: int) -> bytes:
    image = Image.new("RGB", (256, 256), (200, 200, 200))
    draw = ImageDraw.Draw(image)
    for name, shape in SHAPES.items():
        ring = [pixel_of(tms, level, x, y) for x, y in shape.exterior.coords]
        draw.polygon([(px - col * 256, py - row * 256) for px, py in ring], fill=COLORS[name])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class WmtsServer:
    """GetCapabilities at ``/vec/wmts?REQUEST=GetCapabilities`` and KVP GetTile; records every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = dict(parse_qsl(urlsplit(self.path).query))
                server.requests.append(query)
                if query.get("REQUEST") == "GetCapabilities":
                    body, kind = capabilities(server.url).encode(), "application/xml"
                elif query.get("REQUEST") == "GetTile" and query.get("LAYER") == "vec" and query.get("FORMAT") == "tiles":
                    level = int(query["TILEMATRIX"].rsplit(":", 1)[-1])
                    body, kind = draw_tile(query["TILEMATRIXSET"], level, int(query["TILEROW"]), int(query["TILECOL"])), "image/png"
                else:
                    self.send_response(400)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server() -> Iterator[WmtsServer]:
    srv = WmtsServer()
    try:
        yield srv
    finally:
        srv.stop()


# -- reading the document ------------------------------------------------------------------------


def test_capabilities_give_layers_styles_formats_and_matrix_sets(server: WmtsServer) -> None:
    caps = parse_capabilities(capabilities(server.url).encode(), "test")
    vec = caps.layers["vec"]
    assert (vec.styles, vec.default_style, vec.formats, vec.tile_matrix_sets) == (["default"], "default", ["tiles"], ["c", "w", "q"])
    assert caps.layers["utm_only"].default_style == "dark" and caps.kvp_url == f"{server.url}/vec/wmts?"
    c, w, q = caps.tile_matrix_sets["c"], caps.tile_matrix_sets["w"], caps.tile_matrix_sets["q"]
    # Tianditu's scales are 96-DPI values: read at 0.28 mm they would put every tile 5.8 % off
    assert c.geographic and c.pixel_size == DPI96_PIXEL and w.pixel_size == DPI96_PIXEL and q.pixel_size == OGC_PIXEL
    assert sorted(c.levels) == list(range(1, 19)) and sorted(q.levels) == list(range(18))
    one = c.matrix(1)
    assert (one.left, one.top) == (-180.0, 90.0)  # read latitude first, as EPSG:4490 orders its axes
    assert math.isclose(one.resolution, 0.703125, rel_tol=1e-9) and math.isclose(q.matrix(0).resolution, 0.703125, rel_tol=1e-9)
    assert math.isclose(w.matrix(1).resolution * 256 * 2, 2 * HALF, rel_tol=1e-9)
    for tms, level in [("c", 15), ("w", 16), ("q", 14)]:
        col, row = caps.tile_matrix_sets[tms].fractional(*BUND, level)
        px, py = pixel_of(tms, level, *BUND)
        assert math.isclose(float(col) * 256, px, rel_tol=1e-12) and math.isclose(float(row) * 256, py, rel_tol=1e-12)
    assert "utm" in caps.unsupported_sets and "EPSG::32651" in caps.unsupported_sets["utm"]
    for body, words in [
        (b"<html>busy</html>", "not a WMTS 1.0 Capabilities document"),
        (b"{not xml", "not an XML capabilities document"),
        (capabilities(server.url).replace("<TileWidth>256</TileWidth>", "<TileWidth>-1</TileWidth>", 1).encode(), "TileWidth '-1' must be a positive number"),
    ]:
        with pytest.raises(SourceError, match=words):
            parse_capabilities(body, "test")


def test_source_reads_the_document_and_requests_the_right_tiles(server: WmtsServer, tmp_path: Path) -> None:
    caps_url = f"{server.url}/vec/wmts?REQUEST=GetCapabilities&SERVICE=WMTS"
    src = WmtsTileSource(capabilities=caps_url, layer="vec", tile_matrix_set="c", cache_dir=str(tmp_path), retries=0)
    plan = src.plan()
    assert (plan.style, plan.format, plan.tile_matrix_set, plan.rest) == ("default", "tiles", "c", False)
    tile = src.fetch_tile(15, 27440, 5248)
    assert tile.shape == (256, 256, 4)
    got = server.requests[-1]
    assert (got["TILEMATRIXSET"], got["TILEMATRIX"], got["TILEROW"], got["TILECOL"], got["STYLE"], got["FORMAT"]) == ("c", "15", "5248", "27440", "default", "tiles")
    with pytest.raises(SourceError, match=r"no tile 15/99999/5248 \(x 0\.\.32767, y 0\.\.16383\)"):
        src.fetch_tile(15, 99999, 5248)
    # a set the layer does not link: its first drawable one; a layer whose only set cannot be draped: one clear line
    assert WmtsTileSource(capabilities=caps_url, layer="vec", cache_dir=str(tmp_path)).plan().tile_matrix_set == "c"
    with pytest.raises(SourceError, match=r"layer 'utm_only' has no tile matrix set twin can draw: 'utm' uses CRS 'urn:ogc:def:crs:EPSG::32651'"):
        WmtsTileSource(capabilities=caps_url, layer="utm_only").plan()
    with pytest.raises(SourceError, match=r"no layer 'img' in the capabilities; layers: vec, utm_only"):
        WmtsTileSource(capabilities=caps_url, layer="img").plan()
    with pytest.raises(SourceError, match="cannot read the capabilities file .*missing.xml"):
        WmtsTileSource(capabilities=str(tmp_path / "missing.xml"), layer="vec").plan()
    # without capabilities, non-Mercator sets are still refused at once, pointing at capabilities
    with pytest.raises(ParamError, match="give capabilities"):
        WmtsTileSource(url=server.url + "/vec/wmts", layer="vec", tile_matrix_set="c")
    with pytest.raises(ParamError, match="give url .* or capabilities"):
        WmtsTileSource(layer="vec")


# -- the pixel check ------------------------------------------------------------------------------


def _render(scene: twin.Scene) -> np.ndarray:
    from twin.render.view import SceneView

    view = SceneView(scene, size=(400, 400), strict=True)
    view.sync()
    return view.image()


def _scene(layer: Any) -> twin.Scene:
    scene = twin.Scene(name="wmts", center=BUND, cameras={"top": {"target": BUND, "heading": 0, "pitch": 90, "range": 3200}}, camera="top")
    scene.add(layer)
    return scene


def _mask(image: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    return np.abs(image.astype(int) - np.array(color)).max(axis=2) <= 40


@pytest.mark.parametrize("tms", ["c", "w", "q"])
def test_tiles_land_where_the_same_features_do(server: WmtsServer, tmp_path: Path, tms: str) -> None:
    caps_file = tmp_path / "caps.xml"
    caps_file.write_text(capabilities(server.url), encoding="utf-8")  # served from a local file; tiles from the server
    source = {"type": "wmts", "capabilities": str(caps_file), "layer": "vec", "tile_matrix_set": tms, "cache_dir": str(tmp_path / "tiles"), "max_tiles": 16, "retries": 0}
    basemap = _render(_scene(BaseMapLayer("map", source=source, radius=900, grid=48, background="#c8c8c8")))
    features = gpd.GeoDataFrame({"name": list(SHAPES)}, geometry=list(SHAPES.values()), crs="EPSG:4326")
    checked = 0
    for name, color in COLORS.items():
        vector = _render(_scene(VectorLayer(name, data=features[features.name == name], color="#{:02x}{:02x}{:02x}".format(*color))))
        drawn = _mask(vector, color)
        tiled = _mask(basemap, color)
        assert drawn.sum() > 300, name
        overlap = (drawn & tiled).sum() / (drawn | tiled).sum()
        centre_d = np.array(np.nonzero(drawn)).mean(axis=1)
        centre_t = np.array(np.nonzero(tiled)).mean(axis=1)
        assert overlap > 0.85 and np.abs(centre_d - centre_t).max() < 1.5, (tms, name, overlap, centre_d, centre_t)
        checked += 1
    assert checked == 3
    assert all(r.get("TILEMATRIXSET") == tms for r in server.requests if r.get("REQUEST") == "GetTile")
