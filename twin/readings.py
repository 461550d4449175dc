"""A time-ordered buffer of point readings (sensor, lon, lat, time, value) with a history span.

Every live layer keeps its readings here. Bad rows are dropped and counted by reason, never
raised: NaN or out-of-range coordinates, missing or unparsable times, non-numeric values,
values the layer rejects (e.g. negative depths), times in the future (clock skew) and times
older than the history span. Duplicates (same sensor and time) keep the last one. Late and
out-of-order readings are placed in time order, so they land in the right window.

Storage is columnar numpy, sorted by time. The common case — new readings all later than the
newest kept — appends in time proportional to the new rows; overlapping or late data merges with
the held rows from its oldest time on, in time proportional to that tail. The room reserved
follows the rows kept, not their peak: it doubles when full, rows move within it while the flow is
steady, and it is given back (to twice the rows) once over four times them, e.g. after a crowd surge
leaves the history span; an unattended wall's memory then levels off. A layer
can ``derive`` one int64 key per reading at ingest (e.g. its H3 cell), computed once.

>>> import pandas as pd, datetime as dt
>>> now = dt.datetime(2026, 7, 1, 10, tzinfo=dt.timezone.utc)
>>> buf = ReadingsBuffer(span=dt.timedelta(hours=1))
>>> report = buf.ingest(pd.DataFrame({"sensor_id": ["a", "a", "b"], "lon": [121.48, 121.48, 999],
...     "lat": [31.23, 31.23, 31.2], "time": ["2026-07-01T09:58Z", "2026-07-01T09:59Z", "2026-07-01T09:59Z"],
...     "value": [3.0, 4.0, 1.0]}), now)
>>> report.accepted, dict(report.dropped)
(2, {'bad_coordinates': 1})
>>> buf.latest(now)["value"].tolist()
[4.0]

Polls overlap (so readings that reach the service late are not missed): readings already held
are recognised by (sensor, time) and not added twice.

>>> again = buf.ingest(pd.DataFrame({"sensor_id": ["a", "a"], "lon": [121.48] * 2, "lat": [31.23] * 2,
...     "time": ["2026-07-01T09:59Z", "2026-07-01T09:59:30Z"], "value": [4.0, 5.0]}), now)
>>> again.accepted, again.refetched, len(buf)
(1, 1, 3)
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
_MAX_SEEN_DROPS = 100_000
"""Dropped rows remembered (so overlapping polls count each once); oldest forgotten first."""
_MIN_CAPACITY = 1024
"""Rows a store starts with once readings come, and never shrinks below."""
_DTYPES = {"t": np.int64, "v": np.float64, "lon": np.float64, "lat": np.float64, "s": np.int32, "k": np.int64}


@dataclass
class IngestReport:
    """What one ingest kept and what it dropped, by reason."""

    accepted: int = 0
    """New readings added."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Readings not added, by reason."""
    refetched: int = 0
    """Readings already held (polls overlap on purpose): neither added nor dropped."""
    revised: int = 0
    """Held readings whose value or place the source changed: replaced by the new value."""
    late: int = 0
    """Accepted readings stamped at or before the ingest's ``late_before``."""

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
        self._lo = 0  # kept rows are _store[name][_lo:_hi] (see _append, _shrink)
        self._hi = 0
        self._sensor_index = pd.Index([], dtype=object)
        self.dropped: Counter[str] = Counter()
        """Cumulative count of dropped rows by reason (a row that polls see again is counted once)."""
        self._seen_drops: dict[tuple[str, int], int] = {}
        """(reason, row hash) → ns when first dropped: overlapping polls show a bad row again."""

    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def _cols(self) -> dict[str, np.ndarray]:
        return {name: col[self._lo : self._hi] for name, col in self._store.items()}

    def _append(self, cols: dict[str, np.ndarray]) -> None:
        """Append rows in amortised O(rows): move or reallocate the store only when it is full."""
        m = len(cols["t"])
        if self._hi + m > self.capacity:
            self._make_room(len(self) + m)
        for name in _FIELDS:
            self._store[name][self._hi : self._hi + m] = cols[name]
        self._hi += m

    @property
    def capacity(self) -> int:
        """Rows the store has room for (its memory: 44 bytes a row); at most four times the rows kept, or 1024."""
        return len(self._store["t"])

    def _make_room(self, rows: int) -> None:
        """Room for ``rows`` rows from the store's start: the kept rows move to the front, in place when the store
        holds at least twice ``rows`` (the full store's kept rows then lie past its first ``rows``: no overlap, no
        temporary), else into a new store of twice ``rows``."""
        if self.capacity >= 2 * rows:
            size = len(self)
            for col in self._store.values():
                col[:size] = col[self._lo : self._hi]
            self._lo, self._hi = 0, size
        else:
            self._reallocate(max(2 * rows, _MIN_CAPACITY))

    def _shrink(self) -> None:
        """Give back the room a surge took: a store over four times the rows kept (and over the minimum) is
        reallocated to twice them, so its size follows the readings held in the span, not their peak."""
        if self.capacity > max(4 * len(self), _MIN_CAPACITY):
            self._reallocate(max(2 * len(self), _MIN_CAPACITY))

    def _reallocate(self, capacity: int) -> None:
        """A new store of ``capacity`` rows (at least the rows kept), holding the kept rows from its start."""
        size = len(self)
        store = {name: np.empty(capacity, dtype=_DTYPES[name]) for name in _FIELDS}
        for name in _FIELDS:
            store[name][:size] = self._store[name][self._lo : self._hi]
        self._store, self._lo, self._hi = store, 0, size

    @property
    def sensors(self) -> pd.Index:
        """Sensor ids by code (``codes`` index into this)."""
        return self._sensor_index

    # -- ingest --------------------------------------------------------------------------
    def ingest(self, frame: pd.DataFrame, now: dt.datetime, *, late_before: dt.datetime | None = None) -> IngestReport:
        """Add readings (columns lon, lat, time, value, optional sensor_id) as of ``now``.

        A reading is identified by (sensor_id, time); anonymous readings (no sensor_id) by
        (time, lon, lat, value). Readings already held are not added again (``refetched``: polls
        overlap on purpose, so late arrivals are not missed); a held reading whose value or place
        changed is replaced (``revised``); repeats within ``frame`` keep the last
        (``duplicate``, a drop). Accepted readings stamped at or before ``late_before`` are
        counted as ``late``.

        Raises:
            LayerDataError: ``frame`` lacks a column, or ``now`` is naive.
        """
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

        row_hash: np.ndarray | None = None

        def drop(reason: str, mask: np.ndarray) -> None:
            nonlocal row_hash
            hit = mask & keep
            if hit.any():
                if row_hash is None:
                    row_hash = pd.util.hash_pandas_object(frame[[c for c in ("sensor_id", "lon", "lat", "time", "value") if c in frame.columns]], index=False).to_numpy()
                report.dropped[reason] += self._first_drops(reason, row_hash[hit], now_ns)
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
        arrived = len(new["t"])
        if arrived == 0:
            pass
        elif len(self) == 0 or new["t"][0] > self._store["t"][self._hi - 1]:
            kept = _dedupe(new)
            report.dropped["duplicate"] = self._first_drops("duplicate", _row_keys(_repeated(new, kept)), now_ns)
            self._append(kept)
            report.accepted = len(kept["t"])
            fresh_times = kept["t"]
        else:  # overlapping or late data: merge with the held rows from the oldest new time on
            tail_start = self._lo + int(np.searchsorted(self._store["t"][self._lo : self._hi], new["t"][0], side="left"))
            tail = {name: self._store[name][tail_start : self._hi] for name in _FIELDS}
            merged, counts, fresh_times, repeats = _merge(tail, new)
            self._hi = tail_start
            self._append(merged)
            report.dropped["duplicate"] = self._first_drops("duplicate", _row_keys(repeats), now_ns)
            report.accepted, report.refetched, report.revised = counts["accepted"], counts["refetched"], counts["revised"]
        if arrived:
            if late_before is not None:
                report.late = int((fresh_times <= _ns(late_before)).sum())
            if not report.dropped["duplicate"]:
                del report.dropped["duplicate"]
        self._lo += int(np.searchsorted(self._store["t"][self._lo : self._hi], oldest, side="left"))
        self._shrink()
        self.dropped.update(report.dropped)
        return report

    def _first_drops(self, reason: str, hashes: np.ndarray, now_ns: int) -> int:
        """How many of these dropped rows (by hash) were not dropped before: overlapping polls
        show a bad row again, and it is counted once. Rows are remembered for the history span,
        at most ``_MAX_SEEN_DROPS`` of them."""
        seen = self._seen_drops
        fresh = 0
        for h in hashes.tolist():
            if (reason, h) not in seen:
                seen[(reason, h)] = now_ns
                fresh += 1
        expired = now_ns - int(self.span.total_seconds() * 1e9)
        while seen:
            first = next(iter(seen))
            if seen[first] >= expired and len(seen) <= _MAX_SEEN_DROPS:
                break
            del seen[first]
        return fresh

    def newest(self, at: dt.datetime | None = None) -> pd.Timestamp | None:
        """Time stamp (UTC) of the newest reading held, or of the newest at or before ``at``; None if none."""
        t = self._store["t"][self._lo : self._hi]
        i = len(t) if at is None else int(np.searchsorted(t, _ns(at), side="right"))
        return None if i == 0 else pd.Timestamp(int(t[i - 1]), tz="UTC")

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


