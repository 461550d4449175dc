"""The scene's metric frame: a projected CRS plus a fixed float64 local origin.

Every mesh twin builds stores float32 vertices *relative to the origin*, which keeps
millimetre precision across a whole district (float32 has ~1 mm resolution within 10 km of
the origin, where absolute UTM coordinates would have 0.25 m). The origin and the CRS travel
with every mesh as field data, so any vertex converts back to lon/lat.

>>> frame = Frame.auto(121.48, 31.23)
>>> pts = frame.lonlat_to_local([121.49], [31.24])
>>> pts.dtype.name, pts.shape
('float32', (1, 3))
>>> lon, lat, z = frame.local_to_lonlat(pts)
>>> round(float(lon[0]), 6), round(float(lat[0]), 6)
(121.49, 31.24)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyproj
from numpy.typing import ArrayLike, NDArray

from twin.errors import CRSError
from twin.geo.crs import WGS84, GeoCRS, parse_crs, to_wgs84, transformer

if TYPE_CHECKING:
    import pyvista as pv

__all__ = ["CRS_FIELD", "ORIGIN_FIELD", "Frame", "bounds_center", "lon_center", "unwrap_lon"]

ORIGIN_FIELD = "twin_origin"
CRS_FIELD = "twin_crs"


def _auto_crs(lon: float, lat: float) -> pyproj.CRS:
    return pyproj.CRS.from_proj4(
        f"+proj=tmerc +lat_0={lat:.8f} +lon_0={lon:.8f} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs +type=crs"
    )


@dataclass(frozen=True)
class Frame:
    """A projected CRS in metres and a fixed local origin (float64, in that CRS).

    Build one with :meth:`auto` (a transverse Mercator centred on the scene, scale error of a
    few ppm across a district) or :meth:`from_crs` (any projected CRS, e.g. ``EPSG:32651``).
    """

    crs: pyproj.CRS
    origin: tuple[float, float, float]

    @classmethod
    def auto(cls, lon: float, lat: float) -> Frame:
        """Transverse Mercator centred on (lon, lat), with the origin at that centre."""
        if not (np.isfinite(lon) and np.isfinite(lat) and -180 <= lon <= 180 and -85 <= lat <= 85):
            raise CRSError(f"frame centre ({lon}, {lat}) is not a valid lon/lat")
        return cls(_auto_crs(float(lon), float(lat)), (0.0, 0.0, 0.0))

    @classmethod
    def from_crs(cls, crs: str | int | pyproj.CRS | GeoCRS, lon: float, lat: float) -> Frame:
        """A frame in a given projected CRS, with the origin at (lon, lat) projected."""
        geo = parse_crs(crs)
        if geo.offset is not None or geo.proj.is_geographic:
            raise CRSError(f"scene CRS {geo.name} is not projected: a scene renders in metres (use 'auto' or a projected CRS)")
        x, y = transformer(WGS84.proj, geo.proj).transform(float(lon), float(lat))
        if not (np.isfinite(x) and np.isfinite(y)):
            raise CRSError(f"the scene centre ({lon}, {lat}) is outside the area of {geo.name}")
        return cls(geo.proj, (float(x), float(y), 0.0))

    @classmethod
    def from_spec(cls, crs: str, lon: float, lat: float) -> Frame:
        """``crs`` is ``"auto"`` or any CRS :func:`twin.geo.parse_crs` reads."""
        if crs.strip().lower() == "auto":
            return cls.auto(lon, lat)
        return cls.from_crs(crs, lon, lat)

    # -- forward -------------------------------------------------------------------------
    def project(self, x: ArrayLike, y: ArrayLike, crs: str | int | pyproj.CRS | GeoCRS = WGS84) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Coordinates in ``crs`` (default WGS84 lon/lat) to float64 metres relative to the origin."""
        geo = parse_crs(crs)
        if geo.offset is not None:
            x, y = to_wgs84(x, y, geo)
            geo = WGS84
        px, py = transformer(geo.proj, self.crs).transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        return np.asarray(px, dtype=np.float64) - self.origin[0], np.asarray(py, dtype=np.float64) - self.origin[1]

    def lonlat_to_local(self, lon: ArrayLike, lat: ArrayLike, z: ArrayLike | float = 0.0) -> NDArray[np.float32]:
        """WGS84 lon/lat (and height in metres) to float32 local vertices, shape (n, 3)."""
        x, y = self.project(lon, lat)
        out = np.empty((x.size, 3), dtype=np.float32)
        out[:, 0] = x.ravel()
        out[:, 1] = y.ravel()
        out[:, 2] = np.broadcast_to(np.asarray(z, dtype=np.float64) - self.origin[2], x.shape).ravel()
        return out

    # -- inverse -------------------------------------------------------------------------
    def local_to_lonlat(self, points: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Local vertices (n, 3) or one point (3,) back to WGS84 lon, lat and height."""
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        x = pts[:, 0] + self.origin[0]
        y = pts[:, 1] + self.origin[1]
        lon, lat = transformer(self.crs, WGS84.proj).transform(x, y)
        z = pts[:, 2] + self.origin[2] if pts.shape[1] > 2 else np.zeros_like(x)
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64), z

    # -- metadata on meshes --------------------------------------------------------------
    def attach(self, mesh: pv.DataSet) -> pv.DataSet:
        """Store the origin and CRS as field data on ``mesh`` (returned for chaining)."""
        mesh.field_data[ORIGIN_FIELD] = np.asarray(self.origin, dtype=np.float64)
        mesh.field_data[CRS_FIELD] = [json.dumps(self.crs.to_json_dict())]  # ASCII-safe PROJJSON
        return mesh

    @classmethod
    def of(cls, mesh: pv.DataSet) -> Frame:
        """The frame stored on a mesh by :meth:`attach`."""
        if ORIGIN_FIELD not in mesh.field_data or CRS_FIELD not in mesh.field_data:
            raise CRSError("mesh carries no twin frame (origin and CRS field data are missing)")
        origin = np.asarray(mesh.field_data[ORIGIN_FIELD], dtype=np.float64)
        text = str(np.asarray(mesh.field_data[CRS_FIELD]).ravel()[0])
        return cls(pyproj.CRS.from_json_dict(json.loads(text)), (float(origin[0]), float(origin[1]), float(origin[2])))

    @property
    def center_lonlat(self) -> tuple[float, float]:
        """WGS84 lon/lat of the origin (where a scene's longitudes are unwrapped around)."""
        lon, lat, _ = self.local_to_lonlat(np.zeros(3))
        return float(lon[0]), float(lat[0])

    # -- description ---------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """A small dict for logs and the app: CRS name and origin."""
        return {"crs": self.crs.name, "origin": list(self.origin)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frame) and self.origin == other.origin and self.crs.equals(other.crs)

    def __hash__(self) -> int:
        return hash((self.crs.to_wkt(), self.origin))


def lon_center(lon: Sequence[float] | NDArray[np.float64]) -> float:
    """The middle of the shortest arc of longitude that holds every finite ``lon`` (degrees).

    Data that does not span more than 180 degrees gets the middle of its min and max (the
    bounding-box centre); data across the antimeridian (RFC 7946 3.1.9: a footprint cut at
    +-180, or points on both sides of it) gets the middle of the arc that avoids the widest empty
    gap between its longitudes, e.g. 180 for points at 179.9 and -179.9, not 0. The result is
    in [-180, 180); NaN when no value is finite.

    >>> lon_center([121.4, 121.6]), lon_center([179.9, -179.9, 180.0]), lon_center([170.0, -150.0])
    (121.5, -180.0, -170.0)
    """
    lon_a = np.asarray(lon, dtype=np.float64).ravel()
    lon_a = lon_a[np.isfinite(lon_a)]
    if lon_a.size == 0:
        return float("nan")
    lo, hi = float(lon_a.min()), float(lon_a.max())
    if hi - lo <= 180:
        c = (lo + hi) / 2
    else:
        w = np.unique(np.mod(lon_a + 180.0, 360.0) - 180.0)
        gaps = np.diff(np.append(w, w[0] + 360.0))
        k = int(np.argmax(gaps))
        c = float(w[(k + 1) % w.size]) + (360.0 - float(gaps[k])) / 2
    return float(np.mod(c + 180.0, 360.0) - 180.0)


def unwrap_lon(lon: NDArray[np.float64], center: float) -> NDArray[np.float64]:
    """Longitudes moved by whole turns into [center - 180, center + 180): parts cut at +-180 meet."""
    return center + np.mod(np.asarray(lon, dtype=np.float64) - center + 180.0, 360.0) - 180.0


def bounds_center(lon: Sequence[float] | NDArray[np.float64], lat: Sequence[float] | NDArray[np.float64]) -> tuple[float, float]:
    """Centre of the lon/lat bounds of some points, ignoring non-finite values (NaN, inf).

    The longitude is :func:`lon_center` (across the antimeridian, the middle of the shortest
    arc); the latitude the middle of the finite ones. Raises :class:`~twin.errors.CRSError` when
    no point has finite coordinates.
    """
    lon_a = np.asarray(lon, dtype=np.float64).ravel()
    lat_a = np.asarray(lat, dtype=np.float64).ravel()
    ok = np.isfinite(lon_a) & np.isfinite(lat_a)
    if not ok.any():
        raise CRSError("no point with finite coordinates to centre the frame on")
    return lon_center(lon_a[ok]), float((lat_a[ok].min() + lat_a[ok].max()) / 2)
