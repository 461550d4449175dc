"""Random GeoJSON files through the ``file`` source and a vector layer: a clean result or one TwinError line, nothing else."""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import shapely
from hypothesis import HealthCheck, given, settings

from twin.errors import TwinError
from twin.geo import Frame
from twin.plugins import layer_types, source_types

FRAME = Frame.auto(121.47, 31.22)

numbers = st.one_of(
    st.floats(min_value=-200, max_value=200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e300, -1e300, 121.47, 31.22, 95.0, 0.0]),
    st.integers(min_value=-(10**20), max_value=10**20),
)
junk = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.just([]), st.just({}))
position = st.one_of(
    st.lists(numbers, min_size=2, max_size=3),
    st.lists(st.one_of(numbers, junk), min_size=0, max_size=4),  # strings, nulls, too few or too many
)
ring = st.lists(position, min_size=0, max_size=6)
coordinates = st.one_of(
    position,
    st.lists(position, max_size=5),
    st.lists(ring, max_size=3),
    st.lists(st.lists(ring, max_size=2), max_size=2),
    st.recursive(st.lists(numbers, max_size=2), lambda inner: st.lists(inner, max_size=3), max_leaves=12),  # nested too deep
    junk,
)
GEOMETRY_TYPES = ["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "Blob", ""]


def geometry(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    simple = st.builds(lambda t, c: {"type": t, "coordinates": c}, st.sampled_from(GEOMETRY_TYPES), coordinates)
    collection = st.builds(lambda gs: {"type": "GeometryCollection", "geometries": gs}, st.lists(children, max_size=3))
    return st.one_of(simple, collection, st.builds(lambda c: {"coordinates": c}, coordinates), junk)  # missing "type" too


drawable = st.tuples(st.floats(min_value=121.4, max_value=121.5), st.floats(min_value=31.2, max_value=31.3)).map(list)
pos = st.one_of(drawable, drawable, drawable, st.lists(numbers, min_size=2, max_size=3))  # mostly drawable, some hostile
closed_ring = st.lists(pos, min_size=2, max_size=5).map(lambda r: [*r, r[0]])  # 3 to 6 positions, first repeated
well_formed = st.one_of(
    st.builds(lambda c: {"type": "Point", "coordinates": c}, pos),
    st.builds(lambda c: {"type": "LineString", "coordinates": c}, st.lists(pos, min_size=1, max_size=4)),
    st.builds(lambda c: {"type": "Polygon", "coordinates": c}, st.lists(st.one_of(closed_ring, st.lists(pos, max_size=4)), min_size=1, max_size=2)),
    st.builds(lambda c: {"type": "MultiPolygon", "coordinates": c}, st.lists(st.lists(closed_ring, min_size=1, max_size=2), max_size=2)),
    st.builds(lambda c: {"type": "MultiPoint", "coordinates": c}, st.lists(pos, max_size=3)),
)
geometries = st.recursive(st.builds(lambda t, c: {"type": t, "coordinates": c}, st.sampled_from(GEOMETRY_TYPES), coordinates), geometry, max_leaves=6)
properties = st.one_of(st.none(), st.dictionaries(st.sampled_from(["name", "height", "n"]), st.one_of(numbers, junk), max_size=3), junk)
features = st.one_of(
    st.builds(lambda g, p: {"type": "Feature", "geometry": g, "properties": p}, st.one_of(well_formed, geometries), properties),
    st.builds(lambda g: {"geometry": g}, geometries),  # no "type"
    junk,
)
documents = st.one_of(
    st.builds(lambda fs: {"type": "FeatureCollection", "features": fs}, st.lists(features, max_size=6)),
    st.builds(lambda gs: {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"n": 1}, "geometry": g} for g in gs]},
              st.lists(well_formed, min_size=1, max_size=6)),
    st.builds(lambda fs: {"type": "FeatureCollection", "features": fs}, st.one_of(junk, st.dictionaries(st.text(max_size=2), numbers, max_size=2))),
    features,
    geometries,
    st.lists(numbers, max_size=3),
    numbers,
)


def as_text(doc: Any, cut: int | None) -> str:
    """JSON as Python writes it (NaN, Infinity), optionally cut short (malformed text)."""
    text = json.dumps(doc)
    return text if cut is None else text[: cut % (len(text) + 1)]


def check_one_line(error: TwinError) -> None:
    message = str(error)
    assert message and "\n" not in message, repr(message)
    assert not message.startswith("unexpected"), message


@contextmanager
def written(doc: Any, cut: int | None) -> Iterator[Path]:
    """The document in a .geojson file that lives for the ``with`` block."""
    with tempfile.TemporaryDirectory(prefix="twin-fuzz-") as folder:
        path = Path(folder) / "fuzz.geojson"
        path.write_text(as_text(doc, cut), encoding="utf-8")
        yield path


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(doc=documents, cut=st.one_of(st.none(), st.none(), st.integers(min_value=0)))
def test_file_source_gives_wgs84_features_or_one_twin_error_line(doc: Any, cut: int | None) -> None:
    with written(doc, cut) as path, warnings.catch_warnings():
        source = source_types().get("file")(path=str(path))
        warnings.simplefilter("ignore")
        try:
            data = source.read()
        except TwinError as error:
            check_one_line(error)
            return
    assert data.crs is not None and data.crs.to_epsg() == 4326
    for reason, index in {**source.last_skipped, **source.last_repaired}.items():
        assert reason and all(isinstance(i, int) for i in index)


@FUZZ
@given(doc=documents, cut=st.one_of(st.none(), st.none(), st.integers(min_value=0)))
def test_vector_layer_draws_finite_features_or_reports_one_twin_error_line(doc: Any, cut: int | None) -> None:
    with written(doc, cut) as path, warnings.catch_warnings():
        layer = layer_types().get("vector")("fuzz", source={"type": "file", "path": str(path)})
        warnings.simplefilter("ignore")
        try:
            data = layer.data()
            mesh = layer.visual(FRAME).mesh
        except TwinError as error:
            check_one_line(error)
            assert layer.health.error == str(error)
            return
    coords = shapely.get_coordinates(data.geometry.to_numpy())
    assert np.isfinite(coords).all() and (np.abs(coords[:, 0]) <= 180).all() and (np.abs(coords[:, 1]) <= 90).all()
    assert np.isfinite(mesh.points).all()
    report = layer.health.last_report
    assert report.accepted == len(data) and sum(report.dropped.values()) == sum(len(v) for v in layer.skipped.values())
    extent = layer.extent()
    assert extent is None or all(math.isfinite(v) for v in extent)
