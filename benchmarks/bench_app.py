"""Benchmark: the browser app as a user meets it, each figure beside a baseline measured in the same run.

The baseline is the code before this benchmark was added (``--baseline-ref``, default: the parent
of the commit that added this file, i.e. the start-up and remote settings as they were), unpacked
with ``git archive`` into a temporary folder and run with the same interpreter (``PYTHONPATH``
points there first); its kernels are compiled once (``twin warmup``) before anything is timed.
Both trees get their bytecode written first (as installing does). Runs of today's code and of the baseline alternate, so both meet the same machine load; each
figure is the median of ``--repeats`` runs.

Figures (``--only`` picks some, comma-separated; :data:`FIGURES` maps names to functions, and
other figures join it the same way):

- ``startup``: seconds from starting ``twin serve scenes/demo.yaml`` (warm install) to the
  district visible in headless Chromium, checked on the pixels of the page's view box (the
  browser is already open, as a user's is; before the page's layout exists, the page's pixels
  where the view box goes, which is where the first picture shows), and to the port listening;
  with the server's CPU seconds by the time the district shows and the load average. Goal ≤ 3 s.
- ``remote``: bytes of the remote view's images on the websocket (Chromium's CDP frames; WebP
  stills, JPEG while moving) with the view box at 1920×1080 CSS pixels: the still image, and the
  frames while the camera orbits (a mouse drag), with orbit frames per second on this machine's
  CPU renderer. Goal: still ≤ 150 kB, less while moving. Then the demo's still rendered in
  process (lossless) and encoded each way: kB, PSNR against the lossless frame, encode CPU ms.
- ``h3_tick``: one tick of a 3k- and a 100k-cell H3 layer in the local view (``bench_h3_local.py``): bytes
  on the websocket vs a plain ``update()`` (goal ≤ 0.5 MB) and server tick → drawn vs the CPU path (goal
  ≤ 100 ms), split into server + wire, page and GPU draw, with the server's side in process, the
  view's draw alone (vertex and fragment work), and the bytes of a tick that brings 1 % new cells.
- ``city``: 1M buildings in the remote view (``bench_city.py``): orbit fps and still-frame ms, tiled
  level of detail vs full detail.

    python benchmarks/bench_app.py                          # every figure
    python benchmarks/bench_app.py --only startup --repeats 5
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

DEMO = REPO / "scenes" / "demo.yaml"
DRAWER_PX, TOOLBAR_PX, TIMEBAR_PX = 320, 48, 60  # the page around the view box (server.py, twin.css)
STARTUP_GOAL_S, STILL_GOAL_KB = 3.0, 150.0


@dataclass
class Bench:
    """What every figure gets: the browser, the two code trees and the run's settings."""

    browser: Any
    baseline: Path
    repeats: int
    timeout: float


@dataclass
class Served:
    """A ``twin serve`` process started at ``t0`` (perf_counter seconds)."""

    proc: subprocess.Popen[bytes]
    url: str
    t0: float
    log: Path


@dataclass
class Frames:
    """Images (JPEG, WebP) received on the websocket, with arrival times, pixel sizes and formats."""

    sizes: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    shapes: list[tuple[int, int]] = field(default_factory=list)

    formats: list[str] = field(default_factory=list)

    def add(self, payload: bytes | str) -> None:
        if (image := find_image(payload)) is not None:
            self.sizes.append(len(image))
            self.times.append(time.perf_counter())
            self.shapes.append(image_shape(image))
            self.formats.append("webp" if image.startswith(b"RIFF") else "jpeg")


def find_image(payload: bytes | str) -> bytes | None:
    """The JPEG or WebP image in a websocket frame (wslink's attachment), or None for other frames."""
    if not isinstance(payload, bytes):
        return None
    jpeg, webp = payload.find(b"\xff\xd8\xff"), payload.find(b"RIFF")
    if webp >= 0 and payload[webp + 8 : webp + 12] == b"WEBP" and not 0 <= jpeg < webp:
        return payload[webp:]
    return payload[jpeg:] if jpeg >= 0 else None


