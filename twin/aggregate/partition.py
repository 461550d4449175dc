"""One partition of a readings dataset aggregated per H3 cell and time window (the unit of work of both engines).

The window grid is fixed and aligned to the Unix epoch: window ``k`` holds the readings with
``(k - 1) * L < time <= k * L`` (``L`` the window length) and is named by its end ``k * L``. This is the
live ``h3`` layer's window ``end - L < time <= end`` with ``end`` on the grid: a reading at exactly a
window end belongs to that window.

A partition is one folder of a hive-partitioned dataset, ``day=YYYY-MM-DD``: the readings whose own time
falls on that day (in ``partition_time_zone``). It is read file by file (sorted by name) in batches
of ``batch_rows``, only the mapped columns; each batch is cleaned and reduced to 32 bytes a reading
(sensor hash, time, cell, value) before the next is read. Rows are dropped and counted by reason as
:class:`twin.readings.ReadingsBuffer` drops them: ``bad_coordinates``, ``bad_time``, ``bad_value``,
``future_time`` (later than ``now + max_future``), ``outside_partition`` (a time not on the folder's
day: it could duplicate a reading filed under its own day, which that day's task would not see) and
``duplicate`` (same sensor and time: the last in file and row order is kept). Since every kept
reading lies on its folder's day, two readings of the same sensor and time are always in the same
partition, and dedupe within the partition is complete. Without a sensor column readings are
anonymous and never duplicates (as in the live layer).

The result is a partial aggregate per (window end, cell): ``count``, ``sum``, ``max``. Windows that
straddle two partitions (around midnight) get partials from both; they combine exactly (counts and
sums add, maxima take the max; the mean is ``sum / count`` at the very end).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from twin.alerts.rules import parse_duration
from twin.errors import AggregateError, unknown_name
from twin.h3 import points_to_cells

__all__ = ["DROP_REASONS", "READING_FIELDS", "AggregateSpec", "Partial", "Partition", "aggregate_partition", "merge_partials", "window_ends"]

READING_FIELDS = ("sensor_id", "lon", "lat", "time", "value")
"""The fields of a reading; ``columns`` maps them to the dataset's column names."""
OPTIONAL_FIELDS = ("sensor_id", "value")
"""Fields a dataset may lack: no sensor column makes readings anonymous, no value column counts each reading as 1."""
DROP_REASONS = ("bad_coordinates", "bad_time", "bad_value", "future_time", "outside_partition", "duplicate")
PARTIAL_COLUMNS = ("window_end", "cell", "count", "sum", "max")


@dataclass(frozen=True)
class AggregateSpec:
    """What to aggregate and how; picklable, sent with every task.

    ``resolution``: H3 resolution 0-15. ``window``: window length (> 0). ``columns``: reading field ->
    dataset column (fields not given use their own name; ``sensor_id``/``value`` map to ``None`` to say
    the dataset has none). ``time_zone``: zone of naive times in the data. ``partition``: the hive key
    naming the day; ``partition_time_zone``: the zone its days are in. ``now`` (tz-aware): readings later
    than ``now + max_future`` are dropped as ``future_time``. ``batch_rows``: rows read at a time.
    """

    resolution: int = 9
    window: dt.timedelta = dt.timedelta(minutes=5)
    columns: Mapping[str, str | None] = field(default_factory=dict)
    time_zone: str = "UTC"
    partition: str = "day"
    partition_time_zone: str = "UTC"
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    max_future: dt.timedelta = dt.timedelta(minutes=5)
    batch_rows: int = 1 << 20

    def __post_init__(self) -> None:
        if not 0 <= int(self.resolution) <= 15:
            raise AggregateError(f"H3 resolution {self.resolution} is outside 0..15")
        try:
            object.__setattr__(self, "window", parse_duration(self.window))
        except ValueError as exc:
            raise AggregateError(f"window: {exc}") from None
        if self.window <= dt.timedelta(0):
            raise AggregateError(f"window {self.window} must be longer than zero")
        for name in self.columns:
            if name not in READING_FIELDS:
                raise AggregateError("columns: " + unknown_name("reading field", name, READING_FIELDS, listed="fields"))
        for name in set(READING_FIELDS) - set(OPTIONAL_FIELDS):
            if name in self.columns and self.columns[name] is None:
                raise AggregateError(f"columns: {name} is required, it cannot map to none")
        if self.now.tzinfo is None:
            raise AggregateError(f"now {self.now.isoformat()} needs a time zone")

    @property
    def window_ns(self) -> int:
        """Window length in nanoseconds."""
        return int(self.window / dt.timedelta(microseconds=1)) * 1000

    def column(self, name: str) -> str | None:
        """The dataset column of reading field ``name`` (None: the dataset has none)."""
        return self.columns.get(name, name)


