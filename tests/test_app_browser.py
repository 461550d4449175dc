"""The browser app as users see it: `twin serve` in a subprocess, driven by headless Chromium.

Needs the Debian ``chromium`` at /usr/bin/chromium (Playwright's own browser download is not
used) and the shared data folder with the Shanghai districts and bus line 71.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from browsing import TwinServer, chromium, start_twin, wait_for_language, wait_for_view
from playwright import sync_api

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DISTRICTS = DATA / "shanghai_districts_gcj02.geojson"
BUS71 = DATA / "bund_busline_71.geojson"
DISTRICTS_TITLE = "上海各区"
BUS_TITLE = "71路公交"
MISSING_TITLE = "失踪图层"

SCENE = """\
version: 1
name: {name}
frame: {{crs: auto}}
layers:
  - id: districts
    type: vector
    title: {districts_title}
    source: {{type: file, path: "{districts}", crs: GCJ02}}
    color_by: name
    palette: tab20
    outline_color: white
  - id: {second_id}
    type: vector
    title: {second_title}
    source: {{type: file, path: "{second}"}}
    color: yellow
    line_width: 3
    elevation: 10
"""


# -- fixtures ----------------------------------------------------------------------------------
def _write_scene(folder: Path, name: str, *, missing: bool) -> Path:
    if not (DISTRICTS.is_file() and BUS71.is_file()):
        pytest.fail(f"test data missing: expected {DISTRICTS.name} and {BUS71.name} in {DATA}")
    second = DATA / "no_such_layer_file.geojson" if missing else BUS71
    text = SCENE.format(name=name, districts_title=DISTRICTS_TITLE, districts=DISTRICTS.as_posix(),
                        second_id="ghost" if missing else "bus71", second_title=MISSING_TITLE if missing else BUS_TITLE,
                        second=second.as_posix())
    path = folder / f"{'missing' if missing else 'scene'}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """Start ``twin serve SCENE`` (:func:`browsing.start_twin`, ``view`` remote or local); its URL once the port answers.
    All are stopped at module end."""
    servers: list[TwinServer] = []

    def start(scene: Path, view: str = "remote") -> str:
        servers.append(start_twin(scene, tmp_path_factory.mktemp("serve") / "serve.log", view=view))
        return servers[-1].url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def scene_url(serve: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> str:
    return serve(_write_scene(tmp_path_factory.mktemp("scene"), "Shanghai test scene", missing=False))


@pytest.fixture(scope="module")
def missing_url(serve: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> str:
    return serve(_write_scene(tmp_path_factory.mktemp("missing"), "Scene with a missing layer", missing=True))


def _open(browser: sync_api.Browser, url: str) -> sync_api.Page:
    page = browser.new_page(viewport={"width": 1400, "height": 800})
    page.goto(url)
    page.wait_for_selector("#twin-scene-name", timeout=30_000)
    wait_for_language(page)
    return page


# -- image helpers -----------------------------------------------------------------------------
def _legend_colors(page: sync_api.Page) -> list[tuple[int, int, int]]:
    css = page.eval_on_selector_all(".twin-swatch", "els => els.map(e => getComputedStyle(e).backgroundColor)")
    colors = []
    for value in css:
        r, g, b = (int(float(v)) for v in value[value.index("(") + 1 : value.index(")")].split(",")[:3])
        colors.append((r, g, b))
    return colors


def _colors_present(pixels: np.ndarray, colors: list[tuple[int, int, int]], min_pixels: int = 40) -> int:
    """How many of ``colors`` cover at least ``min_pixels`` pixels (JPEG-tolerant match)."""
    found = 0
    for color in colors:
        close = np.abs(pixels - np.array(color, dtype=np.int16)).max(axis=2) <= 14
        found += int(close.sum() >= min_pixels)
    return found


def _distinct_colors(pixels: np.ndarray) -> int:
    quantized = (pixels // 16).reshape(-1, 3)
    return len(np.unique(quantized[:, 0] * 256 + quantized[:, 1] * 16 + quantized[:, 2]))


# -- tests -------------------------------------------------------------------------------------
def test_page_shows_scene_layers_and_legend(browser: sync_api.Browser, scene_url: str) -> None:
    page = _open(browser, scene_url)
    try:
        assert page.locator("#twin-scene-name").inner_text() == "Shanghai test scene"
        layers = page.locator("#twin-layers").inner_text()
        assert DISTRICTS_TITLE in layers and BUS_TITLE in layers
        legend = page.locator("#twin-legend").inner_text()
        for district in ("浦东新区", "黄浦区", "崇明区"):
            assert district in legend
        assert page.locator(".twin-error-badge").count() == 0
    finally:
        page.close()


def test_view_shows_district_colors(browser: sync_api.Browser, scene_url: str) -> None:
    page = _open(browser, scene_url)
    try:
        colors = _legend_colors(page)
        assert len(colors) >= 16
        pixels = wait_for_view(page, lambda px: _colors_present(px, colors) >= 8, settle=False, what="the district colours")
        assert _distinct_colors(pixels) > 20
    finally:
        page.close()


def test_toggling_a_layer_changes_the_image(browser: sync_api.Browser, scene_url: str) -> None:
    page = _open(browser, scene_url)
    switch = page.locator('.twin-layer[data-layer-id="districts"] .twin-layer-switch input')
    try:
        colors = _legend_colors(page)
        before = wait_for_view(page, lambda px: _colors_present(px, colors) >= 8, what="the district colours")  # settled: compared below
        switch.click()
        after = wait_for_view(page, lambda px: _colors_present(px, colors) <= 1, settle=False, what="the view without the districts")
        assert np.abs(before - after).max(axis=2).mean() > 5
        assert page.locator("#twin-legend").count() == 0  # legends follow visibility
        switch.click()
        wait_for_view(page, lambda px: _colors_present(px, colors) >= 8, settle=False, what="the districts again")
    finally:
        if not switch.is_checked():
            switch.click()
        page.close()


def test_click_picks_the_district_under_the_mouse(browser: sync_api.Browser, scene_url: str) -> None:
    page = _open(browser, scene_url)
    try:
        colors = _legend_colors(page)
        labels = page.eval_on_selector_all(".twin-legend-label", "els => els.map(e => e.textContent.trim())")
        pixels = wait_for_view(page, lambda px: _colors_present(px, colors) >= 8, what="the district colours")  # settled: its pixels are clicked
        # the district with the largest area, clicked well inside its fill
        inside = [_eroded(np.abs(pixels - np.array(c, dtype=np.int16)).max(axis=2) <= 8, 5) for c in colors]
        best = int(np.argmax([m.sum() for m in inside]))
        points = np.argwhere(inside[best])
        y, x = points[len(points) // 2]
        box = page.locator("#twin-view").bounding_box()
        assert box is not None
        scale = pixels.shape[1] / box["width"]
        page.mouse.click(box["x"] + x / scale, box["y"] + y / scale)
        page.wait_for_selector("#twin-pick", timeout=20_000)
        assert page.locator("#twin-pick .twin-pick-label").inner_text() == labels[best]
        lonlat = page.locator("#twin-pick .twin-pick-lonlat").inner_text()
        assert lonlat.startswith("lon 12") and "lat 3" in lonlat
        page.locator("#twin-pick button").click()
        page.locator("#twin-pick").wait_for(state="detached", timeout=5_000)
    finally:
        page.close()


def _eroded(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    for dy in (-radius, 0, radius):
        for dx in (-radius, 0, radius):
            out &= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return out


def test_missing_layer_file_shows_error_and_the_rest(browser: sync_api.Browser, missing_url: str) -> None:
    page = _open(browser, missing_url)
    try:
        badge = page.locator(".twin-error-badge")
        badge.first.wait_for(timeout=10_000)
        assert badge.count() == 1
        text = badge.inner_text()
        assert MISSING_TITLE in text and "ghost" in text and "not found" in text
        assert page.locator('.twin-layer[data-layer-id="ghost"] .twin-layer-error').count() == 1
        assert page.locator('.twin-layer[data-layer-id="districts"] .twin-layer-error').count() == 0
        colors = _legend_colors(page)
        wait_for_view(page, lambda px: _colors_present(px, colors) >= 8, settle=False, what="the district colours")
    finally:
        page.close()


@pytest.mark.parametrize("view", ["local", "remote"])
def test_buildings_coloured_by_height_in_both_view_modes(browser: sync_api.Browser, serve: Callable[..., str], tmp_path: Path, view: str) -> None:
    """Per-building colours reach the browser in both modes (vtk.js in local mode gets them per cell)."""
    path = tmp_path / "buildings.yaml"
    path.write_text(
        "version: 1\nname: 苏州 buildings\nframe: {center: [120.607, 31.30]}\n"
        "cameras: {c: {target: [120.607, 31.3005], heading: 30, pitch: 50, range: 2400}}\ncamera: c\n"
        f"layers:\n  - {{id: b, type: buildings, floors: Floor, color_by: height, colormap: viridis, clim: [0, 30], "
        f"source: {{type: file, path: {(DATA / 'suzhou_buildings.geojson').as_posix()}}}}}\n",
        encoding="utf-8",
    )
    page = _open(browser, serve(path, view))
    try:
        def varied(pixels: np.ndarray) -> bool:
            rgb = pixels.reshape(-1, 3).astype(int)
            yellow = ((rgb[:, 0] > 180) & (rgb[:, 1] > 170) & (rgb[:, 2] < 90)).mean()  # viridis top: tall buildings
            teal = ((rgb[:, 1] > 110) & (rgb[:, 2] > 100) & (rgb[:, 0] < 80)).mean()  # viridis middle
            return yellow > 0.002 and teal > 0.02

        # a minute: the first building mesh of a machine whose numba kernels were never compiled (no `twin warmup`) holds the server
        # ~40 s on a loaded 2-core machine; then SwiftShader draws it
        wait_for_view(page, varied, 60, settle=False, what="buildings in viridis colours")
    finally:
        page.close()
