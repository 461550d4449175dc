"""Live H3 ticks in the local (vtk.js) view: a few bytes per cell, applied in the browser.

In-process: the per-cell tick payload decodes to the heights, hidden cells and colours the
layer has; a tick keeps the local view's arrays (what trame-vtk hashes) untouched in identity
and modification time, so nothing but the tick goes out, and the server's copy takes the tick
only when the server renders or picks (picking gives the new cell and height); new cells after
those drawn are a new part with only their geometry (a scene change that sends only that part),
other new meshes one part again.
In Chromium: ``twin serve --view local`` on a scene whose H3 layer reads a file this test
rewrites; a tick with higher values turns the cells' pixels from green to red, drawn by the GPU
path (per-cell textures read by the vertex shader); a tick that raises, recolours and hides cells
draws the same pixels on the GPU path as on the CPU path (points and colours rewritten in JS).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from playwright import sync_api
from vtkmodules.util.numpy_support import vtk_to_numpy

import twin
from twin.errors import TwinError
from twin.mesh.cell_blocks import CellBlocks, CellState, palette_index, tick_payload
from twin.plugins import layer_types, register_source
from twin.render.view import SceneView
from twin.source import ReadingsSource

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_h3_local import cells_around, write_readings, write_scene

T0 = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.timezone.utc)
LEVELS = [{"at": 0, "label": "low", "color": "#2ecc71"}, {"at": 150, "label": "mid", "color": "#ffb300"}, {"at": 300, "label": "high", "color": "#ff3b30"}]
GREEN, AMBER, RED = (0x2E, 0xCC, 0x71), (0xFF, 0xB3, 0x00), (0xFF, 0x3B, 0x30)


class _Feed(ReadingsSource):
    """The test's readings, handed to the layer."""

    type_name = "local_ticks_feed"
    frame = pd.DataFrame()

    def readings(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        return _Feed.frame


def _readings(cells: np.ndarray, values: np.ndarray, when: dt.datetime) -> pd.DataFrame:
    centres = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in cells])
    return pd.DataFrame({"sensor_id": np.arange(len(cells)).astype(str).astype(object), "lon": centres[:, 1], "lat": centres[:, 0],
                         "time": pd.Timestamp(when), "value": values})


