"""Files as sources: features (GeoJSON, GeoPackage, GeoParquet, CSV with lon/lat columns), and
time-stamped readings from the same kinds of file (``file_readings``).

Scene file::

    source: {type: file, path: ../shared/data/shanghai_districts_gcj02.geojson, crs: GCJ02}

``crs`` overrides what the file declares (GCJ-02 files usually claim EPSG:4326). Relative
paths are read relative to the scene file.

Errors are one line naming the source and the file as written in the scene (a missing file
also gives the resolved path), the missing column with the columns that exist, or the CRS
the coordinates cannot be in. Features whose geometry cannot be decoded (a ring with too few
points, a line of one point) or converted are skipped; unclosed rings are closed. Both are
recorded by feature index (0-based, file order) in :attr:`FileSource.last_skipped` and
:attr:`FileSource.last_repaired`, which the layer reports in one warning.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from numpy.typing import NDArray
from pydantic import Field, field_validator

from twin.errors import WARNED, CRSError, SourceCheckError, SourceError, TwinWarning
from twin.geo.crs import WGS84, check_plausible, finite_geometries, geometries_to_wgs84, parse_crs, to_wgs84
from twin.layer import format_skips
from twin.source import BBox, ReadingsSource, ReadingsSourceParams, Source, SourceParams

__all__ = ["RACY_SECONDS", "FileReadingsSource", "FileSource", "FileStamp", "file_stamp", "still_same"]

log = logging.getLogger(__name__)

_VECTOR_SUFFIXES = {".geojson", ".json", ".gpkg", ".shp", ".fgb"}
_PARQUET_SUFFIXES = {".parquet", ".geoparquet"}

Skips = dict[str, list[int]]
"""Feature indices (0-based, file order) by reason."""


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
        self.last_skipped: Skips = {}
        """Features the last read left out, by reason (feature indices in file order)."""
        self.last_repaired: Skips = {}
        """Features the last read repaired, by repair (feature indices in file order)."""

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
        return f"file source {self.params.path!r}"

    def data_key(self) -> str | None:
        """The file's absolute path, size and modification time with the reading parameters; None if it cannot be seen."""
        try:
            stat = self.resolved_path.resolve().stat()
        except (OSError, ValueError):
            return None
        return f"file {self.resolved_path.resolve()} {stat.st_size} {stat.st_mtime_ns}: {self.params.model_dump_json()}"

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
        """The file's features in EPSG:4326; index = feature position in the file. Raises SourceError or CRSError."""
        data, self.last_skipped, self.last_repaired = read_features(self.params, self.resolved_path, where=self.describe())
        if bbox is not None and not data.empty:
            data = data.cx[bbox[0] : bbox[2], bbox[1] : bbox[3]]
        return data


def read_features(
    params: FileSourceParams, path: Path, *, where: str, required: tuple[str, ...] = ()
) -> tuple[gpd.GeoDataFrame, Skips, Skips]:
    """Read ``path`` as WGS84 features, with the indices of skipped and repaired features.

    ``required`` columns must exist (checked before any geometry work). Every failure is a
    one-line :class:`SourceError` (or :class:`CRSError`) starting with ``where``.
    """
    _require_file(params, path, where)
    suffix = path.suffix.lower()
    skipped: Skips = {}
    repaired: Skips = {}
    if suffix in _PARQUET_SUFFIXES:
        data = _read_parquet(path, where)
    elif suffix == ".csv":
        data = _read_csv(path, params, where, skipped)
    elif suffix in _VECTOR_SUFFIXES or path.is_dir():
        data = _read_vector(path, params.layer, where, skipped, repaired)
    else:
        raise SourceError(f"{where}: unsupported file type {suffix!r} (use .geojson, .gpkg, .parquet or .csv)")
    _require_columns(data, required, where)
    return _to_wgs84(data, params.crs, where, skipped), skipped, repaired


def read_points(
    params: FileSourceParams, path: Path, *, where: str, required: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, NDArray[np.float64], NDArray[np.float64], Skips]:
    """``path``'s rows (attributes only) with each one's WGS84 lon/lat (NaN for a feature that is not a point) and the
    skipped rows by reason, as :func:`read_features` reads them (the same errors); a CSV without making shapely points."""
    if path.suffix.lower() != ".csv":
        data, skipped, _ = read_features(params, path, where=where, required=required)
        geoms = data.geometry.to_numpy()
        return pd.DataFrame(data.drop(columns=data.geometry.name)), shapely.get_x(geoms), shapely.get_y(geoms), skipped
    _require_file(params, path, where)
    skipped: Skips = {}
    frame, x, y = _csv_points(path, params, where, skipped)
    _require_columns(frame, required, where)
    lon, lat, kept = _points_to_wgs84(x, y, frame.index, params.crs, where, skipped)
    return frame.loc[kept], lon, lat, skipped


