"""Rendering a city-scale buildings layer offscreen: 1M buildings in one mesh.

Builds the synthetic footprints of ``bench_extrude.py`` (GeoParquet), draws them through the
buildings layer and the one renderer (``SceneView``) offscreen, and prints the time to the
first frame and for later frames (camera moves), against the same for 100k buildings measured
in the same run, with the layer's triangle count (what the browser app compares with its
budget to choose server-side rendering) and the peak memory.

Usage: .venv/bin/python benchmarks/bench_render_big.py [--sizes 100000 1000000] [--size 1920x1080]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_extrude import synthetic_footprints  # noqa: E402

import twin  # noqa: E402
from twin.plugins import layer_types  # noqa: E402
from twin.render.view import SceneView  # noqa: E402


def render(n: int, tmp: Path, size: tuple[int, int]) -> dict[str, float]:
    path = tmp / f"footprints_{n}.parquet"
    if not path.exists():
        synthetic_footprints(n).to_parquet(path, geometry_encoding="geoarrow")
    scene = twin.Scene(f"{n} buildings", center=(121.47, 31.23), settings={"show_legend": False})
    scene.add(layer_types().get("buildings")("b", source={"type": "file", "path": str(path)}, color_by="height", colormap="viridis"))
    start = time.perf_counter()
    view = SceneView(scene, size=size, strict=True)
    view.sync()
    built = time.perf_counter()
    view.image()
    first = time.perf_counter()
    camera = view.renderer.GetActiveCamera()
    frames = []
    for _ in range(5):
        camera.Azimuth(10)
        t = time.perf_counter()
        view.image()
        frames.append(time.perf_counter() - t)
    cells = scene["b"].triangle_count()
    view.close()
    return {"sync": built - start, "first": first - built, "frame": statistics.median(frames), "cells": cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--size", default="1920x1080")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            results[n] = render(n, Path(tmp), size)  # type: ignore[arg-type]
            r = results[n]
            print(f"{n:>9,} buildings: read+extrude+upload {r['sync']:.2f} s, first frame {r['first']:.2f} s, "
                  f"later frames {r['frame'] * 1000:.0f} ms (median of 5), {r['cells']:,} cells")
    small, big = min(args.sizes), max(args.sizes)
    if small != big:
        print(f"frame time ratio {big:,} / {small:,} buildings: {results[big]['frame'] / results[small]['frame']:.1f}x "
              f"for {big / small:.0f}x the buildings")
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
