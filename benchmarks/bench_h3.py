"""Benchmark: points -> H3 cells with twin.h3 (numba) against the h3-py per-point loop, and cell boundaries.

Random points uniform over Shanghai (lon 120.85-122.2, lat 30.67-31.88). ``points_to_cells`` is timed on
``--points`` points at res 9 and 10 (median of ``--repeat`` runs after one warm-up call, which also compiles numba
or loads its cache); the h3-py loop (integer API, ``h3.api.basic_int.latlng_to_cell`` per point) runs in the same
process on the first ``--loop-points`` points, and the two results are compared cell for cell on that subset.
``cells_to_boundaries`` is timed on ``--cells`` distinct res-9 cells, against an h3-py ``cell_to_boundary`` loop.
The machine's load average is printed: the figures are only comparable between runs on an idle machine.

    python benchmarks/bench_h3.py --points 10000000 --loop-points 300000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

SHANGHAI = (120.85, 30.67, 122.20, 31.88)


def shanghai_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(SHANGHAI[0], SHANGHAI[2], n), rng.uniform(SHANGHAI[1], SHANGHAI[3], n)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time of ``repeat`` calls, and the last result."""
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def h3_loop_cells(lng: np.ndarray, lat: np.ndarray, res: int) -> np.ndarray:
    import h3.api.basic_int as h3i

    f = h3i.latlng_to_cell
    return np.array([f(y, x, res) for x, y in zip(lng.tolist(), lat.tolist())], dtype=np.uint64)


def h3_loop_boundaries(cells: np.ndarray) -> list[Any]:
    import h3.api.basic_int as h3i

    f = h3i.cell_to_boundary
    return [f(c) for c in cells.tolist()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10_000_000, help="points for points_to_cells")
    parser.add_argument("--loop-points", type=int, default=300_000, help="points for the h3-py loop")
    parser.add_argument("--cells", type=int, default=100_000, help="distinct cells for the boundary timing")
    parser.add_argument("--res", type=int, nargs="+", default=[9, 10], help="resolutions")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import numba

    from twin.h3 import cells_to_boundaries, points_to_cells

    lng, lat = shanghai_points(args.points, args.seed)
    n_loop = min(args.loop_points, args.points)
    print(
        f"{args.points:,} points over Shanghai; numba {numba.__version__}, {numba.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    t0 = time.perf_counter()
    points_to_cells(lng[:1000], lat[:1000], args.res[0])
    print(f"first call (compile or load cache + self-check): {time.perf_counter() - t0:.2f} s")

    print(f"\n{'res':>3} {'twin.h3 pts/s':>15} {'h3-py loop pts/s':>17} {'ratio':>7} {'cells':>9}  same cells")
    for res in args.res:
        points_to_cells(lng, lat, res)  # warm-up at full size
        t_fast, cells = timed(lambda r=res: points_to_cells(lng, lat, r), args.repeat)
        t_loop, loop_cells = timed(lambda r=res: h3_loop_cells(lng[:n_loop], lat[:n_loop], r), 1)
        same = bool(np.array_equal(cells[:n_loop], loop_cells))
        fast_rate = args.points / t_fast
        loop_rate = n_loop / t_loop
        n_cells = np.unique(cells).size
        print(
            f"{res:>3} {fast_rate / 1e6:>13.1f} M {loop_rate / 1e6:>15.2f} M {fast_rate / loop_rate:>6.1f}x "
            f"{n_cells:>9,}  {same} (on {n_loop:,})"
        )

    cells9 = np.unique(points_to_cells(lng[: max(args.cells * 5, 1000)], lat[: max(args.cells * 5, 1000)], 9))
    rng = np.random.default_rng(args.seed)
    cells9 = rng.permutation(cells9)[: args.cells]
    cells_to_boundaries(cells9[:100])
    t_b, (verts, counts) = timed(lambda: cells_to_boundaries(cells9), args.repeat)
    t_bl, loop = timed(lambda: h3_loop_boundaries(cells9), 1)
    worst = max(float(np.abs(np.array(b)[:, ::-1] - verts[i, : counts[i]]).max()) for i, b in enumerate(loop[:2000]))
    print(
        f"\ncells_to_boundaries, {cells9.size:,} res-9 cells: {cells9.size / t_b / 1e3:,.0f} k cells/s "
        f"({t_b * 1e3:.1f} ms); h3-py cell_to_boundary loop {cells9.size / t_bl / 1e3:,.0f} k cells/s "
        f"({t_bl * 1e3:.0f} ms); ratio {t_bl / t_b:.1f}x; max |difference| {worst:g} deg on 2,000 cells"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
