"""OGC WMTS 1.0 GetCapabilities: layers, styles, formats, ResourceURLs and tile matrix sets, and the tile matrix maths.

Tile matrix maths follow OGC 07-057r7 §6.1: a matrix's pixel size in CRS units is
``ScaleDenominator × 0.28e-3 / metres_per_unit``; for a geographic CRS (CGCS2000 EPSG:4490,
WGS84 EPSG:4326, CRS84) ``metres_per_unit = 2π·a / 360`` with the CRS's semi-major axis ``a``.
``TopLeftCorner`` is in the CRS's axis order: latitude first for ``urn:ogc:def:crs:EPSG::4490``
and ``EPSG::4326`` (Tianditu writes ``90.0 -180.0``), longitude first for CRS84 and Web
Mercator. A corner written the other way round (a latitude beyond ±90) is read as lon/lat.

Some services compute their scale denominators at 96 DPI (0.0254/96 m pixels) instead of the
standard 0.28 mm: Tianditu's ``c`` and ``w`` sets do (level 1: 2.958293554545656E8 for
0.703125°/px, where 0.28 mm gives 2.79541132E8). Read literally their tiles would land 5.8 %
off. When a set's coarsest matrix starts at the world's west edge and covers exactly the
world's width with 96-DPI pixels but not with 0.28 mm ones, the set is read at 96 DPI.

Only Web Mercator (EPSG:3857 and aliases) and geographic lon/lat sets (EPSG:4490, 4326, CRS84)
are drawn; CGCS2000 and WGS84 lon/lat are taken as the same (they differ by centimetres).
Every problem raises :class:`~twin.errors.SourceError` naming the document and what is wrong.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np
import pyproj
from numpy.typing import ArrayLike, NDArray

from twin.errors import SourceError

__all__ = ["Capabilities", "TileMatrix", "TileMatrixSet", "WmtsLayer", "parse_capabilities"]

OGC_PIXEL = 0.28e-3
"""Standardised rendering pixel size in metres (OGC 07-057r7)."""
DPI96_PIXEL = 0.0254 / 96
_MAX_LAT = 85.0511287798066
_MERCATOR_HALF = math.pi * 6378137.0
_NS = {"wmts": "http://www.opengis.net/wmts/1.0", "ows": "http://www.opengis.net/ows/1.1", "xlink": "http://www.w3.org/1999/xlink"}
_MERCATOR_CODES = {"3857", "900913", "102100", "102113", "3785"}
_GEOGRAPHIC_CODES = {"4490", "4326", "crs84"}
_CODE = re.compile(r"(?:epsg|ogc)[:/]+(?:[\d.]*[:/]+)?(\w+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class TileMatrix:
    """One zoom level of a set: tiles of ``tile_width`` × ``tile_height`` pixels, ``resolution`` CRS units per pixel,
    the grid's top-left corner (``left``, ``top``) as (easting or lon, northing or lat)."""

    identifier: str
    scale_denominator: float
    left: float
    top: float
    tile_width: int
    tile_height: int
    matrix_width: int
    matrix_height: int
    resolution: float


