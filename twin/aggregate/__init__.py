"""Readings aggregated per H3 cell and fixed time window over partitioned Parquet, in-process or on a Dask cluster.

:func:`aggregate_readings` streams a hive-partitioned (``day=YYYY-MM-DD``) dataset into one Parquet file of
count/sum/mean/max per (window end, cell); :class:`AggregateFile` reads it back for the ``h3`` layer and replay.
See ``docs/scale-out.md``.
"""

from twin.aggregate.partition import AggregateSpec, Partial, Partition, aggregate_partition, window_ends
from twin.aggregate.run import AggregateSummary, aggregate_readings, list_partitions
from twin.aggregate.store import AggregateFile

__all__ = [
    "AggregateFile",
    "AggregateSpec",
    "AggregateSummary",
    "Partial",
    "Partition",
    "aggregate_partition",
    "aggregate_readings",
    "list_partitions",
    "window_ends",
]