def _decode(payload: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the page script reads: heights (m), hidden flags, RGBA per cell."""
    n = payload["n_cells"]
    heights = np.frombuffer(payload["heights"], "<u2") * payload["height_step"]
    hidden = np.unpackbits(np.frombuffer(payload["hidden"], np.uint8), bitorder="little")[:n].astype(bool)
    index = np.frombuffer(payload["color_index"], "<u2" if payload["index_bytes"] == 2 else np.uint8)
    return heights, hidden, np.array(payload["palette"], np.uint8)[index]


@pytest.fixture()
def h3_view() -> Callable[[int], tuple[SceneView, object, np.ndarray]]:
    register_source(_Feed, "local_ticks_feed")

    def make(count: int) -> tuple[SceneView, object, np.ndarray]:
        cells = cells_around(121.48, 31.23, 10, count)
        scene = twin.Scene(center=(121.48, 31.23))
        layer = layer_types().get("h3")("crowd", source={"type": "local_ticks_feed"}, resolution=10, aggregate="max", window="1m",
                                        history="10m", height_scale=0.5, show_above=20, levels=LEVELS)
        scene.add(layer)
        _Feed.frame = _readings(cells, np.linspace(0, 400, count), T0)
        layer.refresh(T0)
        layer.set_time(T0)
        view = SceneView(scene, size=(320, 240))
        view.direct_colors = True
        view.sync()
        return view, layer, cells

    return make


def test_tick_payload_is_three_bytes_a_cell_and_decodes_to_the_layer_state(h3_view: Callable) -> None:
    view, layer, cells = h3_view(2000)
    _Feed.frame = _readings(cells, np.random.default_rng(0).uniform(0, 500, len(cells)), T0 + dt.timedelta(seconds=10))
    layer.refresh(T0 + dt.timedelta(seconds=10))
    layer.set_time(T0 + dt.timedelta(seconds=10))
    view.sync()
    [payload] = view.block_ticks["crowd"]
    assert sum(len(v) for v in payload.values() if isinstance(v, bytes)) <= 3.2 * len(cells)
    heights, hidden, colors = _decode(payload)
    state = layer.cell_state()
    assert np.abs(heights - state.heights).max() <= payload["height_step"] / 2 + 1e-9  # < 1 cm here
    assert (hidden == (layer.state == 2)).all() and hidden.any() and not hidden.all()  # show_above hides the low cells
    assert (colors == state.colors).all()
    assert {tuple(c[:3]) for c in colors} == {GREEN, AMBER, RED}


def _tick(layer: object, cells: np.ndarray, values: np.ndarray, seconds: int) -> None:
    """Readings ``values`` for ``cells`` at T0 + ``seconds``, polled and shown by ``layer``."""
    when = T0 + dt.timedelta(seconds=seconds)
    _Feed.frame = _readings(cells, values, when)
    layer.refresh(when)
    layer.set_time(when)


def _look_down_at(view: SceneView, layer: object, row: int) -> None:
    """The camera straight above the centre of ``layer``'s cell ``row``, 2 km up."""
    lat, lon = h3.cell_to_latlng(h3.int_to_str(int(layer.cells[row])))
    x, y, _ = view.scene.frame.lonlat_to_local(np.array([lon]), np.array([lat]))[0]
    camera = view.renderer.GetActiveCamera()
    camera.SetFocalPoint(x, y, 0.0)
    camera.SetPosition(x, y, 2000.0)
    camera.SetViewUp(0.0, 1.0, 0.0)
    camera.SetViewAngle(10.0)


def test_a_tick_sends_nothing_again_and_the_servers_picks_see_it(h3_view: Callable) -> None:
    view, layer, cells = h3_view(500)
    drawn = view._drawn["crowd"]
    points, colors = drawn.polydata.GetPoints().GetData(), drawn.polydata.GetPointData().GetArray("twin_rgba")
    stamps = (points.GetMTime(), colors.GetMTime())
    held = (vtk_to_numpy(points).copy(), vtk_to_numpy(colors).copy())
    [first] = view.block_ticks["crowd"]
    _tick(layer, cells, np.full(len(cells), 450.0), 10)
    view.sync()
    assert not view.scene_changed  # the view panel sends only the tick
    assert view.block_ticks["crowd"][0] is not first
    assert (points.GetMTime(), colors.GetMTime()) == stamps  # trame-vtk's hash of them stays: nothing is re-sent
    _look_down_at(view, layer, 0)
    hit = view.pick(160, 120)  # the server's copy takes the tick for its own pick
    assert hit is not None and hit["attributes"]["cell"] == layer.cell_keys[0] and hit["attributes"]["value"] == 450.0
    assert hit["z"] == pytest.approx(0.5 + 450 * 0.5, abs=0.5)  # on the raised roof
    assert share(view.image(), RED) > 0.5  # and so do its images
    assert (points.GetMTime(), colors.GetMTime()) == stamps  # the browsers' copy stays as sent
    assert np.array_equal(vtk_to_numpy(points), held[0]) and np.array_equal(vtk_to_numpy(colors), held[1])


def test_new_cells_after_those_drawn_are_a_part_of_their_own(h3_view: Callable) -> None:
    view, layer, cells = h3_view(500)
    base = view._drawn["crowd"].polydata
    arrays = [base.GetPoints().GetData(), base.GetPointData().GetArray("twin_rgba"), base.GetPolys()]
    stamps, nbytes = [a.GetMTime() for a in arrays], view.geometry_bytes()
    more = cells_around(121.48, 31.23, 10, 505)  # 1 % new cells, in the outer ring
    values = np.where(np.isin(more, cells), 40.0, 450.0)
    _tick(layer, more, values, 10)
    view.sync()
    assert view.scene_changed  # a new dataset for the browsers ...
    assert [layout["n_cells"] for layout in view.block_layouts["crowd"]] == [500, 5]
    assert view._drawn["crowd"].polydata is base and [a.GetMTime() for a in arrays] == stamps  # ... and the one they hold stays
    new_actor = view.block_actors("crowd")[1]
    new_points = new_actor.GetMapper().GetInput().GetNumberOfPoints()
    assert 0 < new_points == len(layer._template) - base.GetNumberOfPoints() < base.GetNumberOfPoints() / 50
    assert nbytes < view.geometry_bytes() < 1.02 * nbytes  # what the browsers hold (the view-mode rule reads it)
    state = layer.cell_state()
    for part, (tick, layout) in enumerate(zip(view.block_ticks["crowd"], view.block_layouts["crowd"])):
        rows = slice(0, 500) if part == 0 else slice(500, 505)
        heights, hidden, rgba = _decode(tick)
        assert tick["n_cells"] == layout["n_cells"] and (rgba == state.colors[rows]).all() and (hidden == state.hidden[rows]).all()
        assert np.abs(heights - state.heights[rows]).max() <= tick["height_step"]
    new_row = int(np.flatnonzero(~np.isin(layer.cells, cells))[0])
    assert new_row >= 500
    _look_down_at(view, layer, new_row)
    hit = view.pick(160, 120)  # a pick on the new part names the new cell
    assert hit is not None and hit["attributes"]["cell"] == layer.cell_keys[new_row] and hit["attributes"]["value"] == 450.0
    image = view.image()
    assert share(image[100:140, 140:180], RED) > 0.9 and share(image, RED) > 0.1  # the server's images show it, red


def test_parts_are_merged_after_eight_and_another_mesh_is_one_part(h3_view: Callable) -> None:
    view, layer, _ = h3_view(300)
    counts = []
    for step in range(1, 10):  # nine appends of 2 cells
        more = cells_around(121.48, 31.23, 10, 300 + 2 * step)
        _tick(layer, more, np.full(len(more), 200.0), 10 * step)
        view.sync()
        counts.append(len(view.block_actors("crowd")))
    assert counts == [2, 3, 4, 5, 6, 7, 8, 1, 2]  # the 9th part would be one too many: the layer goes out again as one
    assert sum(layout["n_cells"] for layout in view.block_layouts["crowd"]) == len(layer.cells) == 318
    actors = view.renderer.GetActors()
    assert actors.GetNumberOfItems() == 2  # the merged parts' actors are gone
    layer.update(resolution=9)  # cells of another resolution: another mesh
    view.sync()
    assert len(view.block_actors("crowd")) == 1 and view.block_layouts["crowd"][0]["n_cells"] == len(layer.cells)


def test_old_path_when_block_ticks_are_off(h3_view: Callable) -> None:
    view, layer, cells = h3_view(200)
    view.cell_ticks = False
    view.direct_colors = False
    view.direct_colors = True  # re-apply colours the per-triangle way
    _Feed.frame = _readings(cells, np.full(len(cells), 450.0), T0 + dt.timedelta(seconds=10))
    layer.refresh(T0 + dt.timedelta(seconds=10))
    layer.set_time(T0 + dt.timedelta(seconds=10))
    view.sync()
    assert "crowd" not in view.block_ticks and view.scene_changed
    assert view._drawn["crowd"].polydata.GetCellData().GetArray("twin_rgba") is not None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)), min_size=1, max_size=300))
