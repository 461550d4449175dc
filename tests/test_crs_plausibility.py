"""Coordinates that cannot be in the declared CRS are named before they are drawn in the wrong place (or nowhere)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import twin
from twin.errors import CRSError, TwinWarning
from twin.geo.crs import check_plausible
from twin.plugins import layer_types, source_types
from twin.render.view import SceneView

TWIN = [sys.executable, "-m", "twin.cli"]
LOCAL_TMERC = "+proj=tmerc +lon_0=121 +lat_0=31 +units=m +type=crs"  # no area of use: a site could be near its origin


def squares(path: Path, corners: list[tuple[float, float]], size: float) -> Path:
    features = [
        {"type": "Feature", "properties": {"i": i}, "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]}}
        for i, (x, y) in enumerate(corners)
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


LONLAT = [(121.47, 31.22), (121.48, 31.23)]


def test_lonlat_declared_as_gauss_kruger_is_an_error_naming_source_crs_and_the_likely_one(tmp_path: Path) -> None:
    squares(tmp_path / "poi.geojson", LONLAT, 0.002)
    scene = tmp_path / "s.yaml"
    scene.write_text("version: 1\nname: t\nlayers:\n  - id: poi\n    type: vector\n    source: {type: file, path: poi.geojson, crs: 'EPSG:4549'}\n", encoding="utf-8")
    result = subprocess.run([*TWIN, "render", str(scene), "-o", str(tmp_path / "x.png"), "--size", "320x200"], check=False, capture_output=True, text=True, timeout=180)
    line = (
        "file source 'poi.geojson': coordinates (121.47, 31.22) .. (121.482, 31.232) are declared in EPSG:4549 (projected, metres) "
        "but look like lon/lat degrees (EPSG:4326?): they lie outside the area where EPSG:4549 is used; set the source's crs to EPSG:4326"
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"twin: error: layer 'poi': {line}"]
    assert not (tmp_path / "x.png").exists()  # no blank PNG


def test_the_wall_keeps_drawing_the_good_layers_and_the_badge_says_why(tmp_path: Path) -> None:
    good = squares(tmp_path / "good.geojson", LONLAT, 0.002)
    wrong = squares(tmp_path / "wrong.geojson", LONLAT, 0.002)
    scene = twin.Scene("wall", settings={"show_legend": False})
    Vector = layer_types().get("vector")
    scene.add(Vector("good", source={"type": "file", "path": str(good)}, color="red"))
    bad = scene.add(Vector("wrong", source={"type": "file", "path": str(wrong), "crs": "EPSG:4549"}))
    view = SceneView(scene, size=(320, 200))
    view.sync()
    image = view.image()
    view.close()
    assert view.errors["wrong"].message == bad.health.error
    assert "declared in EPSG:4549 (projected, metres) but look like lon/lat degrees (EPSG:4326?)" in bad.health.error
    lon, lat, _ = scene.frame.local_to_lonlat([0.0, 0.0, 0.0])
    assert lon[0] == pytest.approx(121.476, abs=1e-3) and lat[0] == pytest.approx(31.226, abs=1e-3)  # centred on the good data
    red = (image[:, :, 0] > 200) & (image[:, :, 1] < 60)
    assert red.mean() > 0.01


def test_lonlat_in_a_local_crs_without_area_only_warns_and_render_prints_it(tmp_path: Path) -> None:
    squares(tmp_path / "site.geojson", LONLAT, 0.002)
    scene = tmp_path / "s.yaml"
    scene.write_text(f"version: 1\nname: t\nlayers:\n  - id: site\n    type: vector\n    source: {{type: file, path: site.geojson, crs: '{LOCAL_TMERC}'}}\n", encoding="utf-8")
    result = subprocess.run([*TWIN, "render", str(scene), "-o", str(tmp_path / "x.png"), "--size", "320x200"], check=False, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert (
        f"twin: warning: file source 'site.geojson': coordinates (121.47, 31.22) .. (121.482, 31.232) are declared in {LOCAL_TMERC} "
        "(projected, metres) but look like lon/lat degrees (EPSG:4326?)"
    ) in result.stderr.splitlines()


def test_projected_metres_declared_as_lonlat_is_an_error(tmp_path: Path) -> None:
    path = squares(tmp_path / "m.geojson", [(621470.0, 3455000.0), (622470.0, 3456000.0)], 50.0)
    layer = layer_types().get("vector")("m", source={"type": "file", "path": str(path)})
    with pytest.raises(CRSError) as err:
        layer.data()
    assert str(err.value) == (
        f"file source '{path}': coordinates (621470, 3.455e+06) .. (622520, 3.45605e+06) are declared in EPSG:4326 (lon/lat degrees) "
        "but lie outside ±180/±90: they look like projected metres; set the source's crs (e.g. crs: EPSG:4549)"
    )
    assert layer.health.error == str(err.value)


def test_coordinates_that_do_not_convert_are_skipped_and_when_none_converts_an_error(tmp_path: Path) -> None:
    # EPSG:4549 (Gauss-Kruger 120°E) gives infinite lon/lat for x = 1e9 m
    some = squares(tmp_path / "some.geojson", [(500000.0, 3455000.0), (1e9, 3455000.0)], 50.0)
    layer = layer_types().get("vector")("some", source={"type": "file", "path": str(some), "crs": "EPSG:4549"})
    with pytest.warns(TwinWarning, match=r"skipped 1 of 2 features: not convertible from EPSG:4549 \(feature 1\)$"):
        assert layer.data()["i"].tolist() == [0]
    none = squares(tmp_path / "none.geojson", [(1e9, 3455000.0)], 50.0)
    with pytest.raises(CRSError, match=r"^file source '.*none.geojson': no coordinate converts from EPSG:4549 to lon/lat: check the source's crs$"):
        source_types().get("file")(path=str(none), crs="EPSG:4549").read()


@pytest.mark.parametrize(
    ("x", "y", "crs"),
    [
        ([121.47, 121.5], [31.2, 31.3], "EPSG:4326"),
        ([121.47, 121.5], [31.2, 31.3], "GCJ02"),
        ([500000.0, 501000.0], [3455000.0, 3456000.0], "EPSG:4549"),
        ([np.nan, np.inf], [31.2, 31.3], "EPSG:4549"),  # nothing finite to judge: the features are skipped elsewhere
        ([-120.0, 170.0, 1e300], [31.2, 31.3, 0.0], "EPSG:4326"),  # one bad feature among good ones: skipped, not the layer
    ],
)
def test_plausible_coordinates_pass_silently(x: list[float], y: list[float], crs: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_plausible(x, y, crs, where="test")


def test_world_mercator_with_degree_values_warns() -> None:
    """EPSG:3857 covers the world, so small values are inside its area: a warning, not an error."""
    with pytest.warns(TwinWarning, match=r"^csv 'x': coordinates \(121.4, 31.2\) .. \(121.5, 31.3\) are declared in EPSG:3857 .* \(EPSG:4326\?\)$"):
        check_plausible([121.4, 121.5], [31.2, 31.3], "EPSG:3857", where="csv 'x'")
