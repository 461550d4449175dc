"""The compiled mesh kernels under fuzzing: any input gives a clean mesh or a one-line TwinError, never an
out-of-bounds access (numba bounds checking on, in a subprocess) or another exception type."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import fuzz_kernels  # benchmarks/ is not a package

CASE = REPO.parent / "shared" / "cases" / "empty-interior-ring" / "empty_ring.geojson"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(fuzz_kernels.feature_collections())
def test_extrude_gives_a_mesh_or_a_one_line_twin_error(folder: Path, fc: dict) -> None:
    """Random GeoJSON (empty, null, NaN, huge, nested collections, points and lines, bow-ties,
    unclosed rings, text heights) through a file and a GeoDataFrame: rows drawn + skipped = rows in,
    ids and indices in range, vertices finite; or a TwinError of one line."""
    fuzz_kernels.check_extrude(fc, folder)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(fuzz_kernels.raw_arrays())
def test_low_level_entry_points_check_their_arrays(arrays: tuple) -> None:
    """Offsets that do not index the coordinates (or non-finite coordinates) are a LayerDataError
    before any kernel runs; consistent ones with any ring sizes triangulate in range."""
    fuzz_kernels.check_raw(*arrays)


def test_kernels_never_index_out_of_bounds_with_bounds_checking_on(tmp_path: Path) -> None:
    """The same fuzz (extrusion, raw arrays, WKB) with NUMBA_BOUNDSCHECK=1 in a fresh process and numba
    cache (cached code compiled without checks must not be reused): no IndexError, no abort. The empty
    interior ring of the bug report first: the building extruded with the ring ignored.

    Compiling every kernel with bounds checks is most of the cost, so one process does both, and LLVM's
    optimisations are off (``NUMBA_OPT=0``: a quarter less compile time). A bounds check is emitted at every
    optimisation level, and the optimiser may not drop one that can fire, so the same accesses are checked."""
    if not CASE.exists():
        pytest.fail(f"{CASE} is missing: clone the project with shared/ beside it")
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_OPT": "0", "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "TWIN_CACHE_DIR": str(tmp_path / "cache")}
    script = f"""\
import sys, warnings
sys.path.insert(0, {str(REPO / "benchmarks")!r})
import fuzz_kernels
from twin.mesh.extrude import extrude_footprints
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    m = extrude_footprints({str(CASE)!r})
print("case", int(m.field_data["n_buildings"][0]), int(m.field_data["n_repaired"][0]), float(m.points[:, 2].max()), flush=True)
sys.exit(fuzz_kernels.run(examples=75, seconds=300))
"""
    out = subprocess.run([sys.executable, "-c", script], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    case, report = out.stdout.splitlines()[0], out.stdout.splitlines()[-1]
    assert case.split() == ["case", "1", "1", "20.0"]
    assert "faults: 0; NUMBA_BOUNDSCHECK=1" in report
