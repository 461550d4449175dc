"""Live H3 layer: point readings aggregated per H3 cell over a sliding time window.

Cells are drawn as flat hexagons draped on the ground or as prisms whose height follows the
value, coloured by a colormap or by named threshold levels (e.g. 正常 / 较高 / 高风险). A tick
with new readings over the same cells only rewrites heights and colours (the mesh's topology,
and so its connectivity arrays, stay as they are); new cells append to the mesh without
recomputing the others. Cells with no readings left in the window fade (for ``fade``) or
disappear, as configured. Setting the scene time to a past moment shows that window (replay).

With an ``h3_aggregate`` source (a file ``twin aggregate`` wrote, see :mod:`twin_layers.aggregate_source`)
the layer shows precomputed windows instead: at scene time ``T`` the window ending at or before ``T`` on
the epoch grid; cells with readings in the windows of the ``fade`` span before it fade.

Scene file::

    - id: crowd
      type: h3
      source: {type: crowd_sim}
      resolution: 9
      aggregate: count
      window: 5m
      levels:   # a label may be given per language: {at: 0, label: {zh_CN: 正常, en: normal}, color: ...}
        - {at: 0, label: 正常, color: "#2ecc71"}
        - {at: 150, label: 较高, color: "#ffb300"}
        - {at: 300, label: 高风险, color: "#ff3b30"}
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyvista as pv
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from twin import h3
from twin.alerts.rules import parse_duration
from twin.errors import LayerDataError, SourceError, TwinError
from twin.geo.frame import Frame
from twin.layer import LayerStyle, LayerVisual
from twin.live import LiveSnapshot
from twin.live_layer import ReadingsLayer, ReadingsParams
from twin.mesh.cell_blocks import CellBlocks, CellState
from twin.readings import ReadingsBuffer
from twin.style import Legend, LegendEntry, LocalText, continuous_colors, rows_where, text_in, to_rgba8, validate_color, validate_colormap

if TYPE_CHECKING:
    from twin.aggregate import AggregateFile

__all__ = ["H3Layer", "Level"]

log = logging.getLogger(__name__)

ACTIVE, FADED, HIDDEN = 0, 1, 2
_WINDOW_KEYS = ("window", "aggregate", "expired", "fade", "show_above")


class Level(BaseModel):
    """A named level: values >= ``at`` (up to the next level) take this label and colour."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    at: float
    label: LocalText = Field(description="the level's name, or one per language: {zh_CN: 高风险, en: high}")
    color: str

    def entry(self) -> LegendEntry:
        """The legend entry ``label ≥ at``, per language when the label is given per language."""
        at = f" ≥ {self.at:g}"
        labels = {lang: text + at for lang, text in self.label.items()} if isinstance(self.label, dict) else {}
        return LegendEntry(text_in(self.label) + at, to_rgba8(self.color), labels)

    _color = field_validator("color")(classmethod(lambda cls, v: validate_color(v)))


class H3Params(ReadingsParams):
    history: dt.timedelta = Field(dt.timedelta(hours=1), description="how much history to keep for replay, e.g. 2h")
    resolution: int = Field(9, ge=7, le=12, description="H3 resolution (7 coarse ... 12 fine)")
    aggregate: Literal["count", "sum", "mean", "max"] = Field("count", description="how readings in a cell combine")
    window: dt.timedelta = Field(dt.timedelta(minutes=5), description="sliding time window, e.g. 5m")
    shape: Literal["flat", "prism"] = Field("prism", description="flat hexagons on the ground, or prisms with height by value")
    height_scale: float = Field(1.0, gt=0, description="prism height in metres per unit of value")
    max_height: float = Field(600.0, gt=0, description="cap on prism height in metres")
    colormap: str = Field("YlOrRd", description="colormap when no levels are given")
    clim: tuple[float, float] | None = Field(None, description="value range of the colormap (default: data 2-98 %)")
    levels: list[Level] | None = Field(None, description="threshold levels, ascending by 'at', each with a label and colour")
    expired: Literal["fade", "hide"] = Field("fade", description="cells with no readings left in the window: fade, or disappear")
    fade: dt.timedelta = Field(dt.timedelta(minutes=10), description="how long an expired cell stays faded before it disappears")
    faded_color: str = Field("#59606b", description="colour of faded cells")
    elevation: float = Field(0.5, description="height of the cells' base above the ground in metres")
    show_above: float | None = Field(None, description="draw only cells whose value reaches this (keeps quiet areas clear)")

    _window_durations = field_validator("history", "window", "fade", mode="before")(classmethod(lambda cls, v: parse_duration(v)))
    _cmap = field_validator("colormap")(classmethod(lambda cls, v: validate_colormap(v)))
    _faded = field_validator("faded_color")(classmethod(lambda cls, v: validate_color(v)))

    @model_validator(mode="after")
    def _ascending(self) -> H3Params:
        if self.levels is not None:
            if not self.levels:
                raise ValueError("levels, when given, needs at least one level")
            ats = [level.at for level in self.levels]
            if ats != sorted(ats) or len(set(ats)) != len(ats):
                raise ValueError(f"levels must be in ascending order of 'at', got {ats}")
        return self


