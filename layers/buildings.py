"""Buildings layer: footprints extruded to one mesh, coloured, filtered and highlighted by attribute.

Scene file::

    - id: buildings
      type: buildings
      source: {type: demo, dataset: buildings}
      color_by: height
      colormap: YlGnBu
      filter: {kind: [tower, podium_tower], height: {min: 50}}
      highlight: [12, 40]

>>> import geopandas as gpd, shapely
>>> from twin.geo import Frame
>>> gdf = gpd.GeoDataFrame({"height": [30.0, 90.0], "kind": ["slab", "tower"]}, geometry=[
...     shapely.box(121.480, 31.230, 121.481, 31.231), shapely.box(121.482, 31.230, 121.4825, 31.2305)], crs="EPSG:4326")
>>> layer = BuildingsLayer("b", data=gdf, color_by="kind", filter={"height": {"min": 50}})
>>> visual = layer.visual(Frame.auto(121.48, 31.23))
>>> sorted(set(visual.mesh.cell_data["building_id"].tolist())), round(float(visual.mesh.points[:, 2].max()), 1)
([1], 90.0)
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyvista as pv
from pydantic import BaseModel, ConfigDict, Field, field_validator

from twin.errors import LayerDataError
from twin.geo.frame import Frame
from twin.layer import ColorByParams, Layer, LayerStyle
from twin.mesh.heights import parse_count, parse_length
from twin.style import to_rgba8, validate_color

__all__ = ["BuildingsLayer", "Range"]


class Range(BaseModel):
    """An inclusive numeric range for filters; either end may be open."""

    model_config = ConfigDict(extra="forbid")
    min: float | None = None
    max: float | None = None


class BuildingsParams(ColorByParams):
    height: str | None = Field("height", description="column with the building height in metres (numbers, or text with a unit: '12 m', '40 ft')")
    floors: str | None = Field("floors", description="column with the number of floors (used where height is missing)")
    floor_height: float = Field(3.0, gt=0, description="metres per floor")
    default_height: float = Field(10.0, gt=0, description="height where neither height nor floors is usable")
    base: str | None = Field(None, description="column with the height of the building's underside (podiums, bridges)")
    filter: dict[str, list[str | int | float | bool] | Range] | None = Field(
        None, description="keep only buildings whose attributes match: {column: [values]} or {column: {min, max}}"
    )
    color: str = Field("#c9d3df", description="colour of every building when color_by is not set")
    colormap: str = Field("YlGnBu", description="colormap for numeric color_by")
    highlight: list[int | str] = Field([], description="buildings to highlight: row numbers, or values of id_column")
    id_column: str | None = Field(None, description="column whose values highlight refers to (default: row numbers)")
    highlight_color: str = Field("#ffb300", description="colour of highlighted buildings")

    _highlight = field_validator("highlight_color")(classmethod(lambda cls, v: validate_color(v)))


class BuildingsLayer(Layer):
    """Extruded building footprints (one mesh for all), coloured by attribute, pickable."""

    type_name = "buildings"
    Params = BuildingsParams
    params: BuildingsParams
    geometry_keys = frozenset({"height", "floors", "floor_height", "default_height", "base", "filter"})
    feature_array = "building_id"

    def selected_rows(self, data: gpd.GeoDataFrame) -> np.ndarray:
        """Row positions that pass ``filter``."""
        keep = np.ones(len(data), dtype=bool)
        for column, rule in (self.params.filter or {}).items():
            if column not in data.columns:
                raise LayerDataError(f"layer {self.id!r}: filter on unknown attribute {column!r}; attributes: {_attributes(data)}")
            values = data[column]
            if isinstance(rule, Range):
                numbers = self._numbers(column, values)
                if rule.min is not None:
                    keep &= numbers >= rule.min
                if rule.max is not None:
                    keep &= numbers <= rule.max
            else:
                keep &= values.isin(rule).to_numpy()
        return np.flatnonzero(keep)

    def _numbers(self, column: str, values: pd.Series) -> np.ndarray:
        """A column as float64 for range filters: the height/base columns in metres (text with a unit
        such as OSM's "12 m" read as the extrusion reads it), floors as plain numbers, others as numbers."""
        p = self.params
        if column in (p.height, p.base):
            return parse_length(values).values
        if column == p.floors:
            return parse_count(values).values
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)

    def build_geometry(self, frame: Frame, data: gpd.GeoDataFrame) -> pv.PolyData:
        rows = self.selected_rows(data)
        subset = data.iloc[rows] if len(rows) != len(data) else data
        p = self.params
        from twin.mesh.extrude import extrude_footprints  # numba's kernels: imported when a mesh is built, not when a scene is read

        mesh = extrude_footprints(
            subset,
            height=p.height if p.height in data.columns else None,
            floors=p.floors if p.floors in data.columns else None,
            floor_height=p.floor_height,
            default_height=p.default_height,
            base=p.base,
            frame=frame,
            label=f"layer {self.id!r}",
        )
        if len(rows) != len(data) and mesh.n_cells:
            mesh.cell_data["building_id"] = rows[np.asarray(mesh.cell_data["building_id"])].astype(np.int32)
        return mesh

    def build_style(self, mesh: pv.PolyData, data: gpd.GeoDataFrame) -> LayerStyle:
        p = self.params
        per_row, legend = p.row_colors(data, where=f"layer {self.id!r}")
        if p.highlight:
            per_row[self.highlighted_rows(data)] = to_rgba8(p.highlight_color)
        # one colour per building, looked up through building_id: a restyle sends n colours, not one per cell
        return LayerStyle(colors=None, color=to_rgba8(p.color), legend=legend, feature_colors=per_row, feature_index="building_id")

    def highlighted_rows(self, data: gpd.GeoDataFrame) -> np.ndarray:
        """Row positions named by ``highlight``."""
        p = self.params
        if p.id_column is None:
            rows = np.array([int(v) for v in p.highlight], dtype=np.int64)
            bad = rows[(rows < 0) | (rows >= len(data))]
            if len(bad):
                raise LayerDataError(f"layer {self.id!r}: highlight rows {bad.tolist()} are outside 0..{len(data) - 1}")
            return rows
        if p.id_column not in data.columns:
            raise LayerDataError(f"layer {self.id!r}: no id_column {p.id_column!r}; attributes: {_attributes(data)}")
        return np.flatnonzero(data[p.id_column].astype(str).isin([str(v) for v in p.highlight]).to_numpy())

    def visual_options(self) -> dict[str, Any]:
        return {"lighting": True}


def _attributes(data: gpd.GeoDataFrame) -> str:
    return ", ".join(str(c) for c in data.columns if c != data.geometry.name)
