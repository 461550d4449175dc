"""City scale: big layers are drawn as ground tiles, each at the level of detail its on-screen size needs (none outside the view),
lighter while the camera moves; still frames stay visually the same as full detail and picking stays exact; the browser-side view
is chosen only when the browser can hold the scene."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkFiltersSources import vtkLineSource
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingCore import vtkCamera
from vtkmodules.vtkRenderingUI import vtkGenericRenderWindowInteractor
from vtkmodules.vtkWebCore import vtkWebApplication, vtkWebInteractionEvent

import twin
from twin.app.server import TwinApp
from twin.app.view_panel import WHEEL_SETTLE_S
from twin.demo.district import cached_district
from twin.plugins import layer_types
from twin.render.lod import CELL_IDS, LOCAL_BYTE_BUDGET, Eye, LodSettings, build_proxy, build_tiles, choose_levels, choose_view_mode, in_frustum
from twin.render.view import SceneView

# a 10k-building district (~130k triangles) in ~13 tiles; small budgets so that 480x270 frames need proxies
LOD = LodSettings(min_triangles=50_000, tile_triangles=10_000, still_triangles=100_000, moving_triangles=20_000)


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


def _within(a: np.ndarray, b: np.ndarray, levels: int = 8) -> float:
    """Share of pixels whose channels all differ by at most ``levels``."""
    return float((np.abs(a.astype(np.int16) - b).max(axis=2) <= levels).mean())


def _reference(district: twin.Scene, view: SceneView) -> np.ndarray:
    """The full-detail frame (no LOD) from ``view``'s camera."""
    reference = SceneView(district, size=view.window.GetSize(), strict=True, show_title=False)
    try:
        reference.sync()
        reference.renderer.GetActiveCamera().DeepCopy(view.renderer.GetActiveCamera())
        return reference.image()
    finally:
        reference.close()


def _look_down(view: SceneView, x: float, y: float, height: float) -> None:
    camera = view.renderer.GetActiveCamera()
    camera.SetFocalPoint(x, y, 0.0)
    camera.SetPosition(x, y, height)
    camera.SetViewUp(0.0, 1.0, 0.0)


# -- tiles and proxies -------------------------------------------------------------------
def test_tiles_hold_every_cell_once_with_each_building_in_one_tile(view: SceneView) -> None:
    mesh = view._drawn["b"].polydata
    tiles = build_tiles(mesh, LOD, "building_id")
    assert tiles is not None and 8 <= len(tiles.meshes) <= 20
    full = np.concatenate([ids[0] for ids in tiles.cell_ids])
    assert np.array_equal(np.sort(full), np.arange(mesh.GetNumberOfCells()))
    buildings = vtk_to_numpy(mesh.GetCellData().GetArray("building_id"))
    tile_of_cell = np.repeat(np.arange(len(tiles.meshes)), [len(ids[0]) for ids in tiles.cell_ids])[np.argsort(full)]
    per_building = np.unique(np.stack([buildings, tile_of_cell], axis=1), axis=0)
    assert len(per_building) == len(np.unique(buildings)), "a building's cells should all be in one tile"
    assert (np.diff(tiles.errors, axis=1) >= 0).all() and (np.diff(tiles.triangles, axis=1) <= 0).all()
    assert tiles.triangles[:, 0].sum() == view.triangle_count() and tiles.triangles[:, -1].sum() < 0.05 * view.triangle_count()
    for levels, level_ids in zip(tiles.meshes, tiles.cell_ids):
        for level, ids in zip(levels, level_ids):
            assert np.isin(ids, level_ids[0]).all(), "a proxy cell should stand for a cell of its own tile"
            ids_in_mesh = vtk_to_numpy(level.GetCellData().GetArray(CELL_IDS))
            assert np.array_equal(vtk_to_numpy(level.GetCellData().GetArray("building_id")), buildings[ids_in_mesh])