def _require_file(params: FileSourceParams, path: Path, where: str) -> None:
    """Raise SourceError naming ``path`` (resolved, when it differs from the scene's) if it does not exist."""
    if not path.exists():
        resolved = path.resolve()
        given = f": {resolved}" if str(resolved) != params.path else ""
        raise SourceError(f"{where}: file not found{given}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _columns(frame: pd.DataFrame) -> str:
    geometry = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    return ", ".join(str(c) for c in frame.columns if c != geometry) or "(none)"


def _require_columns(frame: pd.DataFrame, names: tuple[str, ...], where: str) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        label = "column" if len(missing) == 1 else "columns"
        raise SourceError(f"{where}: no {label} {', '.join(map(repr, missing))}; columns: {_columns(frame)}")


def _read_parquet(path: Path, where: str) -> gpd.GeoDataFrame:
    import pyarrow.parquet as pq

    try:
        return gpd.read_parquet(path)
    except (ValueError, OSError) as exc:  # pyarrow's errors subclass these
        problem = _one_line(exc)
    try:
        columns = pq.read_schema(path).names
    except (ValueError, OSError):
        raise SourceError(f"{where}: cannot read: {problem}") from None
    raise SourceError(f"{where}: no geometry column (no GeoParquet 'geo' metadata); columns: {', '.join(columns) or '(none)'}")


def _read_csv(path: Path, params: FileSourceParams, where: str, skipped: Skips) -> gpd.GeoDataFrame:
    """Points from lon/lat columns; rows without numeric lon/lat are skipped (row index, 0-based). Without a CRS when the
    source names one (:func:`_to_wgs84` reads it from the params: GCJ02 and BD09 are no pyproj CRS), else EPSG:4326."""
    frame, x, y = _csv_points(path, params, where, skipped)
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(x, y), crs=None if params.crs else "EPSG:4326")


def _csv_points(path: Path, params: FileSourceParams, where: str, skipped: Skips) -> tuple[pd.DataFrame, NDArray[np.float64], NDArray[np.float64]]:
    """The CSV's rows with numeric lon/lat (index: row, 0-based) and their coordinates as written; the others are skipped."""
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise SourceError(f"{where}: cannot read CSV: {_one_line(exc)}") from None
    _require_columns(frame, (params.lon, params.lat), where)
    lon = pd.to_numeric(frame[params.lon], errors="coerce").to_numpy(dtype=np.float64)
    lat = pd.to_numeric(frame[params.lat], errors="coerce").to_numpy(dtype=np.float64)
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.all():
        skipped[f"no numeric {params.lon}/{params.lat}"] = np.flatnonzero(~ok).tolist()
    return frame.loc[ok], lon[ok], lat[ok]


