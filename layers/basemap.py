"""Base-map layer: raster tiles (XYZ or WMTS) draped on a flat grid under the city.

The layer builds a ``grid`` x ``grid`` plane in the scene's local frame, fetches a tile mosaic
covering it and gives every vertex texture coordinates (point data ``tcoords``) computed from
its own lon/lat: local -> WGS84 -> the tiles' lon/lat (GCJ-02 / BD-09 when the source says
``offset_crs``) -> Web Mercator -> position in the mosaic. The map is therefore geographically
right in any scene CRS, and an AMap/Tencent map lines up with WGS84 data::

    layers:
      - id: osm
        type: basemap
        source:
          type: xyz
          url: https://tile.openstreetmap.org/{z}/{x}/{y}.png
          attribution: "(c) OpenStreetMap contributors"
        radius: 4000          # metres around the scene centre (when no extent is given)
        elevation: -0.5       # below draped vector layers
        opacity: 0.9
      - id: amap
        type: basemap
        source: {type: xyz, url: "https://webrd0{s}.is.autonavi.com/appmaptile?style=8&x={x}&y={y}&z={z}",
                 subdomains: ["1", "2", "3", "4"], offset_crs: GCJ02, max_tiles: 100}
        extent: [121.46, 31.21, 121.52, 31.26]   # lon/lat bbox instead of radius
        zoom: 16

Area: ``extent`` (WGS84 lon/lat bbox) when given, gridded in lon/lat; otherwise a square of
half-side ``radius`` metres around the scene frame's centre (a layer cannot see the other
layers, so it follows the frame, not their data). ``extent()`` reports ``extent`` or None, so a
base map never moves the scene's centre. Zoom: ``zoom``, or the highest the source's
``max_tiles`` allows. Tiles that fail show ``background``. Picking returns lon/lat and the tile.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pyvista as pv
from numpy.typing import NDArray
from pydantic import Field, field_validator, model_validator
from twin_layers.tiles import Mosaic, TileSource

from twin.errors import LayerDataError
from twin.geo.frame import Frame
from twin.layer import Layer, LayerParams, LayerStyle
from twin.source import BBox
from twin.style import to_rgba8, validate_color

__all__ = ["BaseMapLayer", "BaseMapParams"]

_MAX_TEXTURE = 8192  # pixels per side; larger mosaics are scaled down (texture coordinates are relative)


class BaseMapParams(LayerParams):
    zoom: int | None = Field(None, ge=0, le=24, description="tile zoom level (default: highest that fits the source's max_tiles)")
    extent: tuple[float, float, float, float] | None = Field(None, description="lon/lat bbox (west, south, east, north) to cover")
    radius: float = Field(5000.0, gt=0, le=200_000, description="half-side in metres of the square around the scene centre (without extent)")
    grid: int = Field(64, ge=2, le=1024, description="vertices per side of the draped plane")
    elevation: float = Field(-0.5, description="height of the plane in metres (below draped layers at 0)")
    background: str = Field("#d4d8dd", description="colour shown where a tile is missing or transparent")

    _color = field_validator("background")(classmethod(lambda cls, v: validate_color(v)))

    @model_validator(mode="after")
    def _extent(self) -> BaseMapParams:
        if self.extent is not None:
            west, south, east, north = self.extent
            if not (-180 <= west < east <= 180 and -85.05 <= south < north <= 85.05):
                raise ValueError(f"extent {self.extent} is not (west, south, east, north) in lon/lat")
        return self


class BaseMapLayer(Layer):
    """Raster tiles draped on a plane; ``source`` is an ``xyz`` or ``wmts`` tile source."""

    type_name = "basemap"
    Params = BaseMapParams
    params: BaseMapParams
    geometry_keys = frozenset({"zoom", "extent", "radius", "grid", "elevation"})

    def __init__(self, id: str, **kwargs: Any) -> None:
        super().__init__(id, **kwargs)
        self.mosaic: Mosaic | None = None
        """The mosaic drawn by the last geometry build."""
        self._texture: tuple[int, str, NDArray[np.uint8]] | None = None

    def _tiles(self) -> TileSource:
        if not isinstance(self.source, TileSource):
            got = "no source" if self.source is None else self.source.describe()
            raise LayerDataError(f"layer {self.id!r}: a basemap needs a tile source (type xyz or wmts), got {got}")
        return self.source

    def extent(self) -> BBox | None:
        """The configured ``extent`` (None with ``radius``: the map follows the frame)."""
        return self.params.extent

    def _plane(self, frame: Frame) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float64]]:
        """Local vertices (grid*grid, 3) in row-major order from the south-west, and their lon/lat."""
        p = self.params
        n = p.grid
        if p.extent is not None:
            west, south, east, north = p.extent
            lon, lat = np.meshgrid(np.linspace(west, east, n), np.linspace(south, north, n))
            lon, lat = lon.ravel(), lat.ravel()
            return frame.lonlat_to_local(lon, lat, p.elevation), lon, lat
        xs = np.linspace(-p.radius, p.radius, n)
        gx, gy = np.meshgrid(xs, xs)
        local = np.column_stack([gx.ravel(), gy.ravel(), np.full(n * n, p.elevation - frame.origin[2])])
        lon, lat, _ = frame.local_to_lonlat(local)
        return local.astype(np.float32), lon, lat

    def build_geometry(self, frame: Frame, data: gpd.GeoDataFrame) -> pv.PolyData:
        source = self._tiles()
        points, lon, lat = self._plane(frame)
        bbox = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
        mosaic = source.mosaic(bbox, self.params.zoom)
        self.mosaic = mosaic
        self._texture = None
        n = self.params.grid
        corner = (np.arange(n - 1)[None, :] + n * np.arange(n - 1)[:, None]).ravel()  # south-west corner of each quad
        tris = np.concatenate([np.column_stack([corner, corner + 1, corner + n + 1]), np.column_stack([corner, corner + n + 1, corner + n])])
        mesh = pv.PolyData(points, faces=np.column_stack([np.full(len(tris), 3), tris]).ravel())
        mesh.point_data["tcoords"] = mosaic.uv(lon, lat)
        mesh.cell_data[self.feature_array] = np.zeros(mesh.n_cells, dtype=np.int64)
        if mosaic.missing:
            self.health.error = f"{mosaic.missing} of {mosaic.total} tiles could not be fetched"
        else:
            self.health.error = None
        return mesh

    def build_style(self, mesh: pv.PolyData, data: gpd.GeoDataFrame) -> LayerStyle:
        background = to_rgba8(self.params.background)
        if self.mosaic is None:
            return LayerStyle(colors=None, color=background)
        key = (id(self.mosaic.image), self.params.background)
        if self._texture is None or self._texture[:2] != key:
            self._texture = (*key, _flatten(self.mosaic.image, background[:3]))
        return LayerStyle(colors=None, color=background, texture=self._texture[2])

    def visual_options(self) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if self.mosaic is not None:
            meta = {"zoom": self.mosaic.zoom, "tiles": self.mosaic.total, "missing_tiles": self.mosaic.missing}
        attribution = getattr(getattr(self.source, "params", None), "attribution", None)
        if attribution:
            meta["attribution"] = attribution
        return {"lighting": False, "meta": meta}

    def pick(self, frame: Frame, cell_id: int, point: NDArray[np.floating] | None = None) -> dict[str, Any]:
        """The picked lon/lat and the tile (z/x/y) drawn there."""
        result: dict[str, Any] = {"layer": self.id, "feature": 0, "attributes": {}}
        if point is not None:
            lon, lat, z = frame.local_to_lonlat(np.asarray(point, dtype=np.float64))
            result.update(lon=float(lon[0]), lat=float(lat[0]), z=float(z[0]))
            if self.mosaic is not None:
                tz, tx, ty = self.mosaic.tile_at(float(lon[0]), float(lat[0]))
                result["attributes"] = {"tile": f"{tz}/{tx}/{ty}"}
        return result


def _flatten(image: NDArray[np.uint8], background: tuple[int, int, int]) -> NDArray[np.uint8]:
    """An opaque RGB texture: RGBA composited over ``background``, scaled down if huge."""
    if image.shape[2] == 3 or bool((image[..., 3] == 255).all()):
        out = image[..., :3].copy()
    else:
        rgb = image[..., :3].astype(np.float32)
        alpha = image[..., 3:4].astype(np.float32) / 255.0
        out = (rgb * alpha + np.asarray(background, dtype=np.float32) * (1.0 - alpha) + 0.5).astype(np.uint8)
    height, width = out.shape[:2]
    if max(height, width) > _MAX_TEXTURE:
        from PIL import Image

        scale = _MAX_TEXTURE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        out = np.asarray(Image.fromarray(out).resize(size, Image.Resampling.LANCZOS))
    return np.ascontiguousarray(out)