def test_only_surfaces_are_tiled_and_an_empty_mesh_gives_an_empty_proxy() -> None:
    source = vtkLineSource()
    source.Update()
    assert build_tiles(source.GetOutput(), LOD) is None
    assert build_tiles(vtkPolyData(), LOD) is None
    assert build_proxy(vtkPolyData(), 10.0).GetNumberOfCells() == 0


# -- level choice (pure) -----------------------------------------------------------------
def _eye(position: tuple[float, float, float], focal: tuple[float, float, float], height_px: int = 1000) -> Eye:
    camera = vtkCamera()
    camera.SetPosition(*position)
    camera.SetFocalPoint(*focal)
    camera.SetViewUp(0.0, 0.0, 1.0) if position[:2] != focal[:2] else camera.SetViewUp(0.0, 1.0, 0.0)
    camera.SetViewAngle(30.0)
    camera.SetClippingRange(1.0, 1e6)
    planes = [0.0] * 24
    camera.GetFrustumPlanes(1.0, planes)
    return Eye(np.array(position, float), np.reshape(planes, (6, 4)), height_px / (2 * np.tan(np.radians(15.0))))


def test_each_tile_gets_the_coarsest_level_within_the_error_and_the_budget_coarsens_far_tiles_first() -> None:
    eye = _eye((0.0, 0.0, 1000.0), (0.0, 0.0, 0.0))  # looking straight down from 1 km: 1 m there is ~1.87 px
    bounds = np.array([[-10, 10, -10, 10, 0, 0], [100, 120, 100, 120, 0, 0], [5000, 5100, 0, 100, 0, 0]], float)  # the last is off-screen
    errors = np.array([[0, 0.4, 1.6, 6.4]] * 3)
    triangles = np.array([[1000, 300, 100, 10]] * 3)
    levels, allowed = choose_levels(bounds, errors, triangles, eye, error_px=1.0, budget=10_000)
    assert levels.tolist() == [1, 1, -1] and allowed == 1.0  # 0.4 m is ~0.75 px, 1.6 m ~3 px
    levels, allowed = choose_levels(bounds, errors, triangles, eye, error_px=1.0, budget=450)
    assert levels.tolist() == [1, 2, -1] and 2.9 < allowed < 3.0  # 600 triangles do not fit: the farther tile steps down first (~3 px)
    levels, allowed = choose_levels(bounds, errors, triangles, eye, error_px=1.0, budget=250)
    assert levels.tolist() == [2, 2, -1] and 2.9 < allowed < 3.1
    levels, _ = choose_levels(bounds, errors, triangles, eye, error_px=1.0, budget=1)
    assert levels.tolist() == [3, 3, -1]  # nothing fits: the coarsest levels
    levels, _ = choose_levels(bounds, errors, triangles, eye, error_px=0.0, budget=10**9)
    assert levels.tolist() == [0, 0, -1]  # no error allowed: full detail


@settings(max_examples=100, deadline=None)
@given(st.tuples(*[st.floats(-3000, 3000)] * 3), st.tuples(*[st.floats(-500, 500)] * 2), st.tuples(*[st.floats(-2000, 2000)] * 3),
       st.tuples(*[st.floats(1, 800)] * 3))
def test_frustum_culling_never_drops_a_box_with_a_corner_in_view(position: tuple[float, ...], focal_xy: tuple[float, ...], low: tuple[float, ...],
                                                                 size: tuple[float, ...]) -> None:
    focal = (focal_xy[0], focal_xy[1], 0.0)
    if np.linalg.norm(np.subtract(position, focal)) < 1.0:
        return
    eye = _eye(position, focal)
    box = np.array([[low[0], low[0] + size[0], low[1], low[1] + size[1], low[2], low[2] + size[2]]])
    corners = np.array([[x, y, z, 1.0] for x in box[0, 0:2] for y in box[0, 2:4] for z in box[0, 4:6]])
    sides = corners @ eye.planes.T  # (8 corners, 6 planes): >= 0 on the inner side
    if np.abs(sides).min() < 1e-6:
        return  # a corner on a plane: rounding decides
    if (sides >= 0).all(axis=1).any():
        assert in_frustum(box, eye.planes)[0], "a box with a corner in view was culled"
    assert in_frustum(box, eye.planes)[0] != (sides < 0).all(axis=0).any(), "culled exactly when all corners are outside one plane"