def _read_vector(path: Path, layer: str | None, where: str, skipped: Skips, repaired: Skips) -> gpd.GeoDataFrame:
    """GDAL formats: one fast read; when a geometry cannot be decoded, features are decoded one by one."""
    kwargs = {"layer": layer} if layer else {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Non closed ring", category=RuntimeWarning)  # repaired and counted below
        try:
            data = gpd.read_file(path, **kwargs)
        except shapely.errors.GEOSException:
            data = _read_vector_per_feature(path, kwargs, where, skipped, repaired)
        except pyogrio.errors.DataLayerError as exc:
            raise SourceError(f"{where}: {_one_line(exc)}{_layers_hint(path)}") from None
        except (pyogrio.errors.DataSourceError, pyogrio.errors.CRSError, pyogrio.errors.GeometryError, pyogrio.errors.FieldError, OSError) as exc:
            raise SourceError(f"{where}: cannot read: {_geojson_problem(path) or _one_line(exc)}") from None
    if not isinstance(data, gpd.GeoDataFrame):
        raise SourceError(f"{where}: no geometry column; columns: {_columns(data)}")
    return data


def _read_vector_per_feature(path: Path, kwargs: dict[str, str], where: str, skipped: Skips, repaired: Skips) -> gpd.GeoDataFrame:
    """Decode each feature's geometry on its own: unclosed rings are closed, undecodable ones skipped."""
    try:
        attributes = pyogrio.read_dataframe(path, read_geometry=False, **kwargs)
        meta, _, wkb, _ = pyogrio.raw.read(path, columns=[], **kwargs)
    except pyogrio.errors.DataSourceError as exc:
        raise SourceError(f"{where}: cannot read: {_one_line(exc)}") from None
    wkb = np.asarray(wkb, dtype=object)
    if attributes.columns.empty:  # without fields GDAL gives no rows
        attributes = pd.DataFrame(index=pd.RangeIndex(len(wkb)))
    strict = shapely.from_wkb(wkb, on_invalid="ignore")
    fixed = shapely.from_wkb(wkb, on_invalid="fix")
    has_wkb = np.array([w is not None for w in wkb], dtype=bool)
    closed = shapely.is_missing(strict) & ~shapely.is_missing(fixed)
    broken = has_wkb & shapely.is_missing(fixed)
    if closed.any():
        repaired["unclosed ring closed"] = np.flatnonzero(closed).tolist()
    if broken.any():
        skipped["geometry cannot be decoded (too few points)"] = np.flatnonzero(broken).tolist()
    keep = ~broken
    return gpd.GeoDataFrame(attributes.loc[keep], geometry=fixed[keep], crs=meta.get("crs"))


def _layers_hint(path: Path) -> str:
    try:
        names = [str(name) for name in pyogrio.list_layers(path)[:, 0]]
    except pyogrio.errors.DataSourceError:
        return ""
    return f"; layers: {', '.join(names)}"


_GEOJSON_TYPES = ("FeatureCollection", "Feature", "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection")
_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true/false", type(None): "null"}


def _geojson_problem(path: Path) -> str | None:
    """Why a .json/.geojson file is not GeoJSON (a clearer line than GDAL's), or None."""
    if path.suffix.lower() not in (".json", ".geojson") or not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
        kind = "an object without a 'type'" if isinstance(doc, dict) else _JSON_KINDS.get(type(doc), type(doc).__name__)
        return f"not GeoJSON: the top level is {kind}, expected a FeatureCollection, Feature or geometry object"
    if doc["type"] not in _GEOJSON_TYPES:
        return f"not GeoJSON: unknown type {doc['type']!r} at the top level; expected one of {', '.join(_GEOJSON_TYPES)}"
    if doc["type"] == "FeatureCollection" and not isinstance(doc.get("features"), list):
        return "not GeoJSON: a FeatureCollection needs a 'features' list"
    return None


def _to_wgs84(data: gpd.GeoDataFrame, crs: str | None, where: str, skipped: Skips) -> gpd.GeoDataFrame:
    """Convert to EPSG:4326 after a plausibility check of the coordinates against the declared CRS.

    Features whose finite coordinates do not convert to finite lon/lat are skipped (outside the
    CRS's area); when none converts, a CRSError.
    """
    geo = parse_crs(crs or data.crs or WGS84.proj)
    geoms = data.geometry.to_numpy()
    coords = shapely.get_coordinates(geoms)
    check_plausible(coords[:, 0], coords[:, 1], geo, where=where)
    converted = geometries_to_wgs84(geoms, geo)
    before = finite_geometries(geoms)
    lost = before & ~finite_geometries(converted)
    if lost.any():
        if lost.sum() == (before & ~shapely.is_missing(geoms)).sum():
            raise CRSError(f"{where}: no coordinate converts from {geo.name} to lon/lat: check the source's crs")
        skipped[f"not convertible from {geo.name}"] = data.index[lost].tolist()
    return gpd.GeoDataFrame(data.drop(columns=data.geometry.name).loc[~lost], geometry=converted[~lost], crs=WGS84.proj)


def _points_to_wgs84(x: NDArray[np.float64], y: NDArray[np.float64], index: pd.Index, crs: str | None, where: str,
                     skipped: Skips) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Finite points in ``crs`` (default EPSG:4326) as WGS84 lon/lat, as :func:`_to_wgs84` converts them: those that do not
    convert are skipped by ``index`` label (all of them: a CRSError). Returns lon, lat (of the kept points) and the kept mask."""
    geo = parse_crs(crs or WGS84.proj)
    check_plausible(x, y, geo, where=where)
    lon, lat = to_wgs84(x, y, geo)
    kept = np.isfinite(lon) & np.isfinite(lat)
    if not kept.all():
        if not kept.any():
            raise CRSError(f"{where}: no coordinate converts from {geo.name} to lon/lat: check the source's crs")
        skipped[f"not convertible from {geo.name}"] = index[~kept].tolist()
    return lon[kept], lat[kept], kept


class FileReadingsParams(FileSourceParams, ReadingsSourceParams):
    time: str = Field("time", description="column with the reading's time (ISO 8601; naive times are read in time_zone)")
    value: str | None = Field(None, description="column with the value (default: each row counts 1)")
    sensor: str | None = Field(None, description="column with the sensor id (default: one per row)")
    time_zone: str = Field("Asia/Shanghai", description="time zone of naive times in the file")


RACY_SECONDS = 2.0
"""A file modified less than this long before (or after) a read may be written again with the same size and modification
time (file systems keep times in coarse steps, some in seconds); until its time is older, a poll compares the file's bytes."""


@dataclass(frozen=True)
class FileStamp:
    """What a read saw of its file: ``size`` (bytes) and ``mtime_ns``; ``digest`` (BLAKE2b of the bytes) when the
    modification time was within :data:`RACY_SECONDS` of the read, else None."""

    size: int
    mtime_ns: int
    digest: bytes | None


def _racy(stat: os.stat_result) -> bool:
    return abs(time.time() - stat.st_mtime_ns / 1e9) < RACY_SECONDS


def _digest(path: Path) -> bytes | None:
    """BLAKE2b of the file's bytes; None when it cannot be read as one file (a folder: its size and time are trusted)."""
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "blake2b").digest()
    except OSError:
        return None


