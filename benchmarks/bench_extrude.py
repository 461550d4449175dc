"""Benchmark: footprints -> one extruded mesh, GeoParquet and GeoDataFrame inputs vs the naive pyvista loop.

Synthetic footprints around Shanghai (lon/lat, EPSG:4326): star-shaped concave polygons with
4-12 distinct vertices (uniform), radius 8-30 m, 10 % with a quadrilateral courtyard; written to
GeoParquet (GeoArrow encoding) in a temporary folder. Times are medians of ``--repeat`` runs
after one untimed run of the same size and input (the first, small warm-up also compiles numba
or loads its cache). The naive method (per building
``pyvista.PolyData`` + ``extrude`` + one ``merge``, shells only) runs on a ``--naive`` subset.

    python benchmarks/bench_extrude.py --sizes 100000 1000000 --naive 2000
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np


def synthetic_footprints(n: int, seed: int = 0, hole_fraction: float = 0.1) -> Any:
    """``n`` concave footprints near Shanghai as a GeoDataFrame (vectorised; valid by construction)."""
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(seed)
    nv = rng.integers(4, 13, n)
    lon_c = 121.47 + rng.uniform(-0.25, 0.25, n)
    lat_c = 31.23 + rng.uniform(-0.2, 0.2, n)
    r = rng.uniform(8.0, 30.0, n)  # metres
    rot = rng.uniform(0, 2 * np.pi, n)
    poly_of = np.repeat(np.arange(n), nv)
    start = np.zeros(n + 1, np.int64)
    np.cumsum(nv, out=start[1:])
    k = np.arange(int(start[-1])) - start[poly_of]
    gap = 2 * np.pi / nv[poly_of]
    ang = rot[poly_of] + gap * (k + rng.uniform(-0.3, 0.3, k.size))
    frac = rng.uniform(0.55, 1.0, k.size)
    rad = r[poly_of] * frac
    # the largest angular gap bounds the disc around the centre that the star polygon contains
    nxt = np.where(k + 1 < nv[poly_of], np.arange(k.size) + 1, start[poly_of])
    d_ang = np.mod(ang[nxt] - ang, 2 * np.pi)
    max_gap = np.maximum.reduceat(d_ang, start[:-1])
    min_frac = np.minimum.reduceat(frac, start[:-1])
    inner = r * min_frac * np.cos(max_gap / 2)
    m_per_deg = 111_320.0
    coslat = np.cos(np.radians(lat_c))
    sx = lon_c[poly_of] + rad * np.cos(ang) / (m_per_deg * coslat[poly_of])
    sy = lat_c[poly_of] + rad * np.sin(ang) / m_per_deg
    has_hole = (rng.random(n) < hole_fraction) & (inner > 1.0)
    holes = np.flatnonzero(has_hole)
    hr = 0.6 * inner[holes]
    ha = rot[holes][:, None] - np.arange(4)[None, :] * (np.pi / 2)  # clockwise square
    hx = lon_c[holes][:, None] + hr[:, None] * np.cos(ha) / (m_per_deg * coslat[holes][:, None])
    hy = lat_c[holes][:, None] + hr[:, None] * np.sin(ha) / m_per_deg
    # rings with closing vertex, in order: each polygon's shell then its hole
    n_rings = n + holes.size
    ring_len = np.empty(n_rings, np.int64)
    rings_per_poly = 1 + has_hole.astype(np.int64)
    poly_off = np.zeros(n + 1, np.int64)
    np.cumsum(rings_per_poly, out=poly_off[1:])
    shell_ring = poly_off[:-1]
    ring_len[shell_ring] = nv + 1
    ring_len[shell_ring[holes] + 1] = 5
    ring_off = np.zeros(n_rings + 1, np.int64)
    np.cumsum(ring_len, out=ring_off[1:])
    coords = np.empty((int(ring_off[-1]), 2))
    pos = ring_off[shell_ring][poly_of] + k
    coords[pos, 0] = sx
    coords[pos, 1] = sy
    coords[ring_off[shell_ring] + nv, 0] = sx[start[:-1]]
    coords[ring_off[shell_ring] + nv, 1] = sy[start[:-1]]
    hpos = ring_off[shell_ring[holes] + 1][:, None] + np.arange(5)[None, :]
    coords[hpos[:, :4], 0] = hx
    coords[hpos[:, :4], 1] = hy
    coords[hpos[:, 4], 0] = hx[:, 0]
    coords[hpos[:, 4], 1] = hy[:, 0]
    geoms = shapely.from_ragged_array(shapely.GeometryType.POLYGON, coords, (ring_off, poly_off))
    height = np.round(rng.uniform(3.0, 120.0, n), 1)
    floors = np.maximum(1, np.round(height / 3.0)).astype(np.int32)
    return gpd.GeoDataFrame({"height": height, "floors": floors}, geometry=geoms, crs="EPSG:4326")


def naive_extrude(gdf: Any) -> Any:
    """The per-building baseline: pyvista PolyData + extrude + merge (shells only, frame projection vectorised)."""
    import pyvista as pv
    import shapely

    from twin.geo.frame import Frame, bounds_center

    minx, miny, maxx, maxy = gdf.total_bounds
    frame = Frame.auto(*bounds_center([minx, maxx], [miny, maxy]))
    shells = shapely.get_exterior_ring(gdf.geometry.values)
    parts = []
    for ring, h in zip(shells, gdf["height"].to_numpy()):
        xy = shapely.get_coordinates(ring)[:-1]
        x, y = frame.project(xy[:, 0], xy[:, 1])
        pts = np.column_stack([x, y, np.zeros_like(x)])
        face = np.concatenate([[len(pts)], np.arange(len(pts))])
        poly = pv.PolyData(pts, faces=face)
        parts.append(poly.extrude((0, 0, float(h)), capping=True))
    return pv.merge(parts).triangulate()


def _median_time(fn: Any, repeat: int, warmup: int = 1) -> tuple[float, Any]:
    """Median wall time of ``repeat`` runs after ``warmup`` untimed ones (same size, same input)."""
    times = []
    out = None
    for k in range(warmup + repeat):
        out = None
        gc.collect()
        t = time.perf_counter()
        out = fn()
        if k >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _peak_traced(fn: Any) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _bench_size(n: int, tmp: Path, seed: int, repeat: int, naive_rate: float) -> None:
    import shapely

    from twin.mesh.extrude import extrude_footprints, mesh_nbytes

    t = time.perf_counter()
    gdf = synthetic_footprints(n, seed=seed)
    gen = time.perf_counter() - t
    path = tmp / f"fp_{n}.parquet"
    gdf.to_parquet(path, geometry_encoding="geoarrow")
    wkb_path = tmp / f"fp_{n}_wkb.parquet"
    gdf.to_parquet(wkb_path)
    geoms = gdf.geometry.values
    n_vert = float((shapely.get_num_coordinates(geoms) - 1 - shapely.get_num_interior_rings(geoms)).mean())
    print(f"\n== {n:,} buildings (generated in {gen:.1f} s; {n_vert:.2f} distinct vertices/building incl. holes; "
          f"GeoParquet {path.stat().st_size / 1e6:.0f} MB) ==")

    def rate(label: str, seconds: float) -> None:
        vs = f"  ({n / seconds / naive_rate:,.0f}x naive)" if np.isfinite(naive_rate) else ""
        print(f"{label:<22} {seconds:.3f} s -> {n / seconds:,.0f} buildings/s{vs}")

    tp, mesh = _median_time(lambda: extrude_footprints(path), repeat)
    rate("GeoParquet (geoarrow):", tp)
    tw, _ = _median_time(lambda: extrude_footprints(wkb_path), repeat)
    rate("GeoParquet (WKB):", tw)
    tg, _ = _median_time(lambda: extrude_footprints(gdf), repeat)
    rate("GeoDataFrame:", tg)
    nb = mesh_nbytes(mesh)
    n_tri = int((np.diff(np.asarray(mesh.GetStrips().GetOffsetsArray())) - 2).sum())
    print(f"mesh: {mesh.n_points:,} points, {mesh.n_cells:,} cells (triangle strips) = {n_tri:,} triangles; {nb / n:.0f} bytes/building (array nbytes), "
          f"{mesh.actual_memory_size * 1024 / n:.0f} (actual_memory_size); {nb / mesh.n_points * 2:.1f} bytes per footprint vertex")
    stats = {k: int(mesh.field_data[k][0]) for k in ("n_buildings", "n_skipped", "n_repaired", "n_roof_fallback")}
    print(f"stats: {stats}")
    del mesh
    peak = _peak_traced(lambda: extrude_footprints(path))
    print(f"peak traced memory (tracemalloc: numpy only, not VTK/Arrow; GeoParquet run): {peak / 1e6:.0f} MB = {peak / n:.0f} bytes/building")
    base, top = _peak_rss_child(path, tmp / "warm.parquet")
    print(f"peak RSS of a fresh process building it from GeoParquet: {top:.0f} MB ({top - base:.0f} MB above its "
          f"{base:.0f} MB after imports = {(top - base) * 2**20 / n:.0f} bytes/building; the mesh itself is {nb / 2**20:.0f} MB)")
    print(f"process peak RSS so far (ru_maxrss, includes the GeoDataFrame and generation): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; load average now: {os.getloadavg()[0]:.2f}")


def _peak_rss_child(path: Path, warm: Path) -> tuple[float, float]:
    """(baseline, peak) resident memory in MB of a fresh process that builds the mesh from ``path``
    (baseline: after imports and a small warm-up; includes VTK and Arrow allocations)."""
    import subprocess

    # VmHWM (this process's own peak), not ru_maxrss: after exec that one still counts the parent
    code = (
        "import re; from twin.mesh.extrude import extrude_footprints\n"
        "hwm = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        f"extrude_footprints({str(warm)!r}); b = hwm()\n"
        f"m = extrude_footprints({str(path)!r}); print(b, hwm())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]) / 1024, int(out[1]) / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--naive", type=int, default=2000, help="buildings for the naive per-building baseline")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import warnings

    from twin.errors import TwinWarning
    from twin.mesh import _parallel
    from twin.mesh.extrude import extrude_footprints, mesh_nbytes

    warnings.simplefilter("error", TwinWarning)  # synthetic data must need no repair
    print(f"python {sys.version.split()[0]}; threads: {_parallel.workers()}; load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        warm = synthetic_footprints(5000, seed=args.seed + 99)
        wpath = Path(tmp) / "warm.parquet"
        warm.to_parquet(wpath, geometry_encoding="geoarrow")
        t = time.perf_counter()
        extrude_footprints(wpath)
        extrude_footprints(warm)
        print(f"warm-up (numba compile or cache load): {time.perf_counter() - t:.2f} s")

        nv_naive = args.naive
        naive_rate = float("nan")
        if nv_naive:
            sub = synthetic_footprints(nv_naive, seed=args.seed + 7)
            naive_extrude(sub.iloc[:20])
            tn, nm = _median_time(lambda: naive_extrude(sub), 1, warmup=0)
            naive_rate = nv_naive / tn
            print(f"naive pyvista loop ({nv_naive} buildings): {tn:.2f} s -> {naive_rate:,.0f} buildings/s, "
                  f"{nm.actual_memory_size * 1024 / nv_naive:.0f} bytes/building (actual_memory_size)")

        for n in args.sizes:
            _bench_size(n, Path(tmp), args.seed, args.repeat, naive_rate)
    real = Path(__file__).resolve().parents[2] / "shared" / "data" / "suzhou_buildings.geojson"
    if real.exists():
        import geopandas as gpd

        warnings.simplefilter("default", TwinWarning)
        g = gpd.read_file(real)
        tr, mesh = _median_time(lambda: extrude_footprints(g), args.repeat)
        print(f"\n== real Suzhou footprints ({len(g):,}, GeoDataFrame) == {tr * 1000:.1f} ms; "
              f"{mesh_nbytes(mesh) / len(g):.0f} bytes/building; {mesh.n_cells:,} cells, {mesh.triangulate().n_cells:,} triangles")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
