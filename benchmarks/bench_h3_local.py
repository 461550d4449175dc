"""Live H3 ticks in the local (vtk.js) view: bytes on the websocket per tick and tick-to-drawn time.

Serves a scene with one H3 layer of N cells (res 10, prisms, three levels) fed by a readings
file this script rewrites (one reading per cell, new values each tick), in local view mode, and
watches it in headless Debian Chromium. Per cell count it prints:

- websocket bytes per tick (Playwright frames over the ticks' window / its ticks); baseline in
  the same run: the scene served with ``TWIN_LOCAL_TICKS=0`` (a plain ``update()`` of the view:
  the changed points and per-triangle colours go out again);
- tick -> drawn: from the server starting the tick (its redraw: the stamp in the tick) to the
  page having drawn it (``window.twinBlockStats``: the first animation frame after a WebGL fence
  placed after the vtk.js render has signalled, i.e. the GPU finished that frame), median over
  the ticks drawn; baseline in the same run: the page opened with ``?twin_ticks=cpu`` (the block
  tick path before the GPU one: points and colours rewritten in JS, vtk.js rebuilds its vertex
  buffers, every tick drawn as it comes). The split says where the time goes: server + wire
  (stamp -> arrived), page work (arrived -> render returned) and the GPU's draw (-> drawn).

Both clocks are this machine's (server: time.time(); page: performance.timeOrigin + now()).
``h3_tick_figure(cells)`` gives one count's figures as a dict (benchmarks/bench_app.py uses it).

Usage: .venv/bin/python benchmarks/bench_h3_local.py [--cells 3000 30000 100000] [--ticks 6] [--tick-seconds 3]
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
from typing import Any

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
    """``count`` H3 cells (as ints, sorted) nearest the cell at (lon, lat): whole rings, the last one cut."""
    k = 1
    while 3 * k * (k + 1) + 1 < count:
        k += 1
    origin = h3.latlng_to_cell(lat, lon, res)
    nearest = sorted(h3.grid_disk(origin, k), key=lambda c: (h3.grid_distance(origin, c), c))[:count]
    return np.array(sorted(h3.str_to_int(c) for c in nearest), dtype=np.uint64)


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
        deadline = time.monotonic() + 180
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


def _wait_for_ticks(page: sync_api.Page, count: int, timeout: float) -> None:
    """Wait until the page has drawn ``count`` block ticks (first scene push included); a clear error after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while page.evaluate("(window.twinBlockStats || []).length") < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the page drew no block tick within {timeout:.0f} s")
        page.wait_for_timeout(250)


def run(browser: sync_api.Browser, url: str, readings: Path, ids: np.ndarray, rng: np.random.Generator, *, query: str = "", ticks: int,
        tick_seconds: float, load_timeout: float) -> dict[str, Any]:
    """Open ``url + query``; once the first tick is drawn, new readings every ``tick_seconds`` for ``ticks`` ticks.

    Returns the websocket bytes per tick over the ticks' window and the page's stats of each tick
    drawn in it (epoch ms: stamp, arrived, updated, rendered, drawn; skipped, path).
    """
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    try:
        wire = Wire(page)
        page.goto(url + query)
        page.wait_for_selector("#twin-scene-name", timeout=load_timeout * 1000)
        _wait_for_ticks(page, 1, load_timeout)
        page.wait_for_timeout(tick_seconds * 1000)  # let the first push settle
        seen = page.evaluate("window.twinBlockStats.length")
        start = time.monotonic()
        for _ in range(ticks):
            write_readings(readings, ids, rng.uniform(0, 500, len(ids)))
            page.wait_for_timeout(tick_seconds * 1000)
        end = time.monotonic()
        page.wait_for_timeout(tick_seconds * 1000)  # the last tick's draw may still be under way
        stats = page.evaluate(f"window.twinBlockStats.slice({seen})")
    finally:
        page.close()
    return {"bytes": wire.between(start, end) * tick_seconds / (end - start), "stats": stats}


def _median(stats: list[dict[str, Any]], start: str, end: str) -> float:
    return statistics.median(s[end] - s[start] for s in stats) if stats else float("nan")


def _split(stats: list[dict[str, Any]]) -> dict[str, float]:
    """Median ms of each stage: stamp -> drawn (the figure), and its parts."""
    return {"drawn_ms": _median(stats, "stamp", "drawn"), "server_wire_ms": _median(stats, "stamp", "arrived"),
            "page_ms": _median(stats, "arrived", "rendered"), "gpu_ms": _median(stats, "rendered", "drawn"),
            "ticks_drawn": len(stats), "skipped": sum(s.get("skipped", 0) for s in stats), "path": "/".join(sorted({s["path"] for s in stats}))}