def file_stamp(path: Path) -> FileStamp | None:
    """The stamp of ``path`` now (its bytes hashed only while racy); None if it cannot be seen. Take it before reading the file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return FileStamp(stat.st_size, stat.st_mtime_ns, _digest(path) if _racy(stat) else None)


def still_same(path: Path, seen: FileStamp) -> FileStamp | None:
    """``seen`` (or a settled copy of it: no digest once the file's time is past :data:`RACY_SECONDS`) when ``path`` still
    holds what was read; None when it may have changed (another size or time, other bytes, or it cannot be seen)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    if (stat.st_size, stat.st_mtime_ns) != (seen.size, seen.mtime_ns):
        return None
    if seen.digest is None:
        return seen
    if _digest(path) != seen.digest:
        return None
    return seen if _racy(stat) else replace(seen, digest=None)


class FileReadingsSource(ReadingsSource):
    """Time-stamped point readings from a CSV, GeoJSON, GeoPackage or GeoParquet file.

    The file is parsed again only when it changed: another size or modification time, or, while its
    time is within :data:`RACY_SECONDS` of a read, other bytes (a rewrite in the same step of the file
    system's clock). So rows a logger appends or rewrites, late ones included, reach the layer on its
    next poll, and polls of an unchanged file cost a ``stat``. :attr:`parses` counts the parses.
    """

    type_name = "file_readings"
    Params = FileReadingsParams
    params: FileReadingsParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._features = FileSource(**{k: getattr(self.params, k) for k in FileSourceParams.model_fields})
        self._table: pd.DataFrame | None = None
        self._stamp: FileStamp | None = None
        self.parses = 0
        """Times the file was parsed."""

    def bind_base_dir(self, base_dir: Path) -> None:
        self._features.bind_base_dir(base_dir)

    def describe(self) -> str:
        return f"file_readings source {self.params.path!r}"

    def check(self) -> None:
        """The file exists (nothing is read); raises SourceCheckError naming the file and the folder looked in."""
        self._features.check()

    def _all(self) -> pd.DataFrame:
        """All readings (sensor_id, lon, lat, time in UTC, value); rows without a usable point get NaN lon/lat.

        Raises SourceError or CRSError (one line naming the source) when the file cannot be read.
        """
        path = self._features.resolved_path
        same = None if self._table is None or self._stamp is None else still_same(path, self._stamp)
        if same is None:
            self._table, self._stamp = None, file_stamp(path)  # stamped before reading: a write during the read shows next time
            self._table = self._parse(path)
            self.parses += 1
        else:
            self._stamp = same
        return self._table

    def _parse(self, path: Path) -> pd.DataFrame:
        """The file's readings as :meth:`_all` gives them."""
        p = self.params
        required = tuple(c for c in (p.time, p.value, p.sensor) if c is not None)
        data, lon, lat, skipped = read_points(p, path, where=self.describe(), required=required)
        if skipped:
            message = f"{self.describe()}: skipped {sum(map(len, skipped.values()))} of {len(data) + sum(map(len, skipped.values()))} rows: {format_skips(skipped)}"
            log.warning(message, extra=WARNED)
            warnings.warn(message, TwinWarning, stacklevel=4)
        times = pd.to_datetime(data[p.time], errors="coerce", format="mixed")
        if times.dt.tz is None:
            times = times.dt.tz_localize(p.time_zone, ambiguous="NaT", nonexistent="NaT")
        return pd.DataFrame(
            {
                "sensor_id": data[p.sensor].astype(str).to_numpy() if p.sensor else np.arange(len(data)).astype(str),
                "lon": lon,  # NaN for a missing or non-point geometry: dropped and counted on ingest
                "lat": lat,
                "time": times.dt.tz_convert("UTC").array,  # tz-aware, without going through Python objects
                "value": pd.to_numeric(data[p.value], errors="coerce").to_numpy() if p.value else 1.0,
            }
        )

    def readings(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        table = self._all()
        times = table["time"]
        return table[((times > pd.Timestamp(start)) & (times <= pd.Timestamp(end))) | times.isna()]