@dataclass(frozen=True)
class Partition:
    """One day folder: its key (``2026-07-01``), its time range ``[start_ns, end_ns)`` in ns UTC, its files in read order."""

    key: str
    start_ns: int
    end_ns: int
    files: tuple[str, ...]


@dataclass
class Partial:
    """One partition's partial aggregate and its counts.

    ``table``: columns window_end (int64 ns UTC), cell (uint64 H3 id), count (int64), sum and max
    (float64), one row per (window_end, cell), sorted by them. ``rows_read``: rows in the files;
    ``dropped``: rows left out, by reason.
    """

    key: str
    table: pd.DataFrame
    rows_read: int
    dropped: Counter[str]


def window_ends(times_ns: np.ndarray, window_ns: int) -> np.ndarray:
    """The end of each time's window on the epoch grid: the smallest multiple of ``window_ns`` at or after it.

    >>> window_ends(np.array([0, 1, 300, 301, -1]), 300).tolist()
    [0, 300, 300, 600, 0]
    """
    return -((-times_ns) // window_ns) * window_ns


def aggregate_partition(part: Partition, spec: AggregateSpec) -> Partial:
    """Aggregate one partition (see the module doc). Raises AggregateError naming a file that cannot be read or lacks a column."""
    dropped: Counter[str] = Counter()
    chunks: list[dict[str, np.ndarray]] = []
    rows_read = 0
    for frame, where in _batches(part, spec):
        rows_read += len(frame)
        chunks.append(_clean(frame, part, spec, dropped, where))
    cols = {name: np.concatenate([c.pop(name) for c in chunks]) if chunks else np.zeros(0, dtype) for name, dtype in _COMPACT.items()}  # frees as it goes
    del chunks
    duplicate = _duplicates(cols["s"], cols["t"], cols["named"])
    if duplicate.any():
        dropped["duplicate"] += int(duplicate.sum())
        cols = {name: col[~duplicate] for name, col in cols.items()}
    table = _group(window_ends(cols["t"], spec.window_ns), cols["cell"], cols["v"], spec.window_ns)
    return Partial(part.key, table, rows_read, +dropped)


def merge_partials(table: pd.DataFrame) -> pd.DataFrame:
    """Combine partial rows of the same (window_end, cell), in row order: counts and sums add, maxima take the max. Sorted."""
    merged = table.groupby(["window_end", "cell"], sort=True).agg(count=("count", "sum"), sum=("sum", "sum"), max=("max", "max"))
    return merged.reset_index()


_COMPACT = {"s": np.uint64, "named": np.bool_, "t": np.int64, "cell": np.uint64, "v": np.float64}


def _batches(part: Partition, spec: AggregateSpec) -> Iterator[tuple[pd.DataFrame, str]]:
    """The partition's rows, ``batch_rows`` at a time, columns renamed to the reading fields."""
    for path in part.files:
        try:
            reader = pq.ParquetFile(path)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise AggregateError(f"{path}: cannot read as Parquet: {_one_line(exc)}") from None
        present = set(reader.schema_arrow.names)
        wanted = {spec.column(name): name for name in READING_FIELDS if spec.column(name) is not None}
        missing = [f"{col!r}" + (f" (for {name})" if col != name else "") for col, name in wanted.items() if col not in present and not _defaults_absent(spec, name)]
        if missing:
            raise AggregateError(f"{path}: no column {', '.join(missing)}; columns: {', '.join(reader.schema_arrow.names)}")
        read = [col for col in wanted if col in present]
        try:
            for batch in reader.iter_batches(batch_size=spec.batch_rows, columns=read):
                yield _sensors_as_categories(batch, spec.column("sensor_id")).to_pandas().rename(columns=wanted), path
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise AggregateError(f"{path}: cannot read as Parquet: {_one_line(exc)}") from None


def _sensors_as_categories(batch: pa.RecordBatch, column: str | None) -> pa.RecordBatch:
    """The sensor column dictionary-encoded (a pandas categorical: each distinct id is hashed once, not each row)."""
    if column is None or column not in batch.schema.names or pa.types.is_dictionary(batch.schema.field(column).type):
        return batch
    i = batch.schema.get_field_index(column)
    return batch.set_column(i, column, pc.dictionary_encode(batch.column(i)))


def _defaults_absent(spec: AggregateSpec, name: str) -> bool:
    """An optional field left unmapped may be absent (anonymous readings / each counts 1)."""
    return name in OPTIONAL_FIELDS and name not in spec.columns


def _clean(frame: pd.DataFrame, part: Partition, spec: AggregateSpec, dropped: Counter[str], where: str) -> dict[str, np.ndarray]:
    """Drop bad rows of one batch (counted by reason, first reason wins) and reduce the rest to the compact columns."""
    lon = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype=np.float64)
    lat = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype=np.float64)
    value = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=np.float64) if "value" in frame else np.ones(len(frame))
    t, bad_time = _times(frame["time"], spec.time_zone)
    keep = np.ones(len(frame), dtype=bool)

    def drop(reason: str, mask: np.ndarray) -> None:
        hit = mask & keep
        dropped[reason] += int(hit.sum())
        keep[hit] = False

    with np.errstate(invalid="ignore"):
        drop("bad_coordinates", ~(np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)))
    drop("bad_time", bad_time)
    drop("bad_value", ~np.isfinite(value))
    drop("future_time", t > _ns(spec.now) + int(spec.max_future / dt.timedelta(microseconds=1)) * 1000)
    drop("outside_partition", (t < part.start_ns) | (t >= part.end_ns))
    if "sensor_id" in frame:
        named, s = _sensor_keys(frame["sensor_id"][keep])
    else:
        named = np.zeros(int(keep.sum()), dtype=bool)
        s = np.zeros(len(named), dtype=np.uint64)
    return {"s": s, "named": named, "t": t[keep], "cell": points_to_cells(lon[keep], lat[keep], spec.resolution), "v": value[keep]}


