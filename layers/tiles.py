"""Raster tile sources for base maps: XYZ ("slippy map") templates and OGC WMTS (KVP and REST).

Both fetch 256-pixel Web Mercator tiles (the GoogleMapsCompatible grid: tile (0, 0) at the
north-west corner, rows growing southwards) through :class:`twin.httpclient.HttpClient`
(timeouts, retries, per-host concurrency, credentials from environment variables), keep them
in a disk cache, and stitch them into one image with :meth:`TileSource.mosaic`::

    source:
      type: xyz
      url: https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png
      subdomains: [a, b, c]
      max_zoom: 19
      attribution: "(c) OpenStreetMap contributors"

    source:                       # AMap (Gaode) road map: drawn in GCJ-02, so say so
      type: xyz
      url: https://webrd0{s}.is.autonavi.com/appmaptile?style=8&x={x}&y={y}&z={z}
      subdomains: ["1", "2", "3", "4"]
      offset_crs: GCJ02

    source:                       # Tianditu vector map, WMTS KVP, key in the query (tk)
      type: wmts
      url: https://t{s}.tianditu.gov.cn/vec_w/wmts
      subdomains: ["0", "1", "2", "3"]
      min_zoom: 1
      max_zoom: 18
      layer: vec
      style: default
      tile_matrix_set: w
      format: tiles
      url_key_env: TIANDITU_TK
      url_key_param: tk

**Offset lon/lat.** Chinese web maps (AMap/Gaode, Tencent) draw their tiles in GCJ-02 lon/lat
on the standard Web Mercator grid; Baidu-style services use BD-09. With ``offset_crs: GCJ02``
(or ``BD09``) every WGS84 position is converted to that system before it is looked up in the
tiles, so the draped map lines up with WGS84 data (near the Bund the raw GCJ-02 map is ~500 m
off). Baidu's own tile grid (BD-09 Mercator with its own origin) is not supported.

**Disk cache.** Tiles are kept under ``cache_dir`` (default ``$TWIN_CACHE_DIR/tiles``, else
``~/.cache/twin/tiles``) in ``<hash>/<z>/<x>/<y>.tile``, where ``<hash>`` digests the URL
template and request parameters (never a credential: those live in environment variables).
Each file is written atomically (temporary file + rename) and holds the body with its ETag /
Last-Modified. A tile older than ``cache_max_age`` is re-validated with a conditional GET
(HTTP 304 keeps the cached body); when that fails the stale tile is still used. The cache is
never pruned: delete the folder to reclaim space.

**Failures.** A tile that cannot be fetched or decoded becomes a transparent tile in the mosaic;
the mosaic counts them and raises one :class:`~twin.errors.TwinWarning` saying how many.

**read().** A tile source has no features; ``read(bbox)`` returns, without downloading, the
footprints (WGS84 polygons, columns ``z``, ``x``, ``y``) of the tiles a mosaic of ``bbox``
(default: the whole Web Mercator world) would use at the automatic zoom.

>>> src = XyzTileSource(url="https://{s}.tiles.example.com/{z}/{x}/{y}.png", subdomains=["a", "b"])
>>> src.tile_url(15, 27445, 13396)
'https://b.tiles.example.com/15/27445/13396.png'
>>> src.tile_range((121.48, 31.23, 121.50, 31.25), 15)
(27441, 13387, 27443, 13389)
>>> src.choose_zoom((121.48, 31.23, 121.50, 31.25))
16
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import math
import os
import re
import tempfile
import threading
import time
import warnings
from abc import abstractmethod
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import geopandas as gpd
import numpy as np
import requests
import shapely
from numpy.typing import ArrayLike, NDArray
from pydantic import Field, ValidationInfo, field_serializer, field_validator, model_validator
from twin_layers.wmts_capabilities import Capabilities, TileMatrixSet, parse_capabilities

from twin.alerts.rules import parse_duration
from twin.errors import SourceError, TwinWarning
from twin.geo.chinese import (
    bd09_to_wgs84,
    gcj02_to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from twin.httpclient import HttpClient, HttpParams, redact_url
from twin.paths import cache_dir
from twin.source import BBox, Source

__all__ = [
    "MAX_LAT",
    "Mosaic",
    "TileParams",
    "TileSource",
    "WmtsParams",
    "WmtsTileSource",
    "XyzParams",
    "XyzTileSource",
    "lonlat_to_tile",
    "tile_to_lonlat",
]

log = logging.getLogger(__name__)

MAX_LAT = 85.0511287798066
"""Web Mercator's latitude limit (the grid is square)."""

OffsetCRS = Literal["WGS84", "GCJ02", "BD09"]
_OFFSET_ALIASES = {"wgs84": "WGS84", "epsg:4326": "WGS84", "gcj02": "GCJ02", "gcj-02": "GCJ02", "mars": "GCJ02", "bd09": "BD09", "bd-09": "BD09", "bd09ll": "BD09"}
_WORLD: BBox = (-180.0, -MAX_LAT, 180.0, MAX_LAT)
_MISSING_RGBA = (204, 204, 204, 0)
_CACHE_MAGIC = b"TWINTILE1\n"


# -- Web Mercator tile arithmetic --------------------------------------------------------


