"""Coordinate reference systems: anything pyproj knows, plus GCJ-02 and BD-09.

>>> parse_crs("EPSG:4490").name
'EPSG:4490'
>>> parse_crs("gcj-02").name
'GCJ02'
>>> lon, lat = to_wgs84([121.478223], [31.228458], "GCJ02")
>>> round(float(lon[0]), 4), round(float(lat[0]), 4)
(121.4737, 31.2304)
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import pyproj
from numpy.typing import ArrayLike, NDArray
from pyproj.exceptions import CRSError as _ProjCRSError

from twin.errors import WARNED, CRSError, TwinWarning
from twin.geo import chinese

__all__ = [
    "WGS84",
    "GeoCRS",
    "check_plausible",
    "finite_geometries",
    "from_wgs84",
    "geometries_to_wgs84",
    "parse_crs",
    "to_wgs84",
    "transformer",
]

log = logging.getLogger(__name__)

Offset = Literal["gcj02", "bd09"]

_OFFSET_ALIASES: dict[str, Offset] = {
    "gcj02": "gcj02",
    "gcj-02": "gcj02",
    "gcj_02": "gcj02",
    "mars": "gcj02",
    "bd09": "bd09",
    "bd-09": "bd09",
    "bd_09": "bd09",
    "bd09ll": "bd09",
    "baidu": "bd09",
}


@dataclass(frozen=True)
class GeoCRS:
    """A CRS as twin uses it: a pyproj CRS, optionally with a Chinese web-map offset on top.

    ``offset`` is ``"gcj02"`` or ``"bd09"`` for those systems (whose base is WGS84 lon/lat),
    ``None`` for every CRS PROJ knows.
    """

    name: str
    proj: pyproj.CRS
    offset: Offset | None = None

    @property
    def is_geographic(self) -> bool:
        return self.offset is not None or bool(self.proj.is_geographic)

    def __str__(self) -> str:
        return self.name


WGS84 = GeoCRS("EPSG:4326", pyproj.CRS.from_epsg(4326))


@lru_cache(maxsize=256)
def _parse_text(text: str) -> GeoCRS:
    key = text.strip().lower()
    if key in _OFFSET_ALIASES:
        offset = _OFFSET_ALIASES[key]
        return GeoCRS(offset.upper(), WGS84.proj, offset)
    try:
        proj = pyproj.CRS.from_user_input(text)
    except _ProjCRSError as exc:
        raise CRSError(
            f"unknown CRS {text!r}: not an EPSG code, WKT or PROJ string pyproj knows, nor GCJ02/BD09"
        ) from exc
    authority = proj.to_authority()
    name = f"{authority[0]}:{authority[1]}" if authority else text.strip()
    return GeoCRS(name, proj)


def parse_crs(value: str | int | pyproj.CRS | GeoCRS) -> GeoCRS:
    """Read a CRS from an EPSG code, ``"EPSG:4549"``, WKT, a PROJ string, ``"GCJ02"`` or ``"BD09"``."""
    if isinstance(value, GeoCRS):
        return value
    if isinstance(value, pyproj.CRS):
        authority = value.to_authority()
        return GeoCRS(f"{authority[0]}:{authority[1]}" if authority else value.to_string(), value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise CRSError(f"unknown CRS {value!r}: expected a string or an EPSG number")
    if isinstance(value, int):
        value = f"EPSG:{value}"
    return _parse_text(value)


@lru_cache(maxsize=256)
def _transformer(src_wkt: str, dst_wkt: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(pyproj.CRS(src_wkt), pyproj.CRS(dst_wkt), always_xy=True)


def transformer(src: pyproj.CRS, dst: pyproj.CRS) -> pyproj.Transformer:
    """A cached, x/y-ordered (lon first) pyproj transformer."""
    return _transformer(src.to_wkt(), dst.to_wkt())


def _xy(x: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def to_wgs84(x: ArrayLike, y: ArrayLike, crs: str | int | pyproj.CRS | GeoCRS) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Coordinates in ``crs`` to WGS84 lon/lat (float64 arrays)."""
    geo = parse_crs(crs)
    xa, ya = _xy(x, y)
    if geo.offset == "gcj02":
        return chinese.gcj02_to_wgs84(xa, ya)
    if geo.offset == "bd09":
        return chinese.bd09_to_wgs84(xa, ya)
    if geo.proj.equals(WGS84.proj, ignore_axis_order=True):
        return xa.copy(), ya.copy()
    lon, lat = transformer(geo.proj, WGS84.proj).transform(xa, ya)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def from_wgs84(lon: ArrayLike, lat: ArrayLike, crs: str | int | pyproj.CRS | GeoCRS) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """WGS84 lon/lat to coordinates in ``crs`` (float64 arrays)."""
    geo = parse_crs(crs)
    lon_a, lat_a = _xy(lon, lat)
    if geo.offset == "gcj02":
        return chinese.wgs84_to_gcj02(lon_a, lat_a)
    if geo.offset == "bd09":
        return chinese.wgs84_to_bd09(lon_a, lat_a)
    if geo.proj.equals(WGS84.proj, ignore_axis_order=True):
        return lon_a.copy(), lat_a.copy()
    x, y = transformer(WGS84.proj, geo.proj).transform(lon_a, lat_a)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def geometries_to_wgs84(geometries: NDArray[np.object_], crs: str | int | pyproj.CRS | GeoCRS) -> NDArray[np.object_]:
    """Shapely geometries (array) from ``crs`` to WGS84 lon/lat, vectorised over all coordinates."""
    import shapely

    geo = parse_crs(crs)
    if geo.offset is None and geo.proj.equals(WGS84.proj, ignore_axis_order=True):
        return np.asarray(geometries, dtype=object)

    def convert(coords: NDArray[np.float64]) -> NDArray[np.float64]:
        lon, lat = to_wgs84(coords[:, 0], coords[:, 1], geo)
        return np.column_stack([lon, lat])

    return np.asarray(shapely.transform(np.asarray(geometries, dtype=object), convert), dtype=object)


