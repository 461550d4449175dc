"""Geographic frame: CRS parsing (PROJ + GCJ-02/BD-09) and the scene's local metric frame."""

from twin.geo.chinese import bd09_to_wgs84, gcj02_to_wgs84, wgs84_to_bd09, wgs84_to_gcj02
from twin.geo.crs import WGS84, GeoCRS, from_wgs84, parse_crs, to_wgs84
from twin.geo.frame import Frame

__all__ = [
    "WGS84",
    "Frame",
    "GeoCRS",
    "bd09_to_wgs84",
    "from_wgs84",
    "gcj02_to_wgs84",
    "parse_crs",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]
