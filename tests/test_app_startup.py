"""``twin serve`` start-up and remote images as a browser sees them (headless Chromium; timing is the benchmark's job).

- The page comes before the scene: a card over the view lists each layer's progress; static
  layers are drawn while a live layer's first poll still waits on its server, a layer that
  cannot load is marked failed without holding the others, and the card goes once all are in.
- Remote images on the websocket: the still image is WebP at the view box's size times the device
  pixel ratio, within 150 kB at 1920×1080 (a dense scene too), and Chromium shows it as sent; frames
  while the camera moves are smaller JPEGs.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from browsing import chromium
from playwright import sync_api
from servers import free_port, tail, wait_listening

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_app import find_image, image_shape

STILL_LIMIT = 150_000  # bytes of one still image at 1920x1080 (issue 12)


class _HeldFeed(http.server.ThreadingHTTPServer):
    """An OGC API answering with no readings, each request held until ``release`` is set."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HeldHandler)
        self.asked, self.release = threading.Event(), threading.Event()


class _HeldHandler(http.server.BaseHTTPRequestHandler):
    server: _HeldFeed

    def do_GET(self) -> None:
        self.server.asked.set()
        self.server.release.wait(60)
        body = json.dumps({"type": "FeatureCollection", "features": [], "links": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/geo+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture()
def held_feed() -> Iterator[_HeldFeed]:
    server = _HeldFeed()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture()
def serve(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """``twin serve SCENE --view remote`` in a subprocess; returns its URL once the port answers."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(scene: Path) -> str:
        port, log = free_port(), tmp_path / f"serve-{len(procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "serve", str(scene), "--port", str(port), "--view", "remote", "--no-browser"],
                                    stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        procs.append(proc)
        wait_listening(port, timeout=60, process=proc, log=log)
        return f"http://127.0.0.1:{port}/"

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode not in (0, -signal.SIGTERM):
            print(tail(tmp_path / "serve-0.log"))


def _scene(folder: Path, districts: Path, extra: str = "") -> Path:
    path = folder / "scene.yaml"
    path.write_text(
        "version: 1\nname: Start-up test\nframe: {crs: auto}\nlayers:\n"
        f"  - {{id: districts, type: vector, title: 上海各区, source: {{type: file, path: '{districts.as_posix()}', crs: GCJ02}}, "
        "color_by: name, palette: tab20, outline_color: white}\n" + extra,
        encoding="utf-8",
    )
    return path


def _rows(page: sync_api.Page) -> dict[str, str]:
    """Layer id -> status in the loading card (empty once the card is gone)."""
    return dict(page.eval_on_selector_all(".twin-loading-layer", "els => els.map(e => [e.dataset.layerId, e.dataset.status])"))


def _coloured_share(page: sync_api.Page) -> float:
    """Share of the view box (overlays masked) in bright colours: drawn districts, not the dark sky and ground."""
    from PIL import Image

    shot = page.locator("#twin-view").screenshot(mask=[page.locator(".twin-overlay")], mask_color="#000000")
    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.int16)
    return float((pixels.max(axis=2) > 110).mean())


def _until(page: sync_api.Page, what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait for ``check`` while the page runs (its websocket events are delivered while Playwright waits, not while we sleep)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        page.wait_for_timeout(200)


def test_page_shows_layer_progress_then_the_static_layers_before_the_live_poll_ends(
    browser: sync_api.Browser, serve: Callable[[Path], str], held_feed: _HeldFeed, shared_data: Path, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{held_feed.server_address[1]}/"
    extra = (f"  - {{id: gauges, type: flood_points, title: 积水 Gauges, source: {{type: ogcapi_readings, url: '{url}', collection: gauges, "
             "timeout: 60, retries: 0}}\n"
             f"  - {{id: ghost, type: vector, title: 失踪图层, source: {{type: file, path: '{(tmp_path / 'no_such.geojson').as_posix()}'}}}}\n")
    page = browser.new_page(viewport={"width": 1400, "height": 800})
    try:
        page.goto(serve(_scene(tmp_path, shared_data / "shanghai_districts_gcj02.geojson", extra)))
        page.wait_for_selector("#twin-loading", timeout=30_000)
        assert set(_rows(page)) == {"districts", "gauges", "ghost"}
        _until(page, "the districts drawn while the live layer's first poll waits", lambda: _coloured_share(page) > 0.10)
        assert held_feed.asked.is_set() and not held_feed.release.is_set()
        rows = _rows(page)
        assert rows["districts"] == "ready" and rows["ghost"] == "failed" and rows["gauges"] == "polling", rows
        assert "no_such.geojson" in page.locator('.twin-loading-layer[data-layer-id="ghost"]').get_attribute("title")
        held_feed.release.set()
        _until(page, "the loading card gone once the first poll answered", lambda: page.locator("#twin-loading").count() == 0)
        assert page.locator('.twin-error-badge[data-layer-id="ghost"]').count() == 1  # the failed layer stays reported
        assert _coloured_share(page) > 0.10
    finally:
        page.close()


class _Jpegs:
    """Images (WebP stills, JPEG moving frames) received on a page's websocket: (bytes, (width, height)) each; the last one kept."""

    def __init__(self, page: sync_api.Page) -> None:
        self.frames: list[tuple[int, tuple[int, int]]] = []
        self.last = b""
        page.on("websocket", lambda ws: ws.on("framereceived", self._add))

    def _add(self, payload: bytes | str) -> None:
        if (image := find_image(payload)) is not None:
            self.frames.append((len(image), image_shape(image)))
            self.last = image


def _box_page(browser: sync_api.Browser, url: str, box: tuple[int, int], scale: float) -> tuple[sync_api.Page, _Jpegs]:
    """A page whose view box is ``box`` CSS pixels at device pixel ratio ``scale``, once the view shows the districts."""
    page = browser.new_page(viewport={"width": box[0] + 400, "height": box[1] + 200}, device_scale_factor=scale)
    jpegs = _Jpegs(page)
    page.goto(url)
    page.wait_for_selector("#twin-view", timeout=30_000)
    found = page.locator("#twin-view").bounding_box()
    assert found is not None
    page.set_viewport_size({"width": round(2 * box[0] + 400 - found["width"]), "height": round(2 * box[1] + 200 - found["height"])})
    _until(page, "the districts in the view", lambda: _coloured_share(page) > 0.10)
    want = (round(box[0] * scale), round(box[1] * scale))
    try:
        _until(page, "the still image at the view box's size", lambda: bool(jpegs.frames) and jpegs.frames[-1][1] == want, timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: box {page.locator('#twin-view').bounding_box()}, want {want}, last frames {jpegs.frames[-3:]}") from None
    return page, jpegs


def _shows(page: sync_api.Page, image: bytes) -> float:
    """Share of the view box's pixels (overlays masked) within 16 levels of the decoded ``image`` (the box at its size)."""
    from PIL import Image

    shot = page.locator("#twin-view").screenshot(mask=[page.locator(".twin-overlay")], mask_color="#ff00ff")
    seen = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.int16)
    sent = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"), dtype=np.int16)
    assert seen.shape == sent.shape, (seen.shape, sent.shape)
    visible = np.any(seen != (255, 0, 255), axis=2)
    return float((np.abs(seen - sent).max(axis=2)[visible] <= 16).mean())


def test_remote_still_image_follows_box_and_pixel_ratio_within_150_kb_and_moving_frames_are_smaller(
    browser: sync_api.Browser, serve: Callable[[Path], str], shared_data: Path, tmp_path: Path
) -> None:
    url = serve(_scene(tmp_path, shared_data / "shanghai_districts_gcj02.geojson"))
    page, jpegs = _box_page(browser, url, (1920, 1080), 1.0)
    try:
        still_bytes, _ = jpegs.frames[-1]
        assert still_bytes <= STILL_LIMIT, f"still image {still_bytes / 1e3:.0f} kB at 1920x1080"
        assert jpegs.last[:4] == b"RIFF" and _shows(page, jpegs.last) > 0.95  # a WebP still, drawn by Chromium as sent
        box = page.locator("#twin-view").bounding_box()
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        before = len(jpegs.frames)
        page.mouse.move(x, y)
        page.mouse.down()
        for step in range(40):
            page.mouse.move(x + 200 * np.sin(step / 8), y + 50 * np.cos(step / 8))
            page.wait_for_timeout(30)
        moving = jpegs.frames[before:]
        page.mouse.up()
        assert moving, "no frame while the camera moved"
        assert max(size for size, _ in moving) < still_bytes
        assert all(shape[0] < 1920 for _, shape in moving)
        _until(page, "a full-size still image after the move", lambda: jpegs.frames[-1][1] == (1920, 1080), timeout=30)
    finally:
        page.close()
    sharp, jpegs = _box_page(browser, url, (960, 540), 2.0)  # a 960x540 box on a 2x screen gets 1920x1080 device pixels
    sharp.close()


def test_a_dense_scene_still_fits_150_kb_at_1920x1080_and_the_page_shows_it(
    browser: sync_api.Browser, serve: Callable[[Path], str], shared_data: Path, tmp_path: Path
) -> None:
    scene = tmp_path / "dense.yaml"  # the Suzhou buildings from close: over 150 kB at the top quality (test_remote_view.py)
    scene.write_text(
        "version: 1\nname: Dense\nframe: {crs: auto, center: [120.607, 31.30]}\n"
        "cameras: {fixed: {target: [120.607, 31.3005], heading: 30, pitch: 50, range: 2400}}\ncamera: fixed\nlayers:\n"
        f"  - {{id: suzhou, type: buildings, source: {{type: file, path: '{(shared_data / 'suzhou_buildings.geojson').as_posix()}'}}, "
        "height: height, floors: Floor, color_by: height, colormap: viridis, clim: [0, 30]}\n",
        encoding="utf-8",
    )
    page, images = _box_page(browser, serve(scene), (1920, 1080), 1.0)
    try:
        still_bytes, _ = images.frames[-1]
        assert images.last[:4] == b"RIFF" and 60_000 < still_bytes <= STILL_LIMIT, f"still image {still_bytes / 1e3:.0f} kB at 1920x1080"
        assert _shows(page, images.last) > 0.95
    finally:
        page.close()