def finite_geometries(geometries: NDArray[np.object_]) -> NDArray[np.bool_]:
    """Per geometry: True when every x and y is finite (missing and empty geometries count as finite)."""
    import shapely

    geoms = np.asarray(geometries, dtype=object)
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    bad = ~np.isfinite(coords).all(axis=1)
    finite = np.ones(len(geoms), dtype=bool)
    finite[owner[bad]] = False
    return finite


@lru_cache(maxsize=64)
def _area_of_use(wkt: str) -> tuple[float, float, float, float] | None:
    """Bounds (min x, min y, max x, max y) of a projected CRS's area of use, in its own units; None if unknown."""
    proj = pyproj.CRS(wkt)
    area = proj.area_of_use
    if area is None:
        return None
    try:
        bounds = transformer(WGS84.proj, proj).transform_bounds(area.west, area.south, area.east, area.north, densify_pts=21)
    except pyproj.exceptions.ProjError:
        return None
    return bounds if np.all(np.isfinite(bounds)) else None


def check_plausible(x: ArrayLike, y: ArrayLike, crs: str | int | pyproj.CRS | GeoCRS, *, where: str) -> None:
    """Check that coordinates can be in ``crs`` before converting them; ``where`` names the input in messages.

    Non-finite values are ignored here (callers skip those features). Raises :class:`CRSError`
    when the coordinates cannot be in ``crs``: a geographic CRS with every point outside
    ±180°/±90° (projected metres), or a projected CRS whose values all fit ±180/±90 (lon/lat
    degrees) and lie outside the CRS's area of use. Values that fit ±180/±90 in a projected
    CRS without a known area of use only warn (:class:`TwinWarning`, and a log record): a small
    site in a local engineering CRS is possible.
    """
    geo = parse_crs(crs)
    xa, ya = _xy(x, y)
    ok = np.isfinite(xa) & np.isfinite(ya)
    if not ok.any():
        return
    xa, ya = xa[ok], ya[ok]
    inside = (np.abs(xa) <= 180.0) & (np.abs(ya) <= 90.0)
    span = f"({xa.min():.6g}, {ya.min():.6g}) .. ({xa.max():.6g}, {ya.max():.6g})"
    if geo.is_geographic:
        if not inside.any():
            raise CRSError(
                f"{where}: coordinates {span} are declared in {geo.name} (lon/lat degrees) but lie outside ±180/±90: "
                "they look like projected metres; set the source's crs (e.g. crs: EPSG:4549)"
            )
        return
    if not inside.all():
        return
    message = f"{where}: coordinates {span} are declared in {geo.name} (projected, metres) but look like lon/lat degrees (EPSG:4326?)"
    area = _area_of_use(geo.proj.to_wkt())
    if area is not None and (xa.max() < area[0] or xa.min() > area[2] or ya.max() < area[1] or ya.min() > area[3]):
        raise CRSError(f"{message}: they lie outside the area where {geo.name} is used; set the source's crs to EPSG:4326")
    log.warning(message, extra=WARNED)
    warnings.warn(message, TwinWarning, stacklevel=3)
