"""The wall for a compressed day: ``twin serve`` (``--kiosk`` when it has one) and a page in headless Chromium.

The demo scene is served with a compressed live clock (``TWIN_CLOCK_SPEED``: by default 144, a simulated hour in
25 s) and fast ticks; its simulators follow that clock, so storms come and go and alerts fire as readings pass the
thresholds (the flood cycle is set to two hours: a dozen storms a day). Every simulated hour prints the server's
resident memory (VmRSS, /proc) and the page's JS heap (CDP ``Performance.getMetrics`` JSHeapUsedSize after
``HeapProfiler.collectGarbage``), with the alerts fired so far, the open alerts and the event rows the page shows;
at the end, the growth of both from the end of the first simulated hour and PASS/FAIL against 5 %, every hour.

The page's heap is judged less V8's compiled code (``less code``: the heap snapshot's nodes of type ``code``, taken at each
hour's end; the whole heap is printed beside it). V8 compiles a page's functions to machine code after some hundreds to
thousands of calls: a function run a few times a tick is compiled minutes after the page loaded. A real wall is past that
within its first hour (3,600 ticks); the compressed day's first hour is 25 ticks and the whole day 600, so its compiled code
grew through the day (+0.3 MiB, +5 %: Maglev and TurboFan code of Vue's and trame-client's functions, no new function
made), while the rest of the heap stayed flat; with Chromium's compiler off (``--js-flags=--jitless``) the whole heap was
flat (5.18 MiB every hour of 8). The compiled code is bounded by the page's functions; what a leak raises is the rest.

Each hour's figure is the *level* in its second half: the least of the samples taken there (RSS every ~2 s, the heap
every ~10 s), with the RSS peak beside it. A sample taken while a tick or a frame is under way includes its
temporaries (a 1920x1080 frame's buffers alone are ~30 MiB), which come and go every second; what leaks raises the
level. The page's heap follows what it shows: a kiosk page lists at most four open alerts and the banner (it does not
build the alerts drawer it hides), so its level stays near that of a quiet hour through a storm.

The day starts once the scene has loaded (every layer built, the live layers polled once): on a loaded machine the
streamed start-up can take minutes, and hours spent loading would measure the start-up, not the day.

Live layers keep their history for one hour here (the demo keeps 24 h of flood readings for replay, which fills
for a whole day by design); what is measured is what grows without bound.

The simulated day starts at ``--start`` (``TWIN_CLOCK_START``; default midnight +08:00), so every run sees the same day
slice (the crowd's daily rhythm and evening surge) whenever it is started. ``--probe`` serves through
``benchmarks/wall_probe.py`` and prints, each hour, what the server holds at the hour's RSS level: glibc's heap in use,
SQLite's memory, each live layer's readings (rows and room), the alert log, the render window.

Usage: .venv/bin/python benchmarks/bench_wall.py [--hours 24] [--speed 144] [--tick 1] [--size 1920x1080]
       [--start 2026-07-01T00:00+08:00] [--probe]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from playwright import sync_api

LIMIT = 0.05
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


LOADED = ("(() => { const s = window.trame && window.trame.state; return s && s.get('twin_loading_done') !== false"
          " && !!s.get('twin_time_text'); })()")
"""The page's test that the scene has loaded: every layer built (streamed start-up) and the live layers polled once."""


