"""Fuzz the compiled mesh kernels with numba's bounds checking on: any input, no out-of-bounds access.

Three kinds of input, drawn by hypothesis:

- ``extrude``: GeoJSON feature collections as a file or web service hands them over (null, empty
  and unclosed rings, rings of 1-2 points, repeated and collinear points, self-touching rings,
  bow-ties, holes outside shells, huge / tiny / NaN / infinite coordinates, longitudes across
  +-180, nested GeometryCollections, points and lines mixed in, heights as text with units),
  written to a file and read by :func:`twin.extrude_footprints` (GDAL -> WKB kernel), and the same
  through a GeoDataFrame where shapely accepts the geometry;
- ``raw``: flat coordinate and offset arrays, consistent or corrupted, fed to the public low-level
  entry points :func:`twin.mesh.earcut.triangulate`, :func:`twin.mesh.footprints.normalize` and
  :func:`twin.mesh.validity.suspect_rows`;
- ``wkb``: WKB from the same geometries, truncated, with a byte changed or random bytes, fed to
  :func:`twin.mesh.footprints.from_wkb`.

Each result must be a clean one (a mesh whose ids and counts are consistent, rows drawn + skipped
= rows in) or a one-line :class:`~twin.errors.TwinError`; anything else (an ``IndexError`` from
bounds checking, another exception, a crash of the process) is a fault. Run as a script, it sets
``NUMBA_BOUNDSCHECK=1`` and a fresh ``NUMBA_CACHE_DIR`` before numba loads (cached code compiled
without bounds checks must not be reused), so the first examples wait for the compile (~30 s of
CPU). Prints the inputs tried and the faults found; exits 1 on a fault (hypothesis prints the
smallest input that shows it).

    python benchmarks/fuzz_kernels.py --examples 5000 --seconds 600
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TALLY: Counter[str] = Counter()

# -- geometries as GeoJSON hands them over ----------------------------------------------------------
_BASES = [(121.47, 31.23), (179.9999, -16.8), (-179.9999, -16.8), (0.0, 0.0)]
_SPECIAL = [float("nan"), float("inf"), float("-inf"), 1e300, -1e300, 1e-300, 180.0, -180.0, 91.0, 540.0]


@st.composite
def coordinates(draw: Any, base: tuple[float, float]) -> list[float]:
    """Mostly a small grid around ``base`` (repeats, collinear and touching points come naturally)."""
    kind = draw(st.integers(0, 39))
    if kind == 0:
        return [draw(st.sampled_from(_SPECIAL)), base[1]]
    if kind == 1:
        return [base[0], draw(st.sampled_from(_SPECIAL))]
    if kind == 2:
        return [draw(st.floats(allow_nan=True, allow_infinity=True)), draw(st.floats(allow_nan=True, allow_infinity=True))]
    scale = draw(st.sampled_from([1e-5, 1e-4, 1e-12]))
    return [base[0] + scale * draw(st.integers(-3, 3)), base[1] + scale * draw(st.integers(-3, 3))]


@st.composite
def rings(draw: Any, base: tuple[float, float]) -> list[list[float]]:
    pts = draw(st.lists(coordinates(base), max_size=8))
    if pts and draw(st.booleans()):
        pts.append(list(pts[0]))  # closed
    return pts


@st.composite
def geometries(draw: Any, depth: int = 0) -> dict[str, Any] | None:
    base = draw(st.sampled_from(_BASES))
    kind = draw(st.sampled_from(["Polygon"] * 12 + ["MultiPolygon"] * 4 + ["GeometryCollection", "Point", "LineString", "null"]))
    if kind == "null":
        return None
    if kind == "Point":
        return {"type": "Point", "coordinates": draw(coordinates(base))}
    if kind == "LineString":
        return {"type": "LineString", "coordinates": draw(st.lists(coordinates(base), max_size=4))}
    if kind == "Polygon":
        return {"type": "Polygon", "coordinates": draw(st.lists(rings(base), max_size=3))}
    if kind == "MultiPolygon":
        return {"type": "MultiPolygon", "coordinates": draw(st.lists(st.lists(rings(base), max_size=3), max_size=3))}
    members = draw(st.lists(geometries(depth + 1), max_size=3)) if depth < 2 else []
    return {"type": "GeometryCollection", "geometries": [g for g in members if g is not None]}


_HEIGHTS = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["12 m", "8,5", "40 ft", "10'6\"", "tall", "", " 15 ", "1,200", "-3", "nan", "inf"]),
    st.text(max_size=6),
)


@st.composite
def feature_collections(draw: Any) -> dict[str, Any]:
    feats = draw(st.lists(st.tuples(geometries(), _HEIGHTS), min_size=1, max_size=5))
    return {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"height": h}, "geometry": g} for g, h in feats]}


# -- checks ---------------------------------------------------------------------------------------
def _clean_error(exc: BaseException) -> None:
    """A TwinError as a user sees it: one line, naming what is wrong, never 'unexpected ...'."""
    msg = str(exc)
    if "\n" in msg or not msg or "unexpected" in msg.lower():
        raise AssertionError(f"not a one-line error: {type(exc).__name__}: {msg!r}") from exc
    TALLY["TwinError"] += 1


def check_mesh(mesh: Any, n_rows: int) -> None:
    """Ids and counts consistent, every vertex finite, every cell index a point of the mesh."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    stat = {k: int(mesh.field_data[k][0]) for k in ("n_rows", "n_buildings", "n_skipped")}
    assert stat["n_rows"] == n_rows and stat["n_buildings"] + stat["n_skipped"] == n_rows, stat
    assert np.isfinite(np.asarray(mesh.points)).all(), "a non-finite vertex"
    if mesh.n_cells:
        strips = mesh.GetStrips()
        conn = vtk_to_numpy(strips.GetConnectivityArray())
        off = vtk_to_numpy(strips.GetOffsetsArray())
        assert off[0] == 0 and off[-1] == conn.size and (np.diff(off) >= 3).all(), "strip offsets"
        assert conn.min() >= 0 and conn.max() < mesh.n_points, "a cell index outside the points"
        bid = np.asarray(mesh.cell_data["building_id"])
        assert bid.min() >= 0 and bid.max() < n_rows and np.unique(bid).size == stat["n_buildings"], "building ids"
    TALLY["mesh"] += 1


