"""The browser app as users see it: `twin serve` in a subprocess, driven by headless Chromium.

Needs the Debian ``chromium`` at /usr/bin/chromium (Playwright's own browser download is not
used) and the shared data folder with the Shanghai districts and bus line 71.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from playwright import sync_api

from browsing import chromium, wait_for_language

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
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
def serve(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Callable[[Path, str], str]:
    """Start ``twin serve SCENE`` in a subprocess; returns its URL once the port answers."""
    procs: list[subprocess.Popen[bytes]] = []

    def stop() -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    request.addfinalizer(stop)

    def start(scene: Path, view: str = "remote") -> str:
        port = _free_port()
        log = tmp_path_factory.mktemp("serve") / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "twin.cli", "serve", str(scene), "--port", str(port), "--view", view, "--no-browser"],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"twin serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return f"http://127.0.0.1:{port}/"
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"twin serve did not listen on {port} within 30 s:\n{log.read_text(errors='replace')}")

    return start


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
    page.wait_for_selector("#twin-scene-name", timeout=20_000)
    wait_for_language(page)
    return page


# -- image helpers -----------------------------------------------------------------------------
def _view_pixels(page: sync_api.Page) -> np.ndarray:
    """The 3D view as RGB pixels, with the HTML overlays (legend, errors, picks) painted black."""
    from PIL import Image

    shot = page.locator("#twin-view").screenshot(mask=[page.locator(".twin-overlay")], mask_color="#000000")
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.int16)


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


def _wait_for_image(page: sync_api.Page, ok: Callable[[np.ndarray], bool], timeout: float = 20.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    pixels = _view_pixels(page)
    while not ok(pixels):
        if time.monotonic() > deadline:
            raise AssertionError("the 3D view did not show the expected image in time")
        time.sleep(0.3)
        pixels = _view_pixels(page)
    return pixels


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
        pixels = _wait_for_image(page, lambda px: _colors_present(px, colors) >= 8)
        assert _distinct_colors(pixels) > 20
    finally:
        page.close()


def test_toggling_a_layer_changes_the_image(browser: sync_api.Browser, scene_url: str) -> None:
    page = _open(browser, scene_url)
    switch = page.locator('.twin-layer[data-layer-id="districts"] .twin-layer-switch input')
    try:
        colors = _legend_colors(page)
        before = _wait_for_image(page, lambda px: _colors_present(px, colors) >= 8)
        switch.click()
        after = _wait_for_image(page, lambda px: _colors_present(px, colors) <= 1)
        assert np.abs(before - after).max(axis=2).mean() > 5
        assert page.locator("#twin-legend").count() == 0  # legends follow visibility
        switch.click()
        _wait_for_image(page, lambda px: _colors_present(px, colors) >= 8)
    finally:
        if not switch.is_checked():
            switch.click()
        page.close()


def test_click_picks_the_district_under_the_mouse(browser: sync_api.Browser, scene_url: str) -> None:
    page = _open(browser, scene_url)
    try:
        colors = _legend_colors(page)
        labels = page.eval_on_selector_all(".twin-legend-label", "els => els.map(e => e.textContent.trim())")
        pixels = _wait_for_image(page, lambda px: _colors_present(px, colors) >= 8)
        # the district with the largest area, clicked well inside its fill
        inside = [_eroded(np.abs(pixels - np.array(c, dtype=np.int16)).max(axis=2) <= 8, 5) for c in colors]
        best = int(np.argmax([m.sum() for m in inside]))
        points = np.argwhere(inside[best])
        y, x = points[len(points) // 2]
        box = page.locator("#twin-view").bounding_box()
        assert box is not None
        scale = pixels.shape[1] / box["width"]
        page.mouse.click(box["x"] + x / scale, box["y"] + y / scale)
        page.wait_for_selector("#twin-pick", timeout=10_000)
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
        _wait_for_image(page, lambda px: _colors_present(px, colors) >= 8)
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

        _wait_for_image(page, varied)
    finally:
        page.close()