def bench_scene(folder: Path) -> Path:
    """The demo scene with a two-hour flood cycle (a storm of 25 min each) and one hour of history, written to ``folder``."""
    with resources.as_file(resources.files("twin.demo.scenes").joinpath("demo.yaml")) as demo:
        scene = yaml.safe_load(demo.read_text(encoding="utf-8"))
    scene.pop("time", None)
    for layer in scene["layers"]:
        if layer["id"] == "flood":
            layer["source"] = {**layer["source"], "cycle": "2h", "storm": "25m"}
            layer["history"] = "1h"
    path = folder / "wall.yaml"
    path.write_text(yaml.safe_dump(scene, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def has_kiosk() -> bool:
    """Whether this twin's ``serve`` has ``--kiosk``."""
    out = subprocess.run([sys.executable, "-m", "twin.cli", "serve", "--help"], capture_output=True, text=True, check=False).stdout
    return "--kiosk" in out


def serve(scene: Path, port: int, log: Path, *, kiosk: bool, speed: float, tick: float, start: str, probe: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``twin serve`` (through ``wall_probe.py`` writing to ``probe`` when given) and wait until it listens.

    Raises RuntimeError with its log if it exits."""
    runner = [str(Path(__file__).with_name("wall_probe.py"))] if probe else ["-m", "twin.cli"]
    cmd = [sys.executable, *runner, "serve", str(scene), "--port", str(port), "--no-browser", *(["--kiosk"] if kiosk else [])]
    env = {**os.environ, "TWIN_CLOCK_SPEED": str(speed), "TWIN_CLOCK_START": start, "TWIN_TICK_SECONDS": str(tick), "PYTHONUNBUFFERED": "1",
           **({"TWIN_WALL_PROBE": str(probe)} if probe else {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 600  # the first run generates the demo district
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"twin serve exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"twin serve did not listen on {port} within 600 s:\n{log.read_text(errors='replace')[-3000:]}")


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` (MiB), VmRSS of /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def js_heap_mib(cdp: Any) -> float:
    """The page's used JS heap (MiB) after a forced garbage collection."""
    cdp.send("HeapProfiler.collectGarbage")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return metrics["JSHeapUsedSize"] / 2**20


def js_code_mib(cdp: Any) -> float:
    """V8's compiled code in the page's heap (MiB): the self sizes of a heap snapshot's nodes of type ``code`` (machine code,
    its metadata and deoptimization data, bytecode), taken after a garbage collection."""
    chunks: list[str] = []
    collect = lambda event: chunks.append(event["chunk"])
    cdp.on("HeapProfiler.addHeapSnapshotChunk", collect)
    try:
        cdp.send("HeapProfiler.takeHeapSnapshot", {"reportProgress": False, "captureNumericValue": False})
    finally:
        cdp.remove_listener("HeapProfiler.addHeapSnapshotChunk", collect)
    snap = json.loads("".join(chunks))
    meta = snap["snapshot"]["meta"]
    fields, code = meta["node_fields"], meta["node_types"][0].index("code")
    width, kind, size = len(fields), fields.index("type"), fields.index("self_size")
    nodes = snap["nodes"]
    return sum(nodes[i + size] for i in range(0, len(nodes), width) if nodes[i + kind] == code) / 2**20


def firing_events(page: sync_api.Page) -> set[tuple[Any, str]]:
    """The alerts' firing events the page lists now (serial, title); none while the page reloads (it reconnects by itself)."""
    try:
        events = page.evaluate("(window.trame && window.trame.state.get('twin_events')) || []")
    except sync_api.Error as exc:
        print(f"     the page did not answer ({str(exc).splitlines()[0]})", flush=True)
        return set()
    return {(e.get("n"), str(e.get("title"))) for e in events if e.get("kind") == "firing"}


def growth(values: list[float]) -> float:
    """Growth of the last value over the first (a fraction)."""
    return (values[-1] - values[0]) / values[0]


def worst_growth(values: list[float]) -> float:
    """The largest growth over the first value of any later one (a fraction; 0 with one value)."""
    return max((v - values[0]) / values[0] for v in values[1:]) if len(values) > 1 else 0.0


def dom_counts(cdp: Any) -> tuple[int, int]:
    """The page's DOM nodes and JS event listeners now (what it has built: they follow what it shows, a leak raises them)."""
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return int(metrics["Nodes"]), int(metrics["JSEventListeners"])


def shown(page: sync_api.Page) -> tuple[str, int, int]:
    """The page's scene time, open alerts and event rows now."""
    got = page.evaluate("(() => { const s = window.trame && window.trame.state; if (!s) return ['', 0, 0];"
                        " return [s.get('twin_time_text') || '', (s.get('twin_alerts') || []).length, (s.get('twin_events') || []).length]; })()")
    return str(got[0]), int(got[1]), int(got[2])


def probe_line(probe: Path, since: float, rss_level: float) -> str:
    """What the server held (``wall_probe.py``'s samples since monotonic ``since``) at the sample nearest the hour's RSS level."""
    if not probe.exists():
        return "probe: no samples"
    samples = [s for s in map(json.loads, probe.read_text(encoding="utf-8").splitlines()) if s.get("mono", 0) >= since and "rss" in s]
    if not samples:
        return "probe: no samples"
    s = min(samples, key=lambda s: abs(s["rss"] - rss_level))
    layers = " ".join(f"{k}: {v['rows']} rows {v['room_mib']} MiB" + (f", {v['cells']} cells, span {v['span_mib']} parts {v['parts_mib']}" if "cells" in v else "")
                      for k, v in s["layers"].items())
    return (f"     probe at {s['scene'][11:16]} UTC rss {s['rss']}: heap used {s['heap_used']} free {s['heap_free']} mmapped {s['mmapped']} ({s['mmaps']}), "
            f"sqlite {s['sqlite']}, tasks {s.get('tasks')}, sends waiting {s.get('send_waiting')}, images replaced {s.get('images_replaced')}, py blocks {s['py_blocks']}, threads {s['threads']}, window {s['window']}, pending {s['pending']}, alerts {s['alerts']}; {layers}"
            + (f"\n     large blocks (MiB: count) {s['blocks']}; renderers {s['renderers']}, geometry {s['geometry_mib']} MiB, images waiting {s.get('images_waiting_mib')} MiB;"
               f" python buffers {next((x['py_buffers'] for x in reversed(samples) if 'py_buffers' in x), 'not sampled') or 'none'}" if "blocks" in s else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24, help="simulated hours (default 24)")
    parser.add_argument("--speed", type=float, default=144.0, help="simulated seconds per second (default 144: an hour in 25 s)")
    parser.add_argument("--tick", type=float, default=1.0, help="wall-clock seconds between ticks (default 1)")
    parser.add_argument("--size", default="1920x1080", help="page size in CSS px (default 1920x1080; the hall wall is 3840x2160)")
    parser.add_argument("--start", default="2026-07-01T00:00+08:00", help="the simulated day's start (TWIN_CLOCK_START; default midnight +08:00)")
    parser.add_argument("--probe", action="store_true", help="sample what the server holds (benchmarks/wall_probe.py) and print it each hour")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout` or kill: unwind, so the server is stopped too, not orphaned
    hour_s = 3600.0 / args.speed
    kiosk = has_kiosk()
    with tempfile.TemporaryDirectory(prefix="twin-bench-wall-") as tmp:
        folder = Path(tmp)
        port = free_port()
        probe = folder / "probe.jsonl" if args.probe else None
        proc = serve(bench_scene(folder), port, folder / "serve.log", kiosk=kiosk, speed=args.speed, tick=args.tick, start=args.start, probe=probe)
        try:
            with sync_api.sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(f"http://127.0.0.1:{port}/" + ("?kiosk=1" if kiosk else ""))
                page.wait_for_function("window.trame && window.trame.state && window.trame.state.get('twin_scene_name')", timeout=120_000)
                loading = time.monotonic()
                page.wait_for_function(LOADED, timeout=900_000)
                print(f"the scene loaded {time.monotonic() - loading:.0f} s after the page opened; the day starts now", flush=True)
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
                print(f"twin serve{' --kiosk' if kiosk else ''} pid {proc.pid}, page {width}x{height}, clock x{args.speed:g} "
                      f"(1 simulated hour = {hour_s:.0f} s), tick {args.tick:g} s; the clock started at {args.start} (TWIN_CLOCK_START)", flush=True)
                print(f"{'hour':>4} {'scene time':>26} {'RSS MiB':>8} {'RSS peak':>9} {'JS heap MiB':>12} {'less code':>10} {'nodes':>6} {'listeners':>9} {'open':>5} "
                      f"{'events':>7} {'alerts fired':>13}", flush=True)
                rss, heap, data, peaks, fired = [], [], [], [], set()
                start = time.monotonic()
                for hour in range(1, args.hours + 1):
                    end, rss_level, heap_level, peak, heap_at = start + hour * hour_s, float("inf"), float("inf"), 0.0, 0.0
                    while (left := end - time.monotonic()) > 0:
                        fired |= firing_events(page)
                        if proc.poll() is not None:
                            raise RuntimeError(f"twin serve exited with {proc.returncode}")
                        sample = rss_mib(proc.pid)
                        peak = max(peak, sample)
                        if left < hour_s / 2:  # the hour's second half: its level
                            rss_level = min(rss_level, sample)
                            if time.monotonic() - heap_at >= 10.0:
                                heap_level, heap_at = min(heap_level, js_heap_mib(cdp)), time.monotonic()
                        page.wait_for_timeout(min(2000.0, max(left, 0.0) * 1000))
                    rss.append(min(rss_level, rss_mib(proc.pid)))
                    heap.append(min(heap_level, js_heap_mib(cdp)))
                    data.append(heap[-1] - js_code_mib(cdp))
                    peaks.append(peak)
                    when, open_alerts, events = shown(page)
                    nodes, listeners = dom_counts(cdp)
                    print(f"{hour:>4} {when:>26} {rss[-1]:>8.1f} {peak:>9.1f} {heap[-1]:>12.2f} {data[-1]:>10.2f} {nodes:>6} {listeners:>9} {open_alerts:>5} "
                          f"{events:>7} {len(fired):>13}", flush=True)
                    if probe is not None:
                        print(probe_line(probe, end - hour_s / 2, rss[-1]), flush=True)
                browser.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    rss_worst, heap_worst, data_worst = worst_growth(rss), worst_growth(heap), worst_growth(data)
    print(f"after the first hour: server RSS {rss[0]:.1f} -> {rss[-1]:.1f} MiB ({growth(rss):+.1%}; highest hour {rss_worst:+.1%}; "
          f"peak sample {max(peaks[1:] or peaks):.1f}), JS heap {heap[0]:.2f} -> {heap[-1]:.2f} MiB ({growth(heap):+.1%}; highest hour "
          f"{heap_worst:+.1%}), less V8's compiled code {data[0]:.2f} -> {data[-1]:.2f} MiB ({growth(data):+.1%}; highest hour {data_worst:+.1%}); "
          f"{len(fired)} alerts fired")
    ok = rss_worst < LIMIT and data_worst < LIMIT
    print(f"{'PASS' if ok else 'FAIL'}: growth after the first hour of the server's RSS and the page's heap less its compiled code, every hour, "
          f"{'<' if ok else '>='} {LIMIT:.0%}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
