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
        """The latest window end with readings (at or before ``at`` when given); None if none."""
        field = pc.field("window_end")
        scanner = self._dataset if at is None else self._dataset.filter(field <= pa.scalar(pd.Timestamp(at), type=OUTPUT_SCHEMA.field("window_end").type))
        ends = scanner.to_table(columns=["window_end"]).column("window_end")
        if not len(ends):
            return None
        newest = pc.max(ends).as_py()
        return pd.Timestamp(newest).tz_convert("UTC") if newest is not None else None
