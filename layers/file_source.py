"""Files as a source: GeoJSON, GeoPackage, GeoParquet, and CSV with lon/lat columns.

Scene file::

    source: {type: file, path: ../shared/data/shanghai_districts_gcj02.geojson, crs: GCJ02}

``crs`` overrides what the file declares (GCJ-02 files usually claim EPSG:4326). Relative
paths are read relative to the scene file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from twin.errors import CRSError, SourceError
from twin.geo.crs import WGS84, geometries_to_wgs84, parse_crs
from twin.source import BBox, Source, SourceParams

__all__ = ["FileSource"]

_VECTOR_SUFFIXES = {".geojson", ".json", ".gpkg", ".shp", ".fgb"}
_PARQUET_SUFFIXES = {".parquet", ".geoparquet"}


class FileSourceParams(SourceParams):
    path: str = Field(description="file path; relative paths are read from the scene file's folder")
    crs: str | None = Field(None, description="CRS of the coordinates, overriding the file's own (e.g. GCJ02, EPSG:4549)")
    layer: str | None = Field(None, description="layer name inside a GeoPackage")
    lon: str = Field("lon", description="CSV: longitude (or x) column")
    lat: str = Field("lat", description="CSV: latitude (or y) column")

    @field_validator("crs")
    @classmethod
    def _known_crs(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_crs(value)
            except CRSError as exc:
                raise ValueError(str(exc)) from None
        return value


class FileSource(Source):
    """Features from a local file, converted to WGS84."""

    type_name = "file"
    Params = FileSourceParams
    params: FileSourceParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.base_dir: Path | None = None

    def bind_base_dir(self, base_dir: Path) -> None:
        """Resolve a relative ``path`` against ``base_dir`` (the scene file's folder)."""
        self.base_dir = base_dir

    @property
    def resolved_path(self) -> Path:
        path = Path(self.params.path).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    def describe(self) -> str:
        return f"file source {str(self.resolved_path)!r}"

    def read(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        path = self.resolved_path
        if not path.exists():
            raise SourceError(f"{self.describe()}: file not found")
        suffix = path.suffix.lower()
        try:
            if suffix in _PARQUET_SUFFIXES:
                data = gpd.read_parquet(path)
            elif suffix == ".csv":
                data = self._read_csv(path)
            elif suffix in _VECTOR_SUFFIXES or path.is_dir():
                data = gpd.read_file(path, layer=self.params.layer) if self.params.layer else gpd.read_file(path)
            else:
                raise SourceError(f"{self.describe()}: unsupported file type {suffix!r} (use .geojson, .gpkg, .parquet or .csv)")
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(f"{self.describe()}: cannot read: {exc}") from exc
        data = self._to_wgs84(data)
        if bbox is not None and not data.empty:
            data = data.cx[bbox[0] : bbox[2], bbox[1] : bbox[3]]
        return data

    def _read_csv(self, path: Path) -> gpd.GeoDataFrame:
        frame = pd.read_csv(path)
        missing = [c for c in (self.params.lon, self.params.lat) if c not in frame.columns]
        if missing:
            raise SourceError(f"{self.describe()}: CSV has no column {', '.join(map(repr, missing))}; columns: {', '.join(frame.columns)}")
        lon = pd.to_numeric(frame[self.params.lon], errors="coerce").to_numpy()
        lat = pd.to_numeric(frame[self.params.lat], errors="coerce").to_numpy()
        ok = np.isfinite(lon) & np.isfinite(lat)
        frame = frame.loc[ok].reset_index(drop=True)
        if (~ok).any():
            import warnings

            from twin.errors import TwinWarning

            warnings.warn(f"{self.describe()}: skipped {int((~ok).sum())} rows without numeric lon/lat", TwinWarning, stacklevel=3)
        return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(lon[ok], lat[ok]), crs=self.params.crs or "EPSG:4326")

    def _to_wgs84(self, data: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        crs = self.params.crs or data.crs or WGS84.proj
        geo = parse_crs(crs)
        geometry = geometries_to_wgs84(data.geometry.to_numpy(), geo)
        return gpd.GeoDataFrame(data.drop(columns=data.geometry.name), geometry=geometry, crs=WGS84.proj)