def test_palette_index_gives_back_every_colour(colors: list[tuple[int, int, int, int]]) -> None:
    rgba = np.array(colors, np.uint8)
    palette, index = palette_index(rgba)
    assert (palette[index] == rgba).all()
    assert index.dtype == (np.uint8 if len(palette) <= 256 else np.uint16)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 600), st.just(float("nan")), st.just(float("inf"))), min_size=1, max_size=50))
def test_heights_survive_the_trip_or_become_zero_when_not_finite(heights: list[float]) -> None:
    n = len(heights)
    blocks = CellBlocks(counts=np.full(n, 3, np.uint8), top_from=np.full(n, 1, np.uint8), template=np.zeros((3 * n, 3), np.float32), base_z=0.5)
    payload = tick_payload(blocks, CellState(np.array(heights), np.zeros(n, bool), np.zeros((n, 4), np.uint8)))
    sent, _, _ = _decode(payload)
    expected = np.nan_to_num(np.array(heights), nan=0.0, posinf=0.0)
    assert np.abs(sent - expected).max() <= payload["height_step"] / 2 + 1e-9


def test_blocks_that_do_not_add_up_to_the_mesh_are_one_clear_error() -> None:
    with pytest.raises(TwinError, match=r"^cell blocks: 2 counts, 2 top offsets and 5 points do not describe one mesh$"):
        CellBlocks(counts=np.array([3, 3]), top_from=np.array([1, 1]), template=np.zeros((5, 3), np.float32), base_z=0.0)
    with pytest.raises(TwinError, match=r"^cell blocks: 1 counts, 2 top offsets and 3 points do not describe one mesh$"):
        CellBlocks(counts=np.array([3]), top_from=np.array([1, 1]), template=np.zeros((3, 3), np.float32), base_z=0.0)


