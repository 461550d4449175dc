"""Vector context layer: district boundaries, rivers, roads, points, draped on the ground.

Polygons are filled (holes kept open) with an optional outline, lines are drawn as
polylines, points as dots; all share one mesh whose cell data ``feature_id`` maps back to the
source row. Colour is one ``color`` or by attribute (``color_by``): numbers through a
colormap, anything else through a categorical palette.

>>> import geopandas as gpd, shapely
>>> from twin.geo import Frame
>>> gdf = gpd.GeoDataFrame({"kind": ["a", "b"]}, geometry=[
...     shapely.box(121.47, 31.22, 121.48, 31.23), shapely.LineString([(121.47, 31.22), (121.49, 31.24)])],
...     crs="EPSG:4326")
>>> layer = VectorLayer("ctx", data=gdf, color_by="kind")
>>> visual = layer.visual(Frame.auto(121.48, 31.23))
>>> visual.mesh.n_cells, [e.label for e in visual.style.legend.entries]
(3, ['a', 'b'])
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import geopandas as gpd
import mapbox_earcut
import numpy as np
import pyvista as pv
import shapely
from pydantic import Field, field_validator

from twin.errors import WARNED, TwinWarning
from twin.geo.frame import Frame
from twin.layer import ColorByParams, Layer, LayerStyle, format_skips, geometry_parts
from twin.style import to_rgba8, validate_color

__all__ = ["VectorLayer"]

log = logging.getLogger(__name__)


class VectorParams(ColorByParams):
    fill: bool = Field(True, description="fill polygons")
    outline_color: str | None = Field(None, description="colour of polygon outlines (none when unset)")
    line_width: float = Field(2.0, gt=0, description="width of lines and outlines in pixels")
    point_size: float = Field(8.0, gt=0, description="size of points in pixels")
    elevation: float = Field(0.0, description="height above the ground in metres (to stack draped layers)")

    _outline = field_validator("outline_color")(classmethod(lambda cls, v: v if v is None else validate_color(v)))


class VectorLayer(Layer):
    """Polygons, lines and points draped on the ground, styled by attribute."""

    type_name = "vector"
    Params = VectorParams
    params: VectorParams
    geometry_keys = frozenset({"fill", "elevation", "outline_color"})

    def build_geometry(self, frame: Frame, data: gpd.GeoDataFrame) -> pv.PolyData:
        parts, owner = geometry_parts(data.geometry.to_numpy())  # collections flattened, nested ones too
        kinds = shapely.get_type_id(parts)
        builder = _MeshBuilder()
        for part, row, kind in zip(parts, owner, kinds):
            if kind == shapely.GeometryType.POINT:
                builder.add_point(np.asarray(part.coords)[:, :2], row)
            elif kind in (shapely.GeometryType.LINESTRING, shapely.GeometryType.LINEARRING):
                builder.add_line(np.asarray(part.coords)[:, :2], row)
            elif kind == shapely.GeometryType.POLYGON:
                rings = [np.asarray(part.exterior.coords)[:, :2]] + [np.asarray(r.coords)[:, :2] for r in part.interiors]
                if self.params.fill:
                    builder.add_polygon(rings, row)
                if self.params.outline_color is not None:
                    for ring in rings:
                        builder.add_line(ring, row, outline=True)
        mesh = builder.build(frame, self.params.elevation)
        if builder.dropped:
            message = (f"layer {self.id!r}: {len(builder.dropped)} feature(s) fall outside what the scene's frame "
                       f"can show (too far from its centre), not drawn: {format_skips({'outside the frame': sorted(builder.dropped)})}")
            log.warning(message, extra=WARNED)
            warnings.warn(message, TwinWarning, stacklevel=3)
        return mesh

    def build_style(self, mesh: pv.PolyData, data: gpd.GeoDataFrame) -> LayerStyle:
        p = self.params
        base = to_rgba8(p.color)
        per_row, legend = p.row_colors(data, where=f"layer {self.id!r}")
        colors = per_row[np.asarray(mesh.cell_data["feature_id"])] if mesh.n_cells else per_row[:0]
        if p.outline_color is not None and mesh.n_cells:
            colors = colors.copy()
            colors[np.asarray(mesh.cell_data["outline"], dtype=bool)] = to_rgba8(p.outline_color)
        return LayerStyle(colors=colors, color=base, legend=legend)

    def visual_options(self) -> dict[str, Any]:
        return {"line_width": self.params.line_width, "point_size": self.params.point_size, "lighting": False}


class _MeshBuilder:
    """Collects points, lines and triangles in lon/lat, then projects them in one call."""

    def __init__(self) -> None:
        self.coords: list[np.ndarray] = []
        self.n_points = 0
        self.verts: list[tuple[int, int]] = []  # (point index, row)
        self.lines: list[tuple[np.ndarray, int, bool]] = []  # (point indices, row, outline?)
        self.tris: list[tuple[np.ndarray, int]] = []  # (triangles (k, 3), row)
        self.dropped: set[int] = set()  # rows with a vertex the frame cannot project

    def _drop_unprojectable(self, finite: np.ndarray) -> None:
        self.dropped.update(row for idx, row in self.verts if not finite[idx])
        self.dropped.update(row for idx, row, _ in self.lines if not finite[idx].all())
        self.dropped.update(row for tri, row in self.tris if not finite[tri].all())
        self.verts = [v for v in self.verts if v[1] not in self.dropped]
        self.lines = [line for line in self.lines if line[1] not in self.dropped]
        self.tris = [t for t in self.tris if t[1] not in self.dropped]

    def _push(self, xy: np.ndarray) -> int:
        start = self.n_points
        self.coords.append(xy)
        self.n_points += len(xy)
        return start

    def add_point(self, xy: np.ndarray, row: int) -> None:
        self.verts.append((self._push(xy), row))

    def add_line(self, xy: np.ndarray, row: int, outline: bool = False) -> None:
        if len(xy) >= 2:
            start = self._push(xy)
            self.lines.append((np.arange(start, start + len(xy)), row, outline))

    def add_polygon(self, rings: list[np.ndarray], row: int) -> None:
        rings = [r[:-1] if len(r) > 1 and np.array_equal(r[0], r[-1]) else r for r in rings]
        if len(rings[0]) < 3:  # no area; its holes must not become an outline of their own
            return
        rings = [r for r in rings if len(r) >= 3]
        xy = np.concatenate(rings)
        ends = np.cumsum([len(r) for r in rings]).astype(np.uint32)
        local = xy - xy.mean(axis=0)  # conditions earcut on lon/lat
        tri = mapbox_earcut.triangulate_float64(local, ends).reshape(-1, 3)
        if len(tri):
            self.tris.append((tri + self._push(xy), row))

    def build(self, frame: Frame, elevation: float) -> pv.PolyData:
        """One mesh in the frame; primitives with a vertex the frame cannot project are left out (rows in ``dropped``)."""
        if self.n_points:
            xy = np.concatenate(self.coords)
            points = frame.lonlat_to_local(xy[:, 0], xy[:, 1], elevation)
            finite = np.isfinite(points).all(axis=1)
            if not finite.all():
                self._drop_unprojectable(finite)
                points[~finite] = points[finite][0] if finite.any() else 0.0  # now unused: kept finite so bounds stay finite
        else:
            points = np.zeros((0, 3), dtype=np.float32)
        mesh = pv.PolyData()
        mesh.points = points
        rows: list[np.ndarray] = []
        outline: list[np.ndarray] = []
        if self.verts:
            mesh.verts = np.column_stack([np.ones(len(self.verts), dtype=np.int64), [v[0] for v in self.verts]]).ravel()
            rows.append(np.array([v[1] for v in self.verts]))
            outline.append(np.zeros(len(self.verts), dtype=bool))
        if self.lines:
            mesh.lines = np.concatenate([np.concatenate([[len(idx)], idx]) for idx, _, _ in self.lines])
            rows.append(np.array([r for _, r, _ in self.lines]))
            outline.append(np.array([o for _, _, o in self.lines], dtype=bool))
        if self.tris:
            tris = np.concatenate([t for t, _ in self.tris])
            mesh.faces = np.column_stack([np.full(len(tris), 3, dtype=np.int64), tris]).ravel()
            rows.append(np.concatenate([np.full(len(t), r) for t, r in self.tris]))
            outline.append(np.zeros(len(tris), dtype=bool))
        mesh.cell_data["feature_id"] = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, dtype=np.int64)
        mesh.cell_data["outline"] = np.concatenate(outline).astype(np.uint8) if outline else np.zeros(0, dtype=np.uint8)
        return mesh