# -- frames ------------------------------------------------------------------------------
def test_a_close_still_frame_culls_far_tiles_and_is_pixel_identical_to_full_detail(view: SceneView, district: twin.Scene) -> None:
    _look_down(view, 0.0, 0.0, 1500.0)
    view.lod = LOD
    still = view.image()
    frame = view.lod_frames["b"]
    assert (frame.levels == -1).sum() >= len(frame.levels) // 2, "tiles outside the view should not be drawn"
    assert (frame.levels[frame.levels >= 0] == 0).all() and view.proxied == ()
    assert int(np.abs(still.astype(np.int16) - _reference(district, view)).max()) == 0


@pytest.mark.parametrize(("still_triangles", "max_error_px", "within8", "mean_diff"), [(1_500_000, 1.0, 0.99, 0.25), (100_000, 2.5, 0.97, 1.0)])
def test_a_far_still_frame_draws_proxies_and_looks_the_same_as_full_detail(view: SceneView, district: twin.Scene, still_triangles: int,
                                                                           max_error_px: float, within8: float, mean_diff: float) -> None:
    """Within the 1 px error bound, >= 99 % of pixels are within 8 levels of full detail; a budget that forces ~2 px keeps >= 97 %."""
    view.renderer.GetActiveCamera().Dolly(0.25 if still_triangles > 1_000_000 else 1.0)
    view.lod = dataclasses.replace(LOD, still_triangles=still_triangles)
    still = view.image()
    frame = view.lod_frames["b"]
    assert view.proxied == ("b",) and 1.0 <= frame.allowed_px <= max_error_px and frame.triangles < 0.8 * view.triangle_count()
    reference = _reference(district, view)
    assert _within(still, reference) >= within8
    assert float(np.abs(still.astype(np.int16) - reference).mean()) <= mean_diff


def test_a_moving_frame_is_lighter_and_the_next_still_frame_is_back(view: SceneView) -> None:
    view.lod = LOD
    still = view.image()
    still_frame = view.lod_frames["b"]
    view.window.SetDesiredUpdateRate(15.0)  # what VTK's interactor style sets while a drag lasts
    moving = view.image()
    moving_frame = view.lod_frames["b"]
    assert moving_frame.triangles <= LOD.moving_triangles < still_frame.triangles
    assert moving_frame.allowed_px >= LOD.moving_error_px and (moving_frame.levels >= still_frame.levels).all()
    assert 0.01 < 1 - _within(moving, still, 30) < 0.5, "the moving frame should show the lighter city, not the still one or nothing"
    view.window.SetDesiredUpdateRate(0.0001)  # the still rate, set on release
    after = view.image()
    assert np.array_equal(view.lod_frames["b"].levels, still_frame.levels) and np.array_equal(after, still)


def test_wheel_zoom_frames_stay_moving_until_the_hold_ends(view: SceneView, monkeypatch: pytest.MonkeyPatch) -> None:
    view.lod = LOD
    view.hold_moving(60.0)  # what the app does on each wheel step (0.3 s there; long here, so that a loaded machine cannot outlast it)
    view.image()
    assert view.moving() and view.lod_frames["b"].triangles <= LOD.moving_triangles
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 61.0)
    view.image()
    assert not view.moving() and view.lod_frames["b"].triangles > LOD.moving_triangles


def _mouse(app: vtkWebApplication, view: SceneView, action: str, x: float, y: float) -> None:
    event = vtkWebInteractionEvent()
    event.SetButtons(vtkWebInteractionEvent.LEFT_BUTTON if action != "up" else 0)
    event.SetX(x)
    event.SetY(y)
    app.HandleInteractionEvent(view.window, event)