# -- in Chromium ---------------------------------------------------------------------------------
def test_a_live_tick_changes_the_local_views_pixels(tmp_path: Path) -> None:
    from bench_h3_local import served
    from browsing import chromium, wait_for_view

    scene, readings, ids = write_scene(tmp_path, 400, res=9, scale=2.0)
    write_readings(readings, ids, np.full(len(ids), 40.0))  # green, 80 m

    with served(scene, block_ticks=True, log=tmp_path / "serve.log") as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        try:
            page.goto(url)
            page.wait_for_selector("#twin-scene-name", timeout=60_000)
            before = wait_for_view(page, lambda px: share(px, GREEN) > 0.02, 60, settle=False)
            assert share(before, RED) < 0.001
            seen = page.evaluate("(window.twinBlockStats || []).length")
            write_readings(readings, ids, np.full(len(ids), 400.0))  # red, 800 m
            after = wait_for_view(page, lambda px: share(px, RED) > 0.02 and share(px, GREEN) < 0.002, 60, settle=False)
            drawn = page.evaluate(f"window.twinBlockStats.slice({seen})")
            assert drawn and {s["path"] for s in drawn} == {"gpu"}  # drawn by the page script from the tick, through the shader
            assert all(s["stamp"] <= s["arrived"] <= s["updated"] <= s["rendered"] <= s["drawn"] for s in drawn)
            changed = np.abs(after - before).max(axis=2) > 40
            assert changed.mean() > 0.02 and changed[np.abs(before - np.array(GREEN, np.int16)).max(axis=2) <= 40].mean() > 0.9
        finally:
            page.close()


def test_a_browser_that_does_not_build_the_tick_shader_draws_ticks_on_the_cpu_path(tmp_path: Path) -> None:
    from bench_h3_local import served
    from browsing import chromium, wait_for_view

    scene, readings, ids = write_scene(tmp_path, 400, res=9, scale=2.0)
    write_readings(readings, ids, np.full(len(ids), 40.0))  # green
    warnings: list[str] = []
    with served(scene, block_ticks=True, log=tmp_path / "serve.log") as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        # the driver (or another vtk.js's templates) rejects the tick shader: it does not compile
        page.add_init_script("""(() => { const source = WebGL2RenderingContext.prototype.shaderSource;
            WebGL2RenderingContext.prototype.shaderSource = function (shader, text) {
              return source.call(this, shader, text.includes("twinPosition") ? text.replace("void main()", "void main() { not glsl }") : text); }; })();""")
        page.on("console", lambda message: warnings.append(message.text) if message.type == "warning" else None)
        try:
            page.goto(url)
            page.wait_for_selector("#twin-scene-name", timeout=60_000)
            wait_for_view(page, lambda px: share(px, GREEN) > 0.02, 60, settle=False)
            write_readings(readings, ids, np.full(len(ids), 400.0))  # red
            wait_for_view(page, lambda px: share(px, RED) > 0.02 and share(px, GREEN) < 0.002, 60, settle=False)
            assert page.evaluate("window.twinBlockStats.at(-1).path") == "cpu"
        finally:
            page.close()
    assert "twin: live ticks drawn on the CPU, this browser does not build the tick shader" in warnings


