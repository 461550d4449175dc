"""Files as sources: features (GeoJSON, GeoPackage, GeoParquet, CSV with lon/lat columns), and
time-stamped readings from the same kinds of file (``file_readings``).

Scene file::

    source: {type: file, path: ../shared/data/shanghai_districts_gcj02.geojson, crs: GCJ02}

``crs`` overrides what the file declares (GCJ-02 files usually claim EPSG:4326). Relative
paths are read relative to the scene file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from twin.errors import CRSError, SourceCheckError, SourceError
from twin.geo.crs import WGS84, geometries_to_wgs84, parse_crs
from twin.source import BBox, ReadingsSource, Source, SourceParams

__all__ = ["FileReadingsSource", "FileSource"]

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

    def check(self) -> None:
        """The file exists (nothing is read); raises SourceCheckError naming the file and the folder looked in."""
        path = self.resolved_path
        try:
            found = path.exists()
        except (OSError, ValueError) as exc:
            raise SourceCheckError(f"file path {self.params.path!r} is not usable: {exc}", key="path") from None
        if not found:
            raise SourceCheckError(f"file {self.params.path!r} not found (looked in {path.parent.absolute()})", key="path")

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


class FileReadingsParams(FileSourceParams):
    time: str = Field("time", description="column with the reading's time (ISO 8601; naive times are read in time_zone)")
    value: str | None = Field(None, description="column with the value (default: each row counts 1)")
    sensor: str | None = Field(None, description="column with the sensor id (default: one per row)")
    time_zone: str = Field("Asia/Shanghai", description="time zone of naive times in the file")


class FileReadingsSource(ReadingsSource):
    """Time-stamped point readings from a CSV, GeoJSON, GeoPackage or GeoParquet file."""

    type_name = "file_readings"
    Params = FileReadingsParams
    params: FileReadingsParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._features = FileSource(**{k: getattr(self.params, k) for k in FileSourceParams.model_fields})
        self._table: pd.DataFrame | None = None

    def bind_base_dir(self, base_dir: Path) -> None:
        self._features.bind_base_dir(base_dir)

    def describe(self) -> str:
        return f"file readings {str(self._features.resolved_path)!r}"

    def check(self) -> None:
        """The file exists (nothing is read); raises SourceCheckError naming the file and the folder looked in."""
        self._features.check()

    def _all(self) -> pd.DataFrame:
        if self._table is None:
            data = self._features.read()
            p = self.params
            missing = [c for c in (p.time, p.value, p.sensor) if c is not None and c not in data.columns]
            if missing:
                raise SourceError(f"{self.describe()}: no column {', '.join(map(repr, missing))}; columns: {', '.join(map(str, data.columns))}")
            times = pd.to_datetime(data[p.time], errors="coerce", format="mixed")
            if times.dt.tz is None:
                times = times.dt.tz_localize(p.time_zone, ambiguous="NaT", nonexistent="NaT")
            self._table = pd.DataFrame(
                {
                    "sensor_id": data[p.sensor].astype(str).to_numpy() if p.sensor else np.arange(len(data)).astype(str),
                    "lon": data.geometry.x.to_numpy(),
                    "lat": data.geometry.y.to_numpy(),
                    "time": times.dt.tz_convert("UTC").to_numpy(),
                    "value": pd.to_numeric(data[p.value], errors="coerce").to_numpy() if p.value else 1.0,
                }
            )
            self._table["time"] = pd.to_datetime(self._table["time"], utc=True)
        return self._table

    def readings(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        table = self._all()
        times = table["time"]
        return table[((times > pd.Timestamp(start)) & (times <= pd.Timestamp(end))) | times.isna()]