def test_a_browser_drag_draws_light_frames_until_release_then_the_still_frame(view: SceneView, district: twin.Scene) -> None:
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
    assert view.lod_frames["b"].triangles <= LOD.moving_triangles
    _mouse(app, view, "move", 0.7, 0.55)
    _mouse(app, view, "up", 0.7, 0.55)
    after_drag = view.image()
    assert not view.moving() and camera.GetPosition() != before, "the drag should have turned the camera, and ended"
    still = SceneView(district, size=(480, 270), strict=True, show_title=False)  # a still frame from the same camera
    try:
        still.sync()
        still.lod = LOD
        still.renderer.GetActiveCamera().DeepCopy(camera)
        assert np.array_equal(still.image(), after_drag)
    finally:
        still.close()


def test_picking_is_exact_where_the_frame_drew_proxies(view: SceneView, district: twin.Scene) -> None:
    data = district["b"].data()
    rows = np.argsort(data["height"].to_numpy())[::-1][:200:20]  # tall buildings: nothing hides their roofs from above
    view.lod = dataclasses.replace(LOD, still_triangles=1)  # a budget nothing fits: every tile in view is drawn as its coarsest proxy
    for row in rows:
        row = int(row)
        spot = data.geometry.iloc[row].representative_point()
        x, y, z = district.frame.lonlat_to_local([spot.x], [spot.y], float(data["height"].iloc[row]))[0]
        _look_down(view, x, y, 3000.0)
        view.image()
        shown = view.lod_frames["b"].levels
        assert (shown[shown >= 0] > 0).all(), "every tile in view should have been drawn as a proxy"
        view.renderer.SetWorldPoint(x, y, z - 0.5, 1.0)
        view.renderer.WorldToDisplay()
        px, py, _ = view.renderer.GetDisplayPoint()
        hit = view.pick(round(px), round(py))
        assert hit is not None and hit["layer"] == "b" and hit["feature"] == row


def test_small_layers_are_never_tiled(view: SceneView) -> None:
    view.lod = LodSettings()  # the app's default: tiles from 1M triangles
    view.window.SetDesiredUpdateRate(15.0)
    view.image()
    assert view.proxied == () and view.lod_frames == {}
    assert all(drawn.tiles is None for drawn in view._drawn.values())


def test_a_restyle_recolours_tiles_and_proxies(view: SceneView, district: twin.Scene) -> None:
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
        assert red.mean() > 0.01 and _within(before, after, 30) < 0.99
    finally:
        layer.update(color_by="height", color="#c9d3df")


def test_the_first_round_scheme_is_one_proxy_while_moving_and_full_detail_when_still(view: SceneView, district: twin.Scene) -> None:
    view.lod = dataclasses.replace(LodSettings.first_round(10_000, proxy_triangles=10_000), min_triangles=50_000)
    still = view.image()
    assert view.proxied == () and len(view.lod_frames["b"].levels) == 1
    assert int(np.abs(still.astype(np.int16) - _reference(district, view)).max()) == 0
    view.window.SetDesiredUpdateRate(15.0)
    view.image()
    assert view.proxied == ("b",) and 2_000 < view.lod_frames["b"].triangles < 30_000


def test_a_wheel_step_in_the_served_view_zooms_with_light_frames_until_the_wheel_settles(district: twin.Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    app = TwinApp(district, view_mode="remote", size=(480, 270))
    try:
        view = app.view
        view.lod = dataclasses.replace(LOD, still_triangles=10**9)  # the app's default only tiles layers from 1M triangles
        view.image()  # the first picture
        camera = view.renderer.GetActiveCamera()
        distance = camera.GetDistance()
        app.view_panel._interactor.MouseWheelForwardEvent()  # what trame's remote view calls for a wheel step
        assert camera.GetDistance() < distance, "the wheel should have zoomed in"
        view.image()
        assert view.moving() and view.lod_frames["b"].triangles <= LOD.moving_triangles
        now = time.monotonic()
        monkeypatch.setattr(time, "monotonic", lambda: now + WHEEL_SETTLE_S + 0.01)
        view.image()
        assert not view.moving() and view.lod_frames["b"].triangles > LOD.moving_triangles
    finally:
        view.close()


# -- which view a browser gets -------------------------------------------------------------
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
