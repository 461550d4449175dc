"""The wall for a compressed day: ``twin serve`` (``--kiosk`` when it has one) and a page in headless Chromium.

The demo scene is served with a compressed live clock (``TWIN_CLOCK_SPEED``: by default 144, a simulated hour in
25 s) and fast ticks; its simulators follow that clock, so storms come and go and alerts fire as readings pass the
thresholds (the flood cycle is set to two hours: a dozen storms a day). Every simulated hour prints the server's
resident memory (VmRSS, /proc) and the page's JS heap (CDP ``Performance.getMetrics`` JSHeapUsedSize after
``HeapProfiler.collectGarbage``), with the alerts fired so far; at the end, the growth of both from the end of the
first simulated hour and PASS/FAIL against 5 %.

Live layers keep their history for one hour here (the demo keeps 24 h of flood readings for replay, which fills
for a whole day by design); what is measured is what grows without bound.

Usage: .venv/bin/python benchmarks/bench_wall.py [--hours 24] [--speed 144] [--tick 1] [--size 1920x1080]
"""

from __future__ import annotations

import argparse
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


def serve(scene: Path, port: int, log: Path, *, kiosk: bool, speed: float, tick: float) -> subprocess.Popen[bytes]:
    """Start ``twin serve`` and wait until it listens (raises RuntimeError with its log if it exits)."""
    cmd = [sys.executable, "-m", "twin.cli", "serve", str(scene), "--port", str(port), "--no-browser", *(["--kiosk"] if kiosk else [])]
    env = {**os.environ, "TWIN_CLOCK_SPEED": str(speed), "TWIN_TICK_SECONDS": str(tick), "PYTHONUNBUFFERED": "1"}
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


def firing_events(page: sync_api.Page) -> set[tuple[Any, str]]:
    """The alerts' firing events the page lists now (serial, title)."""
    events = page.evaluate("(window.trame && window.trame.state.get('twin_events')) || []")
    return {(e.get("n"), str(e.get("title"))) for e in events if e.get("kind") == "firing"}


def growth(values: list[float]) -> float:
    """Growth of the last value over the first (a fraction)."""
    return (values[-1] - values[0]) / values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24, help="simulated hours (default 24)")
    parser.add_argument("--speed", type=float, default=144.0, help="simulated seconds per second (default 144: an hour in 25 s)")
    parser.add_argument("--tick", type=float, default=1.0, help="wall-clock seconds between ticks (default 1)")
    parser.add_argument("--size", default="1920x1080", help="page size in CSS px (default 1920x1080; the hall wall is 3840x2160)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    hour_s = 3600.0 / args.speed
    kiosk = has_kiosk()
    with tempfile.TemporaryDirectory(prefix="twin-bench-wall-") as tmp:
        folder = Path(tmp)
        port = free_port()
        proc = serve(bench_scene(folder), port, folder / "serve.log", kiosk=kiosk, speed=args.speed, tick=args.tick)
        try:
            with sync_api.sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(f"http://127.0.0.1:{port}/" + ("?kiosk=1" if kiosk else ""))
                page.wait_for_function("window.trame && window.trame.state && window.trame.state.get('twin_scene_name')", timeout=120_000)
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
                print(f"twin serve{' --kiosk' if kiosk else ''} pid {proc.pid}, page {width}x{height}, clock x{args.speed:g} "
                      f"(1 simulated hour = {hour_s:.0f} s), tick {args.tick:g} s", flush=True)
                print(f"{'hour':>4} {'scene time':>26} {'server RSS MiB':>15} {'JS heap MiB':>12} {'alerts fired':>13}", flush=True)
                rss, heap, fired = [], [], set()
                start = time.monotonic()
                for hour in range(1, args.hours + 1):
                    while (left := start + hour * hour_s - time.monotonic()) > 0:
                        fired |= firing_events(page)
                        page.wait_for_timeout(min(2000.0, left * 1000))
                    if proc.poll() is not None:
                        raise RuntimeError(f"twin serve exited with {proc.returncode}")
                    rss.append(rss_mib(proc.pid))
                    heap.append(js_heap_mib(cdp))
                    shown = page.evaluate("(window.trame && window.trame.state.get('twin_time_text')) || ''")
                    print(f"{hour:>4} {shown:>26} {rss[-1]:>15.1f} {heap[-1]:>12.2f} {len(fired):>13}", flush=True)
                browser.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    rss_growth, heap_growth = growth(rss), growth(heap)
    print(f"after the first hour: server RSS {rss[0]:.1f} -> {rss[-1]:.1f} MiB ({rss_growth:+.1%}, peak {max(rss[1:] or rss):.1f}), "
          f"JS heap {heap[0]:.2f} -> {heap[-1]:.2f} MiB ({heap_growth:+.1%}, peak {max(heap[1:] or heap):.2f}); {len(fired)} alerts fired")
    ok = rss_growth < LIMIT and heap_growth < LIMIT
    print(f"{'PASS' if ok else 'FAIL'}: growth after the first hour {'<' if ok else '>='} {LIMIT:.0%}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
