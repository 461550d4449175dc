"""A time-ordered buffer of point readings (sensor, lon, lat, time, value) with a history span.

Every live layer keeps its readings here. Bad rows are dropped and counted by reason, never
raised: NaN or out-of-range coordinates, missing or unparsable times, non-numeric values,
values the layer rejects (e.g. negative depths), times in the future (clock skew) and times
older than the history span. Duplicates (same sensor and time) keep the last one. Late and
out-of-order readings are placed in time order, so they land in the right window.

>>> import pandas as pd, datetime as dt
>>> now = dt.datetime(2026, 7, 1, 10, tzinfo=dt.timezone.utc)
>>> buf = ReadingsBuffer(span=dt.timedelta(hours=1))
>>> report = buf.ingest(pd.DataFrame({"sensor_id": ["a", "a", "b"], "lon": [121.48, 121.48, 999],
...     "lat": [31.23, 31.23, 31.2], "time": ["2026-07-01T09:58Z", "2026-07-01T09:59Z", "2026-07-01T09:59Z"],
...     "value": [3.0, 4.0, 1.0]}), now)
>>> report.accepted, report.dropped
(2, {'bad_coordinates': 1})
>>> buf.latest(now)["value"].tolist()
[4.0]
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from twin.errors import LayerDataError

__all__ = ["COLUMNS", "IngestReport", "ReadingsBuffer"]

COLUMNS = ("sensor_id", "lon", "lat", "time", "value")


@dataclass
class IngestReport:
    """What one ingest kept and what it dropped, by reason."""

    accepted: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sensor_id": pd.Series(dtype=object),
            "lon": pd.Series(dtype=np.float64),
            "lat": pd.Series(dtype=np.float64),
            "time": pd.Series(dtype="datetime64[ns, UTC]"),
            "value": pd.Series(dtype=np.float64),
        }
    )


class ReadingsBuffer:
    """Readings kept for ``span`` (history for replay), sorted by time."""

    def __init__(
        self,
        span: dt.timedelta,
        *,
        max_future: dt.timedelta = dt.timedelta(minutes=5),
        min_value: float | None = None,
        max_value: float | None = None,
    ) -> None:
        if span <= dt.timedelta(0):
            raise LayerDataError(f"history span {span} must be positive")
        self.span = span
        self.max_future = max_future
        self.min_value = min_value
        self.max_value = max_value
        self._data = _empty()
        self.dropped: Counter[str] = Counter()
        """Cumulative count of dropped rows by reason."""
        self.latest_time: pd.Timestamp | None = None

    def __len__(self) -> int:
        return len(self._data)

    @property
    def data(self) -> pd.DataFrame:
        """All kept readings, oldest first (a view: do not modify)."""
        return self._data

    def ingest(self, frame: pd.DataFrame, now: dt.datetime) -> IngestReport:
        """Add readings (columns lon, lat, time, value, optional sensor_id) as of ``now``."""
        missing = [c for c in ("lon", "lat", "time", "value") if c not in frame.columns]
        if missing:
            raise LayerDataError(f"readings lack column(s) {', '.join(missing)}; got {', '.join(map(str, frame.columns))}")
        report = IngestReport()
        if frame.empty:
            return report
        now_ts = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC")
        lon = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype=np.float64)
        lat = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype=np.float64)
        value = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=np.float64)
        time = pd.to_datetime(frame["time"], errors="coerce", utc=True, format="mixed")
        sensor = frame["sensor_id"].astype(str).to_numpy(dtype=object) if "sensor_id" in frame.columns else _location_ids(lon, lat)
        keep = np.ones(len(frame), dtype=bool)

        def drop(reason: str, mask: np.ndarray) -> None:
            hit = mask & keep
            if hit.any():
                report.dropped[reason] = report.dropped.get(reason, 0) + int(hit.sum())
                keep[hit] = False

        drop("bad_coordinates", ~(np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)))
        drop("bad_time", time.isna().to_numpy())
        drop("bad_value", ~np.isfinite(value))
        if self.min_value is not None:
            drop("below_minimum", value < self.min_value)
        if self.max_value is not None:
            drop("above_maximum", value > self.max_value)
        times = time.to_numpy(dtype="datetime64[ns]")
        future_limit = (now_ts + pd.Timedelta(self.max_future)).tz_localize(None).to_datetime64()
        oldest = (now_ts - pd.Timedelta(self.span)).tz_localize(None).to_datetime64()
        valid_time = ~time.isna().to_numpy()
        drop("future_time", valid_time & (times > future_limit))
        drop("too_old", valid_time & (times < oldest))
        fresh = pd.DataFrame({"sensor_id": sensor[keep], "lon": lon[keep], "lat": lat[keep], "time": time[keep].to_numpy(), "value": value[keep]})
        fresh["time"] = pd.to_datetime(fresh["time"], utc=True)
        combined = pd.concat([self._data, fresh], ignore_index=True) if len(self._data) else fresh
        before = len(combined)
        combined = combined.drop_duplicates(subset=["sensor_id", "time"], keep="last")
        duplicates = before - len(combined)
        if duplicates:
            report.dropped["duplicate"] = duplicates
        combined = combined.sort_values("time", kind="stable")
        self._data = combined[combined["time"] >= now_ts - pd.Timedelta(self.span)].reset_index(drop=True)
        report.accepted = int(keep.sum()) - duplicates
        self.dropped.update(report.dropped)
        if len(self._data):
            self.latest_time = self._data["time"].iloc[-1]
        return report

    def window(self, end: dt.datetime, length: dt.timedelta) -> pd.DataFrame:
        """Readings with ``end - length < time <= end``."""
        times = self._data["time"]
        end_ts = pd.Timestamp(end).tz_convert("UTC")
        lo = times.searchsorted(end_ts - pd.Timedelta(length), side="right")
        hi = times.searchsorted(end_ts, side="right")
        return self._data.iloc[lo:hi]

    def latest(self, end: dt.datetime, max_age: dt.timedelta | None = None) -> pd.DataFrame:
        """The last reading of each sensor at or before ``end`` (optionally not older than ``max_age``)."""
        upto = self.window(end, max_age if max_age is not None else self.span * 10 + dt.timedelta(days=3650))
        return upto.drop_duplicates(subset=["sensor_id"], keep="last").set_index("sensor_id")


def _location_ids(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Sensor ids from rounded coordinates when the feed has none (~1 cm)."""
    return np.array([f"{x:.7f},{y:.7f}" for x, y in zip(lon, lat)], dtype=object)