def check_extrude(fc: dict[str, Any], folder: Path) -> None:
    """The collection through a GeoJSON file, and through a GeoDataFrame where shapely reads it."""
    import geopandas as gpd
    import shapely

    from twin.errors import TwinError
    from twin.mesh.extrude import extrude_footprints

    path = folder / "fuzz.geojson"
    path.write_text(json.dumps(fc))  # NaN and Infinity as GDAL reads them
    n = len(fc["features"])
    geoms = shapely.from_geojson([json.dumps(f["geometry"]) if f["geometry"] else None for f in fc["features"]], on_invalid="ignore")
    gdf = gpd.GeoDataFrame({"height": [f["properties"]["height"] for f in fc["features"]]}, geometry=list(geoms), crs=4326)
    for source in (path, gdf):
        TALLY["extrude"] += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                mesh = extrude_footprints(source)
            except TwinError as exc:
                _clean_error(exc)
                continue
        check_mesh(mesh, n)


# -- raw arrays for the low-level entry points -------------------------------------------------------
@st.composite
def raw_arrays(draw: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates, ring offsets, polygon offsets: consistent (any ring sizes), or one entry corrupted."""
    base = draw(st.sampled_from(_BASES))
    polys = draw(st.lists(st.lists(st.lists(coordinates(base), max_size=7), max_size=3), max_size=4))
    xy = [c for p in polys for r in p for c in r]
    x = np.array([c[0] for c in xy], np.float64)
    y = np.array([c[1] for c in xy], np.float64)
    ring_off = np.cumsum([0] + [len(r) for p in polys for r in p]).astype(np.int64)
    poly_off = np.cumsum([0] + [len(p) for p in polys]).astype(np.int64)
    if draw(st.integers(0, 4)) == 0:
        target = draw(st.sampled_from(["ring", "poly"]))
        arr = ring_off if target == "ring" else poly_off
        arr[draw(st.integers(0, arr.size - 1))] += draw(st.sampled_from([-3, -1, 1, 2, 10**6]))
    return x, y, ring_off, poly_off


def check_raw(x: np.ndarray, y: np.ndarray, ring_off: np.ndarray, poly_off: np.ndarray) -> None:
    """triangulate, then normalize + suspect_rows (one row per polygon)."""
    from twin.errors import TwinError
    from twin.mesh.earcut import triangulate
    from twin.mesh.footprints import FlatGeoms, normalize
    from twin.mesh.validity import suspect_rows

    TALLY["raw"] += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = triangulate(x, y, ring_off, poly_off)
        except TwinError as exc:
            _clean_error(exc)
        else:
            t = res.triangles
            assert t.size == 0 or (t.min() >= 0 and t.max() < x.size), "a triangle index outside the vertices"
            assert res.tri_off[0] == 0 and res.tri_off[-1] == len(t) and (np.diff(res.tri_off) >= 0).all()
            TALLY["triangulation"] += 1
        n = max(poly_off.size - 1, 0)
        flat = FlatGeoms(x, y, ring_off, poly_off, np.arange(n + 1, dtype=np.int64), np.zeros(n, np.int8), np.full(n, 3, np.int32))
        try:
            norm = normalize(flat)
            suspect_rows(norm.flat)
        except TwinError as exc:
            _clean_error(exc)


# -- WKB -----------------------------------------------------------------------------------------------
def to_wkb(g: dict[str, Any] | None) -> bytes | None:
    """Little-endian ISO WKB of a GeoJSON-like geometry (any ring sizes, unlike GEOS)."""
    if g is None:
        return None
    codes = {"Point": 1, "LineString": 2, "Polygon": 3, "MultiPolygon": 6, "GeometryCollection": 7}
    head = struct.pack("<BI", 1, codes[g["type"]])
    pts = lambda cs: struct.pack("<I", len(cs)) + b"".join(struct.pack("<dd", *c) for c in cs)
    if g["type"] == "Point":
        return head + struct.pack("<dd", *g["coordinates"])
    if g["type"] == "LineString":
        return head + pts(g["coordinates"])
    if g["type"] == "Polygon":
        return head + struct.pack("<I", len(g["coordinates"])) + b"".join(pts(r) for r in g["coordinates"])
    if g["type"] == "MultiPolygon":
        parts = [to_wkb({"type": "Polygon", "coordinates": p}) or b"" for p in g["coordinates"]]
        return head + struct.pack("<I", len(parts)) + b"".join(parts)
    parts = [to_wkb(m) or b"" for m in g["geometries"]]
    return head + struct.pack("<I", len(parts)) + b"".join(parts)


@st.composite
def wkb_blobs(draw: Any) -> list[bytes | None]:
    out = []
    for _ in range(draw(st.integers(1, 4))):
        blob = to_wkb(draw(geometries()))
        how = draw(st.integers(0, 3))
        if blob and how == 1:
            blob = blob[: draw(st.integers(0, len(blob)))]
        elif blob and how == 2:
            k = draw(st.integers(0, len(blob) - 1))
            blob = blob[:k] + bytes([draw(st.integers(0, 255))]) + blob[k + 1 :]
        elif how == 3:
            blob = draw(st.binary(max_size=64))
        out.append(blob)
    return out


def check_wkb(blobs: list[bytes | None]) -> None:
    """from_wkb gives consistent arrays (or status MALFORMED); normalize and the validity check run on them."""
    from twin.mesh.footprints import check_layout, from_wkb, normalize
    from twin.mesh.validity import suspect_rows

    TALLY["wkb"] += 1
    flat = from_wkb(np.array(blobs, dtype=object))
    check_layout(flat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        suspect_rows(normalize(flat).flat)


# -- driver -----------------------------------------------------------------------------------------------
def run(examples: int, seconds: float, derandomize: bool = False) -> int:
    """Fuzz in rounds (extrude, raw, wkb) until ``examples`` per kind or ``seconds`` are used up; 0 when no fault."""
    folder = Path(tempfile.mkdtemp(prefix="twin-fuzz-"))
    batch = max(1, min(examples, 100))
    opts = {"deadline": None, "database": None, "derandomize": derandomize, "suppress_health_check": list(HealthCheck)}
    targets = [
        (feature_collections(), lambda fc: check_extrude(fc, folder)),
        (raw_arrays(), lambda a: check_raw(*a)),
        (wkb_blobs(), check_wkb),
    ]
    t0 = time.perf_counter()
    done = 0
    faults = 0
    while done < examples and time.perf_counter() - t0 < seconds:
        n = min(batch, examples - done)
        for strategy, check in targets:
            try:
                settings(max_examples=n, **opts)(given(strategy)(check))()
            except Exception as exc:  # noqa: BLE001 - any exception is a fault: report it with hypothesis's smallest input
                faults += 1
                print("FAULT " + "".join(traceback.format_exception(exc)), flush=True)
        done += n
        if faults:
            break
    print(
        f"inputs tried: {TALLY['extrude']} extrusions, {TALLY['raw']} raw array sets, {TALLY['wkb']} WKB batches "
        f"({TALLY['mesh']} meshes, {TALLY['triangulation']} triangulations, {TALLY['TwinError']} one-line TwinErrors) "
        f"in {time.perf_counter() - t0:.1f} s; faults: {faults}; NUMBA_BOUNDSCHECK={os.environ.get('NUMBA_BOUNDSCHECK', '0')}",
        flush=True,
    )
    return 1 if faults else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=1000, help="examples per kind of input")
    ap.add_argument("--seconds", type=float, default=600.0, help="stop after this long (checked between rounds of 100)")
    ap.add_argument("--derandomize", action="store_true", help="the same inputs every run")
    ap.add_argument("--no-boundscheck", action="store_true", help="run the cached, unchecked kernels (faster, finds crashes only)")
    args = ap.parse_args()
    if "numba" in sys.modules:
        raise SystemExit("numba is already loaded: run this as a script")
    if not args.no_boundscheck and not (os.environ.get("NUMBA_BOUNDSCHECK") == "1" and os.environ.get("NUMBA_CACHE_DIR")):
        os.environ["NUMBA_BOUNDSCHECK"] = "1"  # a caller that set both keeps its (bounds-checked) cache
        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="twin-numba-boundscheck-")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    return run(args.examples, args.seconds, args.derandomize)


if __name__ == "__main__":
    sys.exit(main())
