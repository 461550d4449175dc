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
The stamp is taken when the server starts drawing the tick, after the tick's poll; the server's
side is broken down in process on the same scene (:func:`server_breakdown`): the session's tick
(poll the readings file, aggregate, alert rules), the view's sync (cell states and per-part tick
payloads), the state's msgpack encoding, and the write of the server's own copy of the mesh (done
only when the server renders or picks; before, every tick did it). The GPU's part is set beside
vtk.js's draw of the same view alone, waited for with readPixels, and of the same draw with every
triangle outside the view (vertex work only; the rest is fragment work), on the same page. ``--chromium-arg`` adds Chromium flags (e.g. ``--use-angle=gl-egl
--enable-gpu`` for Mesa llvmpipe instead of SwiftShader; ``--enable-gpu`` drops ``--disable-gpu``):
figures taken so must be stated as such. ``--append`` also measures a tick that brings 1 % new
cells: its bytes beside those of the first load (the whole mesh).
``h3_tick_figure(cells)`` gives one count's figures as a dict (benchmarks/bench_app.py uses it).

Usage: .venv/bin/python benchmarks/bench_h3_local.py [--cells 3000 30000 100000] [--ticks 6] [--tick-seconds 3] [--append]
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
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import h3
import msgpack
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

    Returns the websocket bytes per tick over the ticks' window, the page's stats of each tick
    drawn in it (epoch ms: stamp, arrived, updated, rendered, drawn; skipped, path) and ``draw``: the
    view's draw alone (:data:`DRAW`: ``draw_ms``, ``vertex_ms``, ``antialias``, ``size``, ``renderer``).
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
        draw = page.evaluate(DRAW)
    finally:
        page.close()
    return {"bytes": wire.between(start, end) * tick_seconds / (end - start), "stats": stats, "draw": draw}


def _median(stats: list[dict[str, Any]], start: str, end: str) -> float:
    return statistics.median(s[end] - s[start] for s in stats) if stats else float("nan")


def _split(stats: list[dict[str, Any]]) -> dict[str, float]:
    """Median ms of each stage: stamp -> drawn (the figure), and its parts."""
    return {"drawn_ms": _median(stats, "stamp", "drawn"), "server_wire_ms": _median(stats, "stamp", "arrived"),
            "page_ms": _median(stats, "arrived", "rendered"), "gpu_ms": _median(stats, "rendered", "drawn"),
            "ticks_drawn": len(stats), "skipped": sum(s.get("skipped", 0) for s in stats), "path": "/".join(sorted({s["path"] for s in stats}))}


def server_breakdown(cells: int, *, ticks: int = 3) -> dict[str, float]:
    """The server's side of a tick of a ``cells``-cell H3 layer in a local view, in process: median ms of ``tick_ms`` (the
    session's tick: poll, aggregate, alert rules), ``sync_ms`` (the view's sync: cell states, per-part tick payloads),
    ``encode_ms`` (msgpack of the tick state) and ``server_copy_ms`` (writing the server's copy of the mesh: now only
    when the server renders or picks, before on every tick); ``unchanged_tick_ms``: a session tick when the file did not
    change; ``tick_bytes``: the encoded tick; ``triangles``: the layer's."""
    import twin
    from twin.app.block_ticks import BlockTicks
    from twin.render.view import SceneView
    from twin.session import Session

    with tempfile.TemporaryDirectory() as tmp:
        scene_path, readings, ids = write_scene(Path(tmp), cells)
        rng = np.random.default_rng(2)
        write_readings(readings, ids, rng.uniform(0, 500, len(ids)))
        session = Session(twin.Scene.from_file(scene_path), tick_seconds=1.0)
        session.tick()
        view = SceneView(session.scene, size=(640, 360))
        view.direct_colors = True
        view.sync()
        publisher, state = BlockTicks(view), argparse.Namespace()
        rows: list[dict[str, float]] = []
        for _ in range(ticks):
            write_readings(readings, ids, rng.uniform(0, 500, len(ids)))
            time.sleep(1.05)  # a new modification time: the source reads the file again
            t0 = time.perf_counter()
            session.tick()
            t1 = time.perf_counter()
            view.sync()
            t2 = time.perf_counter()
            publisher.publish(state, time.time())
            encoded = msgpack.packb(state.twin_block_ticks, use_bin_type=True)
            t3 = time.perf_counter()
            view._server_blocks(view._server_blocks(True))  # what a server render or pick pays first
            t4 = time.perf_counter()
            session.tick()  # the file unchanged since the tick before: no parse (its bytes are hashed while its time is recent)
            t5 = time.perf_counter()
            rows.append({"tick_ms": 1e3 * (t1 - t0), "sync_ms": 1e3 * (t2 - t1), "encode_ms": 1e3 * (t3 - t2), "server_copy_ms": 1e3 * (t4 - t3),
                         "tick_bytes": float(len(encoded)), "unchanged_tick_ms": 1e3 * (t5 - t4)})
        triangles = float(view.triangle_count())
        view.close()
        session.close()
    return {**{key: statistics.median(row[key] for row in rows) for key in rows[0]}, "triangles": triangles}


