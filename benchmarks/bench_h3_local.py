"""Live H3 ticks in the local (vtk.js) view: bytes on the websocket per tick and tick-to-drawn time.

Serves a scene with one H3 layer of ``--cells`` cells (res 10, prisms, three levels) fed by a
readings file this script rewrites (one reading per cell, new values each tick), in local view
mode, and watches it in headless Debian Chromium. For each tick it counts the websocket bytes
the page receives (Playwright frames) and, with block ticks, the time from the server starting
the tick to the browser having drawn it (``window.twinBlockStats``: the server's stamp and a
requestAnimationFrame after the vtk.js render, both epoch ms on this machine's clock).
Baseline, same run: the same scene served with ``TWIN_LOCAL_TICKS=0`` (a plain ``update()`` of
the view: the changed points and per-triangle colours go out again).

Usage: .venv/bin/python benchmarks/bench_h3_local.py [--cells 100000] [--ticks 5] [--tick-seconds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h3
import numpy as np
import pandas as pd
from playwright import sync_api

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browsing import CHROMIUM, CHROMIUM_ARGS

SCENE = """\
version: 1
name: H3 local ticks
frame: {{crs: auto, center: [{lon}, {lat}]}}
cameras:
  c: {{target: [{lon}, {lat}], heading: 0, pitch: 50, range: {range}}}
camera: c
layers:
  - id: crowd
    type: h3
    title: crowd
    source: {{type: file_readings, path: "{path}", value: value, sensor: sensor}}
    resolution: {res}
    aggregate: max
    window: 10m
    history: 30m
    height_scale: {scale}
    levels:
      - {{at: 0, label: low, color: "#2ecc71"}}
      - {{at: 150, label: mid, color: "#ffb300"}}
      - {{at: 300, label: high, color: "#ff3b30"}}
"""


def cells_around(lon: float, lat: float, res: int, count: int) -> np.ndarray:
    """``count`` H3 cells (as ints) nearest the cell at (lon, lat)."""
    k = 1
    while 3 * k * (k + 1) + 1 < count:
        k += 1
    disk = h3.grid_disk(h3.latlng_to_cell(lat, lon, res), k)
    return np.array(sorted(h3.str_to_int(c) for c in disk)[:count], dtype=np.uint64)


def write_readings(path: Path, cells: np.ndarray, values: np.ndarray) -> None:
    """One reading per cell at its centre, stamped now (UTC), written atomically (the source re-reads a changed file)."""
    centres = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in cells])
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    frame = pd.DataFrame({"sensor": np.arange(len(cells)), "lon": centres[:, 1], "lat": centres[:, 0], "time": now, "value": values})
    tmp = path.with_suffix(".tmp.csv")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def write_scene(folder: Path, cells: int, res: int = 10, scale: float = 0.5) -> tuple[Path, Path, np.ndarray]:
    lon, lat = 121.48, 31.23
    ids = cells_around(lon, lat, res, cells)
    readings = folder / "readings.csv"
    extent = 1.2 * np.sqrt(cells * h3.average_hexagon_area(res, unit="m^2") * 4 / np.pi)  # ~ the disk's diameter in metres
    scene = folder / "h3_local.yaml"
    scene.write_text(SCENE.format(lon=lon, lat=lat, range=max(extent, 600.0), path=readings.as_posix(), res=res, scale=scale), encoding="utf-8")
    return scene, readings, ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(scene: Path, *, block_ticks: bool, log: Path, tick_seconds: float = 1.0) -> Iterator[str]:
    """``twin serve SCENE --view local`` in a subprocess; yields its URL once the port answers."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TWIN_TICK_SECONDS": str(tick_seconds), "TWIN_LOCAL_TICKS": "1" if block_ticks else "0"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "serve", str(scene), "--port", str(port), "--view", "local", "--no-browser"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"twin serve did not start:\n{log.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Wire:
    """Bytes of every websocket frame the page receives, with their arrival time."""

    def __init__(self, page: sync_api.Page) -> None:
        self.frames: list[tuple[float, int]] = []
        self.page = page  # waiting through the page lets Playwright deliver the frame events (time.sleep would hold them)
        page.on("websocket", lambda ws: ws.on("framereceived", self._on_frame))

    def _on_frame(self, payload: str | bytes) -> None:
        self.frames.append((time.monotonic(), len(payload)))

    def between(self, start: float, end: float) -> int:
        return sum(n for t, n in self.frames if start <= t < end)


def run(browser: sync_api.Browser, scene: Path, readings: Path, ids: np.ndarray, *, block_ticks: bool, ticks: int, tick_seconds: float,
        warmup: float, log: Path) -> dict[str, list[float]]:
    """Websocket bytes per tick, and with block ticks the tick-to-drawn ms of each tick, over ``ticks`` ticks of new values.

    The server ticks every ``tick_seconds``; the readings file gets new values once per tick; bytes
    per tick = bytes received over the ticks' window / the number of ticks in it.
    """
    rng = np.random.default_rng(1)
    write_readings(readings, ids, rng.uniform(0, 500, len(ids)))
    with served(scene, block_ticks=block_ticks, log=log, tick_seconds=tick_seconds) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        wire = Wire(page)
        page.goto(url)
        page.wait_for_selector("#twin-scene-name", timeout=60_000)
        page.wait_for_timeout(warmup * 1000)  # the first push of the scene, and a first few ticks
        seen = page.evaluate("(window.twinBlockStats || []).length")
        start = time.monotonic()
        for _ in range(ticks):
            write_readings(readings, ids, rng.uniform(0, 500, len(ids)))
            page.wait_for_timeout(tick_seconds * 1000)
        end = time.monotonic()
        stats = page.evaluate(f"(window.twinBlockStats || []).slice({seen})")
        page.close()
    return {"bytes": [wire.between(start, end) * tick_seconds / (end - start)], "drawn_ms": [s["drawn"] - s["stamp"] for s in stats]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--tick-seconds", type=float, default=3.0, help="the server's tick interval (TWIN_TICK_SECONDS)")
    parser.add_argument("--warmup", type=float, default=25.0, help="seconds for the first scene push before measuring")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, sync_api.sync_playwright() as playwright:
        folder = Path(tmp)
        scene, readings, ids = write_scene(folder, args.cells)
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            common = {"ticks": args.ticks, "tick_seconds": args.tick_seconds, "warmup": args.warmup}
            ours = run(browser, scene, readings, ids, block_ticks=True, log=folder / "ticks.log", **common)
            base = run(browser, scene, readings, ids, block_ticks=False, log=folder / "base.log", **common)
        finally:
            browser.close()
    mb, base_mb = ours["bytes"][0] / 1e6, base["bytes"][0] / 1e6
    print(f"H3 layer, {len(ids):,} cells (res 10 prisms), local (vtk.js) view, {args.ticks} ticks every {args.tick_seconds:g} s"
          f" (bytes: the window's / its ticks; {len(ours['drawn_ms'])} ticks drawn by the page)")
    print(f"websocket bytes per tick: {mb:.3f} MB   [target <= 0.5 MB]   baseline (plain update()): {base_mb:.2f} MB   ratio {base_mb / max(mb, 1e-9):.0f}x")
    if not ours["drawn_ms"]:
        raise SystemExit("no block tick reached the page")
    print(f"server tick -> browser drawn: {statistics.median(ours['drawn_ms']):.0f} ms   [target <= 100 ms]   (each: {', '.join(f'{v:.0f}' for v in ours['drawn_ms'])})")


if __name__ == "__main__":
    main()
