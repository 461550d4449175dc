"""Flood points: water-depth gauges drawn as columns, coloured by level, with labels.

Columns rise in proportion to depth and take the level's colour (defaults: normal < 15 cm ≤
warning < 20 cm ≤ alarm). A gauge silent for longer than ``stale_after`` is drawn grey and
labelled with the stale level's label ("无数据", no data) — never as 0 cm. Hidden-danger points (historic hot spots) get a
distinct purple base marker. Negative depths are dropped and counted.

Scene file::

    - id: flood
      type: flood_points
      source: {type: flood_sim}
      stations: {type: demo, dataset: flood_points}
      warning: 15
      alarm: 20
      level_labels: {alarm: {zh_CN: 报警, en: alarm}}   # legend text per level, one string or one per language

The legend's title and level labels are given per language (zh_CN, en); the app shows them in the page's
language, the 3D labels and rendered images in the first (default) language.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyvista as pv
from pydantic import Field, field_validator, model_validator

from twin.errors import LayerDataError
from twin.geo.frame import Frame
from twin.layer import Label, LayerStyle
from twin.live import LiveSnapshot
from twin.live_layer import ReadingsLayer, ReadingsParams
from twin.mesh.prisms import regular_prisms
from twin.plugins import build_source
from twin.source import Source
from twin.style import Legend, LegendEntry, LocalText, text_in, to_rgba8, validate_color

__all__ = ["FloodPointsLayer"]

LEVELS = ("normal", "warning", "alarm", "stale")
DEPTH_TITLE = {"zh_CN": "积水深度 ≥{warning}/{alarm} cm", "en": "water depth ≥{warning}/{alarm} cm"}
"""The legend's title per language ({warning} and {alarm}: the levels' depths in cm)."""


class FloodParams(ReadingsParams):
    stations: dict[str, Any] | None = Field(None, description="source of the monitoring points: {type: ..., ...}; default: the gauges seen in the readings")
    id_column: str = Field("id", description="station column matching the readings' sensor_id")
    name_column: str = Field("name", description="station column with the point's name")
    hidden_column: str = Field("hidden_danger", description="station column flagging hidden-danger points")
    warning: float = Field(15.0, ge=0, description="depth (cm) from which a point is at warning level")
    alarm: float = Field(20.0, ge=0, description="depth (cm) from which a point is at alarm level")
    colors: dict[str, str] = Field(
        {"normal": "#34c759", "warning": "#ffb300", "alarm": "#ff3b30", "stale": "#8e8e93", "hidden_danger": "#b04cff"},
        description="colour of each level (normal, warning, alarm, stale) and of hidden-danger markers",
    )
    level_labels: dict[str, LocalText] = Field(
        {"normal": {"zh_CN": "正常", "en": "normal"}, "warning": {"zh_CN": "预警", "en": "warning"}, "alarm": {"zh_CN": "报警", "en": "alarm"},
         "stale": {"zh_CN": "无数据", "en": "no data"}, "hidden_danger": {"zh_CN": "隐患点", "en": "hidden danger"}},
        description="legend text of each level (normal, warning, alarm, stale, hidden_danger), or one per language: {zh_CN: 报警, en: alarm}",
    )
    height_per_cm: float = Field(6.0, gt=0, description="column height in metres per cm of water")
    radius: float = Field(20.0, gt=0, description="column radius in metres")
    labels: Literal["all", "alerting", "none"] = Field(
        "alerting", description="label points with name and depth: all, only those at warning/alarm/no data, or none"
    )

    @field_validator("colors")
    @classmethod
    def _colors(cls, value: dict[str, str]) -> dict[str, str]:
        _known_levels(value)
        for colour in value.values():
            validate_color(colour)
        return value

    _labels = field_validator("level_labels")(classmethod(lambda cls, value: _known_levels(value)))

    @model_validator(mode="after")
    def _ordered(self) -> FloodParams:
        if self.warning > self.alarm:
            raise ValueError(f"warning ({self.warning} cm) must not be above alarm ({self.alarm} cm)")
        return self


def _known_levels(value: dict[str, Any]) -> dict[str, Any]:
    """Pydantic-friendly check that ``value``'s keys are levels (or ``hidden_danger``); returns it unchanged."""
    unknown = set(value) - {*LEVELS, "hidden_danger"}
    if unknown:
        raise ValueError(f"unknown level(s) {', '.join(sorted(unknown))}; levels: {', '.join(LEVELS)}, hidden_danger")
    return value


