"""The buildings layer: colour by attribute with a legend, filter, highlight, pick -> attributes + lon/lat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import twin
from twin.errors import LayerDataError
from twin.plugins import layer_types


@pytest.fixture()
def suzhou(shared_data: Path) -> dict:
    return {"type": "file", "path": str(shared_data / "suzhou_buildings.geojson")}


def buildings(source: dict, **params):
    return layer_types().get("buildings")("b", source=source, floors="Floor", **params)


FRAME = twin.Frame.auto(120.607, 31.30)


def per_building_colors(visual) -> dict[int, tuple]:
    assert visual.style.feature_index == "building_id"
    ids = np.unique(np.asarray(visual.mesh.cell_data["building_id"]))
    return {int(i): tuple(visual.style.feature_colors[i]) for i in ids}


def test_continuous_colour_with_legend(suzhou: dict) -> None:
    layer = buildings(suzhou, color_by="height", colormap="viridis", clim=(0, 40))
    visual = layer.visual(FRAME)
    legend = visual.style.legend
    assert legend.is_continuous and (legend.vmin, legend.vmax, legend.colormap) == (0, 40, "viridis")
    colors = per_building_colors(visual)
    heights = layer.data()["height"].to_numpy()
    low, high = int(np.argmin(heights)), int(np.argmax(heights))
    assert colors[low] != colors[high]
    assert colors[high] == (253, 231, 37, 255)  # viridis at the top of the range


def test_categorical_colour_filter_and_geometry_rebuild(suzhou: dict) -> None:
    layer = buildings(suzhou, color_by="Floor", categories={"1": "#ff0000"}, palette="tab10")
    visual = layer.visual(FRAME)
    assert [e.label for e in visual.style.legend.entries] == sorted({str(f) for f in layer.data()["Floor"]})
    one_floor = layer.data().index[layer.data()["Floor"] == 1][0]
    assert per_building_colors(visual)[int(one_floor)] == (255, 0, 0, 255)
    layer.update(filter={"height": {"min": 30}})
    tall = layer.visual(FRAME)
    kept = set(np.asarray(tall.mesh.cell_data["building_id"]).tolist())
    assert kept == set(np.flatnonzero(layer.data()["height"].to_numpy() >= 30).tolist())
    assert tall.geometry_version > visual.geometry_version


def test_highlight_by_row_and_by_id(suzhou: dict) -> None:
    layer = buildings(suzhou, highlight=[5, 7], highlight_color="#00ff00")
    colors = per_building_colors(layer.visual(FRAME))
    assert colors[5] == colors[7] == (0, 255, 0, 255) and colors[6] != colors[5]
    first = layer.visual(FRAME)
    some_id = layer.data()["Id"].iloc[9]
    layer.update(highlight=[str(some_id)], id_column="Id")
    second = layer.visual(FRAME)
    assert second.mesh is first.mesh  # highlighting restyles only
    assert per_building_colors(second)[9] == (0, 255, 0, 255)
    layer.update(id_column=None, highlight=[99_999])
    with pytest.raises(LayerDataError, match="highlight rows \\[99999\\] are outside"):
        layer.visual(FRAME)


def test_pick_returns_attributes_and_lonlat(suzhou: dict) -> None:
    from twin.render.view import SceneView

    scene = twin.Scene("pick", center=(120.607, 31.30), cameras={"top": {"target": [120.607, 31.30], "pitch": 90, "range": 3000}}, camera="top",
                       settings={"show_legend": False})
    scene.add(buildings(suzhou))
    view = SceneView(scene, size=(400, 400))
    view.sync()
    view.render()
    hit = None
    for x, y in [(200, 200), (180, 210), (220, 190), (150, 250), (250, 150), (120, 120), (280, 280)]:
        hit = view.pick(x, y)
        if hit is not None:
            break
    view.close()
    assert hit is not None, "no building under any probe pixel"
    row = scene["b"].data().iloc[hit["feature"]]
    assert hit["attributes"]["Id"] == row["Id"] and hit["attributes"]["height"] == row["height"]
    footprint = row.geometry.buffer(1e-4)  # the picked point lies on (or on the roof edge of) that building
    import shapely

    assert footprint.contains(shapely.Point(hit["lon"], hit["lat"]))
    assert hit["z"] == pytest.approx(row["height"], abs=0.5) or hit["z"] <= row["height"] + 0.5


def test_points_in_a_footprint_layer_are_a_clear_error(shared_data: Path) -> None:
    layer = buildings({"type": "file", "path": str(shared_data / "bund_busstops_71.geojson")})
    with pytest.raises(LayerDataError, match="(?i)point"):
        layer.visual(twin.Frame.auto(121.48, 31.23))
