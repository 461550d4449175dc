"""A precomputed aggregate as the source of an ``h3`` layer (``h3_aggregate``): replay of weeks of readings.

Scene file::

    - id: crowd_history
      type: h3
      resolution: 9
      window: 5m
      aggregate: mean
      source:
        type: h3_aggregate
        path: cells.parquet              # written by `twin aggregate` (read here; relative to the scene file)
        readings: readings/              # optional: the day-partitioned Parquet it is made from ...
        scheduler: tcp://10.0.0.5:8786   # ... and the Dask cluster that `twin aggregate --scene` makes it on
        columns: {sensor_id: device, time: ts}

The layer shows, at scene time ``T``, the window ending at or before ``T`` on the epoch grid (see
:mod:`twin.aggregate.store`); its ``resolution`` and ``window`` must be the aggregate's. The wall never
computes the aggregate: ``twin aggregate --scene SCENE`` (re)makes it from ``readings`` on ``scheduler``
(in-process without one), with the layer's resolution and window. A file replaced by a new run is read
again on the next poll.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
from pydantic import Field

from twin.errors import SourceCheckError
from twin.source import ReadingsSource, ReadingsSourceParams

if TYPE_CHECKING:  # twin.aggregate (numba, H3 kernels) is imported when an aggregate is read or made, not with the scene
    from twin.aggregate import AggregateFile, AggregateSummary, Partial

__all__ = ["H3AggregateSource"]


class H3AggregateParams(ReadingsSourceParams):
    path: str = Field(description="aggregate Parquet file written by `twin aggregate`; relative paths are read from the scene file's folder")
    readings: str | None = Field(None, description="folder of day-partitioned Parquet readings it is made from (for `twin aggregate --scene`)")
    columns: dict[str, str | None] = Field(default_factory=dict, description="reading field -> column in the readings, e.g. {time: ts}")
    time_zone: str = Field("UTC", description="time zone of naive times in the readings")
    scheduler: str | None = Field(None, description="Dask scheduler address that `twin aggregate --scene` runs on (default: in-process)")


class H3AggregateSource(ReadingsSource):
    """Cells per window from an aggregate file; no raw readings (:meth:`readings` is empty)."""

    type_name = "h3_aggregate"
    Params = H3AggregateParams
    params: H3AggregateParams
    default_lookback: ClassVar[dt.timedelta] = dt.timedelta(0)
    default_sweep: ClassVar[dt.timedelta] = dt.timedelta(0)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.base_dir: Path | None = None
        self._file: tuple[tuple[int, int], AggregateFile] | None = None

    def bind_base_dir(self, base_dir: Path) -> None:
        """Resolve relative ``path`` and ``readings`` against ``base_dir`` (the scene file's folder)."""
        self.base_dir = base_dir

    def _resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        return self.base_dir / path if not path.is_absolute() and self.base_dir is not None else path

    @property
    def resolved_path(self) -> Path:
        return self._resolve(self.params.path)

    def describe(self) -> str:
        return f"h3_aggregate source {self.params.path!r}"

    def check(self) -> None:
        """The aggregate file exists (nothing is read); raises SourceCheckError naming it and how to make it."""
        if not self.resolved_path.exists():
            hint = "make it with `twin aggregate --scene SCENE`" if self.params.readings else "make it with `twin aggregate READINGS_DIR --out ...`"
            raise SourceCheckError(f"aggregate {self.params.path!r} not found (looked in {self.resolved_path.parent.absolute()}); {hint}", key="path")

    def file(self) -> AggregateFile:
        """The aggregate file, opened again when it changed (a new run replaced it). Raises AggregateError naming it."""
        from twin.aggregate import AggregateFile

        path = self.resolved_path
        try:
            stat = path.stat()
            signature = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            signature = (-1, -1)  # AggregateFile says what is wrong
        if self._file is None or self._file[0] != signature:
            self._file = (signature, AggregateFile(path))
        return self._file[1]

    def readings(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        """No raw readings: an aggregate holds cells per window (the h3 layer reads them with :meth:`file`)."""
        return pd.DataFrame({"sensor_id": pd.Series(dtype=object), "lon": pd.Series(dtype=float), "lat": pd.Series(dtype=float),
                             "time": pd.Series(dtype="datetime64[ns, UTC]"), "value": pd.Series(dtype=float)})

    def build(
        self, resolution: int, window: dt.timedelta, progress: Callable[[Partial], None] | None = None, now: dt.datetime | None = None
    ) -> AggregateSummary:
        """Make the aggregate from ``readings`` on ``scheduler`` (in-process without one); readings after ``now`` (default:
        the clock) + 5 min are dropped as future. Raises SourceCheckError without ``readings``, AggregateError for bad input."""
        if self.params.readings is None:
            raise SourceCheckError(f"{self.describe()}: no readings folder to make the aggregate from", key="readings")
        from twin.aggregate import aggregate_readings

        return aggregate_readings(
            self._resolve(self.params.readings), self.resolved_path, resolution=resolution, window=window, columns=self.params.columns,
            time_zone=self.params.time_zone, scheduler=self.params.scheduler, progress=progress, now=now,
        )
