"""Rendering what users see: the demo district and the real Suzhou buildings, headless."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import twin
from imaging import compare_to_reference, hue_share

REPO = Path(__file__).resolve().parents[1]


def test_demo_render_shows_the_district(tmp_path: Path) -> None:
    out = tmp_path / "x.png"
    result = subprocess.run(
        [sys.executable, "-m", "twin.cli", "render", str(REPO / "scenes" / "demo.yaml"), "-o", str(out), "--size", "1920x1080"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "DISPLAY": ""},  # no display
    )
    assert result.returncode == 0, result.stderr
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (1080, 1920, 3)
    assert len(np.unique(image[::4, ::4].reshape(-1, 3), axis=0)) > 2000  # a city, not a flat fill
    assert hue_share(image, 205, width=12, min_saturation=0.5) > 0.03  # the river
    assert hue_share(image, 4, width=10, min_saturation=0.6) > 0.0005  # flood columns at alarm level (mid-storm)
    centre = image[300:800, 500:1400].astype(int)
    background = np.array([13, 21, 38])
    assert (np.abs(centre - background).sum(axis=2) > 40).mean() > 0.7  # the district fills the middle


def test_suzhou_buildings_image_regression(shared_data: Path) -> None:
    scene = twin.Scene(
        "suzhou",
        center=(120.607, 31.30),
        cameras={"fixed": {"target": [120.607, 31.3005], "heading": 30, "pitch": 50, "range": 2400}},
        camera="fixed",
        settings={"background": "#101418", "background_top": None, "show_legend": False},
    )
    from twin.plugins import layer_types

    Buildings = layer_types().get("buildings")
    scene.add(Buildings("suzhou", source={"type": "file", "path": str(shared_data / "suzhou_buildings.geojson")},
                        height="height", floors="Floor", color_by="height", colormap="viridis", clim=(0, 30)))
    from twin.render.view import SceneView

    view = SceneView(scene, size=(640, 400))
    view.sync()
    image = view.image()
    view.close()
    assert hue_share(image, 60, width=25, min_saturation=0.3) + hue_share(image, 180, width=40, min_saturation=0.3) > 0.05
    compare_to_reference(image, "suzhou_buildings")


def test_buildings_layer_reports_triangles_for_the_view_budget(shared_data: Path) -> None:
    from twin.plugins import layer_types

    layer = layer_types().get("buildings")("b", source={"type": "file", "path": str(shared_data / "suzhou_buildings.geojson")})
    visual = layer.visual(twin.Frame.auto(120.607, 31.30))
    triangles = visual.mesh.triangulate().n_cells
    assert layer.triangle_count() == triangles > visual.mesh.n_cells  # strips: more triangles than cells
