"""City scale: big layers draw a light proxy only while the camera moves; still frames and picking stay at full detail;
the browser-side view is chosen only when the browser can hold the scene."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingUI import vtkGenericRenderWindowInteractor
from vtkmodules.vtkWebCore import vtkWebApplication, vtkWebInteractionEvent

import twin
from twin.app.server import TwinApp
from twin.demo.district import cached_district
from twin.plugins import layer_types
from twin.render.lod import LOCAL_BYTE_BUDGET, LodSettings, build_proxy, choose_view_mode
from twin.render.view import SceneView

LOD = LodSettings(min_triangles=50_000, proxy_triangles=10_000)  # engages on a 10k-building district (~130k triangles)


@pytest.fixture(scope="module")
def district() -> twin.Scene:
    """10,000 demo buildings coloured by height, as the demo draws them."""
    buildings = cached_district(n_buildings=10_000).buildings
    scene = twin.Scene("district", center=(121.48, 31.23), settings={"show_legend": False})
    scene.add(layer_types().get("buildings")("b", data=buildings, color_by="height", colormap="bone", clim=[0, 200]))
    return scene


@pytest.fixture()
def view(district: twin.Scene) -> SceneView:
    view = SceneView(district, size=(480, 270), strict=True, show_title=False)
    view.sync()
    yield view
    view.close()


def _differing(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels that differ by more than 30 in some channel."""
    return float((np.abs(a.astype(np.int16) - b).max(axis=2) > 30).mean())


def test_moving_frame_draws_the_proxy_and_the_next_still_frame_is_full_detail(view: SceneView) -> None:
    full = view.image()  # no LOD: today's frame
    view.lod = LOD
    assert view.triangle_count() > LOD.min_triangles
    still = view.image()
    assert view.proxied == ()
    view.window.SetDesiredUpdateRate(15.0)  # what VTK's interactor style sets while a drag lasts
    moving = view.image()
    assert view.proxied == ("b",)
    assert 0.01 < _differing(moving, full) < 0.5, "the moving frame should show the decimated city, not the full one or nothing"
    view.window.SetDesiredUpdateRate(0.0001)  # the still rate, set on release
    after = view.image()
    assert view.proxied == ()
    assert int(np.abs(still.astype(np.int16) - full).max()) == 0
    assert int(np.abs(after.astype(np.int16) - full).max()) == 0


def _mouse(app: vtkWebApplication, view: SceneView, action: str, x: float, y: float) -> None:
    event = vtkWebInteractionEvent()
    event.SetButtons(vtkWebInteractionEvent.LEFT_BUTTON if action != "up" else 0)
    event.SetX(x)
    event.SetY(y)
    app.HandleInteractionEvent(view.window, event)


def test_a_browser_drag_draws_the_proxy_until_release_then_the_full_detail_frame(view: SceneView, district: twin.Scene) -> None:
    interactor = vtkGenericRenderWindowInteractor()  # as twin/app/view_panel.py sets the remote view up
    interactor.SetRenderWindow(view.window)
    interactor.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
    view.lod = LOD
    view.image()  # the first picture (its render initialises the interactor, as the app's first frame does)
    app = vtkWebApplication()  # trame's remote view hands the browser's mouse to VTK through this
    camera = view.renderer.GetActiveCamera()
    before = camera.GetPosition()
    _mouse(app, view, "down", 0.5, 0.5)
    _mouse(app, view, "move", 0.6, 0.52)
    view.image()
    assert view.proxied == ("b",)
    _mouse(app, view, "move", 0.7, 0.55)
    _mouse(app, view, "up", 0.7, 0.55)
    after_drag = view.image()
    assert view.proxied == ()
    assert camera.GetPosition() != before, "the drag should have turned the camera"
    reference = SceneView(district, size=(480, 270), strict=True, show_title=False)  # no LOD, same camera
    try:
        reference.sync()
        reference.renderer.GetActiveCamera().DeepCopy(camera)
        assert int(np.abs(reference.image().astype(np.int16) - after_drag).max()) == 0
    finally:
        reference.close()


