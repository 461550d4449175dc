"""Compile twin's numba kernels ahead of use, so no user command waits on a compile.

twin's hot paths (building extrusion, ear clipping, H3 binning, metric projection) are numba
kernels cached on disk (``cache=True``: next to the sources in ``__pycache__``, or in
``NUMBA_CACHE_DIR``). Compiling them takes 25–40 s on a 2-core machine; ``twin warmup`` does it
once at install time (``scripts/setup.sh`` runs it), by running each kernel on a small input of
every kind real data comes in: GeoDataFrames, GeoParquet in WKB and in GeoArrow encoding,
GeoJSON files, holes and multi-part footprints, heights as numbers and as text, H3 points and
cell boundaries at every supported resolution. Afterwards every command loads the compiled code
from the cache (a test runs ``twin render`` after ``twin warmup`` and checks that it compiles
nothing).

>>> [name for name, _ in STEPS][:2]
['buildings from a GeoDataFrame', 'buildings from GeoParquet (WKB)']

``warm_up()`` runs them all and returns (step, seconds) pairs.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

__all__ = ["warm_up"]

Step = tuple[str, Callable[[Path], object]]


def _footprints() -> gpd.GeoDataFrame:
    """A few footprints near the Bund: a square, one with a hole, a two-part building, text heights."""
    square = shapely.box(121.490, 31.240, 121.4903, 31.2403)
    holed = shapely.Polygon(shapely.box(121.491, 31.240, 121.4915, 31.2405).exterior.coords, [shapely.box(121.4911, 31.2401, 121.4913, 31.2403).exterior.coords])
    parts = shapely.MultiPolygon([shapely.box(121.492, 31.240, 121.4922, 31.2402), shapely.box(121.4925, 31.240, 121.4927, 31.2402)])
    concave = shapely.Polygon([(121.493, 31.240), (121.4936, 31.240), (121.4936, 31.2406), (121.4933, 31.2403), (121.493, 31.2406)])
    return gpd.GeoDataFrame({"height": [12.0, 30.0, np.nan, 8.5], "floors": [4, 10, 3, 2]}, geometry=[square, holed, parts, concave], crs="EPSG:4326")


def _extrude(source: object, **options: object) -> None:
    from twin.mesh.extrude import extrude_footprints

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fallbacks on the sample's missing height are expected
        extrude_footprints(source, **options)  # type: ignore[arg-type]


def _buildings_gdf(_: Path) -> None:
    _extrude(_footprints())
    text = _footprints().assign(height=["12 m", "30", "", "8,5"])
    _extrude(text)


def _buildings_parquet(encoding: str) -> Callable[[Path], None]:
    def run(folder: Path) -> None:
        path = folder / f"buildings-{encoding}.parquet"
        _footprints().to_parquet(path, geometry_encoding=encoding)
        _extrude(path)

    return run


def _buildings_geojson(folder: Path) -> None:
    path = folder / "buildings.geojson"
    path.write_text(_footprints().to_json(), encoding="utf-8")
    _extrude(path)


def _h3(_: Path) -> None:
    from twin.h3.cells import _SERIAL_BELOW, cell_centers, cells_to_boundaries, points_to_cells

    rng = np.random.default_rng(0)
    for n in (256, _SERIAL_BELOW + 1):  # the serial and the parallel path
        lng = 121.4 + rng.random(n) * 0.2
        lat = 31.1 + rng.random(n) * 0.2
        for res in range(7, 13):
            cells = points_to_cells(lng, lat, res)
            cells_to_boundaries(np.unique(cells))
            cell_centers(np.unique(cells))


def _projection(_: Path) -> None:
    from twin.geo.frame import Frame
    from twin.mesh.project import project_xy

    frame = Frame.auto(121.49, 31.24)
    rng = np.random.default_rng(0)
    lon = 121.40 + rng.random(50_000) * 0.2  # large enough for the fitted fast path
    lat = 31.10 + rng.random(50_000) * 0.2
    project_xy(frame, lon, lat, "EPSG:4326")


STEPS: tuple[Step, ...] = (
    ("buildings from a GeoDataFrame", _buildings_gdf),
    ("buildings from GeoParquet (WKB)", _buildings_parquet("WKB")),
    ("buildings from GeoParquet (GeoArrow)", _buildings_parquet("geoarrow")),
    ("buildings from GeoJSON", _buildings_geojson),
    ("H3 cells, boundaries and centres (res 7-12)", _h3),
    ("metric projection", _projection),
)


def warm_up(report: Callable[[str, float], None] | None = None) -> list[tuple[str, float]]:
    """Run every kernel once on small inputs (compiling and caching it); returns (step, seconds).

    ``report(step, seconds)`` is called after each step (the CLI prints progress with it).
    Safe to run again: with a warm cache it takes a second or two.
    """
    done: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="twin-warmup-") as tmp:
        for name, step in STEPS:
            start = time.perf_counter()
            step(Path(tmp))
            seconds = time.perf_counter() - start
            done.append((name, seconds))
            if report is not None:
                report(name, seconds)
    return done
