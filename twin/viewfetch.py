"""Fetch by view: a layer's features for what the camera sees, not the whole collection.

Model side only (no VTK, no trame). Three parts:

* :func:`view_footprint` / :func:`view_extent`: the ground the camera sees. The four corner rays
  of the view frustum (camera position, focal point, view-up, vertical view angle, aspect) are
  cut with the ground plane; a ray that looks above the horizon, or hits the ground further
  than ``max_range`` metres away, is cut at ``max_range`` instead. Local frame metres in,
  WGS84 lon/lat bbox out (with a ``margin``, a share of the extent's size on every side).
* :class:`ViewFetcher`: splits an extent into cache tiles (XYZ tiles, at the highest zoom at
  which the extent needs at most ``max_tiles`` of them: the "detail level that fits"), asks the
  source ``read(tile bbox)`` for the tiles not cached yet (in parallel, ``max_workers`` at a
  time), keeps tiles in an LRU bounded by feature count and bytes (the tiles of the current
  view are never evicted), de-duplicates features that two tiles both hold (by ``id_column``,
  else by geometry), and debounces: :meth:`ViewFetcher.due` says whether a new extent is worth a
  fetch (moved by more than ``min_move`` and still for ``debounce`` seconds, or moving for
  longer than ``max_wait``).
* :class:`ViewSource` (source type ``view``): wraps any feature source so that a layer reads
  the features of the current view. A scene file says::

      layers:
        - id: hydrants
          type: vector
          source:
            type: view
            source: {type: ogcapi, url: https://onemap.example.gov.cn/ogcapi/, collection: hydrants}
            margin: 0.25           # share of the view's size fetched around it
            max_tiles: 16          # cache tiles per view (sets the zoom)
            min_zoom: 12           # wider views fetch nothing (and say so) rather than the whole city
            max_cached_features: 200000

  A view (the app, the wall) calls :func:`follow_view` with the layer and the camera's ground
  extent after each camera move (or on a timer while it moves); it re-reads the layer only when
  the debounce says so. Static layers keep their plain source and are read whole.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike, NDArray
from pydantic import Field, model_validator

from twin.errors import SourceError, TwinWarning
from twin.geo.frame import Frame
from twin.source import BBox, Source, SourceParams

if TYPE_CHECKING:
    from twin.layer import Layer

__all__ = [
    "FetchStats",
    "ViewFetcher",
    "ViewSource",
    "ViewSourceParams",
    "follow_view",
    "frame_bytes",
    "grow",
    "tile_bbox",
    "tiles_for_extent",
    "view_extent",
    "view_footprint",
]

log = logging.getLogger(__name__)

_MAX_LAT = 85.0511287798066
Tile = tuple[int, int, int]
"""(z, x, y) of an XYZ (Web Mercator) tile: x from the west, y from the north."""


# -- camera -> ground ------------------------------------------------------------------------


def view_footprint(
    position: ArrayLike, focal_point: ArrayLike, view_up: ArrayLike, view_angle: float, aspect: float, *, ground: float = 0.0, max_range: float = 20_000.0
) -> NDArray[np.float64]:
    """The ground under the four corners of the view, (4, 2) local x/y metres (counter-clockwise from bottom-left).

    ``position``, ``focal_point``: camera and looked-at point in the frame's local metres;
    ``view_up``: the camera's up vector; ``view_angle``: vertical field of view in degrees;
    ``aspect``: width / height of the view. A corner ray that never reaches the ground plane
    ``z = ground`` (it looks above the horizon) or reaches it further than ``max_range`` metres
    (measured on the ground from the point under the camera) is cut there, at ``max_range``
    metres in the ray's direction.
    Raises :class:`ValueError` for a camera whose position equals its focal point or whose
    up vector is parallel to its direction of view.
    """
    pos = np.asarray(position, dtype=np.float64)
    look = np.asarray(focal_point, dtype=np.float64) - pos
    if not np.isfinite(look).all() or np.linalg.norm(look) == 0:
        raise ValueError(f"camera position {pos.tolist()} and focal point {np.asarray(focal_point).tolist()} must differ and be finite")
    look /= np.linalg.norm(look)
    right = np.cross(look, np.asarray(view_up, dtype=np.float64))
    if np.linalg.norm(right) < 1e-9:
        raise ValueError(f"view-up {np.asarray(view_up).tolist()} is parallel to the direction of view")
    right /= np.linalg.norm(right)
    up = np.cross(right, look)
    tan_v = math.tan(math.radians(view_angle) / 2.0)
    tan_h = tan_v * aspect
    corners = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        ray = look + sx * tan_h * right + sy * tan_v * up
        hit = pos[:2] + ray[:2] * ((ground - pos[2]) / ray[2]) if ray[2] < -1e-12 else None
        flat = float(np.linalg.norm(ray[:2]))
        if hit is None or np.linalg.norm(hit - pos[:2]) > max_range:
            hit = pos[:2] + (ray[:2] / flat * max_range if flat > 0 else 0.0)
        corners.append(hit)
    return np.asarray(corners)


def view_extent(frame: Frame, footprint: ArrayLike, *, margin: float = 0.0) -> BBox:
    """The WGS84 bbox of local ground points (n, 2), grown by ``margin`` × its size on every side."""
    pts = np.asarray(footprint, dtype=np.float64).reshape(-1, 2)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    ring = np.array([[x0 - dx, y0 - dy], [x1 + dx, y0 - dy], [x1 + dx, y1 + dy], [x0 - dx, y1 + dy]])
    lon, lat, _ = frame.local_to_lonlat(np.column_stack([ring, np.zeros(4)]))
    return (float(lon.min()), float(max(lat.min(), -_MAX_LAT)), float(lon.max()), float(min(lat.max(), _MAX_LAT)))


# -- cache tiles -----------------------------------------------------------------------------


def _tile_xy(lon: float, lat: float, zoom: int) -> tuple[float, float]:
    n = 2.0**zoom
    lat_r = math.radians(min(max(lat, -_MAX_LAT), _MAX_LAT))
    return (lon + 180.0) / 360.0 * n, (1.0 - math.asinh(math.tan(lat_r)) / math.pi) / 2.0 * n


def tile_bbox(tile: Tile) -> BBox:
    """WGS84 (west, south, east, north) of XYZ tile (z, x, y)."""
    z, x, y = tile
    n = 2.0**z

    def lat(row: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1.0 - 2.0 * row / n))))

    return (x / n * 360.0 - 180.0, lat(y + 1), (x + 1) / n * 360.0 - 180.0, lat(y))


def _tile_range(extent: BBox, zoom: int) -> list[Tile]:
    west, south, east, north = extent
    n = 2**zoom
    fx0, fy0 = _tile_xy(west, north, zoom)
    fx1, fy1 = _tile_xy(east, south, zoom)
    x0, y0 = min(max(math.floor(fx0), 0), n - 1), min(max(math.floor(fy0), 0), n - 1)
    x1, y1 = min(max(math.ceil(fx1) - 1, x0), n - 1), min(max(math.ceil(fy1) - 1, y0), n - 1)
    return [(zoom, x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]


def tiles_for_extent(extent: BBox, *, max_tiles: int = 16, min_zoom: int = 0, max_zoom: int = 16) -> list[Tile]:
    """The XYZ tiles covering WGS84 ``extent`` at the highest zoom in ``min_zoom..max_zoom`` that needs at most ``max_tiles``.

    Returns ``[]`` when even ``min_zoom`` needs more (the view is too wide to fetch). Raises
    :class:`ValueError` for an extent that is not finite (west, south, east, north).
    """
    west, south, east, north = extent
    if not all(math.isfinite(v) for v in extent) or west > east or south > north:
        raise ValueError(f"extent {extent} is not (west, south, east, north) in lon/lat")
    for zoom in range(max_zoom, min_zoom - 1, -1):
        tiles = _tile_range(extent, zoom)
        if len(tiles) <= max_tiles:
            return tiles
    return []


# -- the fetcher -----------------------------------------------------------------------------


@dataclass
class FetchStats:
    """What a :class:`ViewFetcher` did so far."""

    requests: int = 0
    """Tile reads asked of the source."""
    features_fetched: int = 0
    """Features the source returned over all reads (before de-duplication)."""
    failed: int = 0
    evicted: int = 0
    fetched_tiles: list[Tile] = field(default_factory=list)


@dataclass
class _Entry:
    frame: gpd.GeoDataFrame
    nbytes: int


def frame_bytes(frame: gpd.GeoDataFrame) -> int:
    """Bytes a tile's frame holds: the columns (deep) plus its geometries' WKB size."""
    attrs = int(pd.DataFrame(frame.drop(columns=frame.geometry.name)).memory_usage(deep=True).sum())
    return attrs + sum(len(b) for b in shapely.to_wkb(frame.geometry.to_numpy()))


def grow(extent: BBox, margin: float) -> BBox:
    """``extent`` grown by ``margin`` × its width / height on every side (latitudes kept within Web Mercator's)."""
    west, south, east, north = extent
    dx, dy = (east - west) * margin, (north - south) * margin
    return (west - dx, max(south - dy, -_MAX_LAT), east + dx, min(north + dy, _MAX_LAT))


class ViewFetcher:
    """Features of ``source`` for view extents, fetched by cache tile, LRU-bounded, de-duplicated.

    ``max_tiles``: cache tiles per view (the zoom follows from it); ``min_zoom``/``max_zoom``:
    coarsest / finest tile zoom (a view wider than ``max_tiles`` tiles at ``min_zoom`` fetches
    nothing); ``max_cached_features``/``max_cached_bytes``: LRU budget; ``max_workers``: tile
    reads in flight; ``id_column``: the attribute that identifies a feature (None: ``id`` if
    present, else the geometry); ``debounce``/``min_move``/``max_wait``: see :meth:`due`.
    Thread-safe: one fetch at a time.
    """

    def __init__(
        self,
        source: Source,
        *,
        max_tiles: int = 16,
        min_zoom: int = 10,
        max_zoom: int = 16,
        max_cached_features: int = 200_000,
        max_cached_bytes: int = 256 * 2**20,
        max_workers: int = 4,
        id_column: str | None = None,
        debounce: float = 0.3,
        min_move: float = 0.1,
        max_wait: float = 2.0,
    ) -> None:
        self.source = source
        self.max_tiles, self.min_zoom, self.max_zoom = max_tiles, min_zoom, max_zoom
        self.max_cached_features, self.max_cached_bytes = max_cached_features, max_cached_bytes
        self.max_workers, self.id_column = max_workers, id_column
        self.debounce, self.min_move, self.max_wait = debounce, min_move, max_wait
        self.stats = FetchStats()
        self._cache: OrderedDict[Tile, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._target: BBox | None = None
        self._seen: tuple[BBox, float] | None = None
        self._moving_since: float | None = None

    # -- memory ---------------------------------------------------------------------------
    @property
    def cached_features(self) -> int:
        return sum(len(e.frame) for e in self._cache.values())

    @property
    def cached_bytes(self) -> int:
        return sum(e.nbytes for e in self._cache.values())

    @property
    def cached_tiles(self) -> list[Tile]:
        return list(self._cache)

    def _evict(self, keep: set[Tile]) -> None:
        while len(self._cache) > len(keep) and (self.cached_features > self.max_cached_features or self.cached_bytes > self.max_cached_bytes):
            victim = next((t for t in self._cache if t not in keep), None)
            if victim is None:
                return
            del self._cache[victim]
            self.stats.evicted += 1

    # -- debounce -------------------------------------------------------------------------
    def _moved(self, a: BBox | None, b: BBox) -> float:
        """How far ``b`` is from ``a``: the largest edge shift as a share of ``b``'s size (inf without ``a``)."""
        if a is None:
            return math.inf
        size = max(b[2] - b[0], b[3] - b[1], 1e-12)
        return max(abs(u - v) for u, v in zip(a, b)) / size

    def due(self, extent: BBox, now: float | None = None, *, settled: bool = False) -> bool:
        """Whether ``extent`` should be fetched now (call it on every camera change or tick).

        Not due while ``extent`` is within ``min_move`` (share of its size) of the extent last
        fetched or :meth:`accept`-ed. Otherwise due once the extent has stayed within ``min_move`` of the last one
        seen for ``debounce`` seconds (the camera stopped), or ``max_wait`` seconds after it
        began to move (a camera that keeps moving still gets updates); at once when the caller
        says the camera has ``settled`` (a view reporting the end of an interaction or a flight).
        """
        now = time.monotonic() if now is None else now
        if self._target is None:
            return True  # the first view: nothing to show yet
        if self._moved(self._target, extent) <= self.min_move:
            self._moving_since = None
            self._seen = (extent, now)
            return False
        if settled:
            return True
        if self._seen is None or self._moved(self._seen[0], extent) > self.min_move:
            self._seen = (extent, now)
        if self._moving_since is None:
            self._moving_since = now
        still = now - self._seen[1] >= self.debounce
        return still or now - self._moving_since >= self.max_wait

    def accept(self, extent: BBox) -> None:
        """Take ``extent`` as the one being shown (its fetch may come later): :meth:`due` measures moves from it."""
        self._target = extent
        self._moving_since = None

    # -- fetching -------------------------------------------------------------------------
    def tiles(self, extent: BBox) -> list[Tile]:
        """The cache tiles of ``extent`` (``[]`` when the view is too wide)."""
        return tiles_for_extent(extent, max_tiles=self.max_tiles, min_zoom=self.min_zoom, max_zoom=self.max_zoom)

    def _read(self, tile: Tile) -> gpd.GeoDataFrame:
        frame = self.source.read(tile_bbox(tile))
        if frame.crs is not None and not frame.crs.equals("EPSG:4326"):
            raise SourceError(f"{self.source.describe()} returned data in {frame.crs.name}, not EPSG:4326")
        return frame

    def fetch(self, extent: BBox) -> gpd.GeoDataFrame:
        """The features of the cache tiles covering ``extent``, each feature once (EPSG:4326).

        Tiles not cached are read from the source in parallel. A tile whose read fails is left
        out, not cached (it is asked again next time) and counted in one :class:`TwinWarning`
        naming the source and the tile's bbox. A view too wide for ``min_zoom`` gives an empty
        frame and a warning.
        """
        with self._lock:
            tiles = self.tiles(extent)
            self.accept(extent)
            if not tiles:
                warnings.warn(
                    f"{self.source.describe()}: the view {tuple(round(v, 5) for v in extent)} is too wide to fetch "
                    f"(over {self.max_tiles} tiles at zoom {self.min_zoom}): zoom in, or lower min_zoom",
                    TwinWarning,
                    stacklevel=2,
                )
                return _empty()
            missing = [t for t in tiles if t not in self._cache]
            failures = self._fetch_missing(missing)
            for tile in tiles:
                if tile in self._cache:
                    self._cache.move_to_end(tile)
            self._evict(set(tiles))
            if failures:
                tile, message = failures[0]
                warnings.warn(
                    f"{self.source.describe()}: {len(failures)} of {len(tiles)} view tiles could not be fetched and are left out "
                    f"(first: tile {tile[0]}/{tile[1]}/{tile[2]} bbox {tuple(round(v, 6) for v in tile_bbox(tile))}: {message})",
                    TwinWarning,
                    stacklevel=2,
                )
            return self._merge([self._cache[t].frame for t in tiles if t in self._cache])

    def _fetch_missing(self, missing: Sequence[Tile]) -> list[tuple[Tile, str]]:
        failures: list[tuple[Tile, str]] = []
        if not missing:
            return failures

        def one(tile: Tile) -> tuple[Tile, gpd.GeoDataFrame | None, str | None]:
            try:
                return tile, self._read(tile), None
            except SourceError as exc:
                return tile, None, str(exc)

        workers = max(1, min(self.max_workers, len(missing)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="twin-viewfetch") as pool:
            for tile, frame, problem in pool.map(one, missing):
                self.stats.requests += 1
                if frame is None:
                    self.stats.failed += 1
                    failures.append((tile, problem or "failed"))
                    continue
                self.stats.features_fetched += len(frame)
                self.stats.fetched_tiles.append(tile)
                self._cache[tile] = _Entry(frame, frame_bytes(frame))
        return failures

    def _merge(self, frames: list[gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
        frames = [f for f in frames if len(f)]
        if not frames:
            return _empty()
        merged = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")
        column = self.id_column or ("id" if "id" in merged.columns else None)
        if column is not None and column not in merged.columns:
            raise SourceError(f"{self.source.describe()}: id_column {column!r} is not an attribute; attributes: {', '.join(map(str, merged.columns))}")
        key = merged[column] if column is not None else pd.Series(shapely.to_wkb(merged.geometry.to_numpy()), index=merged.index)
        return gpd.GeoDataFrame(merged.loc[~key.duplicated().to_numpy()].reset_index(drop=True), crs="EPSG:4326")

    def clear(self) -> None:
        """Forget every cached tile (the next fetch reads them again)."""
        with self._lock:
            self._cache.clear()
            self._target = None


def _empty() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs="EPSG:4326"), crs="EPSG:4326")


# -- the wrapper source ----------------------------------------------------------------------


class ViewSourceParams(SourceParams):
    """Parameters of the ``view`` source (see the module docstring)."""

    source: dict[str, Any] = Field(description="the wrapped feature source, e.g. {type: ogcapi, url: ..., collection: ...}")
    margin: float = Field(0.25, ge=0.0, le=2.0, description="share of the view's size fetched around it on every side")
    max_tiles: int = Field(16, ge=1, le=256, description="cache tiles per view; sets the tile zoom")
    min_zoom: int = Field(10, ge=0, le=22, description="coarsest tile zoom; a wider view fetches nothing")
    max_zoom: int = Field(16, ge=0, le=22, description="finest tile zoom")
    max_cached_features: int = Field(200_000, ge=1, description="LRU budget in features")
    max_cached_mb: float = Field(256.0, gt=0, description="LRU budget in MiB")
    max_workers: int = Field(4, ge=1, le=32, description="tile reads in flight")
    id_column: str | None = Field(None, description="attribute identifying a feature (default: id, else the geometry)")
    debounce: float = Field(0.3, ge=0.0, description="seconds the camera must rest before a fetch")
    min_move: float = Field(0.1, ge=0.0, description="share of the view's size it must move to fetch again")
    max_wait: float = Field(2.0, ge=0.0, description="seconds a moving camera waits at most for a fetch")

    @model_validator(mode="after")
    def _zooms(self) -> ViewSourceParams:
        if self.min_zoom > self.max_zoom:
            raise ValueError(f"min_zoom {self.min_zoom} is above max_zoom {self.max_zoom}")
        if not self.source.get("type"):
            raise ValueError("source needs a 'type', e.g. {type: ogcapi, url: ..., collection: ...}")
        if str(self.source["type"]) == "view":
            raise ValueError("a view source cannot wrap another view source")
        return self


class ViewSource(Source):
    """A feature source read by view: ``read()`` gives the features of the view last set with :meth:`set_view`.

    ``read(bbox)`` gives those of ``bbox`` (through the same tile cache). Before any view is
    set ``read()`` gives no features. Raises what the wrapped source raises when building it.
    """

    type_name: ClassVar[str] = "view"
    Params = ViewSourceParams
    params: ViewSourceParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        from twin.registry import build_source

        p = self.params
        self.inner = build_source(p.source)
        self.fetcher = ViewFetcher(
            self.inner, max_tiles=p.max_tiles, min_zoom=p.min_zoom, max_zoom=p.max_zoom, max_cached_features=p.max_cached_features,
            max_cached_bytes=int(p.max_cached_mb * 2**20), max_workers=p.max_workers, id_column=p.id_column,
            debounce=p.debounce, min_move=p.min_move, max_wait=p.max_wait,
        )
        self.view: BBox | None = None
        """The current view's ground extent (WGS84, margin included)."""

    def set_view(self, extent: BBox) -> None:
        """Make ``extent`` (WGS84 lon/lat bbox of the ground in view, without margin) the current view."""
        self.view = grow(extent, self.params.margin)

    def read(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        area = bbox or self.view
        if area is None:
            log.info("%s: no view set yet: no features", self.describe())
            return _empty()
        return self.fetcher.fetch(area)

    @property
    def last_skipped(self) -> dict[str, Any]:
        return dict(getattr(self.inner, "last_skipped", None) or {})

    def check(self) -> None:
        self.inner.check()

    def describe(self) -> str:
        return f"view of {self.inner.describe()}"

    def bind_base_dir(self, base_dir: Any) -> None:
        """Relative paths of the wrapped source are read from the scene file's folder."""
        bind = getattr(self.inner, "bind_base_dir", None)
        if callable(bind):
            bind(base_dir)

    def close(self) -> None:
        self.inner.close()


def follow_view(layer: Layer, extent: BBox, now: float | None = None, *, settled: bool = False) -> bool:
    """Tell ``layer`` the camera's ground extent (WGS84); re-read it if its ``view`` source says a fetch is due
    (``settled``: the camera has stopped, no debounce).

    Returns whether the layer was re-read (then rebuild its visual). Layers whose source is not
    a :class:`ViewSource` are left alone (False). The fetch itself happens on the next
    ``layer.data`` (the view's next draw).
    """
    source = layer.source
    if not isinstance(source, ViewSource):
        return False
    grown = grow(extent, source.params.margin)
    if not source.fetcher.due(grown, now, settled=settled):
        return False
    source.fetcher.accept(grown)
    source.set_view(extent)
    layer.reload()
    return True
