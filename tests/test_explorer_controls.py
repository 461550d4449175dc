"""Layer controls on the model side: colour-by, filter (``where``), opacity and a live layer's window restyle
through the session without a new mesh, and bad control values give one line naming the layer and column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import twin
from twin.errors import LayerDataError, SceneFileError, TwinError
from twin.render.view import SceneView
from twin.session import LayerChange, Session
from twin.style import ValueRange, rows_where

UTC = dt.timezone.utc


def _boxes() -> gpd.GeoDataFrame:
    """Four side-by-side boxes west to east: kind a, b, a, c; height 1, 5, 9, 13."""
    boxes = [shapely.box(121.470 + 0.005 * i, 31.22, 121.474 + 0.005 * i, 31.24) for i in range(4)]
    return gpd.GeoDataFrame({"kind": ["a", "b", "a", "c"], "height": [1.0, 5.0, 9.0, 13.0]}, geometry=boxes, crs="EPSG:4326")


def _scene() -> tuple[twin.Scene, Session, SceneView, list[LayerChange]]:
    scene = twin.Scene("controls", center=(121.4785, 31.23), cameras={"top": {"target": [121.4785, 31.23], "pitch": 90, "range": 3000}}, camera="top")
    scene.add_data("boxes", _boxes(), color="#ff0000")
    session = Session(scene)
    view = SceneView(scene, size=(320, 180), show_title=False, show_legend=False)
    view.sync()
    changes: list[LayerChange] = []
    session.layer_changed.connect(changes.append)
    return scene, session, view, changes


def _red(image: np.ndarray) -> int:
    return int(((image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60)).sum())


def test_colour_by_restyles_the_same_mesh_and_changes_the_picture() -> None:
    scene, session, view, changes = _scene()
    layer = scene["boxes"]
    mesh = layer.visual(scene.frame).mesh
    before = view.image()
    session.set_layer("boxes", color_by="height", colormap="viridis", clim=(0, 13))
    view.sync()
    after = view.image()
    assert changes == [LayerChange("boxes", frozenset({"style"}))]  # no geometry change announced
    assert layer.visual(scene.frame).mesh is mesh  # the layer kept its mesh
    assert _red(before) > 1000 and _red(after) == 0
    legend = layer.visual(scene.frame).style.legend
    assert legend is not None and (legend.colormap, legend.vmin, legend.vmax) == ("viridis", 0.0, 13.0)
    session.set_layer("boxes", color_by="kind", palette="Set1")
    view.sync()
    assert [e.label for e in layer.visual(scene.frame).style.legend.entries] == ["a", "b", "c"]


def test_filter_by_values_and_by_range_hides_features_without_a_new_mesh() -> None:
    scene, session, view, changes = _scene()
    layer = scene["boxes"]
    mesh = layer.visual(scene.frame).mesh
    full = _red(view.image())
    session.set_layer("boxes", where={"kind": ["a"]})  # two of the four boxes
    view.sync()
    half = _red(view.image())
    assert 0.4 < half / full < 0.6
    session.set_layer("boxes", where={"height": {"min": 10}})  # one box
    view.sync()
    quarter = _red(view.image())
    assert 0.18 < quarter / full < 0.32
    session.set_layer("boxes", where=None)
    view.sync()
    assert _red(view.image()) == full
    assert all(change.kinds == frozenset({"style"}) for change in changes) and len(changes) == 3
    assert layer.visual(scene.frame).mesh is mesh


def test_picking_a_filtered_layer_names_the_feature_drawn() -> None:
    scene, session, view, _ = _scene()
    session.set_layer("boxes", where={"kind": ["b", "c"]})
    view.sync()
    image = view.image()
    red = (image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60)
    inside = red & np.roll(red, 4, axis=1) & np.roll(red, -4, axis=1)  # away from the boxes' edges
    row = image.shape[0] // 2
    hits = [view.pick(int(x), image.shape[0] - 1 - row) for x in np.flatnonzero(inside[row])[::3]]
    assert hits and all(hit is not None for hit in hits)
    assert {hit["attributes"]["kind"] for hit in hits if hit is not None} == {"b", "c"}


def test_opacity_and_visibility_touch_only_the_actor() -> None:
    scene, session, view, changes = _scene()
    mesh = scene["boxes"].visual(scene.frame).mesh
    session.set_layer("boxes", opacity=0.3)
    session.set_layer("boxes", visible=False)
    assert [c.kinds for c in changes] == [frozenset({"style"}), frozenset({"visibility"})]
    view.sync()
    assert _red(view.image()) == 0 and scene["boxes"].visual(scene.frame).mesh is mesh


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"colour": ["a"]}, "layer 'boxes': filter on unknown attribute 'colour'; attributes: kind, height"),
        ({"kind": {"min": 3}}, "layer 'boxes': filter range on attribute 'kind', which holds no numbers: filter it by values instead"),
    ],
)
def test_a_filter_on_a_wrong_column_names_layer_and_column(where: dict[str, object], message: str) -> None:
    scene, session, view, _ = _scene()
    session.set_layer("boxes", where=where)
    with pytest.raises(LayerDataError) as caught:
        scene["boxes"].visual(scene.frame)
    assert str(caught.value) == message
    view.sync()  # the view shows the error for the layer and keeps running
    assert view.errors["boxes"].message == message


@pytest.mark.parametrize(
    ("where", "message"),
    [({"height": {"min": 9, "max": 1}}, "range min 9 is above max 1"), ({"height": {}}, "a range needs min, max or both"),
     ({"height": {"min": float("nan")}}, "range ends must be finite numbers")],
)
def test_a_bad_range_is_refused_with_one_line(where: dict[str, object], message: str) -> None:
    _, session, _, changes = _scene()
    with pytest.raises(TwinError, match=message) as caught:
        session.set_layer("boxes", where=where)
    assert str(caught.value).startswith("layer 'boxes': filter where.height") and "\n" not in str(caught.value)
    assert not changes


def test_filter_in_a_scene_file_round_trips_and_a_bad_one_names_its_line(tmp_path: Path) -> None:
    scene = twin.Scene("s", center=(121.4785, 31.23))
    scene.add_data("boxes", _boxes(), where={"kind": ["a", "c"], "height": {"min": 2}}, title={"zh_CN": "方块", "en": "Boxes"})
    again = twin.Scene.from_file(scene.to_file(tmp_path / "s.yaml"))
    assert again.to_dict() == scene.to_dict()
    assert again["boxes"].where == {"kind": ["a", "c"], "height": ValueRange(min=2)}
    assert (again["boxes"].title_for("en"), again["boxes"].title_for("zh_CN"), again["boxes"].title_for("en_GB")) == ("Boxes", "方块", "Boxes")
    text = (tmp_path / "s.yaml").read_text(encoding="utf-8").replace("min: 2.0", "min: high")
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "min: high" in row)
    with pytest.raises(SceneFileError) as caught:
        twin.Scene.from_file(tmp_path / "bad.yaml")
    assert caught.value.line == line and caught.value.key is not None and caught.value.key.startswith("layers[0].where.height")


def test_a_title_per_language_in_a_scene_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("version: 1\nname: t\nframe: {center: [121.48, 31.23]}\nlayers:\n  - id: a\n    type: vector\n    title: {zh_CN: 区, english: Districts}\n",
                    encoding="utf-8")
    with pytest.raises(SceneFileError, match=r"t.yaml:7: layers\[0\].title.*'english' is not a language tag like zh_CN or en"):
        twin.Scene.from_file(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=False, width=32), st.none()), min_size=1, max_size=30),
       low=st.floats(-1e6, 1e6), width=st.floats(0, 1e6))
def test_a_range_keeps_exactly_the_numbers_inside(values: list[float | None], low: float, width: float) -> None:
    data = pd.DataFrame({"v": pd.array(values, dtype="Float64").astype("float64")})
    keep = rows_where(data, {"v": ValueRange(min=low, max=low + width)}, layer="x")
    numbers = data["v"].to_numpy()
    assert keep.tolist() == [bool(np.isfinite(v) and low <= v <= low + width) for v in numbers]


def test_a_live_layer_window_and_aggregate_restyle_the_same_cells(tmp_path: Path) -> None:
    """An H3 layer over readings: a longer window counts more readings in the same cells (no new mesh)."""
    from twin.plugins import layer_types

    t0 = dt.datetime(2026, 7, 1, 2, 0, tzinfo=UTC)
    rows = [f"121.4801,31.2301,{(t0 - dt.timedelta(minutes=m)).isoformat()},{v}" for m, v in ((1, 1), (2, 2), (8, 3), (9, 4), (12, 5))]
    (tmp_path / "r.csv").write_text("lon,lat,time,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
    scene = twin.Scene("live", center=(121.48, 31.23))
    source = {"type": "file_readings", "path": str(tmp_path / "r.csv"), "value": "value"}
    layer = scene.add(layer_types().get("h3")("crowd", source=source, window="5m", aggregate="count", resolution=9, history="2h"))
    session = Session(scene, clock=lambda: t0)
    session.tick(t0)
    mesh = layer.visual(scene.frame).mesh
    assert layer.data()["value"].tolist() == [2.0]
    changes: list[LayerChange] = []
    session.layer_changed.connect(changes.append)
    session.set_layer("crowd", window="15m")
    assert layer.data()["value"].tolist() == [5.0]
    session.set_layer("crowd", aggregate="sum")
    assert layer.data()["value"].tolist() == [15.0]
    assert layer.visual(scene.frame).mesh is mesh
    assert all("geometry" not in c.kinds for c in changes)
    with pytest.raises(TwinError, match="layer 'crowd' \\(h3\\).*aggregate"):
        session.set_layer("crowd", aggregate="median")