DRAW = """() => {
  const view = window.trame.refs.twin_view.$.provides.view, rw = view.renderWindow, gl = rw.getViews()[0].getContext();
  const pixel = new Uint8Array(4);
  const median = () => {
    const times = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now(); rw.render(); gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, pixel); times.push(performance.now() - t);
    }
    return times.sort((a, b) => a - b)[2];
  };
  const camera = rw.getRenderers()[0].getActiveCamera(), position = camera.getPosition(), focal = camera.getFocalPoint();
  const drawMs = median();
  camera.setPosition(position[0] + 1e7, position[1], position[2]); camera.setFocalPoint(focal[0] + 1e7, focal[1], focal[2]);
  const vertexMs = median();  // the same draw call, every triangle outside the view: vertex work and clipping, no fragments
  camera.setPosition(...position); camera.setFocalPoint(...focal); rw.render();
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  return {draw_ms: drawMs, vertex_ms: vertexMs, antialias: gl.getContextAttributes().antialias, size: [gl.drawingBufferWidth, gl.drawingBufferHeight],
          renderer: info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER)};
}"""


def launch(playwright: sync_api.Playwright, chromium_args: tuple[str, ...] = ()) -> sync_api.Browser:
    """Headless Debian Chromium with the tests' flags plus ``chromium_args`` (``--enable-gpu`` drops ``--disable-gpu``)."""
    args = [a for a in CHROMIUM_ARGS if not (a == "--disable-gpu" and "--enable-gpu" in chromium_args)]
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args + [a for a in chromium_args if a != "--enable-gpu"])


