"""The wall's memory levels off: what waits for the page's event loop stays bounded however far ticks run ahead of it.

On a loaded wall the loop that renders and encodes large frames can fall behind the session's ticks; every tick
used to queue its panels' refreshes (time, alerts, data age) again, all run later, so the queue and its work grew
with the backlog. Now the newest refresh of each panel replaces the one waiting; alert transitions are each kept.
The server's C heap gives large temporaries (a frame's buffers, a tick's arrays) back to the system when they are freed
(:func:`~twin.session.session.tune_heap`), so its resident level follows what it holds. A kiosk page builds only what it
shows (four alert cards and the banner), not the alerts drawer it hides, so a storm hour's page heap stays near a quiet one's.
(``benchmarks/bench_wall.py`` measures the whole server and page over a compressed day.)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browsing import chromium, start_twin
from playwright import sync_api

from twin.app.bridge import LoopBridge
from twin.app.server import TwinApp
from twin.clock import fmt_datetime
from twin.scene.model import Scene
from twin.session.session import _malloc_trim

LIVE_SCENE = """\
version: 1
name: Wall memory test
frame: {crs: auto, center: [121.48, 31.23]}
layers:
  - id: flood
    type: flood_points
    title: 积水 Flood
    source: {type: flood_sim, cycle: 2m, storm: 80s, interval: 10s}
    stations: {type: demo, dataset: flood_points}
    labels: none
    history: 15m
"""


class _Server:
    """What LoopBridge needs of a trame server: a state to flush after a drain."""

    state = contextlib.nullcontext()


@contextlib.contextmanager
def busy_loop(bridge: LoopBridge) -> Iterator[threading.Event]:
    """A running event loop attached to ``bridge`` and kept busy (as by a large frame) until the yielded event is set."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def attach() -> None:
        bridge.attach()

    asyncio.run_coroutine_threadsafe(attach(), loop).result(10)
    free = threading.Event()
    loop.call_soon_threadsafe(free.wait, 60)
    try:
        yield free
    finally:
        free.set()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def drained(bridge: LoopBridge, timeout: float = 30.0) -> None:
    """Wait until the loop has run what was waiting (AssertionError after ``timeout`` s)."""
    assert bridge.loop is not None
    deadline = time.monotonic() + timeout
    while bridge.waiting and time.monotonic() < deadline:
        time.sleep(0.02)
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0), bridge.loop).result(timeout)  # the drain has returned
    assert not bridge.waiting, f"{bridge.waiting} updates still waiting after {timeout:.0f} s"


def test_newest_update_of_a_key_replaces_the_waiting_one_and_each_unkeyed_update_is_kept() -> None:
    bridge = LoopBridge(_Server())
    ran: list[tuple[str, int]] = []
    with busy_loop(bridge) as free:
        for i in range(1000):
            bridge.soon(lambda i=i: ran.append(("time", i)), key="time")
            bridge.soon(lambda i=i: ran.append(("focus", i)), key="focus")
            if i % 200 == 0:
                bridge.soon(lambda i=i: ran.append(("event", i)))  # alert transitions: every one is shown
        assert bridge.waiting == 2 + 5
        free.set()
        drained(bridge)
    assert ran == [("time", 999), ("focus", 999), *(("event", i) for i in range(0, 1000, 200))]


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[TwinApp]:
    path = tmp_path / "wall.yaml"
    path.write_text(LIVE_SCENE, encoding="utf-8")
    app = TwinApp(Scene.from_file(path), view_mode="remote", tick_seconds=1)
    try:
        yield app
    finally:
        app.view.close()


def test_ticks_running_ahead_of_a_busy_page_loop_keep_one_refresh_per_panel_and_show_the_newest_time(app: TwinApp) -> None:
    start = app.session.now or dt.datetime.now(dt.timezone.utc)
    last = start
    with busy_loop(app.bridge) as free:
        for i in range(1, 61):  # a minute of ticks while the loop is busy: before, ~4 refreshes were queued per tick
            last = start + dt.timedelta(seconds=5 * i)
            assert app.on_timer(last)
            assert app.bridge.waiting <= 8, f"tick {i}: {app.bridge.waiting} updates waiting for the loop"
        free.set()
        drained(app.bridge)
    assert app.state.twin_time_text == fmt_datetime(last)
    assert app.state.twin_replay_max == int(last.timestamp())


# -- the server's C heap: large temporaries go back to the system when freed -----------------------
HEAP_PROBE = """
import os, sys

def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

if sys.argv[1] == "tuned":
    from twin.session.session import tune_heap
    tuned = tune_heap()
else:
    tuned = False
big = bytearray(24 << 20)  # a large block (malloc, zero-filled: resident), freed: glibc's default threshold follows it up
del big
kept, base = [], rss()
for _ in range(10):  # a frame's buffer each step, while small blocks that stay are allocated
    frame = bytearray(8 << 20)  # plain malloc (numpy may advise huge pages on its buffers)
    kept.append(bytearray(4096))
    del frame
print(tuned, (rss() - base) / 2**20)
"""


