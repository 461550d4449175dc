"""Source base class: where a layer's features or readings come from.

A source delivers a GeoDataFrame in WGS84 lon/lat (EPSG:4326), whatever CRS the data has at
rest; converting at this boundary means every layer sees one frame of reference.

>>> import geopandas as gpd, shapely
>>> class OnePoint(Source):
...     '''A source with a single point at the Bund.'''
...     type_name = "one_point"
...     def read(self, bbox=None):
...         return gpd.GeoDataFrame(geometry=[shapely.Point(121.49, 31.24)], crs="EPSG:4326")
>>> len(OnePoint().read())
1
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import geopandas as gpd
import pandas as pd

from twin.params import PluginParams, validate_params

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["BBox", "ReadingsSource", "Source", "SourceParams"]

BBox = tuple[float, float, float, float]
"""(min lon, min lat, max lon, max lat) in WGS84."""


class SourceParams(PluginParams):
    """Parameters every source accepts (none so far); plugins subclass this."""


class Source(ABC):
    """A data source plugin. Subclasses set ``type_name``, a nested ``Params`` model and :meth:`read`."""

    type_name: ClassVar[str] = ""
    Params: ClassVar[type[SourceParams]] = SourceParams

    def __init__(self, **params: Any) -> None:
        self.params = validate_params(self.Params, params, where=f"{self.type_name or type(self).__name__} source")

    @abstractmethod
    def read(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        """All features (within ``bbox`` when given, as far as the source can filter), in EPSG:4326."""

    def describe(self) -> str:
        """A short human-readable name for messages, e.g. ``file source 'x.geojson'``."""
        return f"{self.type_name} source"

    def to_dict(self) -> dict[str, Any]:
        """The scene-file form: ``{"type": ..., **non-default params}``."""
        return {"type": self.type_name, **self.params.model_dump(mode="json", exclude_defaults=True)}

    def close(self) -> None:
        """Release what the source holds (HTTP sessions, worker threads); none by default.
        A closed source may be read again: it opens what it needs anew."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReadingsSource(Source):
    """A source of time-stamped point readings (sensors, crowd counts, water depth).

    ``readings(start, end)`` returns a DataFrame with columns ``sensor_id``, ``lon``, ``lat``
    (WGS84), ``time`` (tz-aware or ISO text) and ``value``, for ``start < time <= end``.
    ``read()`` gives the sensors' locations as points (the latest reading of the last hour).
    """

    @abstractmethod
    def readings(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        """Readings with ``start < time <= end``."""

    def read(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        end = dt.datetime.now(dt.timezone.utc)
        frame = self.readings(end - dt.timedelta(hours=1), end)
        latest = frame.sort_values("time").drop_duplicates("sensor_id", keep="last") if len(frame) else frame
        return gpd.GeoDataFrame(latest, geometry=gpd.points_from_xy(latest["lon"], latest["lat"]), crs="EPSG:4326")