def append_bytes(browser: sync_api.Browser, cells: int, *, tick_seconds: float = 3.0, load_timeout: float = 300.0) -> dict[str, float]:
    """Websocket bytes of the first load of ``cells`` - 1 % H3 cells (``loaded``: the whole mesh) and of the tick that brings
    the other 1 % (``appended``: from writing the readings until the new cells are drawn, plus one tick)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scene, readings, _ = write_scene(folder, cells)
        every = cells_around(121.48, 31.23, 10, cells)
        first = cells_around(121.48, 31.23, 10, cells - max(cells // 100, 1))
        write_readings(readings, first, np.full(len(first), 100.0))
        with served(scene, block_ticks=True, log=folder / "append.log", tick_seconds=tick_seconds) as url:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            try:
                wire = Wire(page)
                page.goto(url)
                page.wait_for_selector("#twin-scene-name", timeout=load_timeout * 1000)
                _wait_for_ticks(page, 1, load_timeout)
                page.wait_for_timeout(tick_seconds * 1000)
                loaded, start, seen = wire.between(0.0, time.monotonic()), time.monotonic(), page.evaluate("window.twinBlockStats.length")
                write_readings(readings, every, np.where(np.isin(every, first), 100.0, 400.0))
                layouts = "Object.keys(window.trame.state.get('twin_block_layouts') || {}).length"
                deadline = time.monotonic() + load_timeout
                while page.evaluate(layouts) < 2 or page.evaluate("window.twinBlockStats.length") <= seen + 1:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the new cells were not drawn within {load_timeout:.0f} s")
                    page.wait_for_timeout(250)
                appended = wire.between(start, time.monotonic())
            finally:
                page.close()
    return {"loaded": float(loaded), "appended": float(appended), "new_cells": float(len(every) - len(first))}


def h3_tick_figure(cells: int, *, ticks: int = 6, tick_seconds: float = 3.0, load_timeout: float = 300.0, baseline: bool = True,
                   append: bool = False, chromium_args: tuple[str, ...] = (), browser: sync_api.Browser | None = None) -> dict[str, Any]:
    """One H3 layer of ``cells`` cells ticking in the local view, measured in headless Chromium (``browser``, or one
    launched here with ``chromium_args``).

    Returns ``cells``, ``triangles``; ``bytes``: websocket bytes per tick; ``drawn_ms`` (median server tick ->
    drawn) with its parts ``server_wire_ms``, ``page_ms``, ``gpu_ms``; ``ticks_drawn``, ``skipped`` (ticks
    replaced by a newer one while the GPU drew); ``server``: :func:`server_breakdown`; ``draw``: the view's
    draw alone and its vertex part (see :func:`run`); with ``baseline``, ``baseline_bytes`` (plain ``update()``) and
    ``baseline`` (the same split for the CPU block tick path, ``?twin_ticks=cpu``); with ``append``,
    ``append``: :func:`append_bytes`. Raises RuntimeError when the server does not start or the page draws no
    tick in ``load_timeout`` s.
    """
    server = server_breakdown(cells)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        scene, readings, ids = write_scene(folder, cells)
        rng = np.random.default_rng(1)
        write_readings(readings, ids, rng.uniform(0, 500, len(ids)))
        if browser is None:
            browser = launch(stack.enter_context(sync_api.sync_playwright()), chromium_args)
            stack.callback(browser.close)
        common = {"ticks": ticks, "tick_seconds": tick_seconds, "load_timeout": load_timeout}
        with served(scene, block_ticks=True, log=folder / "ticks.log", tick_seconds=tick_seconds) as url:
            ours = run(browser, url, readings, ids, rng, **common)
            cpu = run(browser, url, readings, ids, rng, query="?twin_ticks=cpu", **common) if baseline else None
        if baseline:
            with served(scene, block_ticks=False, log=folder / "base.log", tick_seconds=tick_seconds) as url:
                plain = _plain_update_bytes(browser, url, readings, ids, rng, **common)
        triangles = int(server.pop("triangles"))
        appended = append_bytes(browser, cells, tick_seconds=tick_seconds, load_timeout=load_timeout) if append else None
    figure: dict[str, Any] = {"cells": len(ids), "triangles": triangles, "bytes": ours["bytes"], **_split(ours["stats"]), "server": server, "draw": ours["draw"],
                              "chromium_args": " ".join(chromium_args)}
    if cpu is not None:
        figure.update(baseline_bytes=plain, baseline=_split(cpu["stats"]))
    if appended is not None:
        figure["append"] = appended
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
    flags = f", Chromium flags {figure['chromium_args']}" if figure.get("chromium_args") else ""
    lines = [(f"{figure['cells']:,} cells ({figure['triangles']:,} triangles{flags}): {figure['ticks_drawn']} ticks drawn "
             f"({figure['skipped']} replaced by a newer one while drawing)"),
             f"  websocket bytes per tick: {mb:.3f} MB   [target <= 0.5 MB]"]
    base = figure.get("baseline")
    if base is not None:
        lines[-1] += f"   baseline (plain update()): {figure['baseline_bytes'] / 1e6:.2f} MB   ratio {figure['baseline_bytes'] / max(figure['bytes'], 1.0):.0f}x"
    parts = "{path} path: server+wire {server_wire_ms:.0f}, page {page_ms:.0f}, GPU draw {gpu_ms:.0f}"
    lines.append(f"  server tick -> drawn: {figure['drawn_ms']:.0f} ms   [target <= 100 ms]   ({parts.format(**figure)})")
    if base is not None:
        lines.append(f"  baseline (CPU block ticks, ?twin_ticks=cpu): {base['drawn_ms']:.0f} ms ({parts.format(**base)})"
                     f"   ratio {base['drawn_ms'] / max(figure['drawn_ms'], 1e-9):.1f}x")
    server = figure["server"]
    lines.append(f"  server, in process (before the stamp: the session's tick {server['tick_ms']:.0f} ms = poll of the readings file, "
                 f"aggregate, alert rules; {server['unchanged_tick_ms']:.0f} ms when the file did not change); after it: view sync {server['sync_ms']:.0f} ms, tick encoding {server['encode_ms']:.1f} ms "
                 f"({server['tick_bytes'] / 1e3:.0f} kB); server's mesh copy {server['server_copy_ms']:.0f} ms only when it renders or picks "
                 "(was every tick)")
    draw = figure["draw"]
    lines.append(f"  the view's draw alone (no tick): {draw['draw_ms']:.0f} ms, of which vertex work {draw['vertex_ms']:.0f} ms and fragments the rest "
                 f"({draw['size'][0]}x{draw['size'][1]}, antialias {'on' if draw['antialias'] else 'off'}, {draw['renderer']})")
    append = figure.get("append")
    if append is not None:
        lines.append(f"  a tick with {append['new_cells']:.0f} new cells (1 %): {append['appended'] / 1e6:.3f} MB, the first load "
                     f"{append['loaded'] / 1e6:.2f} MB ({append['appended'] / max(append['loaded'], 1.0):.1%})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, nargs="+", default=[3_000, 30_000, 100_000])
    parser.add_argument("--ticks", type=int, default=6)
    parser.add_argument("--tick-seconds", type=float, default=3.0, help="the server's tick interval (TWIN_TICK_SECONDS)")
    parser.add_argument("--load-timeout", type=float, default=300.0, help="seconds for the first scene push and tick")
    parser.add_argument("--no-baseline", action="store_true", help="measure only today's path")
    parser.add_argument("--append", action="store_true", help="also the bytes of a tick that brings 1 %% new cells")
    parser.add_argument("--chromium-arg", action="append", default=[], help="an extra Chromium flag (repeatable; state the figures as such)")
    args = parser.parse_args()
    print(f"H3 layer (res 10 prisms) in the local (vtk.js) view, headless Chromium; {args.ticks} ticks every {args.tick_seconds:g} s; medians; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for cells in args.cells:
        try:
            figure = h3_tick_figure(cells, ticks=args.ticks, tick_seconds=args.tick_seconds, load_timeout=args.load_timeout, baseline=not args.no_baseline,
                                    append=args.append, chromium_args=tuple(args.chromium_arg))
        except RuntimeError as exc:
            print(f"{cells:,} cells: not measured: {exc}")
            continue
        print(report(figure), flush=True)


if __name__ == "__main__":
    main()