def _sensor_keys(sensors: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(has a sensor id, uint64 hash of its text) per row; a categorical column hashes each distinct id once."""
    named = sensors.notna().to_numpy()
    if isinstance(sensors.dtype, pd.CategoricalDtype):
        hashes = pd.util.hash_array(sensors.cat.categories.astype(str).to_numpy(dtype=object))
        codes = sensors.cat.codes.to_numpy()
        return named, np.where(named, hashes[np.maximum(codes, 0)] if len(hashes) else 0, 0).astype(np.uint64)
    return named, pd.util.hash_array(sensors.astype(str).to_numpy(dtype=object))


def _times(times: pd.Series, time_zone: str) -> tuple[np.ndarray, np.ndarray]:
    """Times as int64 ns UTC and a mask of the unusable ones; naive times are read in ``time_zone``."""
    if not pd.api.types.is_datetime64_any_dtype(times):
        try:
            times = pd.to_datetime(times, errors="coerce", format="mixed")
        except (ValueError, TypeError):  # offsets that differ between rows
            times = pd.to_datetime(times, errors="coerce", format="mixed", utc=True)
    if times.dt.tz is None:
        times = times.dt.tz_localize(time_zone, ambiguous="NaT", nonexistent="NaT")
    utc = times.dt.tz_convert("UTC")
    bad = utc.isna().to_numpy()
    ns = utc.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64).copy()
    ns[bad] = 0
    return ns, bad


def _duplicates(sensor: np.ndarray, t: np.ndarray, named: np.ndarray) -> np.ndarray:
    """Rows that a later row of the same (sensor, time) replaces; anonymous rows are never duplicates.

    Sensors are numbered (hash table), then (time, sensor number) is one int64 key when it fits, else two columns.
    """
    duplicate = np.zeros(len(t), dtype=bool)
    rows = np.flatnonzero(named)
    if len(rows) < 2:
        return duplicate
    codes, uniques = pd.factorize(sensor[rows])
    tn = t[rows] - t[rows].min()
    if int(tn.max()) < (1 << 62) // max(len(uniques), 1):
        repeated = pd.Series(tn * len(uniques) + codes).duplicated(keep="last").to_numpy()
    else:
        repeated = pd.DataFrame({"t": tn, "s": codes}).duplicated(keep="last").to_numpy()
    duplicate[rows[repeated]] = True
    return duplicate


def _group(ends: np.ndarray, cells: np.ndarray, values: np.ndarray, window_ns: int) -> pd.DataFrame:
    """count, sum, max per (window end, cell), sorted; sums add in row order within a group.

    Cells are numbered in sorted order and windows counted from the first, so (window, cell) is one int64 key;
    one stable argsort of it, then reductions over the runs.
    """
    if not len(ends):
        return pd.DataFrame({name: np.zeros(0, dtype) for name, dtype in _PARTIAL_DTYPES.items()})
    codes, uniques = pd.factorize(cells, sort=True)
    first = ends.min()
    key = (ends - first) // window_ns * len(uniques) + codes
    order = np.argsort(key, kind="stable")
    k, v = key[order], values[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    group_key = k[starts]
    return pd.DataFrame(
        {
            "window_end": (group_key // len(uniques)) * window_ns + first,
            "cell": np.asarray(uniques, dtype=np.uint64)[group_key % len(uniques)],
            "count": np.diff(np.r_[starts, len(k)]).astype(np.int64),
            "sum": np.add.reduceat(v, starts),
            "max": np.maximum.reduceat(v, starts),
        }
    )


_PARTIAL_DTYPES = {"window_end": np.int64, "cell": np.uint64, "count": np.int64, "sum": np.float64, "max": np.float64}


def _ns(when: dt.datetime) -> int:
    return int(pd.Timestamp(when).tz_convert("UTC").value)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def partition_of(path: Path, root: Path, spec: AggregateSpec) -> tuple[str, int, int]:
    """The day key of ``path``'s ``day=...`` folder and that day's range ``[start, end)`` in ns UTC.

    Raises AggregateError naming the file when no folder names a day, or the folder's value is not a date.
    """
    prefix = f"{spec.partition}="
    values = [part[len(prefix) :] for part in path.relative_to(root).parts[:-1] if part.startswith(prefix)]
    if not values:
        raise AggregateError(f"{path}: not under a {prefix}YYYY-MM-DD folder (readings are hive-partitioned by day)")
    try:
        day = pd.Timestamp(dt.date.fromisoformat(values[0]))
    except ValueError:
        raise AggregateError(f"{path}: folder {prefix}{values[0]} does not name a day (use {prefix}YYYY-MM-DD)") from None
    start = day.tz_localize(spec.partition_time_zone)
    end = (day + pd.Timedelta(days=1)).tz_localize(spec.partition_time_zone)
    return day.strftime("%Y-%m-%d"), int(start.tz_convert("UTC").value), int(end.tz_convert("UTC").value)