@dataclass(frozen=True)
class TileMatrixSet:
    """A tile matrix set in Web Mercator metres or geographic degrees; ``levels`` maps twin's zoom to a matrix.

    Zoom numbers are the matrices' identifiers when they all end in distinct integers
    (``"1"``..``"18"``, ``"EPSG:3857:12"``), else their position from the coarsest.
    """

    identifier: str
    crs: str
    geographic: bool
    levels: dict[int, TileMatrix]
    pixel_size: float = OGC_PIXEL
    """Pixel size (m) the scale denominators were read with: 0.28 mm, or 0.0254/96 for 96-DPI sets."""

    def matrix(self, zoom: int) -> TileMatrix:
        try:
            return self.levels[zoom]
        except KeyError:
            raise SourceError(f"tile matrix set {self.identifier!r} has no zoom {zoom} (it has {min(self.levels)}..{max(self.levels)})") from None

    def _to_crs(self, lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        lon_a, lat_a = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        if self.geographic:
            return lon_a, lat_a
        lat_r = np.radians(np.clip(lat_a, -_MAX_LAT, _MAX_LAT))
        return np.radians(lon_a) * 6378137.0, np.arcsinh(np.tan(lat_r)) * 6378137.0

    def _from_crs(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        if self.geographic:
            return x, y
        return np.degrees(x / 6378137.0), np.degrees(np.arctan(np.sinh(y / 6378137.0)))

    def fractional(self, lon: ArrayLike, lat: ArrayLike, zoom: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Fractional tile column and row (from the top-left corner) of WGS84 lon/lat at ``zoom``."""
        m = self.matrix(zoom)
        x, y = self._to_crs(lon, lat)
        return (x - m.left) / (m.resolution * m.tile_width), (m.top - y) / (m.resolution * m.tile_height)

    def lonlat(self, col: ArrayLike, row: ArrayLike, zoom: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """WGS84 lon/lat of a fractional tile position; integers give tile top-left corners."""
        m = self.matrix(zoom)
        x = m.left + np.asarray(col, dtype=np.float64) * m.resolution * m.tile_width
        y = m.top - np.asarray(row, dtype=np.float64) * m.resolution * m.tile_height
        return self._from_crs(x, y)


@dataclass
class WmtsLayer:
    """A layer of the capabilities document."""

    identifier: str
    title: str = ""
    styles: list[str] = field(default_factory=list)
    default_style: str | None = None
    formats: list[str] = field(default_factory=list)
    tile_matrix_sets: list[str] = field(default_factory=list)
    resource_urls: dict[str, str] = field(default_factory=dict)
    """Tile ResourceURL templates by format."""


@dataclass
class Capabilities:
    """What a WMTS GetCapabilities document offers."""

    layers: dict[str, WmtsLayer]
    tile_matrix_sets: dict[str, TileMatrixSet]
    unsupported_sets: dict[str, str]
    """Sets that cannot be drawn, with the reason (another CRS)."""
    kvp_url: str | None
    """The GetTile KVP endpoint, if the document offers one."""

    def layer(self, name: str, where: str) -> WmtsLayer:
        if name not in self.layers:
            raise SourceError(f"{where}: no layer {name!r} in the capabilities; layers: {', '.join(self.layers) or 'none'}")
        return self.layers[name]

    def tile_matrix_set(self, name: str, where: str) -> TileMatrixSet:
        if name in self.unsupported_sets:
            raise SourceError(f"{where}: tile matrix set {name!r} {self.unsupported_sets[name]}")
        if name not in self.tile_matrix_sets:
            raise SourceError(f"{where}: no tile matrix set {name!r} in the capabilities; sets: {', '.join(self.tile_matrix_sets) or 'none'}")
        return self.tile_matrix_sets[name]


def _text(element: ET.Element | None, path: str) -> str | None:
    found = None if element is None else element.find(path, _NS)
    return None if found is None or found.text is None else found.text.strip()


def _crs_kind(crs: str) -> str | None:
    """'mercator', 'geographic' or None (unsupported) for a SupportedCRS name."""
    match = _CODE.search(crs.strip())
    code = (match.group(1) if match else crs.strip()).lower()
    if code in _MERCATOR_CODES:
        return "mercator"
    if code in _GEOGRAPHIC_CODES:
        return "geographic"
    return None


def _lat_first(crs: str) -> bool:
    """Whether the CRS's first axis is latitude (EPSG:4490 / 4326 URNs and URIs; not CRS84 nor ``EPSG:4326`` shorthand in practice)."""
    if "crs84" in crs.lower():
        return False
    try:
        axis = pyproj.CRS.from_user_input(crs).axis_info
    except pyproj.exceptions.CRSError:
        return False
    return bool(axis) and axis[0].direction.lower() == "north"


def _metres_per_unit(crs: str, geographic: bool) -> float:
    if not geographic:
        return 1.0
    try:
        a = pyproj.CRS.from_user_input(crs).ellipsoid.semi_major_metre  # type: ignore[union-attr]
    except (pyproj.exceptions.CRSError, AttributeError):
        a = 6378137.0
    return 2.0 * math.pi * a / 360.0


def _number(element: ET.Element, path: str, where: str, cast: type = float) -> float:
    text = _text(element, path)
    try:
        value = cast(text)
    except (TypeError, ValueError):
        raise SourceError(f"{where}: {path.split(':')[-1]} {text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise SourceError(f"{where}: {path.split(':')[-1]} {text!r} must be a positive number")
    return value


def _matrix(element: ET.Element, crs: str, geographic: bool, where: str) -> tuple[str, float, float, float, int, int, int, int]:
    ident = _text(element, "ows:Identifier") or ""
    here = f"{where} tile matrix {ident!r}"
    scale = _number(element, "wmts:ScaleDenominator", here)
    corner = (_text(element, "wmts:TopLeftCorner") or "").split()
    try:
        a, b = (float(v) for v in corner)
    except ValueError:
        raise SourceError(f"{here}: TopLeftCorner {' '.join(corner)!r} is not two numbers") from None
    left, top = (b, a) if geographic and _lat_first(crs) else (a, b)
    if geographic and abs(top) > 90 and abs(left) <= 90:
        left, top = top, left  # written lon/lat although the CRS says lat/lon
    sizes = [int(_number(element, f"wmts:{name}", here, int)) for name in ("TileWidth", "TileHeight", "MatrixWidth", "MatrixHeight")]
    return ident, scale, left, top, sizes[0], sizes[1], sizes[2], sizes[3]


def _pixel_size(first: tuple[str, float, float, float, int, int, int, int], geographic: bool, mpu: float) -> float:
    """0.28 mm, unless the coarsest matrix spans the world exactly at 96 DPI and not at 0.28 mm (Tianditu)."""
    _, scale, left, _, tile_w, _, cols, _ = first
    world, west = (360.0, -180.0) if geographic else (2 * _MERCATOR_HALF, -_MERCATOR_HALF)
    if abs(left - west) > world * 1e-6:
        return OGC_PIXEL
    span = {pixel: cols * tile_w * scale * pixel / mpu / world for pixel in (OGC_PIXEL, DPI96_PIXEL)}
    return DPI96_PIXEL if abs(span[DPI96_PIXEL] - 1) < 1e-3 < abs(span[OGC_PIXEL] - 1) else OGC_PIXEL


def _levels(idents: list[str]) -> list[int]:
    tails = [re.search(r"(\d+)$", i) for i in idents]
    numbers = [int(t.group(1)) for t in tails if t]
    return numbers if len(numbers) == len(idents) and len(set(numbers)) == len(numbers) else list(range(len(idents)))


def _tile_matrix_set(element: ET.Element, where: str) -> tuple[str, TileMatrixSet | str]:
    ident = _text(element, "ows:Identifier") or ""
    crs = _text(element, "ows:SupportedCRS") or ""
    kind = _crs_kind(crs)
    if kind is None:
        return ident, f"uses CRS {crs!r}: only Web Mercator (EPSG:3857) and lon/lat (EPSG:4490 CGCS2000, EPSG:4326, CRS84) sets can be drawn"
    geographic = kind == "geographic"
    here = f"{where} tile matrix set {ident!r}"
    raw = [_matrix(m, crs, geographic, here) for m in element.findall("wmts:TileMatrix", _NS)]
    if not raw:
        raise SourceError(f"{here}: has no TileMatrix")
    raw.sort(key=lambda m: -m[1])
    mpu = _metres_per_unit(crs, geographic)
    pixel = _pixel_size(raw[0], geographic, mpu)
    matrices = [TileMatrix(i, s, left, top, tw, th, mw, mh, s * pixel / mpu) for i, s, left, top, tw, th, mw, mh in raw]
    levels = dict(zip(_levels([m.identifier for m in matrices]), matrices))
    return ident, TileMatrixSet(ident, crs, geographic, levels, pixel)


def _layer(element: ET.Element) -> WmtsLayer:
    layer = WmtsLayer(_text(element, "ows:Identifier") or "", _text(element, "ows:Title") or "")
    for style in element.findall("wmts:Style", _NS):
        name = _text(style, "ows:Identifier")
        if name:
            layer.styles.append(name)
            if style.get("isDefault", "").lower() == "true" or layer.default_style is None:
                layer.default_style = name
    layer.formats = [f.text.strip() for f in element.findall("wmts:Format", _NS) if f.text]
    layer.tile_matrix_sets = [t for t in (_text(link, "wmts:TileMatrixSet") for link in element.findall("wmts:TileMatrixSetLink", _NS)) if t]
    for res in element.findall("wmts:ResourceURL", _NS):
        if res.get("resourceType", "tile") == "tile" and res.get("template"):
            layer.resource_urls.setdefault(res.get("format", ""), str(res.get("template")))
    return layer


def _kvp_url(root: ET.Element) -> str | None:
    for op in root.findall("ows:OperationsMetadata/ows:Operation", _NS):
        if op.get("name") != "GetTile":
            continue
        for get in op.findall("ows:DCP/ows:HTTP/ows:Get", _NS):
            values = [v.text.strip().upper() for v in get.findall(".//ows:Value", _NS) if v.text]
            if not values or "KVP" in values:
                href = get.get(f"{{{_NS['xlink']}}}href")
                if href:
                    return href
    return None


def parse_capabilities(body: bytes, where: str) -> Capabilities:
    """Read a WMTS 1.0 GetCapabilities document; ``where`` names it (URL or file) in errors.

    Raises :class:`SourceError` for a document that is not XML, not WMTS capabilities, or has
    a tile matrix with a missing or non-positive number.
    """
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        start = body[:60].decode("utf-8", "replace").replace("\n", " ")
        raise SourceError(f"{where}: not an XML capabilities document ({exc}); it starts {start!r}") from None
    if root.tag != f"{{{_NS['wmts']}}}Capabilities":
        raise SourceError(f"{where}: not a WMTS 1.0 Capabilities document (root element {root.tag!r})")
    contents = root.find("wmts:Contents", _NS)
    if contents is None:
        raise SourceError(f"{where}: the capabilities have no Contents")
    layers = {layer.identifier: layer for layer in map(_layer, contents.findall("wmts:Layer", _NS))}
    sets: dict[str, TileMatrixSet] = {}
    unsupported: dict[str, str] = {}
    for element in contents.findall("wmts:TileMatrixSet", _NS):
        ident, result = _tile_matrix_set(element, where)
        if isinstance(result, str):
            unsupported[ident] = result
        else:
            sets[ident] = result
    return Capabilities(layers, sets, unsupported, _kvp_url(root))
