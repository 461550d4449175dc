"""Benchmark: fetch by view (twin.viewfetch) against pulling a whole collection, over a real pygeoapi on 127.0.0.1.

``--points`` random points over a 0.6° × 0.4° city are served by pygeoapi 0.21 (the numpy-backed test
provider in tests/pygeoapi_points.py). Baseline: one ``ogcapi`` source ``read()`` of the whole collection
(pages of 10,000). View: a top-down camera (``--range`` metres, 30° view angle) moved across the city in
``--steps`` steps through a ``view`` source (margin 0.25, 16 tiles per view, LRU of ``--budget`` features).
Printed: features fetched, seconds, features/s, memory held (pandas deep size + geometry WKB bytes of what
the source keeps: the whole frame vs the LRU), and the ratios. The machine's load average is printed too.

    python benchmarks/bench_fetch_by_view.py --points 100000 --steps 20
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

CITY = (121.20, 31.00, 121.80, 31.40)


def main() -> None:
    from servers import feature_collection, start_pygeoapi  # tests/ helpers
    from twin_layers.ogcapi import OgcApiFeaturesSource

    from twin.geo import Frame
    from twin.scene.camera import CameraPreset
    from twin.viewfetch import ViewSource, frame_bytes, view_extent, view_footprint

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--range", type=float, default=2500.0, help="camera distance in metres (top-down)")
    parser.add_argument("--budget", type=int, default=20_000, help="LRU budget in features")
    args = parser.parse_args()

    rng = np.random.default_rng(16)
    lon = CITY[0] + rng.random(args.points) * (CITY[2] - CITY[0])
    lat = CITY[1] + rng.random(args.points) * (CITY[3] - CITY[1])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        np.savez(work / "points.npz", fid=np.arange(args.points), lon=lon, lat=lat)
        os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "tests")
        provider = {"name": "pygeoapi_points.NpzPointsProvider", "data": str(work / "points.npz"), "id_field": "fid"}
        server = start_pygeoapi(work, {"points": feature_collection("points", provider, bbox=CITY)}, max_items=10_000)
        try:
            spec = {"url": server.url, "collection": "points", "limit": 10_000, "max_pages": 10_000}
            whole = OgcApiFeaturesSource(**spec)
            t0 = time.perf_counter()
            frame = whole.read()
            base_s = time.perf_counter() - t0
            base_bytes = frame_bytes(frame)
            print(f"load average {os.getloadavg()[0]:.2f}")
            print(f"whole collection: {len(frame)} features in {base_s:.2f} s = {len(frame) / base_s:,.0f} features/s, {base_bytes / 2**20:.1f} MiB held")

            view = ViewSource(source={"type": "ogcapi", **spec}, max_cached_features=args.budget, min_zoom=11)
            frame_ = Frame.auto(121.5, 31.2)
            shown = 0
            t0 = time.perf_counter()
            for lon_c in np.linspace(CITY[0] + 0.05, CITY[2] - 0.05, args.steps):
                camera = CameraPreset(target=(float(lon_c), 31.2), pitch=90, range=args.range, view_angle=30)
                view.set_view(view_extent(frame_, view_footprint(*camera.resolve(frame_), 30.0, 16 / 9)))
                shown = len(view.read())
            view_s = time.perf_counter() - t0
            stats = view.fetcher.stats
            held = view.fetcher.cached_bytes
            print(
                f"by view ({args.steps} views): {stats.features_fetched} features in {stats.requests} tile requests, {view_s:.2f} s = "
                f"{stats.features_fetched / view_s:,.0f} features/s, {held / 2**20:.2f} MiB held ({view.fetcher.cached_features} features), "
                f"last view shows {shown}"
            )
            print(f"ratio: {stats.features_fetched / len(frame):.3f} of the features fetched, {held / base_bytes:.3f} of the memory, "
                  f"{view_s / args.steps:.3f} s per view vs {base_s:.2f} s for the whole")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
