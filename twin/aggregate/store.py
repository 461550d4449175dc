"""Reading an aggregate file that :func:`~twin.aggregate.aggregate_readings` wrote: what the ``h3`` layer and replay show.

A replay at scene time ``T`` shows the window ending at or before ``T`` on the epoch grid,
``floor(T / L) * L`` (``L`` the window length): the last window complete at ``T``. At a grid time this is
exactly the live layer's window ``(T - L, T]``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from twin.aggregate.run import METADATA_KEY, OUTPUT_SCHEMA
from twin.errors import AggregateError

__all__ = ["AggregateFile"]


class AggregateFile:
    """An aggregate file: its resolution and window (from the metadata), and windows read on demand (row groups by window_end).

    Raises AggregateError naming the file when it is missing, not Parquet, or not written by ``twin aggregate``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._dataset = ds.dataset(self.path, format="parquet")
        except (OSError, ValueError, pa.ArrowException) as exc:
            reason = "no such file" if not self.path.exists() else " ".join(str(exc).split())
            raise AggregateError(f"{self.path}: cannot read the aggregate: {reason}") from None
        raw = (self._dataset.schema.metadata or {}).get(METADATA_KEY)
        missing = [f.name for f in OUTPUT_SCHEMA if f.name not in self._dataset.schema.names]
        if raw is None or missing:
            raise AggregateError(f"{self.path}: not an aggregate written by twin aggregate (no twin.aggregate metadata or columns)")
        meta = json.loads(raw)
        self.resolution: int = int(meta["resolution"])
        """H3 resolution of the cells."""
        self.window = dt.timedelta(seconds=float(meta["window_s"]))
        """Window length."""

    def shown_end(self, at: dt.datetime) -> pd.Timestamp:
        """The end of the window a replay at ``at`` shows: the last grid time at or before it (UTC)."""
        length = int(self.window / dt.timedelta(microseconds=1)) * 1000
        return pd.Timestamp((pd.Timestamp(at).value // length) * length, tz="UTC")

    def windows(self, first_end: dt.datetime, last_end: dt.datetime) -> pd.DataFrame:
        """Rows with ``first_end <= window_end <= last_end``: window_end, cell (uint64), count, sum, mean, max; sorted."""
        kind = OUTPUT_SCHEMA.field("window_end").type
        lo, hi = pa.scalar(pd.Timestamp(first_end), type=kind), pa.scalar(pd.Timestamp(last_end), type=kind)
        field = pc.field("window_end")
        try:
            table = self._dataset.to_table(filter=(field >= lo) & (field <= hi))
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise AggregateError(f"{self.path}: cannot read the aggregate: {' '.join(str(exc).split())}") from None
        return table.to_pandas().sort_values(["window_end", "cell"], ignore_index=True)

    def newest_end(self, at: dt.datetime | None = None) -> pd.Timestamp | None:
        """The latest window end with readings (at or before ``at`` when given); None if none.

        Reads the row groups' statistics (the file is sorted by window_end) and at most one row group's window_end column.
        """
        limit = None if at is None else pd.Timestamp(at).value
        try:
            reader = pq.ParquetFile(self.path)
            meta = reader.metadata
            for i in reversed(range(meta.num_row_groups)):
                stats = meta.row_group(i).column(0).statistics
                if stats is None or not stats.has_min_max:
                    ends = reader.read_row_group(i, columns=["window_end"]).column(0)
                elif limit is None or _ns(stats.max) <= limit:
                    return _utc(stats.max)
                elif _ns(stats.min) > limit:
                    continue
                else:
                    ends = reader.read_row_group(i, columns=["window_end"]).column(0)
                values = ends.cast(pa.int64()).to_numpy()
                values = values if limit is None else values[values <= limit]
                if len(values):
                    return pd.Timestamp(int(values.max()), tz="UTC")
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise AggregateError(f"{self.path}: cannot read the aggregate: {' '.join(str(exc).split())}") from None
        return None


def _ns(value: object) -> int:
    """ns since the epoch of a statistics value (a datetime, naive = UTC, or an int in ns)."""
    return value if isinstance(value, int) else _utc(value).value


def _utc(value: object) -> pd.Timestamp:
    stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
