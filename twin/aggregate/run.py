"""Aggregate a hive-partitioned Parquet dataset of readings, in-process or on a Dask cluster, into one Parquet file.

Both engines run the same task, :func:`~twin.aggregate.partition.aggregate_partition`, once per day
folder; only who runs it differs: this process (the default), or the workers of a
``distributed.Client`` (``scheduler=`` an address such as ``tcp://10.0.0.5:8786``, or a Client). The
tasks' partial aggregates come back in day order, at most ``ahead`` tasks in flight, and are combined
here: a window that straddles midnight gets its partials from both days; a window is final once its end
is before the next day's start, and is then written. So this process holds a few days' partial
aggregates, each worker one day's readings (32 bytes a reading), whatever the number of days.

Output: a Parquet file with one row per (window_end, cell) that had readings, sorted by them:
``window_end`` (timestamp, UTC), ``cell`` (uint64 H3 id), ``count`` (int64), ``sum``, ``mean``, ``max``
(float64). Its schema metadata ``twin.aggregate`` (JSON) gives ``resolution`` and ``window_s``. The file
is written beside the target and renamed into place when complete, so readers never see half of one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from twin.aggregate.partition import AggregateSpec, Partial, Partition, aggregate_partition, merge_partials, partition_of
from twin.errors import AggregateError, MissingDependencyError

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["METADATA_KEY", "OUTPUT_SCHEMA", "AggregateSummary", "aggregate_readings", "list_partitions"]

METADATA_KEY = b"twin.aggregate"
ROW_GROUP_ROWS = 1 << 17
"""Rows per Parquet row group of the output: a replay reads the row groups of one window (by their statistics)."""
CONNECT_TIMEOUT_S = 10.0
"""How long to try to reach a scheduler given by address."""
OUTPUT_SCHEMA = pa.schema(
    [
        ("window_end", pa.timestamp("ns", tz="UTC")),
        ("cell", pa.uint64()),
        ("count", pa.int64()),
        ("sum", pa.float64()),
        ("mean", pa.float64()),
        ("max", pa.float64()),
    ]
)


@dataclass
class AggregateSummary:
    """What a run read, dropped and wrote: the CLI prints :meth:`lines`."""

    engine: str
    partitions: int = 0
    rows_read: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    rows_written: int = 0
    windows: int = 0
    cells: int = 0
    seconds: float = 0.0

    @property
    def rows_kept(self) -> int:
        return self.rows_read - sum(self.dropped.values())

    def lines(self) -> list[str]:
        """The summary as a few lines of text."""
        why = ", ".join(f"{reason} {n:,}" for reason, n in sorted(self.dropped.items())) or "none"
        rate = self.rows_read / self.seconds if self.seconds > 0 else 0.0
        return [
            f"read {self.rows_read:,} readings in {self.partitions} day(s) on {self.engine}",
            f"dropped {sum(self.dropped.values()):,}: {why}",
            f"wrote {self.rows_written:,} rows: {self.cells:,} cells x {self.windows:,} windows with readings",
            f"time {self.seconds:.1f} s ({rate:,.0f} readings/s)",
        ]


def list_partitions(root: Path, spec: AggregateSpec) -> list[Partition]:
    """The day folders under ``root`` in time order, each with its files sorted by path (``.``/``_`` names are skipped).

    Raises AggregateError for a missing folder, a folder without files, or a file outside a day folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise AggregateError(f"{root}: no such folder of readings")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts))
    if not files:
        raise AggregateError(f"{root}: no files (expected {spec.partition}=YYYY-MM-DD/*.parquet)")
    days: dict[str, tuple[int, int, list[str]]] = {}
    for path in files:
        key, start, end = partition_of(path, root, spec)
        days.setdefault(key, (start, end, []))[2].append(str(path))
    return sorted((Partition(key, start, end, tuple(paths)) for key, (start, end, paths) in days.items()), key=lambda p: p.start_ns)


def aggregate_readings(
    readings: str | Path,
    out: str | Path,
    *,
    resolution: int = 9,
    window: dt.timedelta | str = "5m",
    columns: Mapping[str, str | None] | None = None,
    scheduler: str | Client | None = None,
    now: dt.datetime | None = None,
    progress: Callable[[Partial], None] | None = None,
    **options: Any,
) -> AggregateSummary:
    """Aggregate the readings under ``readings`` (hive-partitioned by day) into the Parquet file ``out``.

    ``resolution``/``window``/``columns``/``now`` and further ``options`` (``time_zone``, ``partition``,
    ``partition_time_zone``, ``max_future``, ``batch_rows``) make the :class:`AggregateSpec`.
    ``scheduler``: None runs in this process; an address or a ``distributed.Client`` runs on that cluster.
    ``progress`` is called with each day's partial as it is combined. Raises AggregateError (bad input,
    unreachable scheduler) and MissingDependencyError (a scheduler without dask.distributed installed).
    """
    started = time.perf_counter()
    spec = AggregateSpec(resolution=resolution, window=window, columns=dict(columns or {}), now=now or dt.datetime.now(dt.timezone.utc), **options)
    parts = list_partitions(Path(readings), spec)
    with _engine(scheduler) as (engine, run):
        summary = AggregateSummary(engine=engine, partitions=len(parts))
        partials = run(parts, spec)
        _write(Path(out), _final_rows(partials, parts, summary, progress), spec, summary)
    summary.seconds = time.perf_counter() - started
    return summary


