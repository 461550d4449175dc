"""Non-finite and out-of-range coordinates: the good features drawn, the bad ones skipped and counted, a finite camera."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import pyvista as pv
import shapely

import twin
from twin.errors import TwinWarning
from twin.geo import Frame
from twin.layer import Layer, LayerStyle
from twin.plugins import layer_types
from twin.render.view import SceneView

CASE = Path(__file__).resolve().parents[1].parent / "shared" / "cases" / "non-finite-coordinates" / "nonfinite_Infinity.geojson"
FILL = np.array([0x8F, 0xA3, 0xB8])  # the vector layer's default colour, drawn unlit


def render(scene: twin.Scene) -> np.ndarray:
    view = SceneView(scene, size=(480, 300), strict=True)
    try:
        view.sync()
        camera = view.renderer.GetActiveCamera()
        assert all(math.isfinite(v) for v in (*camera.GetPosition(), *camera.GetFocalPoint()))
        return view.image()
    finally:
        view.close()


def blobs_across(image: np.ndarray, colour: np.ndarray) -> int:
    """Separate runs of image columns that show ``colour`` (the triangles stand side by side)."""
    columns = (np.abs(image.astype(int) - colour).sum(axis=2) < 30).any(axis=0)
    return int(np.count_nonzero(columns[1:] & ~columns[:-1]) + columns[0])


def vector_scene(path: Path) -> tuple[twin.Scene, Layer]:
    scene = twin.Scene("case", settings={"show_legend": False})
    layer = scene.add(layer_types().get("vector")("shapes", source={"type": "file", "path": str(path)}))
    return scene, layer


def test_case_file_draws_the_five_triangles_and_skips_the_point_at_infinity() -> None:
    scene, layer = vector_scene(CASE)
    with pytest.warns(TwinWarning) as caught:
        image = render(scene)
    assert [str(w.message) for w in caught] == [f"layer 'shapes' (file source '{CASE}'): skipped 1 of 6 features: non-finite coordinates (feature 5)"]
    assert layer.health.last_report.accepted == 5 and layer.health.last_report.dropped == {"non-finite coordinates": 1}
    assert blobs_across(image, FILL) == 5
    assert scene.frame.origin == (0.0, 0.0, 0.0) and layer.extent() == pytest.approx((121.47, 31.22, 121.489, 31.223))


def triangles_and(bad: dict) -> dict:
    features = [
        {"type": "Feature", "properties": {"i": i}, "geometry": {"type": "Polygon", "coordinates": [[[x, 31.22], [x + 0.003, 31.22], [x + 0.003, 31.223], [x, 31.22]]]}}
        for i, x in enumerate((121.47, 121.474, 121.478))
    ]
    features.insert(1, {"type": "Feature", "properties": {"i": -1}, "geometry": bad})
    return {"type": "FeatureCollection", "features": features}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"type": "Point", "coordinates": [1e300, 31.2]}, "outside lon/lat range"),
        ({"type": "Point", "coordinates": [float("nan"), 31.2]}, "non-finite coordinates"),
        ({"type": "LineString", "coordinates": [[121.47, 31.2], [float("-inf"), 31.2]]}, "non-finite coordinates"),
        ({"type": "Point", "coordinates": [121.47, 95.0]}, "outside lon/lat range"),
        ({"type": "MultiPolygon", "coordinates": [[[[121.4, 31.2], [121.5, 31.2], [121.5, float("inf")], [121.4, 31.2]]]]}, "non-finite coordinates"),
    ],
)
def test_each_kind_of_bad_coordinate_is_skipped_with_its_reason(tmp_path: Path, bad: dict, reason: str) -> None:
    path = tmp_path / "shapes.geojson"
    path.write_text(json.dumps(triangles_and(bad)), encoding="utf-8")  # Python writes NaN / -Infinity as JSON5-style tokens GDAL reads
    scene, layer = vector_scene(path)
    with pytest.warns(TwinWarning, match=rf"^layer 'shapes' \(file source '.*'\): skipped 1 of 4 features: {reason} \(feature 1\)$"):
        image = render(scene)
    assert layer.data()["i"].tolist() == [0, 1, 2]
    assert layer.skipped == {reason: [1]}
    assert blobs_across(image, FILL) == 3


def test_in_memory_data_is_screened_too() -> None:
    data = gpd.GeoDataFrame({"i": [0, 1, 2]}, geometry=[shapely.Point(121.47, 31.22), shapely.Point(np.nan, 31.0), None], crs="EPSG:4326")
    layer = layer_types().get("vector")("mem", data=data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert layer.data()["i"].tolist() == [0]
    assert [str(w.message) for w in caught] == ["layer 'mem' (in-memory data (3 rows)): skipped 2 of 3 features: no geometry (feature 2); non-finite coordinates (feature 1)"]


def test_features_the_frame_cannot_project_are_left_out_with_a_warning() -> None:
    """On the equator 90° of longitude from the frame's centre, transverse Mercator has no finite position."""
    data = gpd.GeoDataFrame({"i": [0, 1]}, geometry=[shapely.box(121.47, 31.22, 121.48, 31.23), shapely.Point(31.0, 0.0)], crs="EPSG:4326")
    layer = layer_types().get("vector")("far", data=data)
    with pytest.warns(TwinWarning, match=r"^layer 'far': 1 feature\(s\) fall outside what the scene's frame can show .*: outside the frame \(feature 1\)$"):
        mesh = layer.visual(Frame.auto(121.0, 31.2)).mesh
    assert np.isfinite(mesh.points).all() and set(mesh.cell_data["feature_id"].tolist()) == {0}


