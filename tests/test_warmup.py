"""A new install's first ``twin render`` waits on no compile: ``twin warmup`` (run by setup) compiled it all.

``twin warmup``, then ``twin render`` of a scene with every kind of input (buildings from GeoArrow
GeoParquet and from GeoJSON with text heights and holes, live H3 and flood layers from CSV
readings, GCJ-02 districts), each in a fresh process with numba's cache log (``NUMBA_DEBUG_CACHE=1``).
Every compiled kernel the render needs must be one warmup loaded or compiled: numba's cache keeps one
data file per kernel and signature, so the render's "data loaded from" files must all be in warmup's
log, and the render may save ("data saved to": compile) nothing. On a new machine's empty cache
warmup compiles and saves (at least) what it loads here, so the render would find it all.

The processes use the suite's own numba cache, which ``make setup``'s ``twin warmup`` filled (an empty
one of their own would cost a cold compile of every kernel, ~45 s on 2 cores, to show the same). The
check does not depend on what that cache holds: a kernel warmup misses is either compiled by the render
or loaded from a file warmup's log does not name, and fails either way (a warmup without its H3
step, below, leaves the render's H3 kernels out).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

DISTRICTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "shanghai_districts_gcj02.geojson"
SCENE = """\
version: 1
name: warm
time: 2026-07-01T10:00:00+08:00
frame: {{crs: auto}}
layers:
  - {{id: parquet, type: buildings, source: {{type: file, path: b.parquet}}, color_by: height}}
  - {{id: geojson, type: buildings, source: {{type: file, path: b.geojson}}}}
  - {{id: crowd, type: h3, source: {{type: file_readings, path: pings.csv}}, resolution: 10, window: 1h}}
  - {{id: flood, type: flood_points, source: {{type: file_readings, path: gauges.csv, sensor: sensor, value: depth}}}}
  - {{id: districts, type: vector, source: {{type: file, path: "{districts}", crs: GCJ02}}}}
"""


def write_inputs(folder: Path) -> Path:
    rng = np.random.default_rng(1)
    polys = []
    for i in range(300):
        x, y = 121.47 + rng.random() * 0.03, 31.22 + rng.random() * 0.03
        footprint = shapely.box(x, y, x + 0.0004, y + 0.0003)
        if i % 7 == 0:
            footprint = shapely.Polygon(footprint.exterior.coords, [shapely.box(x + 0.0001, y + 0.0001, x + 0.0002, y + 0.0002).exterior.coords])
        polys.append(footprint)
    buildings = gpd.GeoDataFrame({"height": rng.random(300) * 60 + 5, "floors": rng.integers(1, 20, 300)}, geometry=polys, crs="EPSG:4326")
    buildings.to_parquet(folder / "b.parquet", geometry_encoding="geoarrow")
    buildings.assign(height=[f"{h:.0f} m" for h in buildings["height"]]).to_file(folder / "b.geojson")
    n = 30_000  # enough for the parallel H3 path
    t = pd.Timestamp("2026-07-01T10:00:00+08:00") - pd.to_timedelta(rng.random(n) * 3000, unit="s")
    pd.DataFrame({"lon": 121.47 + rng.random(n) * 0.03, "lat": 31.22 + rng.random(n) * 0.03, "time": t, "value": 1.0}).to_csv(folder / "pings.csv", index=False)
    gauges = pd.DataFrame({"sensor": [f"g{i}" for i in range(20)] * 3, "lon": list(121.47 + rng.random(20) * 0.03) * 3,
                           "lat": list(31.22 + rng.random(20) * 0.03) * 3, "depth": rng.random(60) * 30,
                           "time": [f"2026-07-01T09:{m}:00+08:00" for m in ("50", "55", "59") for _ in range(20)]})
    gauges.to_csv(folder / "gauges.csv", index=False)
    scene = folder / "scene.yaml"
    scene.write_text(SCENE.format(districts=DISTRICTS.as_posix()), encoding="utf-8")
    return scene


WARMUP_WITHOUT_H3 = """\
import pathlib, tempfile
from twin.warmup import STEPS
with tempfile.TemporaryDirectory() as tmp:
    for name, step in STEPS:
        if not name.startswith("H3"):
            step(pathlib.Path(tmp))
"""


def logged(*args: str, cwd: Path) -> str:
    """The output (stdout, then stderr) of ``python args`` in a fresh process with numba's cache log on; it must exit 0."""
    run = subprocess.run([sys.executable, *args], check=False, capture_output=True, text=True, env={**os.environ, "NUMBA_DEBUG_CACHE": "1"},
                         timeout=600, cwd=cwd)
    assert run.returncode == 0, (run.stdout + run.stderr)[-2000:]
    return run.stdout + run.stderr


def cache_files(log: str, done: str) -> set[str]:
    """The numba cache data files (one per kernel and signature) that ``log`` says were ``done`` ("loaded from", "saved to")."""
    return set(re.findall(rf"\[cache\] data {done} '([^']+)'", log))


def used(log: str) -> set[str]:
    """The cache data files a process loaded or compiled and saved."""
    return cache_files(log, "loaded from") | cache_files(log, "saved to")


def modules(files: set[str]) -> set[str]:
    """The source modules of cache data files (named ``module.function-line.pyXY.N.nbc``)."""
    return {Path(f).name.split(".")[0] for f in files}


@pytest.fixture(scope="module")
def first_render(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    """``twin warmup``, then ``twin render`` of the every-input scene to ``x.png``: (warmup's log, the render's log, the folder)."""
    folder = tmp_path_factory.mktemp("warm")
    scene = write_inputs(folder)
    warm = logged("-m", "twin.cli", "warmup", cwd=folder)
    render = logged("-m", "twin.cli", "render", str(scene), "-o", str(folder / "x.png"), "--size", "640x360", cwd=folder)
    return warm, render, folder


def test_first_render_after_warmup_compiles_nothing(first_render: tuple[str, str, Path]) -> None:
    warm, render, folder = first_render
    assert "twin: warmup: done in" in warm
    assert cache_files(render, "saved to") == set()  # nothing compiled on the first render...
    loaded = cache_files(render, "loaded from")
    assert sorted(loaded - used(warm)) == []  # ... and every kernel it loaded is one warmup compiled
    assert modules(loaded) >= {"extrude", "cells"}  # the buildings' and the H3 layer's kernels among them
    assert (folder / "x.png").stat().st_size > 10_000


def test_a_kernel_warmup_leaves_out_is_caught(first_render: tuple[str, str, Path]) -> None:
    """The check above can fail: a warmup without its H3 step leaves the render's H3 kernels (and only those) unaccounted for."""
    _, render, folder = first_render
    missed = cache_files(render, "loaded from") - used(logged("-c", WARMUP_WITHOUT_H3, cwd=folder))
    assert modules(missed) == {"cells"}
