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
from pydantic import Field, field_validator

from twin.alerts.rules import parse_duration
from twin.params import PluginParams, validate_params

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["BBox", "ReadingsSource", "ReadingsSourceParams", "Source", "SourceParams"]

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

    def check(self) -> None:
        """Checks that need no data read, e.g. that a file exists (``twin validate`` runs them); default: nothing.

        Raises :class:`~twin.errors.SourceError` naming the input; a
        :class:`~twin.errors.SourceCheckError` also names the parameter (``key``) at fault.
        """

    def describe(self) -> str:
        """A short human-readable name for messages, e.g. ``file source 'x.geojson'``."""
        return f"{self.type_name} source"

    def data_key(self) -> str | None:
        """Text that changes whenever :meth:`read` may give other features (e.g. a file's path, size and time), for caches of
        what is built from them; None (the default: a server's data may change at any time) when nothing built from it may be kept."""
        return None

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


class ReadingsSourceParams(SourceParams):
    """How a layer polls a readings source so that no reading is lost (mixed into a source's ``Params``).

    Readings often reach a service after their time stamp (a gauge uploads every minute, a
    feed is batched): a poll that asked only for ``(last poll, now]`` would never see them.
    Each poll therefore re-asks for ``lookback`` before the last poll (readings already held are
    recognised and not added twice), and every ``sweep`` the whole history is asked for again;
    readings the sweep finds that arrived later than ``lookback`` are kept and counted as
    ``late`` in the layer's health — a sign to raise ``lookback``.
    """

    lookback: dt.timedelta | None = Field(
        None, description="each poll also re-reads this much before the last poll, for readings that arrive late (default: 3 poll intervals, at least 5m)"
    )
    sweep: dt.timedelta | None = Field(
        None, description="re-read the whole history this often, to find readings that arrived later than lookback (default: 15m; 0s: never)"
    )

    _lookback_durations = field_validator("lookback", "sweep", mode="before")(classmethod(lambda cls, v: None if v is None else parse_duration(v)))


class ReadingsSource(Source):
    """A source of time-stamped point readings (sensors, crowd counts, water depth).

    ``readings(start, end)`` returns a DataFrame with columns ``sensor_id``, ``lon``, ``lat``
    (WGS84), ``time`` (tz-aware or ISO text) and ``value``, for ``start < time <= end``.
    ``read()`` gives the sensors' locations as points (the latest reading of the last hour).

    A layer polls it with overlapping windows (``lookback``) and a periodic full re-read
    (``sweep``), see :class:`ReadingsSourceParams`; a source whose readings can never arrive
    late (a simulator computing them from the clock) sets ``default_lookback`` and
    ``default_sweep`` to zero.
    """

    default_lookback: ClassVar[dt.timedelta] = dt.timedelta(minutes=5)
    default_sweep: ClassVar[dt.timedelta] = dt.timedelta(minutes=15)

    @property
    def lookback(self) -> dt.timedelta:
        """How far before the last poll each poll re-reads: the ``lookback`` param, else the larger
        of ``default_lookback`` and 3 × ``poll_interval``."""
        explicit = getattr(self.params, "lookback", None)
        if explicit is not None:
            return explicit
        interval = getattr(self.params, "poll_interval", None)
        if not self.default_lookback:
            return self.default_lookback
        return max(self.default_lookback, 3 * interval) if interval else self.default_lookback

    @property
    def sweep(self) -> dt.timedelta:
        """How often the whole history is re-read (zero: never)."""
        explicit = getattr(self.params, "sweep", None)
        return explicit if explicit is not None else self.default_sweep

    @abstractmethod
    def readings(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        """Readings with ``start < time <= end``."""

    def read(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        end = dt.datetime.now(dt.timezone.utc)
        frame = self.readings(end - dt.timedelta(hours=1), end)
        latest = frame.sort_values("time").drop_duplicates("sensor_id", keep="last") if len(frame) else frame
        return gpd.GeoDataFrame(latest, geometry=gpd.points_from_xy(latest["lon"], latest["lat"]), crs="EPSG:4326")
