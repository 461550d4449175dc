"""Benchmark: twin.aggregate on >= 10^8 synthetic readings, in-process and on a local Dask cluster, with peak memory.

For each ``--rows`` size a dataset of ``--per-day`` readings a day (so more rows = more days) is generated once under
``--dir`` as hive-partitioned Parquet, streamed to disk one chunk of ``--chunk`` rows at a time (never all in memory):
sensors ``s0..s{--sensors}`` (strings), points uniform over central Shanghai, times uniform over the day, values
0-200 in steps of 0.5, 1 % of readings repeated (duplicates). Then, each in a fresh process so that peaks are its own:

* in-process: :func:`twin.aggregate.aggregate_readings` without a scheduler; peak RSS of that process;
* cluster: a ``LocalCluster(n_workers=--workers, threads_per_worker=1, processes=True, memory_limit=--memory-limit)``;
  peak RSS of each worker (``ru_maxrss`` read on the workers after the run) and of the client;
* pandas: the same drops, cells, dedupe and groupby as one plain ``read_parquet`` + ``groupby`` over all rows, only
  where the data fits (``--pandas-max`` rows); its result is compared with the aggregate's (exact, values are halves).

It prints readings/s, the ratio to pandas, and peak memory per worker, which stays at about one day's readings
whatever the number of days. The machine's load average is printed: compare figures only on an idle machine.

    python benchmarks/bench_scale.py --rows 1e7 1e8 --dir /tmp/twin-bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

START = pd.Timestamp("2026-01-01", tz="UTC")
AREA = (121.35, 31.10, 121.60, 31.35)
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


def generate(root: Path, rows: int, per_day: int, chunk: int, sensors: int) -> None:
    """Write ``rows`` readings, ``per_day`` a day, in chunks; skipped when ``root/_done`` says it is complete."""
    done = root / "_done"
    if done.exists() and done.read_text() == f"{rows} {per_day} {sensors}":
        return
    rng = np.random.default_rng(rows)
    names = np.array([f"s{i}" for i in range(sensors)], dtype=object)
    day = 0
    left = rows
    while left > 0:
        n_day = min(per_day, left)
        folder = root / f"day={(START + pd.Timedelta(days=day)).strftime('%Y-%m-%d')}"
        folder.mkdir(parents=True, exist_ok=True)
        writer = None
        for first in range(0, n_day, chunk):
            n = min(chunk, n_day - first)
            secs = rng.integers(0, 86_400_000_000, n)
            sensor = rng.integers(0, sensors, n)
            dup = rng.random(n) < 0.01
            secs[dup] = secs[np.maximum(np.flatnonzero(dup) - 1, 0)]  # same time as the previous row...
            sensor[dup] = sensor[np.maximum(np.flatnonzero(dup) - 1, 0)]  # ... and sensor: a duplicate
            table = pa.table(
                {
                    "sensor_id": pa.array(names[sensor]).dictionary_encode(),
                    "lon": rng.uniform(AREA[0], AREA[2], n),
                    "lat": rng.uniform(AREA[1], AREA[3], n),
                    "time": pa.array((START + pd.Timedelta(days=day)).value // 1000 + secs, type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                    "value": rng.integers(0, 400, n) / 2,
                }
            )
            if writer is None:
                writer = pq.ParquetWriter(folder / "part-0.parquet", table.schema)
            writer.write_table(table)
        assert writer is not None
        writer.close()
        left -= n_day
        day += 1
    done.write_text(f"{rows} {per_day} {sensors}")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_in_process(data: Path, out: Path) -> dict:
    from twin.aggregate import aggregate_readings

    t0 = time.perf_counter()
    summary = aggregate_readings(data, out, now=NOW)
    return {"seconds": time.perf_counter() - t0, "rows": summary.rows_read, "out_rows": summary.rows_written, "peak_mib": peak_rss_mib()}


def run_cluster(data: Path, out: Path, workers: int, memory_limit: str) -> dict:
    from distributed import Client, LocalCluster

    from twin.aggregate import aggregate_readings

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit, dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("twin.h3").h3.points_to_cells(np.zeros(1), np.zeros(1), 9))  # compile/load kernels before timing
        t0 = time.perf_counter()
        summary = aggregate_readings(data, out, now=NOW, scheduler=client)
        seconds = time.perf_counter() - t0
        worker_peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"seconds": seconds, "rows": summary.rows_read, "out_rows": summary.rows_written, "peak_mib": peak_rss_mib(), "worker_peak_mib": sorted(worker_peaks.values())}


def run_pandas(data: Path, out: Path) -> dict:
    """The same aggregate by one plain read + groupby over all rows (bad-row drops are no-ops on this data)."""
    from twin.aggregate import window_ends
    from twin.h3 import points_to_cells

    t0 = time.perf_counter()
    frame = pd.read_parquet(data, columns=["sensor_id", "lon", "lat", "time", "value"])
    frame = frame.drop_duplicates(["sensor_id", "time"], keep="last")
    ends = window_ends(frame["time"].dt.as_unit("ns").astype("int64").to_numpy(), 300 * 10**9)
    cells = points_to_cells(frame["lon"].to_numpy(), frame["lat"].to_numpy(), 9)
    table = pd.DataFrame({"window_end": ends, "cell": cells, "value": frame["value"].to_numpy()})
    result = table.groupby(["window_end", "cell"], sort=True)["value"].agg(["count", "sum", "mean", "max"]).reset_index()
    seconds = time.perf_counter() - t0
    ours = pd.read_parquet(out)
    same = bool(np.array_equal(ours["cell"].to_numpy(), result["cell"].to_numpy()) and np.array_equal(ours["sum"].to_numpy(), result["sum"].to_numpy())
                and np.array_equal(ours["count"].to_numpy(), result["count"].to_numpy()) and np.array_equal(ours["max"].to_numpy(), result["max"].to_numpy()))
    return {"seconds": seconds, "rows": len(frame), "peak_mib": peak_rss_mib(), "same_result": same}


def child(mode: str, data: Path, out: Path, args: argparse.Namespace) -> dict:
    """Run one measurement in a fresh Python process (its own peak RSS) and return its JSON result."""
    cmd = [sys.executable, __file__, "--child", mode, "--data", str(data), "--out", str(out), "--workers", str(args.workers), "--memory-limit", args.memory_limit]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=float, nargs="+", default=[1e7, 1e8], help="dataset sizes (readings)")
    parser.add_argument("--per-day", type=float, default=5e6, help="readings a day (one partition)")
    parser.add_argument("--chunk", type=float, default=1e6, help="rows generated and written at a time")
    parser.add_argument("--sensors", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/twin-bench-scale"), help="where the datasets are written (kept for reruns)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GiB", help="per worker")
    parser.add_argument("--pandas-max", type=float, default=2e7, help="run the pandas groupby only up to this many rows")
    parser.add_argument("--skip", nargs="*", default=[], choices=["in-process", "cluster", "pandas"])
    parser.add_argument("--child", choices=["in-process", "cluster", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        runners = {"in-process": lambda: run_in_process(args.data, args.out), "cluster": lambda: run_cluster(args.data, args.out, args.workers, args.memory_limit),
                   "pandas": lambda: run_pandas(args.data, args.out)}
        print(json.dumps(runners[args.child]()))
        return
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {args.workers} workers, {args.per_day:.0e} readings a day")
    for rows in (int(r) for r in args.rows):
        data = args.dir / f"readings-{rows:.0e}"
        t0 = time.perf_counter()
        generate(data, rows, int(args.per_day), int(args.chunk), args.sensors)
        print(f"\n{rows:.0e} readings ({-(-rows // int(args.per_day))} days) in {data} (made or found in {time.perf_counter() - t0:.0f} s)")
        out = args.dir / f"cells-{rows:.0e}.parquet"
        results = {}
        for mode in ("in-process", "cluster", "pandas"):
            if mode in args.skip or (mode == "pandas" and rows > args.pandas_max):
                continue
            results[mode] = r = child(mode, data, out, args)
            extra = f", workers' peak {r['worker_peak_mib']} MiB" if "worker_peak_mib" in r else ""
            extra += f", same result: {r['same_result']}" if "same_result" in r else ""
            print(f"  {mode:10s} {r['seconds']:7.1f} s  {rows / r['seconds']:>12,.0f} readings/s  peak {r['peak_mib']:,.0f} MiB{extra}")
        if "pandas" in results:
            for mode in ("in-process", "cluster"):
                if mode in results:
                    print(f"  {mode} / pandas time ratio: {results[mode]['seconds'] / results['pandas']['seconds']:.2f}")


if __name__ == "__main__":
    main()