Runner = Callable[[list[Partition], AggregateSpec], Iterator[Partial]]


class _engine:
    """Context manager giving (engine description, runner); closes a Client it opened itself."""

    def __init__(self, scheduler: str | Client | None) -> None:
        self.scheduler = scheduler
        self.client: Any = None
        self.owned = False

    def __enter__(self) -> tuple[str, Runner]:
        if self.scheduler is None:
            return "this process", _in_process
        try:
            from distributed import Client
        except ImportError:
            raise MissingDependencyError("running on a Dask cluster needs dask.distributed: pip install 'dask[distributed]'") from None
        if isinstance(self.scheduler, Client):
            self.client = self.scheduler
        else:
            try:
                self.client = Client(str(self.scheduler), timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError, ValueError) as exc:
                raise AggregateError(f"cannot reach the Dask scheduler {self.scheduler}: {exc}") from None
            self.owned = True
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        threads = sum(w.get("nthreads", 1) for w in workers.values()) or 1
        client = self.client
        return f"Dask cluster {client.scheduler.address} ({len(workers)} workers)", lambda parts, spec: _on_cluster(client, parts, spec, ahead=2 * threads)

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.client.close()


def _in_process(parts: list[Partition], spec: AggregateSpec) -> Iterator[Partial]:
    for part in parts:
        yield aggregate_partition(part, spec)


def _on_cluster(client: Client, parts: list[Partition], spec: AggregateSpec, *, ahead: int) -> Iterator[Partial]:
    """The partials in day order, with at most ``ahead`` tasks submitted and not yet collected (bounded memory)."""
    todo = iter(parts)
    pending: deque[Any] = deque()

    def submit(count: int) -> None:
        for part in [p for _, p in zip(range(count), todo)]:
            pending.append(client.submit(aggregate_partition, part, spec, pure=False, key=f"twin-aggregate-{part.key}-{os.urandom(4).hex()}"))

    submit(ahead)
    while pending:
        future = pending.popleft()
        partial = future.result()
        future.release()
        submit(1)
        yield partial


def _final_rows(partials: Iterable[Partial], parts: list[Partition], summary: AggregateSummary, progress: Callable[[Partial], None] | None) -> Iterator[pd.DataFrame]:
    """Combine the partials (day order) and yield final rows (sorted by window_end, cell) as soon as no later day can add to them."""
    held = pd.DataFrame({"window_end": np.zeros(0, np.int64), "cell": np.zeros(0, np.uint64), "count": np.zeros(0, np.int64), "sum": np.zeros(0), "max": np.zeros(0)})
    starts = [p.start_ns for p in parts[1:]] + [np.iinfo(np.int64).max]
    for partial, next_start in zip(partials, starts):
        summary.rows_read += partial.rows_read
        summary.dropped.update(partial.dropped)
        table = partial.table
        if len(held):
            overlap = table["window_end"].to_numpy() <= held["window_end"].iloc[-1]
            table = pd.concat([merge_partials(pd.concat([held, table[overlap]], ignore_index=True)), table[~overlap]], ignore_index=True)
        final = table["window_end"].to_numpy() < next_start
        held = table[~final]
        if progress is not None:
            progress(partial)
        yield table[final]
    yield held


def _write(out: Path, chunks: Iterable[pd.DataFrame], spec: AggregateSpec, summary: AggregateSummary) -> None:
    """Write the chunks to ``out`` (via a temporary file renamed into place); count rows, windows and cells."""
    meta = {"resolution": spec.resolution, "window_s": spec.window.total_seconds(), "version": 1}
    schema = OUTPUT_SCHEMA.with_metadata({METADATA_KEY: json.dumps(meta).encode()})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    cells: set[int] = set()
    windows = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for chunk in chunks:
                if not len(chunk):
                    continue
                writer.write_table(_to_arrow(chunk, schema), row_group_size=ROW_GROUP_ROWS)
                summary.rows_written += len(chunk)
                windows += int(pd.unique(chunk["window_end"]).size)
                cells.update(pd.unique(chunk["cell"]).tolist())
        os.replace(tmp, out)
    except OSError as exc:
        raise AggregateError(f"{out}: cannot write the aggregate: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    summary.windows, summary.cells = windows, len(cells)


def _to_arrow(chunk: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    count = chunk["count"].to_numpy()
    total = chunk["sum"].to_numpy()
    return pa.table(
        {
            "window_end": pa.array(chunk["window_end"].to_numpy(), type=pa.int64()).cast(schema.field("window_end").type),
            "cell": pa.array(chunk["cell"].to_numpy(), type=pa.uint64()),
            "count": pa.array(count, type=pa.int64()),
            "sum": pa.array(total, type=pa.float64()),
            "mean": pa.array(total / count, type=pa.float64()),
            "max": pa.array(chunk["max"].to_numpy(), type=pa.float64()),
        },
        schema=schema,
    )