@dataclass(frozen=True)
class _CellParts:
    """Mesh arrays for a run of cells, kept so that new cells only append."""

    points: np.ndarray
    is_top: np.ndarray
    point_cell: np.ndarray
    triangles: np.ndarray
    triangle_cell: np.ndarray
    centers: np.ndarray

    @property
    def n_cells(self) -> int:
        return len(self.centers)

    def extend(self, more: _CellParts) -> _CellParts:
        return _CellParts(*(np.concatenate([a, b]) for a, b in zip(self._arrays(), more._arrays())))

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (self.points, self.is_top, self.point_cell, self.triangles, self.triangle_cell, self.centers)


class H3Layer(ReadingsLayer):
    """Readings aggregated per H3 cell in a sliding window, as hexagons or prisms, with levels."""

    type_name = "h3"
    Params = H3Params
    params: H3Params
    geometry_keys = frozenset({"resolution", "shape", "elevation"})
    feature_array = "cell_row"
    visual_uses_data = False  # the cells table is assembled only when asked for (picking, notebooks)

    def __init__(self, id: str, **kwargs: Any) -> None:
        super().__init__(id, **kwargs)
        self.buffer = ReadingsBuffer(self.params.history, derive=self._derive)
        self._reset_cells()
        source = self._aggregate_source()
        if source is not None and source.resolved_path.exists():
            self._aggregate()  # a file at another resolution or window is a scene error

    def _aggregate_source(self) -> Any:
        """The ``h3_aggregate`` source, or None for a source of readings."""
        from twin_layers.aggregate_source import H3AggregateSource

        return self.source if isinstance(self.source, H3AggregateSource) else None

    def _aggregate(self) -> AggregateFile:
        """The aggregate file; raises AggregateError (unreadable) or LayerDataError (another resolution or window)."""
        agg = self._aggregate_source().file()
        p = self.params
        if (agg.resolution, agg.window) != (p.resolution, p.window):
            raise LayerDataError(
                f"layer {self.id!r}: resolution {p.resolution}, window {p.window} but {agg.path} holds resolution {agg.resolution}, window {agg.window}"
            )
        return agg

    def _derive(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Each reading's row in :attr:`cells` (new cells are registered here, once per reading)."""
        return self._register(h3.points_to_cells(lon, lat, self.params.resolution))

    def _register(self, cells: np.ndarray) -> np.ndarray:
        """Each cell's row in :attr:`cells` (uint64 H3 ids in, int64 rows out); new cells are appended."""
        keys = cells.view(np.int64)
        idx = self._index.get_indexer(keys)
        if (idx < 0).any():
            new = pd.unique(keys[idx < 0])
            self.cells = np.concatenate([self.cells, new.view(np.uint64)])
            self.cell_keys = np.concatenate([self.cell_keys, np.array([f"{c:x}" for c in new.view(np.uint64)], dtype=object)])
            self._index = pd.Index(self.cells.view(np.int64))
            self.values = np.concatenate([self.values, np.full(len(new), np.nan)])
            self.state = np.concatenate([self.state, np.full(len(new), HIDDEN, dtype=np.int8)])
            idx = self._index.get_indexer(keys)
        return idx.astype(np.int64)

    def cell_lonlat(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre lon and lat (WGS84 degrees, float64, one per cell of :attr:`cells`), computed once per cell: cells are only
        ever appended (or all reset), so a tick finds them ready (alert rules read them each tick)."""
        lon, lat = self._centres
        if len(lon) < len(self.cells):
            more_lon, more_lat = h3.cell_centers(self.cells[len(lon) :])
            self._centres = (np.concatenate([lon, more_lon]), np.concatenate([lat, more_lat]))
        return self._centres

    def _reset_cells(self) -> None:
        self.cells = np.zeros(0, dtype=np.uint64)
        """Cells in geometry order (the order they first appeared)."""
        self.cell_keys = np.zeros(0, dtype=object)
        """The cells' H3 ids as hex strings (formatted once, when a cell first appears)."""
        self._index = pd.Index(np.zeros(0, dtype=np.int64))
        self._centres: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
        self.values = np.zeros(0, dtype=np.float64)
        self.state = np.zeros(0, dtype=np.int8)
        self._span: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        self._last_time: np.ndarray | None = None
        self._template: np.ndarray | None = None
        self._built_cells = -1
        self._parts: tuple[tuple[Any, ...], _CellParts] | None = None
        self._blocks: CellBlocks | None = None

    def update(self, **changes: Any) -> None:
        """Change parameters; a new window, aggregate or fade re-aggregates the readings kept (same cells: no new mesh)."""
        old_res = self.params.resolution
        old_span = tuple(getattr(self.params, k) for k in _WINDOW_KEYS)
        super().update(**changes)
        if self.params.resolution == old_res and old_span != tuple(getattr(self.params, k) for k in _WINDOW_KEYS) and self.now is not None:
            self.set_time(self.now)
        if self.params.resolution != old_res:  # re-bin the history at the new resolution
            frame = self.buffer.data
            self._reset_cells()
            self.buffer = ReadingsBuffer(self.params.history, derive=self._derive)
            if len(frame) and self.now is not None:
                self.buffer.ingest(frame, self.now)
            if self.now is not None:
                self.set_time(self.now)

    # -- aggregation ---------------------------------------------------------------------
    def set_time(self, now: dt.datetime) -> None:
        """Aggregate the window ending at ``now``; rewrite heights/colours in place when no cell is new."""
        if now.tzinfo is None:
            raise ValueError(f"layer {self.id!r}: scene time must be timezone-aware")
        self.now = now
        if self._aggregate_source() is not None:
            self._show_aggregate(now)
            return
        p = self.params
        span = p.window + (p.fade if p.expired == "fade" else dt.timedelta(0))
        rows = self.buffer.window_slice(now, span)
        idx = self.buffer.column("k")[rows]  # row of each reading's cell, found once at ingest
        times = self.buffer.column("t")[rows]
        values = self.buffer.column("v")[rows]
        n = len(self.cells)
        first = int(np.searchsorted(times, int(pd.Timestamp(now).value - p.window.total_seconds() * 1e9), side="right"))
        wi, wv = idx[first:], values[first:]  # readings are in time order: the window is a tail
        count = np.bincount(wi, minlength=n).astype(np.float64)
        if p.aggregate == "count":
            agg = count
        elif p.aggregate in ("sum", "mean"):
            agg = np.bincount(wi, weights=wv, minlength=n)
            if p.aggregate == "mean":
                with np.errstate(invalid="ignore", divide="ignore"):
                    agg = agg / count
        else:
            agg = np.full(n, -np.inf)
            np.maximum.at(agg, wi, wv)
        self._show(np.where(count > 0, agg, np.nan), count, idx, times)

    def _show_aggregate(self, now: dt.datetime) -> None:
        """Show the aggregate's window ending at or before ``now`` (and fade the cells of the fade span before it).

        A file that cannot be read keeps what is shown and records the error in :attr:`health`.
        """
        p = self.params
        try:
            agg = self._aggregate()
            end = agg.shown_end(now)
            rows = agg.windows(end - (p.fade if p.expired == "fade" else dt.timedelta(0)), end)
        except TwinError as exc:
            self.health.error = str(exc)
            log.warning("layer %s: %s", self.id, exc)
            return
        idx = self._register(rows["cell"].to_numpy(dtype=np.uint64))
        times = rows["window_end"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        current = times == end.value
        count = np.bincount(idx[current], weights=rows["count"].to_numpy(dtype=np.float64)[current], minlength=len(self.cells))
        values = np.full(len(self.cells), np.nan)
        values[idx[current]] = rows[p.aggregate].to_numpy(dtype=np.float64)[current]
        self._show(values, count, idx, times)

    def _show(self, values: np.ndarray, count: np.ndarray, idx: np.ndarray, times: np.ndarray) -> None:
        """Cells' values and states from a window (``count`` readings a cell, NaN values without) and the fade span
        (``idx``/``times``: cell row and ns time of each reading or window in it); update the mesh."""
        p = self.params
        n = len(self.cells)
        previous_state = self.state
        self.values = values
        self._span = (idx, times)
        self._last_time = None
        state = np.full(n, HIDDEN, dtype=np.int8)
        state[np.bincount(idx, minlength=n) > 0] = FADED if p.expired == "fade" else HIDDEN
        state[count > 0] = ACTIVE
        if p.show_above is not None:
            state[(count > 0) & ~(self.values >= p.show_above)] = HIDDEN
        self.state = state
        if self._geometry is None or self._built_cells != n:
            self.invalidate()  # new cells: a new mesh (built from arrays; cheap next to the boundaries)
        else:
            self._write_points(self._geometry[2], previous_state)
            self.invalidate(geometry=False)
            self.touch_points()

    def refresh(self, now: dt.datetime) -> None:
        """Poll the source; an aggregate is only checked (readable, same resolution and window) and its newest window noted."""
        if self._aggregate_source() is None:
            super().refresh(now)
            return
        self.health.last_poll = now
        try:
            newest = self._aggregate().newest_end(now)
        except TwinError as exc:
            self.health.last_error, self.health.error = now, str(exc)
            log.warning("layer %s: poll failed: %s", self.id, exc)
            return
        self.health.last_success, self.health.error = now, None
        self.health.newest_reading = None if newest is None else newest.to_pydatetime()

    def newest_reading(self, at: dt.datetime | None = None) -> dt.datetime | None:
        """As for readings; for an aggregate, the end of its newest window with readings (at or before ``at``)."""
        if self._aggregate_source() is None:
            return super().newest_reading(at)
        try:
            newest = self._aggregate().newest_end(at)
        except TwinError:
            return None  # refresh records the error
        return None if newest is None else newest.to_pydatetime()

    @property
    def last_time(self) -> np.ndarray:
        """Time (ns since the epoch, UTC) of each cell's latest reading in the window and fade span; int64 min if none."""
        if self._last_time is None or len(self._last_time) != len(self.cells):
            idx, times = self._span
            last = np.full(len(self.cells), np.iinfo(np.int64).min, dtype=np.int64)
            np.maximum.at(last, idx, times)
            self._last_time = last
        return self._last_time

    # -- geometry ------------------------------------------------------------------------
    def visual(self, frame: Frame) -> LayerVisual:
        """As :meth:`Layer.visual`; with no cells because the source has never delivered, that failure is the layer's error."""
        if not len(self.cells) and self.health.last_success is None and self.health.error is not None:
            raise SourceError(self.health.error)
        return super().visual(frame)

    def build_geometry(self, frame: Frame, data: gpd.GeoDataFrame) -> pv.PolyData:
        key = (frame, self.params.shape, self.params.elevation)
        cached = self._parts
        if cached is not None and cached[0] == key and cached[1].n_cells <= len(self.cells):
            parts = cached[1]
            if parts.n_cells < len(self.cells):  # only the new cells' boundaries are computed and projected
                parts = parts.extend(self._cells_geometry(self.cells[parts.n_cells :], frame, parts.n_cells, len(parts.points)))
        else:
            parts = self._cells_geometry(self.cells, frame, 0, 0)
        self._parts = (key, parts)
        mesh = pv.PolyData.from_regular_faces(parts.points.copy(), parts.triangles) if len(parts.triangles) else pv.PolyData(parts.points.copy())
        mesh.cell_data["cell_row"] = parts.triangle_cell
        self._template = parts.points
        self._template_cell = parts.point_cell
        self._template_top = parts.is_top
        self._centers = parts.centers
        self._top_index = np.flatnonzero(parts.is_top)
        self._top_cell = parts.point_cell[self._top_index]
        self._built_cells = len(self.cells)
        counts = np.bincount(parts.point_cell, minlength=len(self.cells))
        self._blocks = CellBlocks(counts=counts, top_from=counts - np.bincount(parts.point_cell[parts.is_top], minlength=len(self.cells)),
                                  template=parts.points, base_z=float(self.params.elevation))
        self._write_points(mesh)
        return mesh

    def _cells_geometry(self, cells: np.ndarray, frame: Frame, first_row: int, first_point: int) -> _CellParts:
        """Points and triangles of ``cells`` (rows from ``first_row``, point ids from ``first_point``)."""
        if not len(cells):  # no readings yet (or none usable): an empty mesh draws nothing
            return _CellParts(np.zeros((0, 3), np.float32), np.zeros(0, bool), np.zeros(0, np.int32),
                              np.zeros((0, 3), np.int64), np.zeros(0, np.int32), np.zeros((0, 2), np.float32))
        verts, counts = h3.cells_to_boundaries(cells)
        prism = self.params.shape == "prism"
        per = counts * (2 if prism else 1) + 1  # ring(s) + centre
        start = np.concatenate([[0], np.cumsum(per)[:-1]]).astype(np.int64)
        valid = ~np.isnan(verts[:, :, 0])
        ring_local = frame.lonlat_to_local(verts[valid][:, 0], verts[valid][:, 1])[:, :2]
        ring_cell = np.repeat(np.arange(len(cells)), counts)
        ring_k = np.arange(len(ring_cell)) - np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        centers = np.zeros((len(cells), 2), dtype=np.float64)
        if len(cells):
            np.add.at(centers, ring_cell, ring_local)
            centers /= np.maximum(counts, 1)[:, None]
        pts = np.zeros((int(per.sum()), 3), dtype=np.float32)
        is_top = np.zeros(len(pts), dtype=bool)
        bottom = start[ring_cell] + ring_k
        pts[bottom, :2] = ring_local
        if prism:
            top = bottom + counts[ring_cell]
            pts[top, :2] = ring_local
            is_top[top] = True
        centre = start + per - 1
        pts[centre, :2] = centers
        is_top[centre] = True
        pts[:, 2] = self.params.elevation
        # triangles: roof fan, then walls (outward: H3 rings run counter-clockwise)
        m = counts[ring_cell]
        k1 = np.where(ring_k + 1 == m, 0, ring_k + 1)
        roof_ring = start[ring_cell] + (m if prism else 0)
        tris = [np.column_stack([centre[ring_cell], roof_ring + ring_k, roof_ring + k1])]
        tri_cell = [ring_cell]
        if prism:
            b0, b1 = start[ring_cell] + ring_k, start[ring_cell] + k1
            tris += [np.column_stack([b0, b1, b1 + m]), np.column_stack([b0, b1 + m, b0 + m])]
            tri_cell += [ring_cell, ring_cell]
        return _CellParts(
            points=pts,
            is_top=is_top,
            point_cell=(np.repeat(np.arange(len(cells)), per) + first_row).astype(np.int32),
            triangles=(np.concatenate(tris) + first_point).astype(np.int64),
            triangle_cell=(np.concatenate(tri_cell) + first_row).astype(np.int32),
            centers=centers.astype(np.float32),
        )

    def _heights(self) -> np.ndarray:
        if self.params.shape == "flat":
            return np.zeros(len(self.cells))
        h = np.nan_to_num(self.values, nan=0.0) * self.params.height_scale
        return np.clip(np.where(self.state == ACTIVE, h, 0.0), 0.0, self.params.max_height)

    def _write_points(self, mesh: pv.PolyData, previous_state: np.ndarray | None = None) -> None:
        """Heights and visibility into the mesh's points, in place (topology unchanged).

        Only the z of top vertices is rewritten, and x/y only for cells that were shown or
        hidden since the last write.
        """
        if self._template is None or len(self._template) != mesh.n_points:
            return
        points = mesh.points
        if previous_state is None or len(previous_state) != len(self.state):
            changed = np.ones(len(self.state), dtype=bool)
        else:
            changed = (previous_state == HIDDEN) != (self.state == HIDDEN)
        if changed.any():
            moved = changed[self._template_cell]
            points[moved, :2] = self._template[moved, :2]
            hidden = moved & (self.state == HIDDEN)[self._template_cell]
            points[hidden, :2] = self._centers[self._template_cell[hidden]]  # zero-area triangles draw nothing
        top = self._top_index
        points[top, 2] = self._template[top, 2] + self._heights()[self._top_cell].astype(np.float32)
        mesh.GetPoints().Modified()

    # -- style ---------------------------------------------------------------------------
    def cell_colors(self) -> tuple[np.ndarray, Legend]:
        """RGBA per cell and the legend."""
        p = self.params
        title = f"{p.aggregate} / {p.window.total_seconds() / 60:g} min"
        if p.levels:
            lut = np.array([to_rgba8(level.color) for level in p.levels], dtype=np.uint8)
            which = np.searchsorted([level.at for level in p.levels], np.nan_to_num(self.values, nan=-np.inf), side="right") - 1
            colors = lut[np.clip(which, 0, len(lut) - 1)]
            colors[which < 0] = lut[0]
            legend = Legend(title=title, entries=tuple(level.entry() for level in p.levels))
        else:
            colors, legend = continuous_colors(self.values, colormap=p.colormap, clim=p.clim, title=title)
        colors[self.state == FADED] = to_rgba8(p.faded_color)
        return colors, legend

    def level_names(self) -> np.ndarray:
        """The level label of each cell ('' without levels or data)."""
        if not self.params.levels:
            return np.full(len(self.cells), "", dtype=object)
        labels = np.array([text_in(level.label) for level in self.params.levels], dtype=object)
        which = np.searchsorted([level.at for level in self.params.levels], np.nan_to_num(self.values, nan=-np.inf), side="right") - 1
        return np.where((which >= 0) & np.isfinite(self.values), labels[np.clip(which, 0, None)], "")

    def own_texts(self) -> dict[str, dict[str, str]]:
        """The level names given per language: the name in :meth:`level_names` (the first language) → the name per language."""
        return {text_in(level.label): dict(level.label) for level in self.params.levels or () if isinstance(level.label, dict)}

    def build_style(self, mesh: pv.PolyData, data: gpd.GeoDataFrame) -> LayerStyle:
        colors, legend = self.cell_colors()
        return LayerStyle(colors=None, feature_colors=colors, feature_index="cell_row", legend=legend)

    # -- data, picking, alerts -----------------------------------------------------------
    def data(self) -> gpd.GeoDataFrame:
        """The current cells: id, value, level, state, last reading time, with centre points."""
        lon, lat = self.cell_lonlat()
        return gpd.GeoDataFrame(
            {
                "cell": self.cell_keys,
                "value": self.values,
                "level": self.level_names(),
                "state": np.array(["active", "faded", "hidden"], dtype=object)[self.state] if len(self.state) else np.zeros(0, dtype=object),
                "last_reading": pd.to_datetime(self.last_time, utc=True),  # NaT (int64 min) for a cell without a reading
            },
            geometry=gpd.points_from_xy(lon, lat),
            crs="EPSG:4326",
        )

    def extent(self) -> tuple[float, float, float, float] | None:
        if self._aggregate_source() is not None and len(self.cells):
            lon, lat = self.cell_lonlat()
            return (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
        if not len(self.buffer):
            return None
        lon, lat = self.buffer.column("lon"), self.buffer.column("lat")
        return (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))

    def snapshot(self, now: dt.datetime) -> LiveSnapshot:
        if self.now != now:
            self.set_time(now)
        active = self.state == ACTIVE
        lon, lat = self.cell_lonlat()
        table = pd.DataFrame(
            {"value": self.values[active], "lon": lon[active], "lat": lat[active], "time": pd.to_datetime(self.last_time[active], utc=True), "name": self.level_names()[active]},
            index=pd.Index(self.cell_keys[active], dtype=object),
        )
        return LiveSnapshot(self.id, table, self.newest_reading(now))

    def cell_state(self) -> CellState:
        """Per cell, as drawn now: height above the base (m), hidden or not (gone, or left out by the filter ``where``), RGBA colour."""
        hidden = self.state == HIDDEN
        if self.where:
            hidden = hidden | ~rows_where(self.data(), self.where, layer=self.id)  # one data row per cell, in cell order
        return CellState(heights=self._heights(), hidden=hidden, colors=self.cell_colors()[0])

    def visual_options(self) -> dict[str, Any]:
        """Lighting for prisms; ``meta``: the mesh's per-cell point blocks and a reader of the cells' state
        (a browser-side view applies a tick from one height, flag and colour per cell)."""
        meta = {"cell_blocks": self._blocks, "cell_state": self.cell_state} if self._blocks is not None else {}
        return {"lighting": self.params.shape == "prism", "meta": meta}