def test_the_gpu_path_draws_what_the_cpu_path_draws_for_raised_recoloured_and_hidden_cells(tmp_path: Path) -> None:
    from bench_h3_local import served
    from browsing import chromium
    from browsing import view_pixels as _view_pixels

    scene, readings, ids = write_scene(tmp_path, 400, res=9, scale=0.2)  # low prisms: cells at the ground show between them
    scene.write_text(scene.read_text(encoding="utf-8").replace("    levels:", "    show_above: 100\n    levels:"), encoding="utf-8")

    def settled(page: sync_api.Page, stamp: float) -> np.ndarray:
        """The view once a tick newer than ``stamp`` is drawn and the picture holds still."""
        deadline = time.monotonic() + 90
        while not page.evaluate(f"(window.twinBlockStats || []).some(s => s.stamp > {stamp})"):
            assert time.monotonic() < deadline, "no tick drawn"
            page.wait_for_timeout(300)
        pixels = _view_pixels(page)
        for _ in range(3):  # the next tick redraws the same values
            page.wait_for_timeout(1500)
            again = _view_pixels(page)
            if (np.abs(again - pixels).max(axis=2) <= 40).mean() > 0.999:
                return again
            pixels = again
        raise AssertionError("the view kept changing")

    with served(scene, block_ticks=True, log=tmp_path / "serve.log") as url, chromium() as browser:
        gpu, cpu = (browser.new_page(viewport={"width": 1000, "height": 700}) for _ in range(2))
        try:
            mixed = np.where(np.arange(len(ids)) % 3 == 0, 50.0, np.where(np.arange(len(ids)) % 3 == 1, 200.0, 450.0))  # hidden, amber 40 m, red 90 m
            write_readings(readings, ids, mixed)
            for page, query in ((gpu, ""), (cpu, "?twin_ticks=cpu")):
                page.goto(url + query)
                page.wait_for_selector("#twin-scene-name", timeout=60_000)
            first = [settled(page, 0.0) for page in (gpu, cpu)]
            assert gpu.evaluate("window.twinBlockStats.at(-1).path") == "gpu" and cpu.evaluate("window.twinBlockStats.at(-1).path") == "cpu"
            stamp = time.time() * 1000.0
            write_readings(readings, ids, np.full(len(ids), 450.0))  # the window's max: every cell shown, red, 90 m
            second = [settled(page, stamp) for page in (gpu, cpu)]
        finally:
            gpu.close()
            cpu.close()
    for on_gpu, on_cpu in (first, second):
        assert (np.abs(on_gpu - on_cpu).max(axis=2) <= 40).mean() > 0.995
    assert share(first[0], RED) > 0.01 and share(first[0], AMBER) > 0.01
    assert share(first[0], GREEN) < 0.001  # the low cells are hidden, not drawn green at the ground
    assert share(second[0], AMBER) < 0.001 and share(second[0], RED) > share(first[0], RED) + 0.05


