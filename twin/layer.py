"""Layer base class: a pure model of data, geometry and style, with no drawing code.

A layer turns its source's features into a :class:`LayerVisual`: one mesh in the scene's
local frame plus per-cell colours and a legend. Geometry and style are separate kinds of
change: parameters listed in ``geometry_keys`` rebuild the mesh; any other parameter only
recomputes colours (deck.gl's ``updateTriggers``).

>>> import geopandas as gpd, shapely
>>> from twin.plugins import layer_types
>>> Vector = layer_types().get("vector")
>>> gdf = gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.Point(121.48, 31.23)], crs="EPSG:4326")
>>> layer = Vector("poi", data=gdf, color="red")
>>> layer.id, layer.extent() == (121.48, 31.23, 121.48, 31.23)
('poi', True)
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import NDArray
from pydantic import Field, TypeAdapter, ValidationError, field_validator

from twin.errors import WARNED, LayerDataError, SourceError, TwinWarning
from twin.geo.crs import WGS84, finite_geometries
from twin.geo.frame import Frame, lon_center, unwrap_lon
from twin.live import SourceHealth
from twin.params import ID_RULE, PluginParams, is_id, validate_params
from twin.readings import IngestReport
from twin.registry import build_source
from twin.source import BBox, Source
from twin.style import CategorySpec, Legend, Where, attribute_colors, rows_where, validate_color, validate_colormap

if TYPE_CHECKING:
    import pyvista as pv

__all__ = [
    "ColorByParams",
    "Label",
    "Layer",
    "LayerParams",
    "LayerStyle",
    "LayerVisual",
    "format_skips",
    "geometry_parts",
    "screen_features",
]

log = logging.getLogger(__name__)


class LayerParams(PluginParams):
    """Parameters specific to a layer type; plugins subclass this."""


class ColorByParams(LayerParams):
    """Colour by attribute: one ``color``, or ``color_by`` through a colormap or a palette.

    Layer types subclass it (and may redefine a field to change its default).
    """

    color: str = Field("#8fa3b8", description="colour of every feature when color_by is not set")
    color_by: str | None = Field(None, description="attribute that sets each feature's colour")
    colormap: str = Field("viridis", description="colormap for numeric color_by")
    clim: tuple[float, float] | None = Field(None, description="value range of the colormap (default: data 2-98 %)")
    palette: str = Field("tab10", description="qualitative palette for categorical color_by")
    categories: dict[str, CategorySpec] | None = Field(
        None, description="explicit value -> colour for categorical color_by; or value -> {color, label} with a legend label (per language: {zh_CN: ..., en: ...})")

    _color_by_color = field_validator("color")(classmethod(lambda cls, v: validate_color(v)))
    _color_by_maps = field_validator("colormap", "palette")(classmethod(lambda cls, v: validate_colormap(v)))

    def row_colors(self, data: gpd.GeoDataFrame, *, where: str) -> tuple[NDArray[np.uint8], Legend | None]:
        """RGBA per data row and the legend (None for one colour)."""
        return attribute_colors(data, self.color_by, color=self.color, colormap=self.colormap, clim=self.clim,
                                palette=self.palette, categories=self.categories, where=where)


@dataclass(frozen=True)
class Label:
    """Text anchored at a point of the local frame (billboarded towards the camera)."""

    position: tuple[float, float, float]
    text: str
    color: tuple[int, int, int, int] = (255, 255, 255, 255)


@dataclass
class LayerStyle:
    """Per-cell RGBA colours (or None for one ``color``), the legend that explains them, and labels."""

    colors: NDArray[np.uint8] | None
    color: tuple[int, int, int, int] = (200, 200, 200, 255)
    legend: Legend | None = None
    labels: tuple[Label, ...] = ()
    texture: NDArray[np.uint8] | None = None
    """An (height, width, 3 or 4) image draped with the mesh's point data ``tcoords`` (base maps)."""
    feature_colors: NDArray[np.uint8] | None = None
    """RGBA per feature (k, 4), looked up through the mesh's integer cell array ``feature_index``:
    a recolour then sends k colours, not one per triangle."""
    feature_index: str | None = None
    hidden: NDArray[np.bool_] | None = None
    """Per cell: True for cells of features a filter (the layer's ``where``) leaves out; views skip them
    without a new mesh. None: every cell is shown."""


