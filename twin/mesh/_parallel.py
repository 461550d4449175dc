"""Run numba kernels over index ranges on a small thread pool.

The kernels are compiled with ``nogil=True`` and take a ``(start, stop)`` range first, so plain
Python threads run them in parallel. This replaces ``parallel=True``/``prange``: same speed on
a few cores, several times less compile time (parfor lowering is the slowest part of numba).

>>> bounds = split(np.array([0, 2, 5, 9, 10]), 2)
>>> bounds.tolist()
[0, 2, 4]
>>> out = []
>>> run(lambda a, b: out.append((a, b)), bounds)
>>> sorted(out)
[(0, 2), (2, 4)]
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["chunks_for", "run", "split", "workers"]

_POOL: ThreadPoolExecutor | None = None


def workers() -> int:
    """Threads to use: the CPUs this process may run on (``TWIN_THREADS`` overrides)."""
    env = os.environ.get("TWIN_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def split(cum: NDArray[np.integer], parts: int) -> NDArray[np.int64]:
    """Index bounds cutting items ``0..len(cum)-2`` into about ``parts`` ranges of equal work.

    ``cum[i]`` is the work done before item ``i`` (a cumulative count, length n + 1).
    """
    n = len(cum) - 1
    if n <= 0:
        return np.zeros(1, np.int64)
    parts = max(1, min(parts, n))
    targets = cum[0] + (cum[-1] - cum[0]) * np.arange(1, parts) / parts
    inner = np.searchsorted(cum, targets, side="left")
    return np.unique(np.concatenate([[0], inner, [n]])).astype(np.int64)


def run(kernel: Callable[..., Any], bounds: NDArray[np.integer], *args: Any) -> None:
    """Call ``kernel(bounds[i], bounds[i+1], *args)`` for every range, in parallel threads."""
    global _POOL
    ranges = [(int(bounds[i]), int(bounds[i + 1])) for i in range(len(bounds) - 1) if bounds[i + 1] > bounds[i]]
    if len(ranges) <= 1 or workers() == 1:
        for a, b in ranges:
            kernel(a, b, *args)
        return
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="twin-mesh")
    for f in [_POOL.submit(kernel, a, b, *args) for a, b in ranges]:
        f.result()


def chunks_for(cum: NDArray[np.integer], per_worker: int = 4) -> NDArray[np.int64]:
    """Bounds with ``per_worker`` ranges per thread (load balance), by cumulative work ``cum``."""
    return split(cum, workers() * per_worker if workers() > 1 else 1)
