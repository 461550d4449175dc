"""The errors a new user meets, as the browser app shows them: one line per input, and the rest drawn.

``twin serve`` in a subprocess with a scene that has one good layer (the Shanghai districts)
and three bad inputs: a missing data file, lon/lat data declared in a projected CRS, and a
readings CSV without the latitude column it names. Headless Chromium checks each badge says
the same one line the CLI says, and that the districts still cover the view (pixels).
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright import sync_api

from browsing import chromium

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DISTRICTS = DATA / "shanghai_districts_gcj02.geojson"
POI = '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "外滩"}, "geometry": {"type": "Point", "coordinates": [121.49, 31.24]}}]}'
READINGS = "lon,lat_wgs,time,value\n121.47,31.22,2026-07-01T10:00:00+08:00,3\n"

SCENE = """\
version: 1
name: Bad inputs
frame: {{crs: auto}}
layers:
  - id: districts
    type: vector
    source: {{type: file, path: "{districts}", crs: GCJ02}}
    color_by: name
    palette: tab20
  - id: ghost
    type: vector
    source: {{type: file, path: data/roads.geojson}}
  - id: poi
    type: vector
    source: {{type: file, path: poi.geojson, crs: "EPSG:4549"}}
  - id: gauges
    type: flood_points
    source: {{type: file_readings, path: gauges.csv, lat: latitude}}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if not DISTRICTS.is_file():
        pytest.fail(f"test data missing: expected {DISTRICTS.name} in {DATA}")
    folder = tmp_path_factory.mktemp("bad-inputs")
    (folder / "poi.geojson").write_text(POI, encoding="utf-8")
    (folder / "gauges.csv").write_text(READINGS, encoding="utf-8")
    scene = folder / "scene.yaml"
    scene.write_text(SCENE.format(districts=DISTRICTS.as_posix()), encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log = folder / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "serve", str(scene), "--port", str(port), "--view", "remote", "--no-browser"],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", "TWIN_TICK_SECONDS": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"twin serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"twin serve did not listen within 60 s:\n{log.read_text(errors='replace')}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/", folder
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def page(served: tuple[str, Path]) -> Iterator[sync_api.Page]:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 800})
        page.goto(served[0])
        page.wait_for_selector("#twin-scene-name", timeout=30_000)
        yield page
        page.close()


def badge_texts(page: sync_api.Page) -> list[str]:
    page.locator(".twin-error-badge").first.wait_for(timeout=20_000)
    return [" ".join(t.split()) for t in page.locator(".twin-error-badge").all_inner_texts()]


def test_a_missing_file_badge_names_the_path_as_given_and_resolved(page: sync_api.Page, served: tuple[str, Path]) -> None:
    folder = served[1]
    line = f"file source 'data/roads.geojson': file not found: {folder / 'data' / 'roads.geojson'}"
    assert any(text.endswith(line) for text in badge_texts(page)), badge_texts(page)
    row_error = page.locator('.twin-layer[data-layer-id="ghost"] .twin-layer-error')
    assert row_error.count() == 1 and row_error.get_attribute("title") == line


def test_lonlat_declared_projected_badge_names_the_crs(page: sync_api.Page) -> None:
    line = ("file source 'poi.geojson': coordinates (121.49, 31.24) .. (121.49, 31.24) are declared in EPSG:4549 (projected, metres) "
            "but look like lon/lat degrees (EPSG:4326?): they lie outside the area where EPSG:4549 is used; set the source's crs to EPSG:4326")
    assert any(text.endswith(line) for text in badge_texts(page)), badge_texts(page)


def test_readings_without_the_named_column_show_the_line_on_the_live_chip(page: sync_api.Page) -> None:
    line = "file_readings source 'gauges.csv': no column 'latitude'; columns: lon, lat_wgs, time, value"
    chip = page.locator('.twin-layer[data-layer-id="gauges"] .twin-layer-stale')
    chip.wait_for(timeout=20_000)
    assert chip.get_attribute("data-error") == "1"
    tip = chip.get_attribute("title") or ""
    # the badge's own words are in the page's language (": " in English, "：" in Chinese); the source's line as raised
    assert tip.endswith((f": {line}", f"：{line}")) and "\n" not in tip and "Traceback" not in tip, tip


def test_the_good_layer_still_fills_the_view(page: sync_api.Page) -> None:
    from PIL import Image

    assert page.locator('.twin-layer[data-layer-id="districts"] .twin-layer-error').count() == 0
    deadline = time.monotonic() + 20
    while True:
        shot = page.locator("#twin-view").screenshot(mask=[page.locator(".twin-overlay")], mask_color="#000000")
        pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))
        colours = len(np.unique((pixels[::3, ::3] // 16).reshape(-1, 3), axis=0))
        coloured = (pixels.max(axis=2).astype(int) - pixels.min(axis=2) > 60).mean()  # the districts' palette, not the blue-grey background
        if (colours > 12 and coloured > 0.04) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert colours > 12 and coloured > 0.04, (colours, coloured)  # the error badges (masked) cover the middle of the view