class FloodPointsLayer(ReadingsLayer):
    """Water-depth gauges as columns coloured by level (normal / warning / alarm / no data)."""

    type_name = "flood_points"
    Params = FloodParams
    params: FloodParams
    min_value = 0.0  # negative depths are sensor faults: dropped and counted

    def __init__(self, id: str, **kwargs: Any) -> None:
        super().__init__(id, **kwargs)
        self._stations = None if self.params.stations is None else build_source(self.params.stations)
        self._station_data: gpd.GeoDataFrame | None = None

    def nested_sources(self) -> list[Source]:
        return [] if self._stations is None else [self._stations]

    # -- data ----------------------------------------------------------------------------
    def data(self) -> gpd.GeoDataFrame:
        """The monitoring points (static attributes), one row per point."""
        if self._station_data is None:
            if self._stations is not None:
                stations = self._stations.read()
                if self.params.id_column not in stations.columns:
                    raise LayerDataError(f"layer {self.id!r}: stations have no id column {self.params.id_column!r}")
                self._station_data = stations.reset_index(drop=True)
            else:
                latest = self.buffer.latest(self.now or dt.datetime.now(dt.timezone.utc))
                return gpd.GeoDataFrame(
                    {self.params.id_column: latest.index.astype(str)},
                    geometry=gpd.points_from_xy(latest["lon"], latest["lat"]),
                    crs="EPSG:4326",
                )
        return self._station_data

    def current(self) -> pd.DataFrame:
        """Per point (aligned with :meth:`data`): depth (NaN when stale), time of the last reading, level."""
        stations = self.data()
        keys = stations[self.params.id_column].astype(str).to_numpy()
        if self.now is None or len(self.buffer) == 0:
            latest = pd.DataFrame(columns=["value", "time"])
        else:
            latest = self.buffer.latest(self.now)
        depth = latest["value"].reindex(keys).to_numpy(dtype=np.float64)
        times = pd.to_datetime(latest["time"].reindex(keys), utc=True)
        if self.now is not None:
            stale = (times.isna() | (pd.Timestamp(self.now) - times > pd.Timedelta(self.params.stale_after))).to_numpy()
        else:
            stale = np.ones(len(keys), dtype=bool)
        depth = np.where(stale, np.nan, depth)
        level = np.select([stale, depth >= self.params.alarm, depth >= self.params.warning], ["stale", "alarm", "warning"], "normal")
        return pd.DataFrame({"depth": depth, "time": times.to_numpy(), "level": level}, index=keys)

    def snapshot(self, now: dt.datetime) -> LiveSnapshot:
        if self.now != now:
            self.set_time(now)
        stations = self.data()
        current = self.current()
        names = stations[self.params.name_column].astype(str).to_numpy() if self.params.name_column in stations.columns else current.index.to_numpy()
        table = pd.DataFrame(
            {"value": current["depth"].to_numpy(), "lon": stations.geometry.x.to_numpy(), "lat": stations.geometry.y.to_numpy(),
             "time": current["time"].to_numpy(), "name": names, "level": current["level"].to_numpy()},
            index=current.index,
        )
        return LiveSnapshot(self.id, table, self.newest_reading(now))

    def _hidden(self, stations: gpd.GeoDataFrame) -> np.ndarray:
        column = self.params.hidden_column
        if column not in stations.columns:
            return np.zeros(len(stations), dtype=bool)
        return stations[column].fillna(False).astype(bool).to_numpy()

    # -- drawing -------------------------------------------------------------------------
    def build_geometry(self, frame: Frame, data: gpd.GeoDataFrame) -> pv.PolyData:
        current = self.current()
        xyz = frame.lonlat_to_local(data.geometry.x.to_numpy(), data.geometry.y.to_numpy())
        depth = current["depth"].to_numpy()
        heights = np.where(np.isnan(depth), 2.0, np.maximum(depth * self.params.height_per_cm, 1.0))
        columns = regular_prisms(xyz[:, :2], radius=self.params.radius, heights=heights, base=0.5)
        hidden = np.flatnonzero(self._hidden(data))
        markers = regular_prisms(xyz[hidden, :2], radius=self.params.radius * 2.6, heights=np.full(len(hidden), 1.0), base=0.2, sides=4)
        columns.cell_data["feature_id"] = np.asarray(columns.cell_data["item"], dtype=np.int64)
        columns.cell_data["marker"] = np.zeros(columns.n_cells, dtype=np.uint8)
        markers.cell_data["feature_id"] = hidden[np.asarray(markers.cell_data["item"], dtype=np.int64)] if len(hidden) else np.zeros(0, dtype=np.int64)
        markers.cell_data["marker"] = np.ones(markers.n_cells, dtype=np.uint8)
        mesh = columns.merge(markers) if markers.n_cells else columns
        anchors = np.column_stack([xyz[:, 0], xyz[:, 1], heights + 0.5 + self.params.radius]).astype(np.float32)
        if len(anchors):  # pyvista refuses empty arrays; a layer with no stations yet (drawn before its first poll) has no labels
            mesh.field_data["label_anchor"] = anchors
        return mesh

    def build_style(self, mesh: pv.PolyData, data: gpd.GeoDataFrame) -> LayerStyle:
        p = self.params
        colors = {k: to_rgba8(v) for k, v in {**FloodParams.model_fields["colors"].default, **p.colors}.items()}
        labels_text = {**FloodParams.model_fields["level_labels"].default, **p.level_labels}
        current = self.current()
        level = current["level"].to_numpy()
        lut = np.array([colors[name] for name in LEVELS], dtype=np.uint8)
        index = {name: i for i, name in enumerate(LEVELS)}
        per_point = lut[np.array([index[name] for name in level], dtype=np.int64)] if len(level) else lut[:0]
        feature = np.asarray(mesh.cell_data["feature_id"], dtype=np.int64)
        cell_colors = per_point[feature] if len(feature) else np.zeros((0, 4), dtype=np.uint8)
        marker = np.asarray(mesh.cell_data["marker"], dtype=bool)
        cell_colors[marker] = colors["hidden_danger"]
        entries = tuple(LegendEntry.of(labels_text[name], colors[name]) for name in (*LEVELS, "hidden_danger"))
        titles = {lang: text.format(warning=f"{p.warning:g}", alarm=f"{p.alarm:g}") for lang, text in DEPTH_TITLE.items()}
        legend = Legend(title=text_in(titles), entries=entries, titles=titles)
        labels: tuple[Label, ...] = ()
        if p.labels != "none" and len(data):
            labels = self._labels(mesh, data, current, colors, text_in(labels_text["stale"]))
        return LayerStyle(colors=cell_colors, legend=legend, labels=labels)

    def _labels(self, mesh: pv.PolyData, data: gpd.GeoDataFrame, current: pd.DataFrame, colors: dict[str, tuple[int, int, int, int]],
                no_data: str) -> tuple[Label, ...]:
        """Name and depth above each point (``labels``: all, or those not at normal level); ``no_data``: the text of a stale point."""
        anchors = np.asarray(mesh.field_data["label_anchor"], dtype=np.float64).reshape(-1, 3)
        names = data[self.params.name_column].astype(str).to_numpy() if self.params.name_column in data.columns else current.index.to_numpy()
        out = []
        for anchor, name, depth, level in zip(anchors, names, current["depth"], current["level"]):
            if self.params.labels == "alerting" and level == "normal":
                continue
            text = f"{name} {no_data}" if level == "stale" else f"{name} {depth:.0f} cm"
            out.append(Label((float(anchor[0]), float(anchor[1]), float(anchor[2])), text, colors[level]))
        return tuple(out)