def _merge(held: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int], np.ndarray]:
    """Merge time-sorted ``new`` rows into the time-sorted ``held`` rows they overlap.

    Returns the merged rows (time order), counts (accepted, refetched, revised, duplicate) and
    the times of the accepted rows. Named readings: one row per (time, sensor), the last new
    row winning; anonymous ones (sensor -1): a new row equal in (time, lon, lat, value) to a
    held row is that row again, other new rows are all kept.
    """
    m, n = len(held["t"]), len(new["t"])
    both = {name: np.concatenate([held[name], new[name]]) for name in _FIELDS}
    is_new = np.r_[np.zeros(m, bool), np.ones(n, bool)]
    anonymous = both["s"] < 0
    # sort by identity, held rows before new rows of the same identity
    same_place = np.where(anonymous, both["lon"], 0.0), np.where(anonymous, both["lat"], 0.0), np.where(anonymous, both["v"], 0.0)
    order = np.lexsort((np.arange(m + n), is_new, same_place[2], same_place[1], same_place[0], both["s"], both["t"]))
    t, s, fresh = both["t"][order], both["s"][order], is_new[order]
    key_cols = (t, s, same_place[0][order], same_place[1][order], same_place[2][order])
    starts = np.r_[True, np.any([col[1:] != col[:-1] for col in key_cols], axis=0)] if len(t) else np.zeros(0, bool)
    group = np.cumsum(starts) - 1
    n_groups = int(group[-1]) + 1 if len(group) else 0
    has_held = np.zeros(n_groups, bool)
    has_held[group[~fresh]] = True
    n_new = np.bincount(group[fresh], minlength=n_groups)
    last = np.r_[starts[1:], True]  # last row of each group
    anon = s < 0
    # named: keep the last row of each group; anonymous: keep held rows and new rows of groups without a held row
    keep = np.where(anon, ~fresh | ~has_held[group], last)
    counts = {
        "duplicate": int(np.maximum(n_new - 1, 0)[~_group_any(anon, group, n_groups)].sum()),
        "refetched": 0,
        "revised": 0,
        "accepted": 0,
    }
    sorted_cols = {name: both[name][order] for name in _FIELDS}
    named_last_new = last & fresh & ~anon
    held_idx = np.flatnonzero(~fresh & ~anon & ~last)  # a held named row followed by a new row of its identity
    if len(held_idx):
        nxt = _group_last(held_idx, last)
        same = (sorted_cols["v"][held_idx] == sorted_cols["v"][nxt]) & (sorted_cols["lon"][held_idx] == sorted_cols["lon"][nxt]) & (sorted_cols["lat"][held_idx] == sorted_cols["lat"][nxt])
        counts["refetched"] = int(same.sum())
        counts["revised"] = int((~same).sum())
    accepted_named = named_last_new & ~has_held[group]
    accepted_anon = anon & fresh & keep
    accepted = accepted_named | accepted_anon
    counts["accepted"] = int(accepted.sum())
    counts["refetched"] += int((anon & fresh & ~keep).sum())
    fresh_times = t[accepted]
    kept = np.flatnonzero(keep)
    time_order = kept[np.argsort(t[kept], kind="stable")]
    repeated = np.flatnonzero(fresh & ~anon & ~last)
    return (
        {name: col[time_order] for name, col in sorted_cols.items()},
        counts,
        fresh_times,
        {name: col[repeated] for name, col in sorted_cols.items()},
    )


def _row_keys(cols: dict[str, np.ndarray]) -> np.ndarray:
    """One hash per row of (time, sensor, value, lon, lat)."""
    table = pd.DataFrame({name: cols[name] for name in ("t", "s", "v", "lon", "lat")})
    return pd.util.hash_pandas_object(table, index=False).to_numpy()


def _repeated(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows of ``before`` that :func:`_dedupe` removed (for counting)."""
    if len(after["t"]) == len(before["t"]):
        return {name: col[:0] for name, col in before.items()}
    t, s = before["t"], before["s"]
    mask = pd.DataFrame({"t": t, "s": s}).duplicated(keep="last").to_numpy() & (s >= 0)
    return {name: col[mask] for name, col in before.items()}


def _group_any(mask: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group: whether any row has ``mask``."""
    out = np.zeros(n_groups, bool)
    out[group[mask]] = True
    return out


def _group_last(rows: np.ndarray, last: np.ndarray) -> np.ndarray:
    """For each row position, the position of the last row of its group (``last`` flags group ends)."""
    ends = np.flatnonzero(last)
    return ends[np.searchsorted(ends, rows, side="left")]


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
