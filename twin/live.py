"""What live layers share: a snapshot of the latest value per feature at a moment.

Alert rules, the app's stale badge and notebooks read live layers through this one shape,
whatever the layer draws (flood gauges, H3 cells, sensors).

>>> import pandas as pd, datetime as dt
>>> t = dt.datetime(2026, 7, 1, 18, tzinfo=dt.timezone.utc)
>>> snap = LiveSnapshot("flood", pd.DataFrame({"value": [22.0], "lon": [121.48], "lat": [31.23], "time": [t]}, index=["FP001"]), t)
>>> snap.age(t + dt.timedelta(minutes=2)).total_seconds()
120.0
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import pandas as pd

if TYPE_CHECKING:
    from twin.readings import IngestReport

__all__ = ["SNAPSHOT_COLUMNS", "LiveLayer", "LiveSnapshot", "SourceHealth"]

SNAPSHOT_COLUMNS = ("value", "lon", "lat", "time")


@dataclass
class SourceHealth:
    """How a layer's source is doing: the app's data-age badge and stale-source alerts read this.

    ``last_success`` is the last successful read or poll and ``last_poll`` the last attempt
    (wall-clock, tz-aware). For layers fed by readings, ``newest_reading`` is the time stamp of
    the newest reading held: the layer's **data age** is measured from it, not from the last
    poll — a source that answers but has nothing new grows old. ``dropped`` counts, since the
    layer started, the readings that did not reach it, by reason (``bad_time``,
    ``bad_coordinates``, ``duplicate``, ``too_old``, ...); ``late`` counts readings that arrived
    after the poll overlap (``lookback``) had passed their time and were found by a sweep — kept,
    but a sign the overlap is too short; ``revised`` counts readings the service changed after
    they were first read (the new value is kept).

    >>> import datetime as dt
    >>> t = dt.datetime(2026, 7, 1, 10, tzinfo=dt.timezone.utc)
    >>> h = SourceHealth(last_success=t, newest_reading=t - dt.timedelta(minutes=3))
    >>> h.data_age(t).total_seconds()
    180.0
    """

    last_success: dt.datetime | None = None
    last_error: dt.datetime | None = None
    error: str | None = None
    last_report: IngestReport | None = None
    last_poll: dt.datetime | None = None
    newest_reading: dt.datetime | None = None
    dropped: Counter[str] = field(default_factory=Counter)
    late: int = 0
    revised: int = 0

    def data_age(self, now: dt.datetime) -> dt.timedelta | None:
        """Age of the newest reading at ``now``; for sources without readings, of the last successful read."""
        if self.newest_reading is not None:
            return now - self.newest_reading
        return None if self.last_success is None else now - self.last_success

    def is_stale(self, now: dt.datetime, max_age: dt.timedelta) -> bool:
        age = self.data_age(now)
        return age is None or age > max_age


@dataclass(frozen=True)
class LiveSnapshot:
    """The latest reading per feature of one live layer.

    ``table`` is indexed by feature key (str) with at least the columns ``value`` (float, NaN
    when the feature has no usable reading), ``lon``, ``lat`` (WGS84) and ``time`` (tz-aware
    time of that reading); optional ``name`` and further value columns. ``updated_at`` is the
    time stamp of the layer's newest reading at or before the snapshot's moment (None: none).
    """

    layer_id: str
    table: pd.DataFrame
    updated_at: dt.datetime | None

    def age(self, now: dt.datetime) -> dt.timedelta | None:
        """How old the layer's newest reading is at ``now`` (None if it never had any)."""
        return None if self.updated_at is None else now - self.updated_at


@runtime_checkable
class LiveLayer(Protocol):
    """A layer whose values change over time."""

    id: str

    def snapshot(self, now: dt.datetime) -> LiveSnapshot:
        """The latest value per feature as of ``now`` (scene time)."""
        ...