class _RawLayer(Layer):
    """A plugin layer drawing given local points: a 100 m red triangle 7 km from the origin, or a vertex at infinity."""

    type_name = "raw_test"
    visual_uses_data = False

    def __init__(self, id: str, points: list[list[float]]) -> None:
        super().__init__(id)
        self.points = np.array(points, dtype=np.float32)

    def build_geometry(self, frame: Frame, data: gpd.GeoDataFrame) -> pv.PolyData:
        n = len(self.points)
        mesh = pv.PolyData(self.points, faces=np.array([3, 0, 1, 2])) if n == 3 else pv.PolyData(self.points)
        mesh.cell_data["feature_id"] = np.zeros(mesh.n_cells, dtype=np.int64)
        return mesh

    def build_style(self, mesh: pv.PolyData, data: gpd.GeoDataFrame) -> LayerStyle:
        return LayerStyle(colors=None, color=(255, 0, 0, 255))

    def visual_options(self) -> dict:
        return {"lighting": False}


def test_camera_is_fitted_to_finite_points_only() -> None:
    """A vertex at infinity makes VTK's scene bounds infinite; the camera must still frame (and so draw) the finite geometry."""
    scene = twin.Scene("nan", center=(121.47, 31.22), settings={"show_legend": False})
    scene.add(_RawLayer("triangle", [[5000, 5000, 0], [5100, 5000, 0], [5100, 5100, 0]]))
    scene.add(_RawLayer("broken", [[5000, 5000, 0], [np.inf, np.inf, 0]]))  # VTK bounds: (5000, inf, ...)
    image = render(scene)
    red = (image[:, :, 0] > 200) & (image[:, :, 1] < 60) & (image[:, :, 2] < 60)
    assert red.mean() > 0.02  # the triangle fills part of the view, not a NaN camera's empty frame


@pytest.mark.parametrize("shape", ["prism", "flat"])
def test_h3_layer_without_cells_draws_nothing_without_error(shape: str) -> None:
    layer = layer_types().get("h3")("crowd", shape=shape)
    visual = layer.visual(Frame.auto(121.47, 31.22))
    assert visual.mesh.n_cells == 0 and layer.extent() is None


def test_scene_with_only_an_empty_h3_layer_renders_the_other_layers() -> None:
    scene, _ = vector_scene(CASE)
    scene.add(layer_types().get("h3")("crowd"))
    with pytest.warns(TwinWarning):
        image = render(scene)
    assert blobs_across(image, FILL) == 5
