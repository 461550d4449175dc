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
from browsing import differ, wait_for_view
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
    _, session, view, _ = _scene()
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


# -- in the browser: `twin serve` driven by headless Chromium ------------------------------------------------------------
BUND = (121.4905, 31.2380)


def _readings_csv(path: Path, now: dt.datetime) -> Path:
    """Readings of the last 3 minutes: 30 in one cell at the Bund (value 10 each), 3 in a cell 2 km west (value 1)."""
    rows = [f"{BUND[0]},{BUND[1]},{(now - dt.timedelta(seconds=5 * i)).isoformat()},10" for i in range(30)]
    rows += [f"{BUND[0] - 0.02},{BUND[1]},{(now - dt.timedelta(seconds=20 * i)).isoformat()},1" for i in range(3)]
    path.write_text("lon,lat,time,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_controls_scene(folder: Path, shared: Path) -> Path:
    """Shanghai districts coloured by name, and a live H3 layer over fresh readings, seen from above the Bund."""
    csv = _readings_csv(folder / "readings.csv", dt.datetime.now(UTC))
    path = folder / "controls.yaml"
    path.write_text(f"""version: 1
name: 外滩
frame: {{crs: auto}}
cameras:
  bund: {{target: [{BUND[0]}, {BUND[1]}], heading: 0, pitch: 90, range: 9000}}
camera: bund
layers:
  - id: districts
    type: vector
    title: {{zh_CN: 上海各区, en: Shanghai districts}}
    source: {{type: file, path: "{(shared / 'shanghai_districts_gcj02.geojson').as_posix()}", crs: GCJ02}}
    color_by: name
    palette: tab20
  - id: crowd
    type: h3
    title: {{zh_CN: 人流, en: Crowd}}
    source: {{type: file_readings, path: "{csv.as_posix()}", value: value}}
    resolution: 8
    aggregate: sum
    window: 15m
    shape: flat
    elevation: 20
    levels:
      - {{at: 0, label: 正常, color: "#2ecc71"}}
      - {{at: 100, label: 高风险, color: "#ff3b30"}}
""", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, shared_data: Path):  # type: ignore[no-untyped-def]
    from browsing import chromium, twin_serve

    folder = tmp_path_factory.mktemp("controls")
    with twin_serve(write_controls_scene(folder, shared_data), folder / "serve.log") as url, chromium() as browser:
        yield url, browser


def _open(served: tuple[str, object], path: str = "") -> object:
    url, browser = served
    page = browser.new_page(viewport={"width": 1400, "height": 800}, locale="en-US", accept_downloads=True)  # type: ignore[attr-defined]
    page.goto(url + path)
    page.wait_for_selector('.twin-layer[data-layer-id="districts"] .twin-color-by', timeout=30_000)
    return page


def _high_risk(pixels: np.ndarray) -> np.ndarray:
    """Pixels of the H3 cells at level 高风险 (#ff3b30): the view has drawn the live layer."""
    return np.abs(pixels - np.array([255, 59, 48])).max(axis=2) <= 20


def test_colour_by_and_filter_change_the_picture(served: tuple[str, object]) -> None:
    page = _open(served)
    row = page.locator('.twin-layer[data-layer-id="districts"]')  # type: ignore[attr-defined]
    try:
        # references (settled: two agreeing shots), each later picture compared with them; the checks in between need not settle
        first = wait_for_view(page, lambda px: _high_risk(px).sum() > 30, what="the districts and the crowd's cells")
        row.locator(".twin-color-by").select_option("adcode")  # a number: a colormap with a range
        by_code = wait_for_view(page, lambda px: differ(px, first, 30) > 0.2, what="the districts coloured by code")
        page.locator('#twin-legend [data-layer-id="districts"] .twin-gradient').wait_for(timeout=10_000)  # type: ignore[attr-defined]
        row.locator(".twin-colormap").select_option("magma")
        wait_for_view(page, lambda px: differ(px, by_code, 30) > 0.2, settle=False, what="another colormap")
        row.locator(".twin-color-by").select_option("name")
        named = wait_for_view(page, lambda px: differ(px, first, 30) < 0.2 * differ(by_code, first, 30), what="the first colours again")
        row.locator(".twin-filter-column").select_option("name")
        row.locator(".twin-filter-values").select_option(["黄浦区"])  # the Bund's district only
        only = wait_for_view(page, lambda px: differ(px, named, 30) > 0.2, what="the Bund's district alone")
        row.locator(".twin-filter-column").select_option("")
        # the whole picture comes back (waited for: a frame in between may still be the lighter one of a moving view)
        wait_for_view(page, lambda px: differ(px, named, 30) < min(0.05, 0.2 * differ(only, named, 30)), settle=False, what="every district again")
    finally:
        page.close()  # type: ignore[attr-defined]


def test_the_h3_pick_card_shows_value_level_and_local_time(served: tuple[str, object]) -> None:
    page = _open(served)
    try:
        pixels = wait_for_view(page, lambda px: _high_risk(px).sum() > 30, what="the crowd's cells")  # settled: its pixels are clicked
        ys, xs = np.nonzero(_high_risk(pixels))
        box = page.locator("#twin-view").bounding_box()  # type: ignore[attr-defined]
        scale = pixels.shape[1] / box["width"]
        page.mouse.click(box["x"] + float(np.median(xs)) / scale, box["y"] + float(np.median(ys)) / scale)  # type: ignore[attr-defined]
        card = page.locator("#twin-pick")  # type: ignore[attr-defined]
        card.wait_for(timeout=20_000)
        text = card.inner_text()
        assert "Crowd" in text and "高风险" in text
        rows = dict(row.split("\t", 1) for row in card.locator("table").inner_text().splitlines() if "\t" in row)
        assert float(rows["value"]) == 300.0 and rows["level"] == "高风险"
        assert rows["last_reading"].endswith("+08:00")
        assert card.locator(".twin-pick-time").inner_text().endswith("+08:00")
        lonlat = card.locator(".twin-pick-lonlat").inner_text()
        lon, lat = (float(part.split()[-1]) for part in lonlat.split(","))
        assert abs(lon - BUND[0]) < 0.01 and abs(lat - BUND[1]) < 0.01
    finally:
        page.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", ["1280x720", "view"])
def test_the_screenshot_download_is_a_png_of_the_view(served: tuple[str, object], size: str) -> None:
    import io

    from PIL import Image

    page = _open(served)
    try:
        seen = wait_for_view(page, lambda px: _high_risk(px).sum() > 30, what="the crowd's cells")  # settled: the download is compared with it
        page.locator("#twin-shot-open").click()  # type: ignore[attr-defined]
        page.locator(".twin-shot-size").select_option(size)  # type: ignore[attr-defined]
        with page.expect_download(timeout=30_000) as download:  # type: ignore[attr-defined]
            page.locator("#twin-shot-download").click()  # type: ignore[attr-defined]
        data = Path(download.value.path()).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and download.value.suggested_filename == "外滩.png"
        image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
        box = page.locator("#twin-view").bounding_box()  # type: ignore[attr-defined]
        want = (720, 1280) if size != "view" else (round(box["height"]), round(box["width"]))
        assert image.shape[:2] == want
        if size == "view":  # the same picture as the page shows, where no overlay (legend, painted black) covers it
            shown = seen.max(axis=2) > 0
            assert float((np.abs(image - seen).max(axis=2) > 40)[shown].mean()) < 0.05
    finally:
        page.close()  # type: ignore[attr-defined]


def test_a_screenshot_size_beyond_4k_is_refused_with_one_line() -> None:
    from twin.app.screenshot import screenshot_size
    from twin.errors import ExportError

    assert screenshot_size("3840x2160") == (3840, 2160) and screenshot_size("view", 1034.4, 700) == (1034, 700)
    with pytest.raises(ExportError, match=r"^screenshot size 3841x2160: each side from 16 up to 3840x2160 pixels$"):
        screenshot_size("3841x2160")
    with pytest.raises(ExportError, match=r"^screenshot size 'huge': give width x height in pixels"):
        screenshot_size("huge")


def test_a_filter_on_an_h3_layer_hides_its_cells_in_the_browser_views_tick() -> None:
    """The local (vtk.js) view draws H3 cells from per-cell ticks: a filter goes out as the tick's hidden flags (no new mesh)."""
    from test_h3_local_ticks import LEVELS, T0, _decode, _Feed, _readings, cells_around

    from twin.plugins import layer_types, register_source

    register_source(_Feed, "local_ticks_feed")
    cells = cells_around(121.48, 31.23, 10, 200)
    scene = twin.Scene(center=(121.48, 31.23))
    layer = layer_types().get("h3")("crowd", source={"type": "local_ticks_feed"}, resolution=10, aggregate="max", window="1m", history="10m",
                                    levels=LEVELS)
    scene.add(layer)
    _Feed.frame = _readings(cells, np.linspace(0, 400, len(cells)), T0)
    layer.refresh(T0)
    layer.set_time(T0)
    session = Session(scene)
    view = SceneView(scene, size=(160, 120))
    view.direct_colors = True
    view.sync()
    [layout] = view.block_layouts["crowd"]  # one part: the cells as first sent
    assert not _decode(view.block_ticks["crowd"][0])[1].any()
    session.set_layer("crowd", where={"value": {"min": 150}})
    view.sync()
    hidden = _decode(view.block_ticks["crowd"][0])[1]
    values = layer.data()["value"].to_numpy()
    assert (hidden == (values < 150)).all() and hidden.any() and not hidden.all()
    assert view.block_layouts["crowd"] == [layout]  # the same cells: no new mesh goes to the browser
    session.set_layer("crowd", where={"level": ["high"]})  # by the level's name
    view.sync()
    assert (_decode(view.block_ticks["crowd"][0])[1] == (values < 300)).all()