def lonlat_to_tile(lon: ArrayLike, lat: ArrayLike, zoom: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Fractional tile column and row of lon/lat (in the tiles' own lon/lat) at ``zoom``.

    >>> [round(float(v), 3) for v in lonlat_to_tile(0.0, 0.0, 1)]
    [1.0, 1.0]
    """
    n = float(2**zoom)
    lon_a = np.asarray(lon, dtype=np.float64)
    lat_r = np.radians(np.clip(np.asarray(lat, dtype=np.float64), -MAX_LAT, MAX_LAT))
    x = (lon_a + 180.0) / 360.0 * n
    y = (1.0 - np.arcsinh(np.tan(lat_r)) / math.pi) / 2.0 * n
    return x, y


def tile_to_lonlat(x: ArrayLike, y: ArrayLike, zoom: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Lon/lat of the (fractional) tile position; integers give tile north-west corners."""
    n = float(2**zoom)
    x_a = np.asarray(x, dtype=np.float64)
    y_a = np.asarray(y, dtype=np.float64)
    lon = x_a / n * 360.0 - 180.0
    lat = np.degrees(np.arctan(np.sinh(math.pi * (1.0 - 2.0 * y_a / n))))
    return lon, lat


def _to_offset(lon: ArrayLike, lat: ArrayLike, offset: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if offset == "GCJ02":
        return wgs84_to_gcj02(lon, lat)
    if offset == "BD09":
        return wgs84_to_bd09(lon, lat)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def _from_offset(lon: ArrayLike, lat: ArrayLike, offset: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if offset == "GCJ02":
        return gcj02_to_wgs84(lon, lat)
    if offset == "BD09":
        return bd09_to_wgs84(lon, lat)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def _fractional(grid: TileMatrixSet | None, lon: ArrayLike, lat: ArrayLike, zoom: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Fractional tile column/row of the tiles' lon/lat on ``grid`` (None: Web Mercator XYZ)."""
    return lonlat_to_tile(lon, lat, zoom) if grid is None else grid.fractional(lon, lat, zoom)


def _corner(grid: TileMatrixSet | None, col: ArrayLike, row: ArrayLike, zoom: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Lon/lat of a fractional tile position on ``grid`` (None: Web Mercator XYZ)."""
    return tile_to_lonlat(col, row, zoom) if grid is None else grid.lonlat(col, row, zoom)


@dataclass
class Mosaic:
    """Tiles stitched into one image, and where that image lies.

    ``image``: (height, width, 4) uint8 RGBA, first row = north; missing tiles are transparent.
    ``bounds``: (west, south, east, north) of the image in the *tiles'* lon/lat (``offset_crs``:
    GCJ-02 lon/lat for a GCJ-02 source), i.e. the outer edges of the tile range.
    Unpacks as ``image, bounds = source.mosaic(bbox, zoom)``.
    """

    image: NDArray[np.uint8]
    bounds: tuple[float, float, float, float]
    zoom: int
    tiles: tuple[int, int, int, int]
    """(x min, y min, x max, y max) tile indices, inclusive."""
    tile_size: int
    offset_crs: str = "WGS84"
    missing: int = 0
    """Tiles that could not be fetched (transparent in ``image``)."""
    stale: int = 0
    """Tiles past ``cache_max_age`` that could not be re-validated and were used as cached."""
    grid: TileMatrixSet | None = None
    """The tile matrix set of a WMTS source read from its capabilities; None: the Web Mercator XYZ grid."""

    def __iter__(self) -> Iterator[Any]:
        return iter((self.image, self.bounds))

    @property
    def total(self) -> int:
        x0, y0, x1, y1 = self.tiles
        return (x1 - x0 + 1) * (y1 - y0 + 1)

    def pixel(self, lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Image column and row (fractional; 0, 0 = top-left corner) of WGS84 lon/lat."""
        tlon, tlat = _to_offset(lon, lat, self.offset_crs)
        fx, fy = _fractional(self.grid, tlon, tlat, self.zoom)
        return (fx - self.tiles[0]) * self.tile_size, (fy - self.tiles[1]) * self.tile_size

    def uv(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.float32]:
        """Texture coordinates (n, 2) of WGS84 lon/lat: u from the west edge, v from the south edge."""
        col, row = self.pixel(lon, lat)
        height, width = self.image.shape[:2]
        return np.column_stack([np.ravel(col) / width, 1.0 - np.ravel(row) / height]).astype(np.float32)

    def tile_at(self, lon: float, lat: float) -> tuple[int, int, int]:
        """(z, x, y) of the tile drawn at WGS84 lon/lat."""
        tlon, tlat = _to_offset(lon, lat, self.offset_crs)
        fx, fy = _fractional(self.grid, tlon, tlat, self.zoom)
        return self.zoom, int(np.floor(fx)), int(np.floor(fy))


# -- the disk cache ----------------------------------------------------------------------


@dataclass
class _CachedTile:
    body: bytes
    etag: str | None
    last_modified: str | None
    fetched: float


def default_cache_dir() -> Path:
    """``$TWIN_CACHE_DIR/tiles`` if set, else ``~/.cache/twin/tiles`` (see :func:`twin.paths.cache_dir`)."""
    return cache_dir("tiles")


class _TileCache:
    """``<root>/<sha256(identity)[:24]>/<z>/<x>/<y>.tile``: a JSON header line, then the body."""

    def __init__(self, root: Path, identity: str) -> None:
        self.dir = root / hashlib.sha256(identity.encode("utf-8")).hexdigest()[:24]

    def path(self, z: int, x: int, y: int) -> Path:
        return self.dir / str(z) / str(x) / f"{y}.tile"

    def load(self, z: int, x: int, y: int) -> _CachedTile | None:
        try:
            data = self.path(z, x, y).read_bytes()
        except OSError:
            return None
        if not data.startswith(_CACHE_MAGIC):
            return None
        header, _, body = data[len(_CACHE_MAGIC):].partition(b"\n")
        try:
            meta = json.loads(header)
            return _CachedTile(body, meta.get("etag"), meta.get("last_modified"), float(meta["fetched"]))
        except (ValueError, KeyError, TypeError):
            return None

    def store(self, z: int, x: int, y: int, tile: _CachedTile) -> None:
        path = self.path(z, x, y)
        header = json.dumps({"etag": tile.etag, "last_modified": tile.last_modified, "fetched": tile.fetched}).encode("utf-8")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{y}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(_CACHE_MAGIC + header + b"\n" + tile.body)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:  # a read-only or full disk costs a re-download, not the map
            log.warning("tile cache %s: cannot write: %s", self.dir, exc)


# -- sources -----------------------------------------------------------------------------


class TileParams(HttpParams):
    """Parameters shared by XYZ and WMTS tile sources."""

    subdomains: list[str] = Field([], description="values for {s} in the URL (chosen per tile, as Leaflet does)")
    min_zoom: int = Field(0, ge=0, le=24, description="lowest zoom level the service has")
    max_zoom: int = Field(19, ge=0, le=24, description="highest zoom level the service has")
    tile_size: int = Field(256, ge=64, le=512, description="tile width and height in pixels in the mosaic (tiles of another size are resampled)")
    offset_crs: OffsetCRS = Field("WGS84", description="lon/lat system the tiles are drawn in: WGS84, GCJ02 (AMap, Tencent) or BD09")
    max_tiles: int = Field(64, ge=1, le=256, description="most tiles in one mosaic; the automatic zoom is the highest that fits")
    cache_dir: str | None = Field(None, description="disk cache folder (default $TWIN_CACHE_DIR/tiles or ~/.cache/twin/tiles)")
    cache: bool = Field(True, description="keep tiles in the disk cache")
    cache_max_age: dt.timedelta = Field(dt.timedelta(days=7), description="re-validate cached tiles older than this (e.g. 12h, 7d)")
    url_key_env: str | None = Field(None, description="environment variable with a key the service wants in the URL query")
    url_key_param: str = Field("key", description="query parameter that carries url_key_env (e.g. tk for Tianditu)")
    attribution: str | None = Field(None, description="credit line the map's licence asks for")

    _max_age = field_validator("cache_max_age", mode="before")(classmethod(lambda cls, v: parse_duration(v)))

    @field_serializer("cache_max_age", when_used="json")
    def _dump_age(self, value: dt.timedelta) -> str:
        return f"{value.total_seconds():g}s"  # scene files read "604800s" back; ISO "P7D" they would not

    @field_validator("offset_crs", mode="before")
    @classmethod
    def _offset(cls, value: Any) -> Any:
        return _OFFSET_ALIASES.get(str(value).strip().lower(), value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _zooms(self) -> TileParams:
        if self.min_zoom > self.max_zoom:
            raise ValueError(f"min_zoom {self.min_zoom} is above max_zoom {self.max_zoom}")
        if "{s}" in (getattr(self, "url", None) or "") and not self.subdomains:
            raise ValueError("the URL has {s}: list the values in subdomains, e.g. [a, b, c]")
        return self


class TileSource(Source):
    """Base of raster tile sources: one tile (:meth:`fetch_tile`) or a stitched :meth:`mosaic`."""

    Params: ClassVar[type[TileParams]] = TileParams
    params: TileParams
    accept: ClassVar[str] = "image/png,image/jpeg,image/webp,image/*;q=0.8"
    """Accept header of tile requests."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._client: HttpClient | None = None
        self._client_lock = threading.Lock()
        self._base_dir: Path | None = None

    # -- what subclasses provide ---------------------------------------------------------
    @abstractmethod
    def tile_request(self, z: int, x: int, y: int) -> tuple[str, dict[str, str]]:
        """URL and query parameters of tile (z, x, y) (x from the west, y from the north), without credentials."""

    @abstractmethod
    def cache_identity(self) -> str:
        """Text that identifies this tile set (URL template, layer, style, ...; never a credential)."""

    def grid(self) -> TileMatrixSet | None:
        """The tile matrix set tiles are cut on; None (the default): Web Mercator XYZ, 2^z × 2^z tiles."""
        return None

    def matrix_size(self, zoom: int) -> tuple[int, int]:
        """(columns, rows) of the tile matrix at ``zoom``."""
        grid = self.grid()
        if grid is None:
            return 2**zoom, 2**zoom
        m = grid.matrix(zoom)
        return m.matrix_width, m.matrix_height

    def zoom_levels(self) -> list[int]:
        """Zooms the source can serve, finest first (``min_zoom``..``max_zoom``, and in the matrix set)."""
        grid = self.grid()
        wanted = range(self.params.max_zoom, self.params.min_zoom - 1, -1)
        return [z for z in wanted if grid is None or z in grid.levels]

    # -- helpers -------------------------------------------------------------------------
    @property
    def client(self) -> HttpClient:
        with self._client_lock:
            if self._client is None:
                self._client = HttpClient(self.params, name=self.describe())
            return self._client

    def _accept(self) -> str:
        return self.accept

    def _subdomain(self, x: int, y: int) -> str:
        subs = self.params.subdomains
        return subs[abs(x + y) % len(subs)] if subs else ""

    def tile_url(self, z: int, x: int, y: int) -> str:
        """The full URL of a tile (for display: credentials are never part of it)."""
        url, query = self.tile_request(z, x, y)
        return requests.Request("GET", url, params=query).prepare().url or url

    def describe(self) -> str:
        return f"{self.type_name} tile source {redact_url(self.params.url).replace('%7B', '{').replace('%7D', '}')}"

    def _secrets(self) -> list[str]:
        p = self.params
        names = (p.token_env, p.api_key_env, p.username_env, p.password_env, p.url_key_env)
        return [os.environ[n] for n in names if n and os.environ.get(n)]

    def _scrub(self, text: str) -> str:
        for secret in self._secrets():
            if len(secret) >= 3:
                text = text.replace(secret, "***")
        return text

    def _check_credentials(self) -> None:
        p = self.params
        for name in (p.token_env, p.api_key_env, p.username_env, p.password_env, p.url_key_env):
            if name and not os.environ.get(name):
                raise SourceError(f"{self.describe()}: environment variable {name} (a credential named in the scene) is not set")

    def _cache(self) -> _TileCache | None:
        if not self.params.cache:
            return None
        if self.params.cache_dir:
            root = Path(self.params.cache_dir).expanduser()
            if not root.is_absolute() and self._base_dir is not None:
                root = self._base_dir / root
        else:
            root = default_cache_dir()
        return _TileCache(root, f"{self.type_name}|{self.cache_identity()}")

    def bind_base_dir(self, base_dir: Path) -> None:
        """Resolve a relative ``cache_dir`` against the scene file's folder (called when a scene file is read)."""
        if self.params.cache_dir and not Path(self.params.cache_dir).expanduser().is_absolute():
            self._base_dir = Path(base_dir)

    def cache_path(self, z: int, x: int, y: int) -> Path | None:
        """Where tile (z, x, y) is (or would be) cached; None with ``cache: false``."""
        cache = self._cache()
        return None if cache is None else cache.path(z, x, y)

    # -- zoom and tile ranges --------------------------------------------------------------
    def _tile_bbox(self, bbox: BBox) -> BBox:
        """A WGS84 bbox in the tiles' lon/lat (corners and edge midpoints converted)."""
        west, south, east, north = bbox
        if not (west <= east and south <= north) or not all(math.isfinite(v) for v in bbox):
            raise SourceError(f"{self.describe()}: bbox {bbox} is not (west, south, east, north)")
        if self.params.offset_crs == "WGS84":
            return bbox
        lon = np.array([west, east, west, east, (west + east) / 2, (west + east) / 2, west, east])
        lat = np.array([south, south, north, north, south, north, (south + north) / 2, (south + north) / 2])
        tlon, tlat = _to_offset(lon, lat, self.params.offset_crs)
        return (float(tlon.min()), float(tlat.min()), float(tlon.max()), float(tlat.max()))

    def tile_range(self, bbox: BBox, zoom: int) -> tuple[int, int, int, int]:
        """(x min, y min, x max, y max), inclusive, of the tiles covering WGS84 ``bbox`` at ``zoom``."""
        west, south, east, north = self._tile_bbox(bbox)
        cols, rows = self.matrix_size(zoom)
        grid = self.grid()
        fx0, fy0 = _fractional(grid, west, north, zoom)
        fx1, fy1 = _fractional(grid, east, south, zoom)
        x0 = int(np.clip(np.floor(fx0), 0, cols - 1))
        y0 = int(np.clip(np.floor(fy0), 0, rows - 1))
        x1 = int(np.clip(max(np.ceil(fx1) - 1, x0), 0, cols - 1))
        y1 = int(np.clip(max(np.ceil(fy1) - 1, y0), 0, rows - 1))
        return x0, y0, x1, y1

    def tile_count(self, bbox: BBox, zoom: int) -> int:
        x0, y0, x1, y1 = self.tile_range(bbox, zoom)
        return (x1 - x0 + 1) * (y1 - y0 + 1)

    def choose_zoom(self, bbox: BBox, max_tiles: int | None = None) -> int:
        """The highest zoom ≤ ``max_zoom`` whose tiles for ``bbox`` number at most ``max_tiles``."""
        limit = max_tiles or self.params.max_tiles
        levels = self.zoom_levels()
        if not levels:
            raise SourceError(f"{self.describe()}: no zoom of the tile matrix set lies in min_zoom..max_zoom {self.params.min_zoom}..{self.params.max_zoom}")
        for zoom in levels:
            if self.tile_count(bbox, zoom) <= limit:
                return zoom
        raise SourceError(
            f"{self.describe()}: even at zoom {levels[-1]} the extent needs "
            f"{self.tile_count(bbox, levels[-1])} tiles, over max_tiles {limit}: shrink the extent or raise max_tiles"
        )

    # -- fetching --------------------------------------------------------------------------
    def _decode(self, body: bytes) -> NDArray[np.uint8]:
        from PIL import Image, UnidentifiedImageError

        size = self.params.tile_size
        if not body:
            return np.zeros((size, size, 4), dtype=np.uint8)  # 204 No Content: an empty tile
        try:
            with Image.open(io.BytesIO(body)) as img:
                img = img.convert("RGBA")
                if img.size != (size, size):
                    img = img.resize((size, size), Image.Resampling.BILINEAR)
                return np.asarray(img, dtype=np.uint8).copy()
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            start = body[:80].decode("utf-8", "replace").replace("\n", " ")
            raise SourceError(f"not an image ({type(exc).__name__}): {start!r}") from None

    def _download(self, z: int, x: int, y: int, cached: _CachedTile | None) -> tuple[bytes, _CachedTile]:
        """GET the tile, conditionally when a cached copy has validators; returns (body, new cache entry)."""
        url, query = self.tile_request(z, x, y)
        if self.params.url_key_env:
            query = {**query, self.params.url_key_param: os.environ.get(self.params.url_key_env, "")}
        known = (cached.etag, cached.last_modified, cached.body) if cached is not None and (cached.etag or cached.last_modified) else None
        try:
            result = self.client.get(url, query, accept=self._accept(), conditional=False, known=known)
        except SourceError as exc:
            raise SourceError(self._scrub(str(exc))) from None
        now = time.time()
        if result.not_modified and cached is not None:
            etag = result.headers.get("ETag") or cached.etag
            return cached.body, _CachedTile(cached.body, etag, cached.last_modified, now)
        return result.body, _CachedTile(result.body, result.headers.get("ETag"), result.headers.get("Last-Modified"), now)

    def _fetch(self, z: int, x: int, y: int, cache: _TileCache | None) -> tuple[NDArray[np.uint8], bool]:
        """The decoded tile and whether it is a stale cached copy used after a failure."""
        cached = cache.load(z, x, y) if cache is not None else None
        max_age = self.params.cache_max_age.total_seconds()
        if cached is not None and 0 <= time.time() - cached.fetched < max_age:
            try:
                return self._decode(cached.body), False
            except SourceError:
                cached = None  # a damaged cache file: fetch again
        try:
            body, entry = self._download(z, x, y, cached)
            image = self._decode(body)
        except SourceError as exc:
            if cached is not None:
                try:
                    image = self._decode(cached.body)
                except SourceError:
                    raise exc from None
                log.debug("%s: tile %d/%d/%d: %s; using the cached copy", self.describe(), z, x, y, exc)
                return image, True
            raise
        if cache is not None:
            cache.store(z, x, y, entry)
        return image, False

    def fetch_tile(self, z: int, x: int, y: int) -> NDArray[np.uint8]:
        """Tile (z, x, y) as a (tile_size, tile_size, 4) RGBA uint8 array (first row north).

        Served from the disk cache while younger than ``cache_max_age``; raises
        :class:`SourceError` (naming the source and the redacted URL) when it cannot be had.
        """
        if z not in self.zoom_levels():
            raise SourceError(f"{self.describe()}: no tile {z}/{x}/{y} (zoom {self.params.min_zoom}..{self.params.max_zoom})")
        cols, rows = self.matrix_size(z)
        if not (0 <= x < cols and 0 <= y < rows):
            raise SourceError(f"{self.describe()}: no tile {z}/{x}/{y} (x 0..{cols - 1}, y 0..{rows - 1})")
        self._check_credentials()
        image, _ = self._fetch(z, x, y, self._cache())
        return image

    def mosaic(self, bbox: BBox, zoom: int | None = None) -> Mosaic:
        """The tiles covering WGS84 ``bbox`` at ``zoom`` (None: :meth:`choose_zoom`), stitched.

        Tiles are fetched concurrently (a small thread pool; the HTTP client bounds requests per
        host). Tiles that fail are left transparent and counted in one :class:`TwinWarning`.
        """
        self._check_credentials()
        p = self.params
        if zoom is None:
            zoom = self.choose_zoom(bbox)
        elif zoom not in self.zoom_levels():
            raise SourceError(f"{self.describe()}: zoom {zoom} is outside the service's {p.min_zoom}..{p.max_zoom}")
        x0, y0, x1, y1 = self.tile_range(bbox, zoom)
        count = (x1 - x0 + 1) * (y1 - y0 + 1)
        if count > p.max_tiles:
            raise SourceError(
                f"{self.describe()}: zoom {zoom} needs {count} tiles for this extent, over max_tiles {p.max_tiles}: "
                "lower the zoom, shrink the extent or raise max_tiles"
            )
        size = p.tile_size
        image = np.empty(((y1 - y0 + 1) * size, (x1 - x0 + 1) * size, 4), dtype=np.uint8)
        image[:] = _MISSING_RGBA
        cache = self._cache()
        tiles = [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]
        problems: list[str] = []
        stale = 0

        def one(xy: tuple[int, int]) -> tuple[int, int, NDArray[np.uint8] | None, bool, str | None]:
            x, y = xy
            try:
                tile, was_stale = self._fetch(zoom, x, y, cache)
                return x, y, tile, was_stale, None
            except SourceError as exc:
                return x, y, None, False, f"{zoom}/{x}/{y}: {self._scrub(str(exc))}"
            except Exception as exc:  # noqa: BLE001  (never let one tile take the map down)
                return x, y, None, False, f"{zoom}/{x}/{y}: {type(exc).__name__}: {self._scrub(str(exc))}"

        hosts = max(1, len(p.subdomains))
        workers = max(1, min(16, len(tiles), p.max_concurrent * hosts))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="twin-tiles") as pool:
            for x, y, tile, was_stale, problem in pool.map(one, tiles):
                if tile is None:
                    problems.append(problem or f"{zoom}/{x}/{y}")
                    continue
                stale += was_stale
                image[(y - y0) * size : (y - y0 + 1) * size, (x - x0) * size : (x - x0 + 1) * size] = tile
        grid = self.grid()
        west, north = (float(v) for v in _corner(grid, x0, y0, zoom))
        east, south = (float(v) for v in _corner(grid, x1 + 1, y1 + 1, zoom))
        result = Mosaic(image, (west, south, east, north), zoom, (x0, y0, x1, y1), size, p.offset_crs, len(problems), stale, grid)
        if problems or stale:
            parts = []
            if problems:
                parts.append(f"{len(problems)} of {count} tiles at zoom {zoom} could not be fetched and are left blank (first: {problems[0]})")
            if stale:
                parts.append(f"{stale} tiles could not be re-validated and are shown from an old cached copy")
            warnings.warn(f"{self.describe()}: " + "; ".join(parts), TwinWarning, stacklevel=2)
        return result

    # -- Source ----------------------------------------------------------------------------
    def read(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        """Footprints of the tiles a mosaic of ``bbox`` (default: the world) would use; nothing is downloaded."""
        area = bbox or _WORLD
        zoom = self.choose_zoom(area)
        x0, y0, x1, y1 = self.tile_range(area, zoom)
        xs, ys = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
        xs, ys = xs.ravel(), ys.ravel()
        west, north = _corner(self.grid(), xs, ys, zoom)
        east, south = _corner(self.grid(), xs + 1, ys + 1, zoom)
        if self.params.offset_crs != "WGS84":
            west, north = _from_offset(west, north, self.params.offset_crs)
            east, south = _from_offset(east, south, self.params.offset_crs)
        west, east = np.clip(west, -180.0, 180.0), np.clip(east, -180.0, 180.0)  # a matrix edge computed a hair past ±180 / ±90
        south, north = np.clip(south, -90.0, 90.0), np.clip(north, -90.0, 90.0)
        geometry = shapely.box(west, south, east, north)
        return gpd.GeoDataFrame({"z": np.full(len(xs), zoom), "x": xs, "y": ys}, geometry=geometry, crs="EPSG:4326")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


# -- XYZ ---------------------------------------------------------------------------------

_XYZ_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_XYZ_KNOWN = {"z", "x", "y", "-y", "s"}


class XyzParams(TileParams):
    url: str = Field(description="tile URL template with {z}, {x}, {y} (or {-y} for TMS rows) and optional {s}")

    @field_validator("url")
    @classmethod
    def _template(cls, value: str) -> str:
        names = set(_XYZ_PLACEHOLDER.findall(value))
        unknown = names - _XYZ_KNOWN
        if unknown:
            shown = ", ".join("{" + n + "}" for n in sorted(unknown))
            raise ValueError(f"unknown placeholder {shown} in the URL: use {{z}}, {{x}}, {{y}}, {{-y}}, {{s}}; put keys in an environment variable named by url_key_env")
        if not ({"z", "x"} <= names and names & {"y", "-y"}):
            raise ValueError("the URL template needs {z}, {x} and {y} (or {-y})")
        return value


class XyzTileSource(TileSource):
    """Tiles from an XYZ URL template (OpenStreetMap, AMap, Tencent, most tile servers)."""

    type_name = "xyz"
    Params = XyzParams
    params: XyzParams

    def tile_request(self, z: int, x: int, y: int) -> tuple[str, dict[str, str]]:
        url = self.params.url
        url = url.replace("{z}", str(z)).replace("{x}", str(x)).replace("{-y}", str(2**z - 1 - y)).replace("{y}", str(y))
        return url.replace("{s}", self._subdomain(x, y)), {}

    def cache_identity(self) -> str:
        return self.params.url


# -- WMTS --------------------------------------------------------------------------------

_MERCATOR_CRS = {
    "epsg:3857", "epsg:900913", "epsg:102100", "epsg:102113", "epsg:3785",
    "urn:ogc:def:crs:epsg::3857", "urn:ogc:def:crs:epsg:6.18.3:3857", "urn:ogc:def:crs:epsg::900913",
    "http://www.opengis.net/def/crs/epsg/0/3857",
}
_NOT_MERCATOR_SETS = {
    "worldcrs84quad", "googlecrs84quad", "c", "epsg:4326", "epsg:4490", "cgcs2000", "crs84",
    "worldmercatorwgs84quad", "eurocrs84quad",
}
_REST_REQUIRED = ("{TileMatrix}", "{TileRow}", "{TileCol}")


class WmtsParams(TileParams):
    capabilities: str | None = Field(
        None, description="GetCapabilities URL or file: layer, style, format, tile matrix set (Web Mercator or CGCS2000/WGS84 lon/lat) and URLs come from it"
    )
    url: str | None = Field(None, description="KVP service endpoint, or a REST ResourceURL template with {TileMatrix}, {TileRow}, {TileCol} (default: from capabilities)")
    layer: str = Field(description="WMTS layer identifier")
    style: str = Field("default", description="style identifier (with capabilities: the layer's default when not offered)")
    tile_matrix_set: str = Field("GoogleMapsCompatible", description="tile matrix set identifier (with capabilities: the layer's first drawable set when not linked)")
    tile_matrix: str = Field("{z}", description="TileMatrix identifier per zoom, e.g. '{z}' or 'EPSG:3857:{z}' (without capabilities)")
    crs: str = Field("EPSG:3857", description="CRS of the tile matrix set without capabilities: only EPSG:3857 (Web Mercator)")
    format: str = Field("image/png", description="tile format (KVP FORMAT; with capabilities: the layer's first when not offered)")
    encoding: Literal["kvp", "rest"] | None = Field(None, description="request encoding (default: rest if the URL has {TileMatrix})")
    dimensions: dict[str, str] = Field({}, description="extra dimension values, e.g. {Time: '2024-06-01'}")

    @field_validator("crs")
    @classmethod
    def _mercator(cls, value: str, info: ValidationInfo) -> str:
        if not info.data.get("capabilities") and value.strip().lower() not in _MERCATOR_CRS:
            raise ValueError(
                f"tile matrix set CRS {value!r} needs capabilities: without them only GoogleMapsCompatible / EPSG:3857 "
                "(Web Mercator) tile matrix sets are known (give capabilities: <GetCapabilities URL or file> for Tianditu's '_c' services)"
            )
        return value

    @field_validator("tile_matrix_set")
    @classmethod
    def _set(cls, value: str, info: ValidationInfo) -> str:
        if not info.data.get("capabilities") and value.strip().lower() in _NOT_MERCATOR_SETS:
            raise ValueError(
                f"tile matrix set {value!r} is not Web Mercator: without capabilities only GoogleMapsCompatible / EPSG:3857 tile matrix sets are known; "
                "give capabilities: <GetCapabilities URL or file>"
            )
        return value

    @field_validator("tile_matrix")
    @classmethod
    def _matrix(cls, value: str) -> str:
        if "{z}" not in value:
            raise ValueError("tile_matrix needs {z}, e.g. '{z}' or 'EPSG:3857:{z}'")
        return value

    @model_validator(mode="after")
    def _encoding(self) -> WmtsParams:
        if self.url is None:
            if not self.capabilities:
                raise ValueError("give url (the KVP endpoint or a REST template) or capabilities (a GetCapabilities URL or file)")
            return self
        rest = self.is_rest
        if rest:
            missing = [p for p in _REST_REQUIRED if p not in self.url]
            if missing:
                raise ValueError(f"a REST ResourceURL template needs {', '.join(missing)}")
            known = {"TileMatrixSet", "TileMatrix", "TileRow", "TileCol", "Style", "Layer", "s", *self.dimensions}
            unknown = set(_XYZ_PLACEHOLDER.findall(self.url)) - known
            if unknown:
                raise ValueError(f"unknown placeholder(s) {', '.join(sorted(unknown))} in the ResourceURL: give them in dimensions")
        elif set(_XYZ_PLACEHOLDER.findall(self.url)) - {"s"}:
            raise ValueError("the URL has {...} placeholders but encoding is kvp: use a REST template with {TileMatrix}, {TileRow}, {TileCol}")
        return self

    @property
    def is_rest(self) -> bool:
        return self.encoding == "rest" or (self.encoding is None and "{TileMatrix}" in (self.url or ""))


@dataclass(frozen=True)
class _WmtsPlan:
    """How tiles are asked for: from the params alone, or from the capabilities."""

    url: str
    rest: bool
    style: str
    format: str
    tile_matrix_set: str
    grid: TileMatrixSet | None


class WmtsTileSource(TileSource):
    """Tiles from an OGC WMTS 1.0.0 service, KVP or REST.

    With ``capabilities`` (a GetCapabilities URL or file) the layer, style, format, tile matrix
    set and the KVP endpoint or REST ResourceURL are read from the document, and Web Mercator
    as well as geographic lon/lat sets (Tianditu's ``c`` in CGCS2000 / EPSG:4490, WGS84
    EPSG:4326, CRS84) are drawn; zoom ``z`` is the matrix whose identifier ends in ``z``
    (see :mod:`twin_layers.wmts_capabilities`). ``url`` then overrides the document's endpoint.
    Without capabilities only GoogleMapsCompatible / EPSG:3857 sets (matrix ``z`` with 2^z x 2^z
    tiles) are known: give layer, style, tile matrix set and the URL yourself.
    """

    type_name = "wmts"
    Params = WmtsParams
    params: WmtsParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._plan: _WmtsPlan | None = None
        self._plan_lock = threading.Lock()
        self._caps_base: Path | None = None

    def describe(self) -> str:
        p = self.params
        where = redact_url(p.url).replace("%7B", "{").replace("%7D", "}") if p.url else f"(capabilities {redact_url(p.capabilities or '')})"
        return f"wmts tile source {where} layer {p.layer!r}"

    def bind_base_dir(self, base_dir: Path) -> None:
        """Resolve a relative ``cache_dir`` and ``capabilities`` file against the scene file's folder."""
        super().bind_base_dir(base_dir)
        self._caps_base = Path(base_dir)

    # -- capabilities ------------------------------------------------------------------------
    def _capabilities_body(self) -> tuple[bytes, str]:
        name = self.params.capabilities or ""
        if re.match(r"^https?://", name, re.IGNORECASE):
            self._check_credentials()
            try:
                result = self.client.get(name, {}, accept="application/xml,text/xml;q=0.9,*/*;q=0.5")
            except SourceError as exc:
                raise SourceError(f"{self.describe()}: GetCapabilities: {self._scrub(str(exc))}") from None
            return result.body, redact_url(name)
        path = Path(name).expanduser()
        if not path.is_absolute() and self._caps_base is not None:
            path = self._caps_base / path
        try:
            return path.read_bytes(), str(path)
        except OSError as exc:
            raise SourceError(f"{self.describe()}: cannot read the capabilities file {path}: {exc.strerror or exc}") from None

    def capabilities(self) -> Capabilities:
        """The parsed GetCapabilities document (read each call; :meth:`plan` keeps what it needs)."""
        body, where = self._capabilities_body()
        return parse_capabilities(body, f"{self.describe()}: capabilities {where}")

    def plan(self) -> _WmtsPlan:
        """URL, encoding, style, format and tile matrix set tiles are requested with (capabilities read once)."""
        with self._plan_lock:
            if self._plan is None:
                self._plan = self._plan_from_caps() if self.params.capabilities else self._plan_from_params()
            return self._plan

    def _plan_from_params(self) -> _WmtsPlan:
        p = self.params
        assert p.url is not None
        return _WmtsPlan(p.url, p.is_rest, p.style, p.format, p.tile_matrix_set, None)

    def _plan_from_caps(self) -> _WmtsPlan:
        p = self.params
        caps = self.capabilities()
        where = self.describe()
        layer = caps.layer(p.layer, where)
        style = p.style if p.style in layer.styles or not layer.styles else (layer.default_style or layer.styles[0])
        fmt = p.format if p.format in layer.formats or not layer.formats else layer.formats[0]
        if p.tile_matrix_set in layer.tile_matrix_sets:
            set_id = p.tile_matrix_set
        else:
            drawable = [t for t in layer.tile_matrix_sets if t in caps.tile_matrix_sets]
            if not drawable:
                problems = "; ".join(f"{t!r} {caps.unsupported_sets.get(t, 'is not described')}" for t in layer.tile_matrix_sets) or "none linked"
                raise SourceError(f"{where}: layer {p.layer!r} has no tile matrix set twin can draw: {problems}")
            set_id = drawable[0]
        grid = caps.tile_matrix_set(set_id, where)
        template = layer.resource_urls.get(fmt) or next(iter(layer.resource_urls.values()), None)
        if p.url is not None:
            url, rest = p.url, p.is_rest
        elif p.encoding != "rest" and caps.kvp_url:
            url, rest = caps.kvp_url, False
        elif template:
            url, rest = template, True
        else:
            raise SourceError(f"{where}: the capabilities give neither a KVP GetTile endpoint nor a ResourceURL for layer {p.layer!r}: give url")
        return _WmtsPlan(url, rest, style, fmt, set_id, grid)

    def grid(self) -> TileMatrixSet | None:
        return self.plan().grid

    # -- requests ----------------------------------------------------------------------------
    def _matrix_id(self, plan: _WmtsPlan, z: int) -> str:
        return plan.grid.matrix(z).identifier if plan.grid is not None else self.params.tile_matrix.replace("{z}", str(z))

    def tile_request(self, z: int, x: int, y: int) -> tuple[str, dict[str, str]]:
        p = self.params
        plan = self.plan()
        matrix = self._matrix_id(plan, z)
        if plan.rest:
            values = {"TileMatrixSet": plan.tile_matrix_set, "TileMatrix": matrix, "TileRow": str(y), "TileCol": str(x),
                      "Style": plan.style, "Layer": p.layer, "s": self._subdomain(x, y), **p.dimensions}
            url = _XYZ_PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), plan.url)
            return url, {}
        query = {
            "SERVICE": "WMTS", "REQUEST": "GetTile", "VERSION": "1.0.0",
            "LAYER": p.layer, "STYLE": plan.style, "TILEMATRIXSET": plan.tile_matrix_set,
            "TILEMATRIX": matrix, "TILEROW": str(y), "TILECOL": str(x), "FORMAT": plan.format,
            **{k.upper(): v for k, v in p.dimensions.items()},
        }
        base = plan.url.split("?", 1)[0] if plan.url.endswith("?") else plan.url
        return base.replace("{s}", self._subdomain(x, y)), query

    def _accept(self) -> str:
        fmt = self.plan().format
        return f"{fmt},image/*;q=0.8" if "/" in fmt else self.accept

    def cache_identity(self) -> str:
        p = self.params
        plan = self.plan()
        dims = json.dumps(p.dimensions, sort_keys=True)
        parts = ["rest" if plan.rest else "kvp", plan.url, p.layer, plan.style, plan.tile_matrix_set, p.tile_matrix, plan.format, dims]
        return "|".join(parts) if plan.grid is None else "|".join([*parts, "caps", plan.grid.crs])