def test_picking_after_a_moving_frame_returns_the_building_under_the_cursor(view: SceneView, district: twin.Scene) -> None:
    data = district["b"].data()
    row = int(data["height"].to_numpy().argmax())  # the tallest building: nothing hides its roof from above
    spot = data.geometry.iloc[row].representative_point()
    x, y, z = district.frame.lonlat_to_local([spot.x], [spot.y], float(data["height"].iloc[row]))[0]
    camera = view.renderer.GetActiveCamera()
    camera.SetFocalPoint(x, y, 0.0)
    camera.SetPosition(x, y, 3000.0)
    camera.SetViewUp(0.0, 1.0, 0.0)
    view.lod = LOD
    view.window.SetDesiredUpdateRate(15.0)
    view.image()
    assert view.proxied == ("b",)
    view.window.SetDesiredUpdateRate(0.0001)
    view.renderer.SetWorldPoint(x, y, z - 0.5, 1.0)
    view.renderer.WorldToDisplay()
    px, py, _ = view.renderer.GetDisplayPoint()
    hit = view.pick(round(px), round(py))
    assert hit is not None and hit["layer"] == "b" and hit["feature"] == row


def test_small_layers_draw_at_full_detail_even_while_moving(view: SceneView) -> None:
    view.lod = LodSettings()  # the app's default: proxies from 1M triangles
    view.window.SetDesiredUpdateRate(15.0)
    view.image()
    assert view.proxied == ()
    assert all(drawn.proxy is None for drawn in view._drawn.values())


def test_a_restyle_recolours_the_proxy(view: SceneView, district: twin.Scene) -> None:
    view.lod = LOD
    view.window.SetDesiredUpdateRate(15.0)
    before = view.image()
    layer = district["b"]
    layer.update(color_by=None, color="#ff0000")
    try:
        view.sync()
        after = view.image()
        assert view.proxied == ("b",)
        red = (after[..., 0] > 120) & (after[..., 1] < 60) & (after[..., 2] < 60)
        assert red.mean() > 0.01 and _differing(before, after) > 0.01
    finally:
        layer.update(color_by="height", color="#c9d3df")


def test_proxy_is_about_the_asked_size_and_keeps_feature_ids(view: SceneView) -> None:
    mesh = view._drawn["b"].polydata
    proxy = build_proxy(mesh, 20_000)
    assert 2_000 < proxy.GetNumberOfCells() < 40_000 < mesh.GetNumberOfCells()
    ids = np.asarray(proxy.GetCellData().GetArray("building_id"))
    assert len(ids) == proxy.GetNumberOfCells() and 0 <= ids.min() and ids.max() < 10_000
    assert build_proxy(vtkPolyData(), 1000).GetNumberOfCells() == 0


@pytest.mark.parametrize(
    ("labelled", "triangles", "nbytes", "mode", "reason"),
    [
        (["names"], 10, 10, "remote", "layers names draw labels"),
        ([], 10, LOCAL_BYTE_BUDGET + 1, "remote", "48 MB of geometry is over the browser's 48 MB"),
        ([], 2_000_001, 1_000_000, "remote", "2,000,001 triangles is over the budget of 2,000,000"),
        ([], 400_000, 9_000_000, "local", "400,000 triangles, 9.0 MB of geometry fit the browser"),
    ],
)
def test_view_mode_rule(labelled: list[str], triangles: int, nbytes: int, mode: str, reason: str) -> None:
    assert choose_view_mode(labelled=labelled, triangles=triangles, nbytes=nbytes, triangle_budget=2_000_000) == (mode, reason)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10**8), st.integers(0, 10**9), st.integers(1, 10**8), st.integers(1, 10**9))
def test_local_exactly_when_both_budgets_hold(triangles: int, nbytes: int, triangle_budget: int, byte_budget: int) -> None:
    mode, _ = choose_view_mode(labelled=[], triangles=triangles, nbytes=nbytes, triangle_budget=triangle_budget, byte_budget=byte_budget)
    assert (mode == "local") == (triangles <= triangle_budget and nbytes <= byte_budget)


@pytest.mark.parametrize(("budget", "mode"), [(50_000, "remote"), (2_000_000, "local")])
def test_the_app_serves_big_scenes_remotely_with_lod(district: twin.Scene, budget: int, mode: str) -> None:
    app = TwinApp(district, view_mode="auto", triangle_budget=budget)
    try:
        assert app.view_mode == mode
        assert (app.view.lod is not None) == (mode == "remote")
    finally:
        app.view.close()
