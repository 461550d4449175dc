"""What one `twin hub` session costs: the memory of its app process and its CPU time per remote frame.

Starts ``twin hub`` on a scene (default scenes/demo.yaml) with server-side rendering, opens the scene in
headless Chromium, and prints the session app's resident memory once the page shows the scene, then turns
the camera with mouse drags for a few seconds and prints the CPU milliseconds the app spent per image it
sent (the binary websocket frames the page received). Linux only (reads /proc). About 30-60 s.

Usage: .venv/bin/python benchmarks/bench_hub_session.py [SCENE] [--seconds 8] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browsing import chromium

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) / 1024  # type: ignore[index]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", nargs="?", type=Path, default=REPO / "scenes" / "demo.yaml")
    parser.add_argument("--seconds", type=float, default=8.0, help="how long to turn the camera")
    parser.add_argument("--size", default="1280x720", help="browser window WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    port = _free_port()
    log = Path(tempfile.mkdtemp()) / "hub.log"
    with log.open("wb") as out:
        hub = subprocess.Popen([sys.executable, "-m", "twin.cli", "hub", str(args.scene), "--port", str(port), "--view", "remote"],
                               stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        time.sleep(3)
        with chromium() as browser:
            page = browser.new_page(viewport={"width": width, "height": height})
            frames: list[int] = []
            page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(1) if isinstance(payload, bytes) else None))
            for _ in range(60):
                try:
                    page.goto(f"http://127.0.0.1:{port}/")
                    break
                except Exception:  # noqa: BLE001 (the hub is still starting)
                    time.sleep(0.5)
            started = time.monotonic()
            page.locator("li[data-scene] button").first.click(no_wait_after=True)
            page.wait_for_selector("#twin-scene-name", timeout=180_000)
            time.sleep(5)  # first images, live tick
            pid = int(re.search(r"\(pid (\d+),", log.read_text())[1])  # type: ignore[index]
            print(f"session ready in {time.monotonic() - started:.1f} s; app process RSS {_rss_mib(pid):.0f} MiB (idle, scene shown)")
            box = page.locator("#twin-view").bounding_box()
            assert box is not None
            cpu, count, until = _cpu_s(pid), len(frames), time.monotonic() + args.seconds
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            while time.monotonic() < until:
                page.mouse.move(x - 150, y)
                page.mouse.down()
                for step in range(30):
                    page.mouse.move(x - 150 + step * 10, y + (step % 5), steps=1)
                    time.sleep(0.03)
                page.mouse.up()
            time.sleep(1.0)
            used, sent = _cpu_s(pid) - cpu, len(frames) - count
            print(f"camera turned {args.seconds:g} s: {sent} images sent, app CPU {used:.2f} s = {1000 * used / max(sent, 1):.0f} ms per image; "
                  f"RSS {_rss_mib(pid):.0f} MiB; the hub itself: RSS {_rss_mib(hub.pid):.0f} MiB")
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=30)
        print("hub log:", *log.read_text(errors="replace").splitlines()[-6:], sep="\n  ")


if __name__ == "__main__":
    main()