def test_new_cells_go_out_as_a_small_part_and_show_in_the_local_view(tmp_path: Path) -> None:
    from bench_h3_local import Wire, served
    from browsing import chromium, wait_for_view

    scene, readings, _ = write_scene(tmp_path, 1000, res=9, scale=2.0)
    first, every = cells_around(121.48, 31.23, 9, 990), cells_around(121.48, 31.23, 9, 1000)  # then 1 % new cells, in the outer ring
    write_readings(readings, first, np.full(len(first), 40.0))  # green, 80 m
    with served(scene, block_ticks=True, log=tmp_path / "serve.log") as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        wire = Wire(page)
        try:
            page.goto(url)
            page.wait_for_selector("#twin-scene-name", timeout=60_000)
            before = wait_for_view(page, lambda px: share(px, GREEN) > 0.05, 90, settle=False)
            page.wait_for_timeout(1500)  # the first push settles
            assert share(before, RED) == 0.0
            loaded = wire.between(0.0, time.monotonic())
            start = time.monotonic()
            write_readings(readings, every, np.where(np.isin(every, first), 40.0, 400.0))  # the new cells red, 800 m
            after = wait_for_view(page, lambda px: share(px, RED) > 0.001, 90, settle=False)
            page.wait_for_timeout(1500)
            appended = wire.between(start, time.monotonic())
            layouts = page.evaluate("Object.values(window.trame.state.get('twin_block_layouts')).map(l => l.n_cells)")
            path = page.evaluate("window.twinBlockStats.at(-1).path")
        finally:
            page.close()
    assert sorted(layouts) == [10, 990] and path == "gpu"  # the new cells are a dataset of their own, drawn from ticks
    assert appended < 0.1 * loaded, (appended, loaded)  # the new part (~30 kB with the scene description) and ticks, not the mesh again
    assert share(after, GREEN) > 0.8 * share(before, GREEN)  # the cells drawn before stay


def share(pixels: np.ndarray, color: tuple[int, int, int]) -> float:
    """The share of pixels within 40 of ``color`` in each channel."""
    return float((np.abs(pixels - np.array(color, np.int16)).max(axis=2) <= 40).mean())


def _ring(layer: object, row: int) -> list[int]:
    """Rows of ``layer``'s cells next to cell ``row``."""
    neighbours = {h3.str_to_int(c) for c in h3.grid_ring(h3.int_to_str(int(layer.cells[row])), 1)}
    return [int(r) for r in np.flatnonzero(np.isin(layer.cells, list(neighbours)))]


@pytest.mark.parametrize("hide", ["show_above", "where"])
def test_the_servers_images_and_picks_leave_out_hidden_cells(h3_view: Callable, hide: str) -> None:
    view, layer, cells = h3_view(500)
    _tick(layer, cells, np.full(len(cells), 450.0), 10)  # every cell raised and red, then one cell hidden in its ring
    row = int(np.argmin(np.abs(layer.cells.astype(np.int64) - int(cells_around(121.48, 31.23, 10, 1)[0]))))  # the centre cell
    values = np.where(cells == layer.cells[row], 5.0 if hide == "show_above" else 300.0, 450.0)  # below show_above / left out by where
    if hide == "where":
        layer.update(where={"value": {"min": 400}})
    _tick(layer, cells, values, 100)  # the readings before are out of the 1-minute window
    view.sync()
    assert layer.cell_state().hidden[row] and not layer.cell_state().hidden[_ring(layer, row)].any()
    _look_down_at(view, layer, row)
    hole = view.image()[105:135, 145:175]  # inside the hidden cell, seen from above through its raised ring
    assert share(hole, RED) == 0 and share(hole, GREEN) == 0 and share(hole, AMBER) == 0
    assert view.pick(160, 120) is None  # nothing under the hidden cell (no basemap)
    shown = _ring(layer, row)[0]
    _look_down_at(view, layer, shown)
    hit = view.pick(160, 120)
    assert hit is not None and hit["attributes"]["cell"] == layer.cell_keys[shown] and hit["attributes"]["value"] == 450.0
    _tick(layer, cells, np.full(len(cells), 450.0), 200)  # shown again: back in the server's copy
    if hide == "where":
        layer.update(where=None)
    view.sync()
    _look_down_at(view, layer, row)
    hit = view.pick(160, 120)
    assert hit is not None and hit["attributes"]["cell"] == layer.cell_keys[row]
    assert share(view.image()[105:135, 145:175], RED) > 0.9