def image_shape(image: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG or WebP image (read from its header); (0, 0) if it cannot be read."""
    if image.startswith(b"RIFF"):
        from PIL import Image

        try:
            return Image.open(io.BytesIO(image)).size
        except OSError:
            return 0, 0
    return jpeg_shape(image)


def jpeg_shape(jpeg: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment (walking the segments); (0, 0) if there is none."""
    at = 2
    while at + 9 <= len(jpeg) and jpeg[at] == 0xFF:
        marker, length = jpeg[at + 1], int.from_bytes(jpeg[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(jpeg[at + 7 : at + 9], "big"), int.from_bytes(jpeg[at + 5 : at + 7], "big")
        at += 2 + length
    return 0, 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def baseline_tree(ref: str | None) -> Path:
    """The repository at ``ref`` (default: before this benchmark existed) in a temporary folder, kernels compiled."""
    if ref is None:
        added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--", "benchmarks/bench_app.py"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.split()
        ref = f"{added[-1]}^" if added else "HEAD"
    folder = Path(tempfile.mkdtemp(prefix="twin-baseline-"))
    archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "twin_layers").symlink_to(folder / "layers")  # the plugins of that tree, not the installed ones
    print(f"baseline: {ref} in {folder}; compiling its kernels (twin warmup) ...", flush=True)
    subprocess.run([sys.executable, "-m", "twin.cli", "warmup"], cwd=folder, env=_env(folder), check=True, capture_output=True)
    compile_bytecode(folder)
    return folder


def compile_bytecode(tree: Path) -> None:
    """Write the Python bytecode of ``tree``'s packages, as installing does (``$PYTHONDONTWRITEBYTECODE`` would otherwise
    have every start compile them from source)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "twin", "layers"], cwd=tree, check=True, capture_output=True)


def _env(tree: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "PYTHONUNBUFFERED": "1", **(extra or {})}


@contextmanager
def serve(scene: Path, tree: Path, view: str = "auto") -> Iterator[Served]:
    """``twin serve SCENE`` from the code in ``tree``; stopped on exit. A repository scene is taken from ``tree``'s own copy
    (the baseline's code reads its own scene files, not keys added later)."""
    if scene.is_relative_to(REPO) and (tree / scene.relative_to(REPO)).is_file():
        scene = tree / scene.relative_to(REPO)
    port = _free_port()
    log = Path(tempfile.mkstemp(prefix="twin-serve-", suffix=".log")[1])
    t0 = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "serve", str(scene), "--port", str(port), "--view", view, "--no-browser"],
                                cwd=tree, stdout=out, stderr=subprocess.STDOUT, env=_env(tree))
    try:
        yield Served(proc, f"http://127.0.0.1:{port}/", t0, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.unlink(missing_ok=True)


class Timeout(Exception):
    """A figure's run did not finish in time (the run is reported and left out)."""


def wait_listening(served: Served, timeout: float) -> float:
    """Seconds from process start until the port accepts connections."""
    port = int(served.url.rsplit(":", 1)[1].strip("/"))
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if served.proc.poll() is not None:
            raise Timeout(f"twin serve exited:\n{served.log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return time.perf_counter() - served.t0
        except OSError:
            time.sleep(0.01)
    raise Timeout(f"twin serve did not listen within {timeout:g} s")


def view_pixels(page: Any) -> np.ndarray:
    """The 3D view box as RGB, HTML overlays (legend, loading card) painted the page's background colour.

    Before the page's layout exists (no ``#twin-view`` yet), the page's pixels where the view box goes
    (right of the drawer, between the toolbar and the time bar): what a user sees there, e.g. the first picture.
    """
    from PIL import Image

    if page.locator("#twin-view").count():
        shot = page.locator("#twin-view").screenshot(mask=[page.locator(".twin-overlay")], mask_color="#0a1020", timeout=10_000)
    else:
        size = page.viewport_size
        clip = {"x": DRAWER_PX, "y": TOOLBAR_PX, "width": size["width"] - DRAWER_PX, "height": size["height"] - TOOLBAR_PX - TIMEBAR_PX}
        shot = page.screenshot(clip=clip, timeout=10_000)
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.int16)


def district_visible(pixels: np.ndarray) -> bool:
    """The district is drawn: ≥ 3 % of the view is light grey building walls/roofs (the ``bone`` colormap; the sky gradient is dark blue)."""
    light_grey = (pixels.min(axis=2) > 120) & (np.ptp(pixels, axis=2) < 40)
    return float(light_grey.mean()) >= 0.03


def page_for(browser: Any, width: int, height: int, frames: Frames | None = None) -> Any:
    """A page whose view box is ``width`` × ``height`` CSS pixels, recording the JPEG frames on its websocket."""
    page = browser.new_page(viewport={"width": width + DRAWER_PX, "height": height + TOOLBAR_PX + TIMEBAR_PX})
    if frames is not None:
        page.on("websocket", lambda ws: ws.on("framereceived", frames.add))
    return page


def fit_view_box(page: Any, width: int, height: int) -> None:
    """Resize the page so that the view box is ``width`` × ``height`` CSS pixels."""
    box, viewport = page.locator("#twin-view").bounding_box(), page.viewport_size
    page.set_viewport_size({"width": round(viewport["width"] + width - box["width"]), "height": round(viewport["height"] + height - box["height"])})


def wait_district(page: Any, timeout: float) -> None:
    """Poll the view's pixels until the district shows; raises Timeout."""
    from playwright.sync_api import Error as PlaywrightError

    deadline = time.perf_counter() + timeout
    while True:
        try:
            if district_visible(view_pixels(page)):
                return
        except PlaywrightError as exc:  # a screenshot that timed out on a loaded machine: try again until the deadline
            print(f"  (screenshot: {str(exc).splitlines()[0]})", flush=True)
        if time.perf_counter() > deadline:
            raise Timeout(f"the district did not appear within {timeout:g} s")
        time.sleep(0.03)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used so far, all its threads (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_to_pixels(bench: Bench, tree: Path, scene: Path = DEMO) -> dict[str, float]:
    """Seconds from ``twin serve`` start to the port listening (``listening``) and to the district visible on pixels
    (``visible``), and the server's CPU seconds by then (``cpu``: what a loaded machine stretches, the wall figures' cause)."""
    page = page_for(bench.browser, 1280, 720)
    try:
        with serve(scene, tree) as served:
            listening = wait_listening(served, bench.timeout)
            page.goto(served.url, timeout=bench.timeout * 1000)
            wait_district(page, bench.timeout)
            visible, cpu = time.perf_counter() - served.t0, cpu_seconds(served.proc.pid)
            # the 3D view's own frame at full resolution: the first picture (a half-size render, stretched) has given way to it
            page.wait_for_selector("#twin-first-picture", state="detached", timeout=bench.timeout * 1000)
            wait_district(page, bench.timeout)
            return {"listening": listening, "visible": visible, "cpu": cpu, "view": time.perf_counter() - served.t0}
    finally:
        page.close()


def _wait_frame(page: Any, frames: Frames, after: int, shape: tuple[int, int], timeout: float) -> int:
    """Index of the first frame of ``shape`` received after frame ``after`` (the still image once it comes); raises Timeout."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        found = [i for i in range(after, len(frames.shapes)) if frames.shapes[i] == shape]
        if found:
            return found[0]
        page.wait_for_timeout(100)  # websocket events are delivered while Playwright waits
    raise Timeout(f"no {shape[0]}x{shape[1]} image within {timeout:g} s")


def remote_frames(bench: Bench, tree: Path, scene: Path = DEMO, width: int = 1920, height: int = 1080, orbit_s: float = 4.0) -> dict[str, float]:
    """Still and moving JPEG sizes (kB) at ``width`` × ``height`` and orbit frames per second (a drag of ``orbit_s`` s).

    The still image is the last one at the view box's full size; moving frames are those smaller,
    received during the drag; after the drag the next full-size image is the settled one.
    """
    frames = Frames()
    page = page_for(bench.browser, width, height, frames)
    try:
        with serve(scene, tree, view="remote") as served:
            wait_listening(served, bench.timeout)
            page.goto(served.url, timeout=bench.timeout * 1000)
            wait_district(page, bench.timeout)
            fit_view_box(page, width, height)  # drawers (the alerts panel) take their share of the page
            page.wait_for_timeout(3000)  # after the live layers' first poll
            at = _wait_frame(page, frames, len(frames.shapes) - 1, (width, height), bench.timeout)
            last_still = max(i for i in range(at, len(frames.shapes)) if frames.shapes[i] == (width, height))
            still, still_webp = frames.sizes[last_still], frames.formats[last_still] == "webp"
            box = page.locator("#twin-view").bounding_box()
            cx, cy = box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2  # left of the legend and any drawer
            page.mouse.move(cx, cy)
            page.mouse.down()
            start, before = time.perf_counter(), len(frames.sizes)
            step = 0
            while time.perf_counter() - start < orbit_s:
                step += 1
                page.mouse.move(cx + 300 * np.sin(step / 15), cy + 60 * np.cos(step / 15))
                page.wait_for_timeout(16)
            elapsed = time.perf_counter() - start
            moving = [size for size, shape in zip(frames.sizes[before:], frames.shapes[before:], strict=True) if shape[0] < width]
            end = len(frames.sizes)
            page.mouse.up()
            settled = frames.sizes[_wait_frame(page, frames, end, (width, height), bench.timeout)]
    finally:
        page.close()
    return {"still_kb": still / 1e3, "still_webp": float(still_webp), "moving_kb": float(np.median(moving)) / 1e3 if moving else float("nan"),
            "after_orbit_kb": settled / 1e3, "orbit_fps": len(moving) / elapsed}


def _ratio(new: float, old: float) -> str:
    return f"{new / old:.2f}x" if old else "-"


def _medians(bench: Bench, label: str, run: Callable[[Path], dict[str, float]], repeats: int | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Median of each value over ``repeats`` (default ``bench.repeats``) runs of today's code and of the baseline, alternating."""
    from playwright.sync_api import Error as PlaywrightError

    today: list[dict[str, float]] = []
    base: list[dict[str, float]] = []
    for i in range(repeats or bench.repeats):
        for tree, runs in ((bench.baseline, base), (REPO, today)):
            try:
                runs.append(run(tree))
            except (Timeout, PlaywrightError) as exc:
                print(f"[{label}] run {i + 1} ({'baseline' if tree == bench.baseline else 'today'}) left out: {exc}", flush=True)
    if not today or not base:
        raise SystemExit(f"[{label}] no complete run of {'today' if not today else 'the baseline'}")
    return ({key: statistics.median(r[key] for r in today) for key in today[0]},
            {key: statistics.median(r[key] for r in base) for key in base[0]})


def figure_startup(bench: Bench) -> None:
    """Start-up to pixels, today vs baseline (warm: one untimed start of each fills the caches)."""
    def run(tree: Path) -> dict[str, float]:
        return time_to_pixels(bench, tree)

    _medians(bench, "startup warm-up", run, repeats=1)
    new, old = _medians(bench, "startup", run)
    n = f"median of {bench.repeats}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    print(f"[startup] port listening: {new['listening']:.2f} s (baseline {old['listening']:.2f} s, {_ratio(new['listening'], old['listening'])}; {n})")
    verdict = "OK" if new["visible"] <= STARTUP_GOAL_S else "over"
    print(f"[startup] district visible on pixels: {new['visible']:.2f} s (baseline {old['visible']:.2f} s, {_ratio(new['visible'], old['visible'])}; {n}); "
          f"goal <= {STARTUP_GOAL_S:g} s: {verdict}")
    print(f"[startup] server CPU seconds by then: {new['cpu']:.2f} s (baseline {old['cpu']:.2f} s, {_ratio(new['cpu'], old['cpu'])})")
    print(f"[startup] the 3D view's own frame at full resolution (the first picture gone): {new['view']:.2f} s (baseline {old['view']:.2f} s, "
          f"{_ratio(new['view'], old['view'])}; the baseline has no first picture: its first frame is the view's)")


def figure_remote(bench: Bench) -> None:
    """Remote image bytes (still, moving) at 1920x1080 and orbit fps, today vs baseline settings; the still's quality against the lossless frame."""
    new, old = _medians(bench, "remote", lambda tree: remote_frames(bench, tree))
    for key, unit in (("still_kb", "kB"), ("moving_kb", "kB"), ("after_orbit_kb", "kB"), ("orbit_fps", "fps")):
        print(f"[remote] {key}: {new[key]:.1f} {unit} (baseline {old[key]:.1f} {unit}, {_ratio(new[key], old[key])}; median of {bench.repeats})")
    print(f"[remote] still format: {'WebP' if new['still_webp'] else 'JPEG'} (baseline {'WebP' if old['still_webp'] else 'JPEG'})")
    print(f"[remote] still goal <= {STILL_GOAL_KB:g} kB: {'OK' if new['still_kb'] <= STILL_GOAL_KB else 'over'}; "
          f"moving < still: {'OK' if new['moving_kb'] < new['still_kb'] else 'no'}")
    for label, row in still_quality().items():
        print(f"[remote] demo still, {label}: {row['kb']:.0f} kB, PSNR {row['psnr']:.2f} dB vs lossless, encode {row['ms']:.0f} ms CPU"
              + (f" (quality {row['quality']:.0f})" if "quality" in row else ""))


def psnr(reference: np.ndarray, image: bytes) -> float:
    """dB of the decoded ``image`` against the lossless ``reference`` (height, width, 3) uint8."""
    from PIL import Image

    decoded = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"), dtype=np.float64)
    return float(10 * np.log10(255**2 / np.mean((decoded - reference.astype(np.float64)) ** 2)))


def still_quality(scene: Path = DEMO, size: tuple[int, int] = (1920, 1080)) -> dict[str, dict[str, float]]:
    """The scene's lossless still (rendered in this process, its own camera) encoded each way: kB, PSNR, encode CPU ms.

    ``baseline JPEG q92``: the baseline's still setting (VTK's libjpeg at 92 ~ Pillow's); ``JPEG q30``: the
    previous setting; ``JPEG within budget``: the best JPEG quality that fits; ``today``: twin's still encoder.
    """
    from PIL import Image

    from twin.app.still_encoding import StillEncoder, budget_bytes
    from twin.render.view import SceneView
    from twin.scene.model import Scene

    view = SceneView(Scene.from_file(scene), size=size)
    try:
        view.sync()
        frame = view.image()
    finally:
        view.close()

    def jpeg(quality: int) -> tuple[bytes, float]:
        out, started = io.BytesIO(), time.process_time()
        Image.fromarray(frame).save(out, "JPEG", quality=quality)
        return out.getvalue(), time.process_time() - started

    rows: dict[str, dict[str, float]] = {}
    for label, quality in (("baseline JPEG q92", 92), ("JPEG q30", 30)):
        data, cpu = jpeg(quality)
        rows[label] = {"kb": len(data) / 1e3, "psnr": psnr(frame, data), "ms": cpu * 1e3}
    limit = budget_bytes(*size)
    for quality in range(95, 0, -1):
        data, cpu = jpeg(quality)
        if len(data) <= limit:
            rows["JPEG within budget"] = {"kb": len(data) / 1e3, "psnr": psnr(frame, data), "ms": cpu * 1e3, "quality": quality}
            break
    encoder = StillEncoder()
    first_cpu = time.process_time()
    encoder.encode(frame)  # the first still of a view searches the quality
    first_cpu = time.process_time() - first_cpu
    steady_cpu = time.process_time()
    still = encoder.encode(frame)
    steady_cpu = time.process_time() - steady_cpu
    rows[f"today WebP (first still {first_cpu * 1e3:.0f} ms CPU)"] = {"kb": len(still.data) / 1e3, "psnr": psnr(frame, still.data), "ms": steady_cpu * 1e3,
                                                                       "quality": still.quality}
    return rows


def figure_h3_tick(bench: Bench) -> None:
    """One tick of a 3k- and a 100k-cell H3 layer in the local view: bytes (baseline: a plain ``update()``) and tick -> drawn
    (baseline: the CPU block path) with their breakdown, from :func:`bench_h3_local.h3_tick_figure` (its own server and browser)."""
    from bench_h3_local import h3_tick_figure, report

    for cells in (3_000, 100_000):
        fig = h3_tick_figure(cells, ticks=max(bench.repeats, 3), tick_seconds=3.0 if cells < 10_000 else 10.0, append=True, browser=bench.browser)
        print("\n".join(f"[h3_tick] {line}" for line in report(fig).splitlines()))
        base = fig.get("baseline") or {}
        print(f"[h3_tick] {cells:,} cells: bytes {_ratio(fig['bytes'], fig.get('baseline_bytes', float('nan')))} of plain update(), goal <= 0.5 MB: "
              f"{'OK' if fig['bytes'] <= 500_000 else 'over'}; tick -> drawn {_ratio(fig['drawn_ms'], base.get('drawn_ms', float('nan')))} of the CPU path, "
              f"goal <= 100 ms: {'OK' if fig['drawn_ms'] <= 100 else 'over'}", flush=True)


def figure_city(bench: Bench) -> None:
    """A 1M-building city in the remote view: tiled HLOD vs full detail, from :func:`bench_city.city_figure` (in process)."""
    from bench_city import city_figure, report

    report(city_figure(1_000_000, repeats=1, orbit_frames=4, ways=("full", "hlod")))


FIGURES: dict[str, Callable[[Bench], None]] = {"startup": figure_startup, "remote": figure_remote, "h3_tick": figure_h3_tick, "city": figure_city}


def main() -> None:
    from browsing import chromium  # tests/ helper: Debian's Chromium, headless

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(FIGURES), help=f"comma-separated figures: {', '.join(FIGURES)}")
    parser.add_argument("--baseline-ref", default=None, help="git ref of the baseline (default: before bench_app.py was added)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side per figure (the median is printed)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one run may take before it is left out")
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(only) - set(FIGURES)
    if unknown:
        raise SystemExit(f"unknown figure(s) {', '.join(sorted(unknown))}; figures: {', '.join(FIGURES)}")
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    baseline = baseline_tree(args.baseline_ref)
    compile_bytecode(REPO)
    with chromium() as browser:
        bench = Bench(browser, baseline, max(args.repeats, 1), args.timeout)
        for name in only:
            started = time.perf_counter()
            FIGURES[name](bench)
            print(f"[{name}] took {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
