"""A time-ordered buffer of point readings (sensor, lon, lat, time, value) with a history span.

Every live layer keeps its readings here. Bad rows are dropped and counted by reason, never
raised: NaN or out-of-range coordinates, missing or unparsable times, non-numeric values,
values the layer rejects (e.g. negative depths), times in the future (clock skew) and times
older than the history span. Duplicates (same sensor and time) keep the last one. Late and
out-of-order readings are placed in time order, so they land in the right window.

Storage is columnar numpy, sorted by time. The common case — new readings all later than the
newest kept — appends in time proportional to the new rows; late data costs one merge. A layer
can ``derive`` one int64 key per reading at ingest (e.g. its H3 cell), computed once.

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
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from twin.errors import LayerDataError

__all__ = ["IngestReport", "ReadingsBuffer"]

Derive = Callable[[NDArray[np.float64], NDArray[np.float64]], NDArray[np.int64]]
_FIELDS = ("t", "v", "lon", "lat", "s", "k")
_DTYPES = {"t": np.int64, "v": np.float64, "lon": np.float64, "lat": np.float64, "s": np.int32, "k": np.int64}


@dataclass
class IngestReport:
    """What one ingest kept and what it dropped, by reason."""

    accepted: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())


def _ns(when: dt.datetime | pd.Timestamp) -> int:
    ts = pd.Timestamp(when)
    if ts.tzinfo is None:
        raise LayerDataError(f"time {ts.isoformat()} needs a time zone")
    return int(ts.tz_convert("UTC").value)


class ReadingsBuffer:
    """Readings kept for ``span`` (history for replay), sorted by time."""

    def __init__(
        self,
        span: dt.timedelta,
        *,
        max_future: dt.timedelta = dt.timedelta(minutes=5),
        min_value: float | None = None,
        max_value: float | None = None,
        derive: Derive | None = None,
    ) -> None:
        if span <= dt.timedelta(0):
            raise LayerDataError(f"history span {span} must be positive")
        self.span = span
        self.max_future = max_future
        self.min_value = min_value
        self.max_value = max_value
        self.derive = derive
        self._store: dict[str, np.ndarray] = {name: np.zeros(0, dtype) for name, dtype in _DTYPES.items()}
        self._lo = 0  # kept rows are _store[name][_lo:_hi]; appends grow the store geometrically
        self._hi = 0
        self._sensor_index = pd.Index([], dtype=object)
        self.dropped: Counter[str] = Counter()
        """Cumulative count of dropped rows by reason."""

    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def _cols(self) -> dict[str, np.ndarray]:
        return {name: col[self._lo : self._hi] for name, col in self._store.items()}

    def _replace(self, cols: dict[str, np.ndarray]) -> None:
        self._store = {name: np.ascontiguousarray(cols[name], dtype=_DTYPES[name]) for name in _FIELDS}
        self._lo, self._hi = 0, len(cols["t"])

    def _append(self, cols: dict[str, np.ndarray]) -> None:
        """Append rows in amortised O(rows): compact or grow the store only when it is full."""
        m = len(cols["t"])
        if self._hi + m > len(self._store["t"]):
            size = len(self)
            capacity = max(2 * (size + m), 1024)
            store = {name: np.empty(capacity, dtype=_DTYPES[name]) for name in _FIELDS}
            for name in _FIELDS:
                store[name][:size] = self._store[name][self._lo : self._hi]
            self._store, self._lo, self._hi = store, 0, size
        for name in _FIELDS:
            self._store[name][self._hi : self._hi + m] = cols[name]
        self._hi += m

    @property
    def sensors(self) -> pd.Index:
        """Sensor ids by code (``codes`` index into this)."""
        return self._sensor_index

    # -- ingest --------------------------------------------------------------------------
    def ingest(self, frame: pd.DataFrame, now: dt.datetime) -> IngestReport:
        """Add readings (columns lon, lat, time, value, optional sensor_id) as of ``now``."""
        missing = [c for c in ("lon", "lat", "time", "value") if c not in frame.columns]
        if missing:
            raise LayerDataError(f"readings lack column(s) {', '.join(missing)}; got {', '.join(map(str, frame.columns))}")
        report = IngestReport()
        if frame.empty:
            return report
        now_ns = _ns(now)
        lon = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype=np.float64)
        lat = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype=np.float64)
        value = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=np.float64)
        times = frame["time"]
        if not isinstance(times.dtype, pd.DatetimeTZDtype):
            times = pd.to_datetime(times, errors="coerce", utc=True, format="mixed")
        bad_time = times.isna().to_numpy()
        t = times.dt.tz_convert("UTC").to_numpy(dtype="datetime64[ns]").astype(np.int64)
        keep = np.ones(len(frame), dtype=bool)

        def drop(reason: str, mask: np.ndarray) -> None:
            hit = mask & keep
            if hit.any():
                report.dropped[reason] = report.dropped.get(reason, 0) + int(hit.sum())
                keep[hit] = False

        with np.errstate(invalid="ignore"):
            drop("bad_coordinates", ~(np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)))
            drop("bad_time", bad_time)
            drop("bad_value", ~np.isfinite(value))
            if self.min_value is not None:
                drop("below_minimum", value < self.min_value)
            if self.max_value is not None:
                drop("above_maximum", value > self.max_value)
        drop("future_time", ~bad_time & (t > now_ns + int(self.max_future.total_seconds() * 1e9)))
        oldest = now_ns - int(self.span.total_seconds() * 1e9)
        drop("too_old", ~bad_time & (t < oldest))
        if "sensor_id" in frame.columns:
            sensors = frame["sensor_id"]
            if not pd.api.types.is_string_dtype(sensors) or (len(sensors) and not isinstance(sensors.iloc[0], str)):
                sensors = sensors.astype(str)
            codes = self._codes(sensors.to_numpy(dtype=object)[keep])
        else:  # anonymous readings (e.g. device pings): no sensor, never duplicates of each other
            codes = np.full(int(keep.sum()), -1, dtype=np.int32)
        new = {"t": t[keep], "v": value[keep], "lon": lon[keep], "lat": lat[keep], "s": codes}
        new["k"] = self.derive(new["lon"], new["lat"]).astype(np.int64) if self.derive is not None else np.zeros(len(new["t"]), np.int64)
        if len(new["t"]) > 1 and (new["t"][1:] < new["t"][:-1]).any():  # feeds mostly arrive in time order
            order = np.argsort(new["t"], kind="stable")
            new = {name: col[order] for name, col in new.items()}
        before = len(self) + len(new["t"])
        if len(self) == 0 or (len(new["t"]) and new["t"][0] > self._store["t"][self._hi - 1]):
            self._append(_dedupe(new))
        else:  # late data: merge and restore time order (new rows win ties)
            old = self._cols
            both = {name: np.concatenate([old[name], new[name]]) for name in _FIELDS}
            order = np.argsort(both["t"], kind="stable")
            self._replace(_dedupe({name: col[order] for name, col in both.items()}))
        duplicates = before - len(self)
        if duplicates:
            report.dropped["duplicate"] = duplicates
        self._lo += int(np.searchsorted(self._store["t"][self._lo : self._hi], oldest, side="left"))
        report.accepted = int(keep.sum()) - duplicates
        self.dropped.update(report.dropped)
        return report

    def _codes(self, names: np.ndarray) -> np.ndarray:
        # object-dtype indexes on both sides: pandas keeps the hash table of the sensor index between calls
        target = pd.Index(names, dtype=object)
        codes = self._sensor_index.get_indexer(target)
        unknown = codes < 0
        if unknown.any():
            fresh = pd.unique(names[unknown])
            self._sensor_index = pd.Index(np.concatenate([self._sensor_index.to_numpy(dtype=object), np.asarray(fresh, dtype=object)]), dtype=object)
            codes = self._sensor_index.get_indexer(target)
        return codes.astype(np.int32)

    # -- reading -------------------------------------------------------------------------
    def window_slice(self, end: dt.datetime, length: dt.timedelta) -> slice:
        """Positions of readings with ``end - length < time <= end``."""
        t = self._cols["t"]
        end_ns = _ns(end)
        lo = int(np.searchsorted(t, end_ns - int(length.total_seconds() * 1e9), side="right"))
        hi = int(np.searchsorted(t, end_ns, side="right"))
        return slice(lo, hi)

    def column(self, name: str) -> np.ndarray:
        """A raw column: t (int64 ns UTC), v, lon, lat, s (sensor code), k (derived key)."""
        return self._cols[name]

    def _frame(self, rows: slice | np.ndarray) -> pd.DataFrame:
        c = self._cols
        return pd.DataFrame(
            {
                "sensor_id": _names(self._sensor_index, c["s"][rows]),
                "lon": c["lon"][rows],
                "lat": c["lat"][rows],
                "time": pd.to_datetime(c["t"][rows], utc=True),
                "value": c["v"][rows],
            }
        )

    @property
    def data(self) -> pd.DataFrame:
        """All kept readings, oldest first."""
        return self._frame(slice(0, len(self)))

    def window(self, end: dt.datetime, length: dt.timedelta) -> pd.DataFrame:
        """Readings with ``end - length < time <= end``."""
        return self._frame(self.window_slice(end, length))

    def latest(self, end: dt.datetime, max_age: dt.timedelta | None = None) -> pd.DataFrame:
        """The last reading of each sensor at or before ``end`` (optionally not older than ``max_age``), by sensor_id."""
        rows = self.window_slice(end, max_age if max_age is not None else dt.timedelta(days=36500))
        codes = self._cols["s"][rows]
        _, last_reversed = np.unique(codes[::-1], return_index=True)
        picked = np.sort(rows.start + len(codes) - 1 - last_reversed)
        return self._frame(picked).set_index("sensor_id")


def _dedupe(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keep the last row of each (time, sensor) pair; anonymous rows (sensor -1) are all kept."""
    t, s = cols["t"], cols["s"]
    if len(t) < 2 or not (t[1:] == t[:-1]).any():
        return cols
    span, sensors = int(t.max() - t.min()) + 1, int(s.max()) + 2
    if span < (1 << 62) // sensors:  # one int64 key per (time, sensor): hashing one column is quicker
        duplicate = pd.Series((t - t.min()) * sensors + (s + 1)).duplicated(keep="last").to_numpy()
    else:
        duplicate = pd.DataFrame({"t": t, "s": s}).duplicated(keep="last").to_numpy()
    duplicate = duplicate & (s >= 0)
    if not duplicate.any():
        return cols
    return {name: col[~duplicate] for name, col in cols.items()}


def _names(index: pd.Index, codes: np.ndarray) -> np.ndarray:
    """Sensor ids for codes; anonymous readings (-1) get ''."""
    names = np.full(len(codes), "", dtype=object)
    known = codes >= 0
    if known.any():
        names[known] = index.to_numpy()[codes[known]]
    return names