def _frames_left_resident(mode: str, **env: str) -> tuple[bool, float]:
    """Run :data:`HEAP_PROBE` in a fresh interpreter: whether the heap was tuned, and the MiB still resident after the frames were freed."""
    out = subprocess.run([sys.executable, "-c", HEAP_PROBE, mode], capture_output=True, text=True, check=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")} | env)
    tuned, mib = out.stdout.split()
    return tuned == "True", float(mib)


@pytest.mark.skipif(_malloc_trim() is None, reason="glibc only (Linux)")
def test_a_tuned_heap_gives_a_frames_buffers_back_when_freed_and_an_untuned_one_keeps_them() -> None:
    """glibc raises its mmap threshold to the largest block freed; then a frame's 8 MiB buffers come from the heap, and a small block
    allocated meanwhile keeps them resident until a trim: the wall's RSS level stood ~40 MiB higher. A session tunes the process's heap (:func:`~twin.session.session.tune_heap`) unless the environment says."""
    plain, kept = _frames_left_resident("plain")  # glibc's default: usually the last frame's 8 MiB stay (measured 8 MiB run alone;
    assert plain is False  # in some full-suite runs glibc kept its threshold and none stayed, so the default is not asserted)
    tuned, left = _frames_left_resident("tuned")
    assert tuned and left < 1.0 and left <= kept + 0.5
    assert _frames_left_resident("tuned", MALLOC_ARENA_MAX="4")[0] is False  # an operator's own setting wins


# -- the page: a wall page builds only what it shows -----------------------------------------------
ALERTING_SCENE = LIVE_SCENE + """\
alerts:
  - {id: wet, kind: threshold, layer: flood, above: 1, for: 0, severity: warning, title: 积水}
"""
KIOSK_SHOWS = 4
"""Open alerts the wall lists (``twin_alerts.slice(0, 4)`` in :mod:`twin.app.kiosk_overlays`); the rest is "n more"."""


def _count(page: sync_api.Page, selector: str) -> int:
    return int(page.evaluate(f"document.querySelectorAll({selector!r}).length"))


def test_a_wall_page_builds_only_the_alerts_it_shows_while_an_operator_page_builds_every_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wall hides the alerts drawer; it used to build it anyway, a card (~75 kB of the page's heap) per open alert and a row per
    event, so a storm hour's heap stood ~15 % above a quiet one. Now a kiosk page builds its four cards; an explorer page, all.
    And the server that drew them rasterizes in its rendering thread (:func:`~twin.render.vtk_setup.steady_rasterizer`): with
    Mesa's rasterizer threads the memory it holds after a frame followed what the frame showed (a wall's level rose and fell by
    tens of MiB with its tour)."""
    scene = tmp_path / "wall.yaml"
    scene.write_text(ALERTING_SCENE, encoding="utf-8")
    monkeypatch.setenv("TWIN_TICK_SECONDS", "0.5")
    monkeypatch.setenv("TWIN_CLOCK_SPEED", "20")  # a storm's rise in seconds
    server = start_twin(scene, tmp_path / "serve.log", env={"LP_NUM_THREADS": None})  # the operator has not chosen
    try:
        with chromium() as browser:
            wall, operator = browser.new_page(viewport={"width": 1280, "height": 720}), browser.new_page(viewport={"width": 1280, "height": 720})
            wall.goto(server.url + "?kiosk=1")
            operator.goto(server.url + "?kiosk=0")
            operator.wait_for_function(f"() => window.trame && window.trame.state && (window.trame.state.get('twin_alerts') || []).length > {KIOSK_SHOWS + 1}",
                                       timeout=90_000)
            if not operator.locator("#twin-alerts").is_visible():
                operator.locator("#twin-alerts-toggle").click()
            operator.wait_for_function(f"() => document.querySelectorAll('.twin-alert').length > {KIOSK_SHOWS + 1}", timeout=10_000)
            wall.wait_for_function(f"() => document.querySelectorAll('.twin-kiosk-alert').length === {KIOSK_SHOWS}", timeout=10_000)
            assert _count(operator, ".twin-event") > 0  # the operator's event log
            assert (_count(wall, ".twin-alert"), _count(wall, ".twin-event"), _count(wall, "#twin-alerts")) == (0, 0, 0)  # nothing hidden is built
            wall.wait_for_function("() => [...document.querySelectorAll('#twin-view img')].some((i) => i.complete && i.naturalWidth > 1)", timeout=30_000)
            threads = sorted(Path(task, "comm").read_text(encoding="utf-8").strip() for task in Path(f"/proc/{server.process.pid}/task").iterdir())
            assert not [name for name in threads if name.startswith("llvmpipe-")], f"the server drew with Mesa's rasterizer threads: {threads}"
    finally:
        server.stop()