@dataclass
class LayerVisual:
    """What a view needs to draw a layer. Versions tell a view what changed since it last drew."""

    layer_id: str
    mesh: pv.PolyData
    style: LayerStyle
    visible: bool = True
    opacity: float = 1.0
    line_width: float = 1.0
    point_size: float = 6.0
    lighting: bool = True
    geometry_version: int = 0
    style_version: int = 0
    points_version: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


_NO_DATA = gpd.GeoDataFrame(geometry=[], crs="EPSG:4326")


class _MemorySource(Source):
    """In-memory features handed to a layer from Python (notebooks); not saved to scene files."""

    type_name = "memory"

    def __init__(self, data: gpd.GeoDataFrame) -> None:
        super().__init__()
        if not isinstance(data, gpd.GeoDataFrame):
            raise LayerDataError(f"data must be a GeoDataFrame, got {type(data).__name__}")
        crs = data.crs if data.crs is not None else WGS84.proj
        if crs.equals(WGS84.proj, ignore_axis_order=True):
            self._data = data if data.crs is not None else data.set_crs(WGS84.proj)
        else:
            self._data = data.to_crs(WGS84.proj)

    def read(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        return self._data

    def describe(self) -> str:
        return f"in-memory data ({len(self._data)} rows)"

    def to_dict(self) -> dict[str, Any]:
        raise SourceError("this layer holds in-memory data, which a scene file cannot store; give it a file source to save it")


def geometry_parts(geometries: NDArray[np.object_]) -> tuple[NDArray[np.object_], NDArray[np.intp]]:
    """Single-part geometries (points, lines, rings, polygons) of each geometry, collections flattened at any depth.

    Returns the parts and, for each, the position of the geometry it came from. Missing and
    empty geometries give no parts.
    """
    parts = np.asarray(geometries, dtype=object)
    owner = np.arange(len(parts))
    while True:
        multi = shapely.get_type_id(parts) >= shapely.GeometryType.MULTIPOINT
        if not multi.any():
            keep = ~(shapely.is_missing(parts) | shapely.is_empty(parts))
            return parts[keep], owner[keep]
        sub, index = shapely.get_parts(parts, return_index=True)
        parts, owner = np.asarray(sub, dtype=object), owner[index]


def _short_rings(geometries: NDArray[np.object_]) -> NDArray[np.bool_]:
    """Per geometry: True when a polygon ring has 1 to 3 coordinates (an empty ring is harmless)."""
    parts, owner = geometry_parts(geometries)
    polygons = shapely.get_type_id(parts) == shapely.GeometryType.POLYGON
    rings, index = shapely.get_rings(parts[polygons], return_index=True)
    counts = shapely.get_num_coordinates(rings)
    short = np.zeros(len(geometries), dtype=bool)
    short[owner[polygons][index[(counts > 0) & (counts < 4)]]] = True
    return short


def _outside_lonlat(geometries: NDArray[np.object_]) -> NDArray[np.bool_]:
    """Per geometry: True when a finite coordinate is outside ±180° longitude or ±90° latitude."""
    coords, owner = shapely.get_coordinates(geometries, return_index=True)
    with np.errstate(invalid="ignore"):
        out = (np.abs(coords[:, 0]) > 180.0) | (np.abs(coords[:, 1]) > 90.0)
    outside = np.zeros(len(geometries), dtype=bool)
    outside[owner[out]] = True
    return outside


def screen_features(data: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, dict[str, list[Any]]]:
    """WGS84 features a layer can draw, and the index labels of the others by reason (first reason wins).

    Reasons: ``no geometry`` (missing or empty), ``non-finite coordinates`` (NaN, ±Infinity),
    ``outside lon/lat range`` (beyond ±180°/±90°), ``polygon ring of 1-3 points``.
    """
    geoms = data.geometry.to_numpy()
    checks = (
        ("no geometry", lambda g: shapely.is_missing(g) | shapely.is_empty(g)),
        ("non-finite coordinates", lambda g: ~finite_geometries(g)),
        ("outside lon/lat range", _outside_lonlat),
        ("polygon ring of 1-3 points", _short_rings),
    )
    bad = np.zeros(len(geoms), dtype=bool)
    skips: dict[str, list[Any]] = {}
    for reason, check in checks:
        hit = check(geoms) & ~bad
        if hit.any():
            skips[reason] = data.index[hit].tolist()
            bad |= hit
    return (data.loc[~bad] if bad.any() else data), skips


def format_skips(skips: Mapping[str, Sequence[Any]], *, shown: int = 5) -> str:
    """``reason (feature 3); other reason (features 1, 2, ... 40 in all)`` for a warning line."""
    parts = []
    for reason, index in skips.items():
        listed = ", ".join(str(i) for i in index[:shown]) + (f", ... {len(index)} in all" if len(index) > shown else "")
        parts.append(f"{reason} ({'feature' if len(index) == 1 else 'features'} {listed})")
    return "; ".join(parts)


class Layer(ABC):
    """A layer plugin. Subclasses set ``type_name``, ``Params``, ``geometry_keys`` and the two builders."""

    type_name: ClassVar[str] = ""
    Params: ClassVar[type[LayerParams]] = LayerParams
    geometry_keys: ClassVar[frozenset[str]] = frozenset()
    """Parameters whose change forces a geometry rebuild; others only restyle."""
    visual_uses_data: ClassVar[bool] = True
    """False for layers whose builders ignore ``data`` (it is then not assembled on every draw)."""
    feature_array: ClassVar[str] = "feature_id"
    """Cell-data array that maps each cell to its row in :meth:`data`."""

    def __init__(
        self,
        id: str,
        *,
        source: Source | Mapping[str, Any] | None = None,
        data: gpd.GeoDataFrame | None = None,
        title: str | Mapping[str, str] | None = None,
        visible: bool = True,
        opacity: float = 1.0,
        where: Where | Mapping[str, Any] | None = None,
        **params: Any,
    ) -> None:
        if not is_id(id):
            raise LayerDataError(f"layer id {id!r} is invalid: {ID_RULE}")
        if source is not None and data is not None:
            raise LayerDataError(f"layer {id!r}: give either source= or data=, not both")
        if not 0.0 <= float(opacity) <= 1.0:
            raise LayerDataError(f"layer {id!r}: opacity {opacity} is outside 0..1")
        self.id = id
        self.titles: dict[str, str] = _titles(id, title)
        """The title per language (``{"zh_CN": "上海各区", "en": "Shanghai districts"}``) when the scene gives several; else empty."""
        self.title = next(iter(self.titles.values()), None) or str(title or id)
        self.where: Where | None = _where(id, where)
        """Draw only features whose attributes match (``{column: [values]}`` or ``{column: {min, max}}``); a restyle, never a new mesh."""
        self.visible = bool(visible)
        self.opacity = float(opacity)
        self.source: Source | None = _MemorySource(data) if data is not None else (build_source(source) if source is not None else None)
        self.params = validate_params(self.Params, params, where=f"layer {id!r} ({self.type_name})")
        self._data: gpd.GeoDataFrame | None = None
        self.skipped: dict[str, list[Any]] = {}
        """Features the last read left out, by reason: their index in the source (file order for files)."""
        self.health = SourceHealth()
        """How the layer's source is doing (last success, last error): the app's stale badge."""
        self._geometry: tuple[Frame, int, pv.PolyData] | None = None
        self._geometry_version = 0
        self._style_version = 0
        self._points_version = 0

    def nested_sources(self) -> list[Source]:
        """Sources the layer builds from its own parameters (e.g. a flood layer's ``stations:``);
        a scene file binds their relative paths to its folder, as it does for ``source:``."""
        return []

    # -- data ----------------------------------------------------------------------------
    def data(self) -> gpd.GeoDataFrame:
        """The source's drawable features in WGS84 (read once, then cached until :meth:`reload`).

        Features that cannot be drawn (no geometry, non-finite or out-of-range coordinates, a
        polygon ring of 1-3 points) are skipped, counted in ``health.last_report`` and
        :attr:`skipped`, and reported in one :class:`TwinWarning` naming the layer. A failed read
        is recorded in ``health.error`` (the app's badge) and re-raised.
        """
        if self._data is None:
            if self.source is None:
                raise SourceError(f"layer {self.id!r} has no source")
            self._read(dt.datetime.now(dt.timezone.utc))
            assert self._data is not None
        return self._data

    def loaded_data(self) -> gpd.GeoDataFrame | None:
        """The features as :meth:`data` gives them, but never reading the source (None before a read succeeded):
        for code on an event loop that must not wait on a server. Layers with their own ``data()`` (live readings)
        answer once drawn, when what it needs is held."""
        if type(self).data is not Layer.data:
            return self.data() if self._geometry is not None else None
        return self._data

    def _read(self, now: dt.datetime) -> None:
        """Read the source into ``_data`` (screened); record success or failure in :attr:`health`."""
        assert self.source is not None
        try:
            data = self.source.read()
            if data.crs is not None and not data.crs.equals(WGS84.proj, ignore_axis_order=True):
                raise SourceError(f"{self.source.describe()} returned data in {data.crs.name}, not EPSG:4326")
        except Exception as exc:
            self.health.last_error = now
            self.health.error = str(exc)
            raise
        self._data = self._screen(data)
        self.health.last_success = now
        self.health.error = None

    def _screen(self, data: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Drop undrawable features; warn once, naming the layer, what the source and the screen left out."""
        assert self.source is not None
        source_skips: dict[str, list[Any]] = dict(getattr(self.source, "last_skipped", None) or {})
        repaired: dict[str, list[Any]] = dict(getattr(self.source, "last_repaired", None) or {})
        clean, own = screen_features(data)
        self.skipped = {**source_skips, **own}
        dropped = {i for index in own.values() for i in index}
        repaired = {k: kept for k, v in repaired.items() if (kept := [i for i in v if i not in dropped])}
        total = len(data) + sum(len(v) for v in source_skips.values())
        self.health.last_report = IngestReport(accepted=len(clean), dropped={k: len(v) for k, v in self.skipped.items()})
        if source_skips or own:
            clean = clean.reset_index(drop=True)
        parts = []
        if self.skipped:
            parts.append(f"skipped {sum(len(v) for v in self.skipped.values())} of {total} features: {format_skips(self.skipped)}")
        if repaired:
            parts.append(f"repaired {sum(len(v) for v in repaired.values())}: {format_skips(repaired)}")
        if parts:
            message = f"layer {self.id!r} ({self.source.describe()}): " + "; ".join(parts)
            log.warning(message, extra=WARNED)
            warnings.warn(message, TwinWarning, stacklevel=4)
        return clean

    def reload(self) -> None:
        """Drop cached data so the next draw reads the source again (rebuilds geometry)."""
        self._data = None
        self.invalidate()

    def invalidate(self, *, geometry: bool = True) -> None:
        """Mark geometry (rebuild) or only style (recolour) as out of date."""
        if geometry:
            self._geometry = None
            self._geometry_version += 1
        self._style_version += 1

    def touch_points(self) -> None:
        """The mesh's point coordinates were changed in place (same topology): views re-upload only them."""
        self._points_version += 1

    # -- time ----------------------------------------------------------------------------
    def refresh(self, now: dt.datetime) -> None:
        """Re-read a polled source (one whose params have a ``poll_interval``) when it is due.

        A failed read keeps the last good data and records the error in :attr:`health`.
        """
        interval = getattr(getattr(self.source, "params", None), "poll_interval", None)
        if interval is None or self._data is None:
            return
        if self.health.last_success is not None and now - self.health.last_success < interval:
            return
        try:
            self._read(now)
        except Exception as exc:  # noqa: BLE001  (the wall keeps what it shows; _read recorded the error)
            log.warning("layer %s: refresh failed: %s", self.id, exc)
            return
        self.invalidate()

    def set_time(self, now: dt.datetime) -> None:
        """Show the scene at time ``now`` (live layers pick their window; static layers ignore it)."""

    def extent(self) -> BBox | None:
        """WGS84 bounds (west, south, east, north) of the layer's data, or None when it has none.

        Data across the antimeridian (a footprint cut at ±180, points on both sides) gets
        ``west > east``, as RFC 7946 §5.2 writes such a bounding box: the box is the shortest
        arc of longitude that holds the data (see :func:`twin.geo.frame.lon_center`).
        """
        data = self.data()
        if data.empty or data.geometry.is_empty.all():
            return None
        minx, miny, maxx, maxy = (float(v) for v in data.total_bounds)
        if not np.all(np.isfinite([minx, miny, maxx, maxy])):
            return None
        if maxx - minx > 180.0:  # maybe across ±180: the shortest arc that holds every longitude
            lon = shapely.get_coordinates(data.geometry.to_numpy())[:, 0]
            unwrapped = unwrap_lon(lon, lon_center(lon))
            west, east = float(unwrapped.min()), float(unwrapped.max())
            if east - west < maxx - minx:  # the data crosses ±180: west > east once wrapped
                minx, maxx = (float(np.mod(v + 180.0, 360.0) - 180.0) for v in (west, east))
        return (minx, miny, maxx, maxy)

    # -- changes -------------------------------------------------------------------------
    def update(self, **changes: Any) -> None:
        """Change parameters (validated); rebuilds geometry only if a ``geometry_keys`` one changed.

        ``visible`` and ``opacity`` are accepted too; they never touch geometry or colours. ``where``
        (a filter, see :attr:`where`; None for none) restyles only.
        """
        for key in ("visible", "opacity"):
            if key in changes:
                setattr(self, key, type(getattr(self, key))(changes.pop(key)))
        if "where" in changes:
            where = _where(self.id, changes.pop("where"))
            if where != self.where:
                self.where = where
                self._style_version += 1
        if not changes:
            return
        merged = {**self.params.model_dump(), **changes}
        new = validate_params(self.Params, merged, where=f"layer {self.id!r} ({self.type_name})")
        changed = {k for k in changes if getattr(self.params, k) != getattr(new, k)}
        self.params = new
        if changed & self.geometry_keys:
            self._geometry = None
            self._geometry_version += 1
        if changed:
            self._style_version += 1

    # -- building ------------------------------------------------------------------------
    @abstractmethod
    def build_geometry(self, frame: Frame, data: gpd.GeoDataFrame) -> pv.PolyData:
        """The mesh in the frame's local float32 coordinates; cell data ``feature_array`` maps cells to rows."""

    @abstractmethod
    def build_style(self, mesh: pv.PolyData, data: gpd.GeoDataFrame) -> LayerStyle:
        """Colours for the mesh's cells and the legend."""

    def visual(self, frame: Frame) -> LayerVisual:
        """Geometry (cached per frame until a geometry change) with the current style."""
        data = self.data() if self.visual_uses_data else _NO_DATA
        if self._geometry is None or self._geometry[0] != frame or self._geometry[1] != self._geometry_version:
            mesh = self.build_geometry(frame, data)
            frame.attach(mesh)
            self._geometry = (frame, self._geometry_version, mesh)
        mesh = self._geometry[2]
        style = self.build_style(mesh, data)
        if self.where:
            style.hidden = self.hidden_cells(mesh)
        return LayerVisual(
            layer_id=self.id,
            mesh=mesh,
            style=style,
            visible=self.visible,
            opacity=self.opacity,
            geometry_version=self._geometry_version,
            style_version=self._style_version,
            points_version=self._points_version,
            **self.visual_options(),
        )

    def built_geometry(self, frame: Frame) -> pv.PolyData | None:
        """The mesh :meth:`visual` built for ``frame`` and still uses (None before a build, after a geometry change or for another frame)."""
        if self._geometry is None or self._geometry[0] != frame or self._geometry[1] != self._geometry_version:
            return None
        return self._geometry[2]

    def use_geometry(self, frame: Frame, mesh: pv.PolyData) -> None:
        """Take ``mesh`` as the geometry for ``frame``, as :meth:`build_geometry` builds it from the current data and parameters
        (e.g. kept from an earlier run); the next :meth:`visual` styles it instead of building one."""
        frame.attach(mesh)
        self._geometry = (frame, self._geometry_version, mesh)

    def visual_options(self) -> dict[str, Any]:
        """Extra :class:`LayerVisual` fields (line width, lighting, ...) for this layer type."""
        return {}

    def hidden_cells(self, mesh: pv.PolyData) -> NDArray[np.bool_]:
        """Per cell of ``mesh``: True where its feature fails :attr:`where` (raises LayerDataError naming the layer and column)."""
        shown = rows_where(self.data(), self.where, layer=self.id)
        if self.feature_array not in mesh.cell_data:
            raise LayerDataError(f"layer {self.id!r} ({self.type_name}) cannot be filtered: its cells do not map to features")
        rows = np.asarray(mesh.cell_data[self.feature_array], dtype=np.int64)
        inside = (rows >= 0) & (rows < len(shown))
        return ~np.where(inside, shown[np.clip(rows, 0, max(len(shown) - 1, 0))] if len(shown) else False, False)

    def title_for(self, lang: str) -> str:
        """The title in ``lang`` (``zh_CN``, ``en``): the exact language, else one of the same base language, else :attr:`title`."""
        if lang in self.titles:
            return self.titles[lang]
        base = lang.split("_")[0].split("-")[0].lower()
        return next((t for code, t in self.titles.items() if code.split("_")[0].split("-")[0].lower() == base), self.title)

    def own_texts(self) -> Mapping[str, Mapping[str, str]]:
        """Texts this layer writes into its data (:meth:`data`, snapshots) in its first language that it also has in
        others: that text → ``{lang: text}`` (an H3 layer's level names given per language). Empty for most layers;
        the app shows such values in the page's language (pick card, alert places)."""
        return {}

    def triangle_count(self) -> int:
        """Triangles of the built mesh (0 before the first draw); views choose remote rendering above a budget.

        Meshes made of triangle strips record their count as field data ``n_triangles``.
        """
        if self._geometry is None:
            return 0
        mesh = self._geometry[2]
        if "n_triangles" in mesh.field_data:
            return int(np.asarray(mesh.field_data["n_triangles"]).ravel()[0])
        return int(mesh.n_cells)

    def pick(self, frame: Frame, cell_id: int, point: NDArray[np.floating] | None = None) -> dict[str, Any]:
        """Attributes of the feature under a picked cell, with the picked point's lon/lat."""
        if self._geometry is None:
            raise LayerDataError(f"layer {self.id!r} has not been drawn yet")
        mesh = self._geometry[2]
        if not 0 <= cell_id < mesh.n_cells:
            raise LayerDataError(f"layer {self.id!r} has no cell {cell_id}")
        row = int(mesh.cell_data[self.feature_array][cell_id])
        record = self.data().iloc[row].drop(labels="geometry").to_dict()
        result: dict[str, Any] = {"layer": self.id, "feature": row, "attributes": record}
        if point is not None:
            lon, lat, z = frame.local_to_lonlat(np.asarray(point, dtype=np.float64))
            result.update(lon=float(lon[0]), lat=float(lat[0]), z=float(z[0]))
        return result

    # -- scene files ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The scene-file form of this layer (defaults left out)."""
        out: dict[str, Any] = {"id": self.id, "type": self.type_name}
        if self.titles:
            out["title"] = dict(self.titles)
        elif self.title != self.id:
            out["title"] = self.title
        if self.where:
            out["where"] = _WHERE.dump_python(self.where, mode="json", exclude_none=True)
        if not self.visible:
            out["visible"] = False
        if self.opacity != 1.0:
            out["opacity"] = self.opacity
        if self.source is not None:
            out["source"] = self.source.to_dict()
        out.update(self.params.model_dump(mode="json", exclude_defaults=True))
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.id!r} type={self.type_name!r}>"



_WHERE: TypeAdapter[Where] = TypeAdapter(Where)


def _where(layer_id: str, where: Where | Mapping[str, Any] | None) -> Where | None:
    """A validated filter (None or ``{}`` for none); raises LayerDataError naming the layer."""
    if not where:
        return None
    if not isinstance(where, Mapping):
        raise LayerDataError(f"layer {layer_id!r}: filter where must be a mapping {{column: [values] or {{min, max}}}}, got {type(where).__name__}")
    try:
        return _WHERE.validate_python(dict(where))
    except ValidationError as exc:
        problems = exc.errors(include_url=False)
    # of the two forms a rule may take, report the problem of the one the input looks like
    first = next((e for e in problems if _range_branch(e["loc"]) == isinstance(where.get(str(e["loc"][0])), Mapping)), problems[0])
    key = ".".join(str(p) for p in first["loc"] if not str(p).startswith("list[") and not _range_branch((p,)))
    message = str(first["msg"]).removeprefix("Value error, ")
    raise LayerDataError(f"layer {layer_id!r}: filter where.{key}: {message}") from None


def _range_branch(loc: tuple[Any, ...]) -> bool:
    """Whether a pydantic error location passes through the ValueRange form of a filter rule."""
    return any("ValueRange" in str(part) for part in loc)


def _titles(layer_id: str, title: str | Mapping[str, str] | None) -> dict[str, str]:
    """Titles per language from ``{lang: title}`` (empty for a plain title); raises LayerDataError for an empty one."""
    if not isinstance(title, Mapping):
        return {}
    titles = {str(k): str(v) for k, v in title.items()}
    if not titles or any(not k.strip() or not v.strip() for k, v in titles.items()):
        raise LayerDataError(f"layer {layer_id!r}: title per language needs at least one language and no empty title, got {dict(title)!r}")
    return titles