def h3_tick_figure(cells: int, *, ticks: int = 6, tick_seconds: float = 3.0, load_timeout: float = 300.0, baseline: bool = True) -> dict[str, Any]:
    """One H3 layer of ``cells`` cells ticking in the local view, measured in headless Chromium.

    Returns ``cells``; ``bytes``: websocket bytes per tick; ``drawn_ms`` (median server tick ->
    drawn) with its parts ``server_wire_ms``, ``page_ms``, ``gpu_ms``; ``ticks_drawn``, ``skipped``
    (ticks replaced by a newer one while the GPU drew); with ``baseline``, ``baseline_bytes`` (plain
    ``update()``) and ``baseline`` (the same split for the CPU block tick path, ``?twin_ticks=cpu``).
    Raises RuntimeError when the server does not start or the page draws no tick in ``load_timeout`` s.
    """
    with tempfile.TemporaryDirectory() as tmp, sync_api.sync_playwright() as playwright:
        folder = Path(tmp)
        scene, readings, ids = write_scene(folder, cells)
        rng = np.random.default_rng(1)
        write_readings(readings, ids, rng.uniform(0, 500, len(ids)))
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        common = {"ticks": ticks, "tick_seconds": tick_seconds, "load_timeout": load_timeout}
        try:
            with served(scene, block_ticks=True, log=folder / "ticks.log", tick_seconds=tick_seconds) as url:
                ours = run(browser, url, readings, ids, rng, **common)
                cpu = run(browser, url, readings, ids, rng, query="?twin_ticks=cpu", **common) if baseline else None
            if baseline:
                with served(scene, block_ticks=False, log=folder / "base.log", tick_seconds=tick_seconds) as url:
                    plain = _plain_update_bytes(browser, url, readings, ids, rng, **common)
        finally:
            browser.close()
    figure: dict[str, Any] = {"cells": len(ids), "bytes": ours["bytes"], **_split(ours["stats"])}
    if cpu is not None:
        figure.update(baseline_bytes=plain, baseline=_split(cpu["stats"]))
    return figure


def _plain_update_bytes(browser: sync_api.Browser, url: str, readings: Path, ids: np.ndarray, rng: np.random.Generator, *, ticks: int,
                        tick_seconds: float, load_timeout: float) -> float:
    """Websocket bytes per tick when a tick is a plain ``update()`` of the view (no block ticks: no page stats to wait for)."""
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    try:
        wire = Wire(page)
        page.goto(url)
        page.wait_for_selector("#twin-scene-name", timeout=load_timeout * 1000)
        deadline = time.monotonic() + load_timeout
        while wire.between(0.0, time.monotonic()) < len(ids) * 50 and time.monotonic() < deadline:  # the mesh (~13 points a cell, 12 B each)
            page.wait_for_timeout(250)
        page.wait_for_timeout(2 * tick_seconds * 1000)
        start = time.monotonic()
        for _ in range(ticks):
            write_readings(readings, ids, rng.uniform(0, 500, len(ids)))
            page.wait_for_timeout(tick_seconds * 1000)
        end = time.monotonic()
    finally:
        page.close()
    return wire.between(start, end) * tick_seconds / (end - start)


def report(figure: dict[str, Any]) -> str:
    """The figure as the lines this script prints."""
    mb = figure["bytes"] / 1e6
    lines = [f"{figure['cells']:,} cells: {figure['ticks_drawn']} ticks drawn ({figure['skipped']} replaced by a newer one while drawing)",
             f"  websocket bytes per tick: {mb:.3f} MB   [target <= 0.5 MB]"]
    base = figure.get("baseline")
    if base is not None:
        lines[-1] += f"   baseline (plain update()): {figure['baseline_bytes'] / 1e6:.2f} MB   ratio {figure['baseline_bytes'] / max(figure['bytes'], 1.0):.0f}x"
    parts = "{path} path: server+wire {server_wire_ms:.0f}, page {page_ms:.0f}, GPU draw {gpu_ms:.0f}"
    line = f"  server tick -> drawn: {figure['drawn_ms']:.0f} ms   [target <= 100 ms]   ({parts.format(**figure)})"
    if base is not None:
        line += (f"\n  baseline (CPU block ticks, ?twin_ticks=cpu): {base['drawn_ms']:.0f} ms ({parts.format(**base)})"
                 f"   ratio {base['drawn_ms'] / max(figure['drawn_ms'], 1e-9):.1f}x")
    return "\n".join([*lines, line])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, nargs="+", default=[3_000, 30_000, 100_000])
    parser.add_argument("--ticks", type=int, default=6)
    parser.add_argument("--tick-seconds", type=float, default=3.0, help="the server's tick interval (TWIN_TICK_SECONDS)")
    parser.add_argument("--load-timeout", type=float, default=300.0, help="seconds for the first scene push and tick")
    parser.add_argument("--no-baseline", action="store_true", help="measure only today's path")
    args = parser.parse_args()
    print(f"H3 layer (res 10 prisms) in the local (vtk.js) view, headless Chromium; {args.ticks} ticks every {args.tick_seconds:g} s; medians")
    for cells in args.cells:
        try:
            figure = h3_tick_figure(cells, ticks=args.ticks, tick_seconds=args.tick_seconds, load_timeout=args.load_timeout, baseline=not args.no_baseline)
        except RuntimeError as exc:
            print(f"{cells:,} cells: not measured: {exc}")
            continue
        print(report(figure), flush=True)


if __name__ == "__main__":
    main()
