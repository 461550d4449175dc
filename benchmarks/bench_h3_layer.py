"""Live H3 layer: a tick for 100k cells (new values, same cells) and the prism mesh for 100k cells.

Prints, for the same cells in one run:
- a live tick — ingest 100k new readings (one per cell), aggregate the window, rewrite heights
  and colours in place — server compute time, against the baseline of rebuilding the mesh;
- the bytes a browser would receive for that tick (the changed arrays: points and colours)
  against the first push of the whole mesh;
- building the prism (and flat) mesh for 100k cells.

Usage: .venv/bin/python benchmarks/bench_h3_layer.py [--cells 100000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

import h3
import numpy as np
import pandas as pd

import twin
from twin.plugins import layer_types, register_source
from twin.source import ReadingsSource


class _Feed(ReadingsSource):
    """Hands the benchmark's readings to the layer."""

    frame = pd.DataFrame()

    def readings(self, start, end):
        return _Feed.frame


def cells_around(lon: float, lat: float, res: int, count: int) -> np.ndarray:
    k = 1
    while 3 * k * (k + 1) + 1 < count:
        k += 1
    disk = [h3.str_to_int(c) for c in h3.grid_disk(h3.latlng_to_cell(lat, lon, res), k)]
    return np.array(sorted(disk)[:count], dtype=np.uint64)


def readings_at(cells: np.ndarray, when: dt.datetime, rng: np.random.Generator) -> pd.DataFrame:
    centres = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in cells])
    return pd.DataFrame({"sensor_id": np.arange(len(cells)).astype(str).astype(object), "lon": centres[:, 1], "lat": centres[:, 0],
                         "time": pd.Timestamp(when), "value": rng.uniform(0, 500, len(cells))})


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    register_source(_Feed, "bench_feed")
    rng = np.random.default_rng(0)
    cells = cells_around(121.48, 31.23, 10, args.cells)
    frame = twin.Frame.auto(121.48, 31.23)
    H3 = layer_types().get("h3")
    layer = H3("crowd", source={"type": "bench_feed"}, resolution=10, aggregate="max", window="1m", history="10m", height_scale=0.5,
               levels=[{"at": 0, "label": "正常", "color": "#2ecc71"}, {"at": 150, "label": "较高", "color": "#ffb300"}, {"at": 300, "label": "高风险", "color": "#ff3b30"}])
    t0 = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.timezone.utc)
    ticks = [readings_at(cells, t0 + dt.timedelta(seconds=10 * i), rng) for i in range(args.repeats + 1)]
    _Feed.frame = ticks[0]
    layer.refresh(t0)
    layer.set_time(t0)
    first = layer.visual(frame)
    assert len(layer.cells) == len(cells)
    mesh = first.mesh
    mesh_bytes = (mesh.points.nbytes + mesh.GetPolys().GetConnectivityArray().GetNumberOfValues() * 4
                  + mesh.cell_data["cell_row"].nbytes + first.style.feature_colors.nbytes)

    tick_times, ingest_times, update_times, rebuild_times = [], [], [], []
    for i in range(1, args.repeats + 1):
        now = t0 + dt.timedelta(seconds=10 * i)
        _Feed.frame = ticks[i]
        start = time.perf_counter()
        layer.refresh(now)
        ingested = time.perf_counter()
        layer.set_time(now)
        visual = layer.visual(frame)
        done = time.perf_counter()
        tick_times.append(done - start)
        ingest_times.append(ingested - start)
        update_times.append(done - ingested)
        assert visual.mesh is first.mesh, "a same-cells tick must not rebuild the mesh"
        layer._parts = None  # baseline: what building the mesh from scratch costs
        start = time.perf_counter()
        layer.build_geometry(frame, layer.data())
        rebuild_times.append(time.perf_counter() - start)
    tick_bytes = visual.mesh.points.nbytes + visual.style.feature_colors.nbytes  # topology and cell rows unchanged

    # new cells: 1% more cells arrive; the mesh grows by their prisms only
    extra = cells_around(121.48, 31.23, 10, int(args.cells * 1.01))
    extra = extra[~np.isin(extra, cells)][: args.cells // 100]
    grow_times, full_times = [], []
    for i in range(3):
        now = t0 + dt.timedelta(seconds=10 * (args.repeats + 1 + i))
        fresh = readings_at(extra[i * len(extra) // 3 : (i + 1) * len(extra) // 3], now, rng)
        fresh["sensor_id"] = "new-" + fresh["sensor_id"].astype(str)
        _Feed.frame = pd.concat([readings_at(cells[:1000], now, rng), fresh], ignore_index=True)
        start = time.perf_counter()
        layer.refresh(now)
        layer.set_time(now)
        grown = layer.visual(frame)
        grow_times.append(time.perf_counter() - start)
        layer._parts = None  # baseline: the same mesh built from scratch
        start = time.perf_counter()
        layer.build_geometry(frame, layer.data())
        full_times.append(time.perf_counter() - start)
    assert grown.mesh.n_points > visual.mesh.n_points

    build = {}
    for shape in ("prism", "flat"):
        layer.update(shape=shape)
        layer.set_time(now)
        samples = []
        for _ in range(3):
            layer._parts = None
            start = time.perf_counter()
            layer.build_geometry(frame, layer.data())
            samples.append(time.perf_counter() - start)
        build[shape] = median_ms(samples)

    n = len(cells)
    print(f"cells: {n:,} (H3 res 10), median of {args.repeats} ticks")
    print(f"live tick, whole: {median_ms(tick_times):.1f} ms  = ingest {n:,} raw readings (validate, bin to cells) {median_ms(ingest_times):.1f} ms"
          f" + update (aggregate window, heights and colours in place) {median_ms(update_times):.1f} ms   [target <= 20 ms]")
    print(f"baseline, rebuilding the mesh instead:                          {median_ms(rebuild_times):.1f} ms   ratio {statistics.median(rebuild_times) / statistics.median(tick_times):.1f}x")
    print(f"bytes to a browser per tick (points + one colour per cell): {tick_bytes / 1e6:.1f} MB   first push of the mesh: {mesh_bytes / 1e6:.1f} MB   ratio {mesh_bytes / tick_bytes:.2f}x")
    print(f"tick with {len(extra) // 3:,} new cells (mesh extended): {median_ms(grow_times):.0f} ms; baseline, the mesh built from scratch: "
          f"{median_ms(full_times):.0f} ms; ratio {statistics.median(full_times) / statistics.median(grow_times):.1f}x")
    print(f"building the mesh for {n:,} cells: prisms {build['prism']:.0f} ms, flat {build['flat']:.0f} ms")


if __name__ == "__main__":
    main()
