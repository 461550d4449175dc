"""``twin serve`` stops within seconds of SIGTERM, busy or not (issue 13: a wall is stopped by its service manager).

A wall's server renders and encodes large frames on its page loop while its clock runs fast; aiohttp's exit on SIGTERM
waited for the view updates gathered over a tick (a still each), and the interpreter's teardown then collected a million
objects: a busy demo wall took 3.5-10 s to stop (``benchmarks/bench_wall.py``'s day). Here the demo district runs as the
wall (``--kiosk``, a kiosk page in Chromium at 1920x1080, the clock 144 times as fast from 17:00, a tick a second) and gets
SIGTERM in the middle of its tour; the bridge's part is shown without a server below.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from browsing import chromium
from servers import free_port, start_process

from twin.app.bridge import LoopBridge
from twin.app.stopping import stop_on_signals

REPO = Path(__file__).resolve().parents[1]
STOP_S = 3.0
"""Seconds ``twin serve`` may take to exit after SIGTERM."""
LOADED = "() => { const s = window.trame && window.trame.state; return !!s && s.get('twin_loading_done') !== false && !!s.get('twin_time_text'); }"


def test_a_busy_wall_server_exits_within_seconds_of_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {"TWIN_CLOCK_SPEED": "144", "TWIN_CLOCK_START": "2026-07-01T17:00+08:00", "TWIN_TICK_SECONDS": "1", "PYTHONUNBUFFERED": "1"}
    server = start_process("twin", [sys.executable, "-m", "twin.cli", "serve", str(REPO / "scenes" / "demo.yaml"), "--kiosk", "--view", "remote",
                                    "--port", str(port), "--no-browser"], port=port, log_path=tmp_path / "serve.log", env=env, timeout=300)
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(server.url + "?kiosk=1")
            page.wait_for_function(LOADED, timeout=300_000)
            page.wait_for_timeout(8_000)  # into the tour: flights, stills and ticks keep the loop busy
            assert server.process.poll() is None, server.log()
            started = time.monotonic()
            os.kill(server.process.pid, signal.SIGTERM)
            try:
                code = server.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                code = None
            took = time.monotonic() - started
    finally:
        server.stop(timeout=5)
    assert code == 0 and took <= STOP_S, f"twin serve exited with {code} {took:.1f} s after SIGTERM:\n{server.log()[-3000:]}"


class _Server:
    state = contextlib.nullcontext()


def test_sigterm_during_a_drain_drops_the_updates_still_waiting_and_then_runs_the_handler_that_was_there() -> None:
    """The signal comes while the loop runs a tick's updates (each a render on a wall): the updates after the one under way
    are dropped, later ones too, and the handler that was there before (aiohttp's, which ends the loop) still runs."""
    bridge, ran, before = LoopBridge(_Server()), [], []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: before.append(signum))
    try:
        assert stop_on_signals(bridge.stop_updates, [signal.SIGTERM])

        def render(i: int) -> None:
            ran.append(i)
            if i == 1:
                os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler in this thread before the next step

        bridge._pending = {i: (lambda i=i: render(i)) for i in range(5)}
        bridge._drain()
        bridge.soon(lambda: ran.append(99))
        assert (ran, before, bridge.waiting) == ([0, 1], [signal.SIGTERM], 0)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_signal_handlers_are_only_set_from_the_main_thread() -> None:
    import threading

    got: list[bool] = []
    thread = threading.Thread(target=lambda: got.append(stop_on_signals(lambda: None)))
    thread.start()
    thread.join(5)
    assert got == [False]
