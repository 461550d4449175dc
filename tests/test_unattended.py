"""Unattended pages: the wall survives server restarts, silent network losses and one-map outages with nobody at a keyboard.

``twin serve`` in a subprocess (started by the tests, killed, stopped and restarted by them), driven by the Debian
headless Chromium; ``TWIN_TICK_SECONDS=1``. A silent loss is a server process stopped with SIGSTOP, or a TCP proxy
between page and server that stops forwarding (:class:`StallingProxy`): the socket stays open, nothing comes back.
The one-map server is the demo's real pygeoapi with live readings (:class:`twin.demo.onemap.OneMapDemo`), stopped and
started again on the same port. A few fast in-process tests cover the badges' rows and the compressed live clock.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from browsing import TwinServer, chromium, differ, start_twin, view_pixels, wait_for_view, wait_until
from playwright import sync_api
from servers import free_port

RECOVER_S = 30.0  # the issue: recovered with no click within 30 s of the server's return
LOSS_S = 5.0
"""The servers' heartbeat loss time here (``TWIN_HEARTBEAT_LOSS``, the shortest allowed; 10 s by default): a beat every 1.25 s."""
FOUND_S = LOSS_S + 2 * LOSS_S / 4 + 2.0
"""A silent loss is found within this: a beat sent up to a beat after the loss stays unanswered ``LOSS_S``, checked up to a
beat later (7.5 s), and slack; less than the default loss time alone, so a page that found it in time used the server's setting."""

LIVE_SCENE = """\
version: 1
name: Unattended test
frame: {crs: auto, center: [121.48, 31.23]}
cameras:
  overview: {target: [121.48, 31.232], heading: 0, pitch: 55, range: 7500}
camera: overview
layers:
  - id: flood
    type: flood_points
    title: 积水 Flood
    source: {type: flood_sim, cycle: 2m, storm: 80s, interval: 10s}
    stations: {type: demo, dataset: flood_points}
    labels: none
    history: 15m
"""

ONEMAP_SCENE = """\
version: 1
name: One-map outage test
frame: {{crs: auto, center: [121.48, 31.23]}}
cameras:
  overview: {{target: [121.48, 31.232], heading: 0, pitch: 55, range: 7500}}
camera: overview
layers:
  - id: flood
    type: flood_points
    title: 积水 Flood
    source: {{type: ogcapi_readings, url: "{url}", collection: flood_readings, limit: 10000, time_property: time,
              value_property: value, sensor_property: sensor_id, poll_interval: 2s}}
    stations: {{type: ogcapi, url: "{url}", collection: flood_points, limit: 10000}}
    labels: none
    history: 30m
    stale_after: 3m
"""


DISTRICTS_SCENE = """\
version: 1
name: Local wall test
frame: {{crs: auto, center: [121.47, 31.23]}}
cameras:
  city: {{target: [121.45, 31.2], heading: 0, pitch: 70, range: 60000}}
camera: city
layers:
  - id: districts
    type: vector
    title: 上海各区
    source: {{type: file, path: "{districts}", crs: GCJ02}}
    color_by: name
    palette: tab20
"""


def start_wall(scene: Path, log: Path, *, port: int | None = None, kiosk: bool = False, view: str = "remote") -> TwinServer:
    """``twin serve SCENE`` as the wall runs here (``kiosk``: ``--kiosk``; on ``port`` to restart one): a server-rendered view unless
    ``view`` says otherwise, a tick a second, the heartbeat's loss time :data:`LOSS_S`."""
    return start_twin(scene, log, port=port, kiosk=kiosk, view=view, env={"TWIN_TICK_SECONDS": "1", "TWIN_HEARTBEAT_LOSS": f"{LOSS_S:g}"}, timeout=120)


class StallingProxy:
    """A TCP proxy on 127.0.0.1 to ``target_port`` that can stop forwarding (:meth:`stall`): its connections stay open and
    new ones are accepted, but no byte passes either way until :meth:`resume` — a silent network loss. ``stall(upstream=True)``
    holds only what the page sends (the server's answers wait, its updates flow): what a page sees of a busy server."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.flowing = threading.Event()  # server -> page
        self.flowing_up = threading.Event()  # page -> server
        self.flowing.set()
        self.flowing_up.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True, name="stalling-proxy").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stall(self, *, upstream: bool = False) -> None:
        self.flowing_up.clear()
        if not upstream:
            self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()
        self.flowing_up.set()

    def close(self) -> None:
        self.resume()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                if self.listener.fileno() < 0:
                    return
                continue
            upstream.settimeout(None)
            for source, sink, flowing in ((client, upstream, self.flowing_up), (upstream, client, self.flowing)):
                threading.Thread(target=self._pump, args=(source, sink, flowing), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, flowing: threading.Event) -> None:
        try:
            while data := source.recv(65536):
                flowing.wait()  # stalled: the bytes read wait here, the sender sees an open socket
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()


LIVE_SETTLED = 0.01
"""A settled picture of the live scenes here: their marks change a little every tick (~0.3 % of the view's pixels)."""
MASK = (".twin-overlay", "#twin-reconnecting", ".twin-kiosk-layer > div", ".twin-legend")
"""What covers the view (a planner's and a wall's overlays, the reconnecting badge): painted black in its pictures."""


def _view_pixels(page: sync_api.Page) -> np.ndarray:
    """The view box as the user sees it (whatever covers it: the view, or the last picture), overlays and badge masked."""
    return view_pixels(page, MASK)


def _drawn(pixels: np.ndarray) -> int:
    """How many pixels differ from the view's empty background (its most common colour)."""
    flat = pixels.reshape(-1, 3)
    values, counts = np.unique(flat, axis=0, return_counts=True)
    background = values[counts.argmax()]
    return int((np.abs(flat - background).max(axis=1) > 40).sum())


def _same_picture(page: sync_api.Page, a: np.ndarray, b: np.ndarray) -> bool:
    """True if ``b`` shows what ``a`` showed (under 2 % of the pixels changed), outside the reconnecting badge."""
    a, b = a.copy(), b.copy()
    view, badge = page.locator("#twin-view").bounding_box(), page.locator("#twin-reconnecting")
    if badge.count() and view is not None and (box := badge.bounding_box()) is not None:
        rows = slice(max(0, int(box["y"] - view["y"])), max(0, int(box["y"] + box["height"] - view["y"]) + 2))
        cols = slice(max(0, int(box["x"] - view["x"])), max(0, int(box["x"] + box["width"] - view["x"]) + 2))
        a[rows, cols] = b[rows, cols] = 0
    return differ(a, b) < 0.02


def _scene_time(page: sync_api.Page) -> str:
    """The scene time the page holds (a wall page builds no toolbar to show it)."""
    return str(page.evaluate("window.trame.state.get('twin_time_text')"))


def _status(page: sync_api.Page) -> dict[str, int | bool]:
    return page.evaluate("window.twinReconnect.status()")


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with chromium() as launched:
        yield launched


def _open(browser: sync_api.Browser, url: str) -> sync_api.Page:
    """A page of ``url`` once its view shows a settled picture (the half-size first picture, a JPEG before its still, is no
    reference for the last picture kept)."""
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(url)
    page.locator("#twin-main").wait_for(state="attached", timeout=60_000)  # a wall page builds no chrome; no element handle kept (it kept the first page alive)
    wait_for_view(page, lambda px: _drawn(px) > 300, 30, mask=MASK, what="the first picture of the view", settled=LIVE_SETTLED)
    return page


def _kiosk_clock(page: sync_api.Page) -> str:
    return page.locator("#twin-kiosk-clock").inner_text().strip()


# -- the server restarts -------------------------------------------------------------------------
def _outage(page: sync_api.Page, server: TwinServer, how: signal.Signals, restart: Callable[[], TwinServer]) -> TwinServer:
    """Stop the server with ``how``; the page keeps the last picture under the badge; it recovers by itself."""
    lang = page.evaluate("window.trame.state.get('twin_lang')")
    before = _view_pixels(page)
    reconnects = _status(page)["reconnects"]
    os.killpg(server.process.pid, how)
    server.process.wait(timeout=20)
    badge = page.locator("#twin-reconnecting")
    badge.wait_for(timeout=10_000)
    from twin.app.i18n import gettext

    assert gettext(lang, "Reconnecting…") in badge.inner_text()
    assert page.locator("#twin-main").count() == 1  # the page, not trame's error or loading page
    wait_until(lambda: _status(page)["attempts"] >= 2, 10, "a try to fail")  # the page tried (1 s after the loss) and tries again
    during = _view_pixels(page)
    assert _drawn(during) > 300, "the view went blank while the server was away"
    assert _same_picture(page, before, during), "the last picture is not what the view showed"
    assert _status(page)["lost"]
    returned = restart()
    took = wait_until(lambda: _status(page)["reconnects"] == reconnects + 1, RECOVER_S, "the page to reconnect by itself")
    assert badge.count() == 0 and page.locator("#twin-reconnect-cover").count() == 0
    assert _drawn(_view_pixels(page)) > 300
    shown = _scene_time(page)
    wait_until(lambda: _scene_time(page) != shown, 10, "live ticks from the new server")
    print(f"{how.name}: reconnected {took:.1f} s after the server listened again")
    return returned


def test_the_page_shows_the_last_picture_and_reconnects_after_restarts(tmp_path: Path, browser: sync_api.Browser) -> None:
    scene = tmp_path / "live.yaml"
    scene.write_text(LIVE_SCENE, encoding="utf-8")
    port = free_port()
    logs = iter(range(1, 10))

    def start() -> TwinServer:
        return start_wall(scene, tmp_path / f"serve{next(logs)}.log", port=port)

    server = start()
    page = _open(browser, server.url)
    try:
        server = _outage(page, server, signal.SIGKILL, start)  # a crash
        server = _outage(page, server, signal.SIGTERM, start)  # an orderly restart, on the already reconnected page
        assert "Traceback" not in server.log()
    finally:
        page.close()
        server.stop()


# -- silent losses: the socket stays open, nothing comes back -------------------------------------
def _silent_outage(page: sync_api.Page, stop: Callable[[], None], resume: Callable[[], None], what: str) -> None:
    """``stop`` silences the connection: the heartbeat finds it, the last picture stays under the badge; ``resume``: back with no click."""
    before = _view_pixels(page)
    start = _status(page)
    stop()
    badge = page.locator("#twin-reconnecting")
    found = wait_until(lambda: badge.count() == 1, FOUND_S, f"the badge after {what} (heartbeat loss time {LOSS_S:g} s)")
    assert _status(page)["silent"] == start["silent"] + 1  # found by the heartbeat: no socket closed
    time.sleep(3)  # the probes of the page's address time out meanwhile
    during = _view_pixels(page)
    assert _drawn(during) > 300 and _same_picture(page, before, during), f"the last picture did not stay after {what}"
    resume()
    took = wait_until(lambda: _status(page)["reconnects"] == start["reconnects"] + 1, RECOVER_S, f"the page to recover after {what}")
    assert badge.count() == 0 and page.locator("#twin-reconnect-cover").count() == 0
    shown = _kiosk_clock(page)
    wait_until(lambda: _kiosk_clock(page) != shown, 10, f"the wall's clock to run again after {what}")
    print(f"{what}: found in {found:.1f} s, recovered {took:.1f} s after it ended")


def test_a_silent_connection_is_found_by_the_heartbeat_and_recovers(tmp_path: Path, browser: sync_api.Browser) -> None:
    """A stopped server process (SIGSTOP, then SIGCONT), and a proxy that stops forwarding: the wall shows "reconnecting"
    over its last picture within a few heartbeats (of the loss time the server sets, ``TWIN_HEARTBEAT_LOSS``) and recovers
    by itself when the server or the network comes back."""
    scene = tmp_path / "live.yaml"
    scene.write_text(LIVE_SCENE, encoding="utf-8")
    server = start_wall(scene, tmp_path / "serve.log", kiosk=True)
    proxy = StallingProxy(server.port)
    page = _open(browser, proxy.url)
    group = server.process.pid
    try:
        assert page.evaluate("document.documentElement.classList.contains('twin-kiosk')")
        _silent_outage(page, proxy.stall, proxy.resume, "a proxy that stopped forwarding")
        _silent_outage(page, lambda: os.killpg(group, signal.SIGSTOP), lambda: os.killpg(group, signal.SIGCONT), "a stopped server process")
        time.sleep(2)
        assert server.process.poll() is None  # the dropped connections did not ask the server to exit
        assert "Traceback" not in server.log()
    finally:
        os.killpg(group, signal.SIGCONT)
        page.close()
        proxy.close()
        server.stop()


# -- the local (vtk.js) view ---------------------------------------------------------------------
def _lose_webgl(page: sync_api.Page) -> bool:
    """Lose the view's WebGL context, as a GPU reset does: the canvas goes blank. False if the view has none."""
    return bool(page.evaluate("""() => {
        const canvas = document.querySelector('#twin-view canvas');
        const gl = canvas && (canvas.getContext('webgl2') || canvas.getContext('webgl'));
        const lose = gl && gl.getExtension('WEBGL_lose_context');
        if (lose) lose.loseContext();
        return !!lose;
    }"""))


def test_the_local_view_keeps_its_last_picture_through_an_outage(tmp_path: Path, browser: sync_api.Browser, shared_data: Path) -> None:
    """``--view local``: the browser draws with WebGL. Killed server: the last picture covers the view, even when the
    view's WebGL context is lost meanwhile; the page never shows a blank view until the new server's picture is drawn."""
    scene = tmp_path / "districts.yaml"
    scene.write_text(DISTRICTS_SCENE.format(districts=(shared_data / "shanghai_districts_gcj02.geojson").as_posix()), encoding="utf-8")
    port = free_port()
    server = start_wall(scene, tmp_path / "serve1.log", port=port, kiosk=True, view="local")
    page = _open(browser, server.url)
    try:
        assert page.evaluate("window.trame.state.get('twin_view_mode')") == "local"
        time.sleep(2.5)  # the page keeps a picture of the view every 2 s
        before = _view_pixels(page)
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=20)
        page.locator("#twin-reconnecting").wait_for(timeout=10_000)
        assert page.locator("#twin-reconnect-cover").count() == 1  # the WebGL view's picture was read back
        assert _lose_webgl(page)
        time.sleep(1)
        during = _view_pixels(page)
        assert _drawn(during) > 300 and _same_picture(page, before, during), "the local view's last picture did not stay"
        server = start_wall(scene, tmp_path / "serve2.log", port=port, kiosk=True, view="local")
        blank: list[float] = []
        start = time.monotonic()
        while _status(page)["reconnects"] == 0:  # never blank until the new picture is drawn
            if _drawn(_view_pixels(page)) <= 300:
                blank.append(round(time.monotonic() - start, 1))
            assert time.monotonic() - start < RECOVER_S, "the page did not recover by itself"
            time.sleep(0.2)
        assert not blank, f"the view was blank {blank} s after the server came back"
        assert page.locator("#twin-reconnect-cover").count() == 0 and _drawn(_view_pixels(page)) > 300
    finally:
        page.close()
        server.stop()


# -- the one-map server goes away ----------------------------------------------------------------
@pytest.fixture()
def onemap_port() -> int:
    pytest.importorskip("pygeoapi", reason="the one-map stand-in needs the demo extra (pygeoapi)")
    return free_port()


def _onemap(port: int) -> object:
    from twin.demo.onemap import OneMapDemo

    onemap = OneMapDemo(port=port, n_buildings=50, feed_seconds=1.0, lateness=(0.0, 0.0))
    onemap.start()
    return onemap


def test_a_one_map_outage_shows_stale_badges_keeps_the_picture_and_clears(tmp_path: Path, browser: sync_api.Browser, onemap_port: int) -> None:
    onemap = _onemap(onemap_port)
    scene = tmp_path / "onemap.yaml"
    scene.write_text(ONEMAP_SCENE.format(url=onemap.url), encoding="utf-8")  # type: ignore[attr-defined]
    server = start_wall(scene, tmp_path / "serve.log")
    page = _open(browser, server.url)
    try:
        badge = page.locator('.twin-source[data-layer-id="flood"]')
        assert badge.count() == 0  # fresh data: the view shows no badge
        before = _view_pixels(page)
        onemap.stop()  # type: ignore[attr-defined]
        badge.wait_for(timeout=20_000)
        assert badge.get_attribute("data-stale") == "1" and badge.get_attribute("data-failing") == "1"
        assert f"127.0.0.1:{onemap_port}" in (badge.get_attribute("title") or "")  # says which service fails
        lang = page.evaluate("window.trame.state.get('twin_lang')")
        from twin.app.i18n import gettext

        assert gettext(lang, "source down") in badge.inner_text()
        assert page.locator('.twin-layer[data-layer-id="flood"] .twin-layer-stale').count() == 1
        shown = _scene_time(page)
        wait_until(lambda: _scene_time(page) != shown, 10, "ticks to go on while the one-map server is down")
        during = _view_pixels(page)
        assert _drawn(during) > 300 and _same_picture(page, before, during), "the last good data is not drawn"
        assert server.process.poll() is None
        onemap = _onemap(onemap_port)
        wait_until(lambda: badge.count() == 0, 30, "the stale badge to clear when the one-map server returns")
        assert page.locator('.twin-layer[data-layer-id="flood"] .twin-layer-stale').count() == 0
        assert "Traceback" not in server.log()
    finally:
        page.close()
        server.stop()
        onemap.stop()  # type: ignore[attr-defined]


# -- in-process (no browser) ---------------------------------------------------------------------
@pytest.fixture()
def flood_layer(tmp_path: Path) -> object:
    import twin

    scene_file = tmp_path / "live.yaml"
    scene_file.write_text(LIVE_SCENE, encoding="utf-8")
    scene = twin.Scene.from_file(scene_file)
    scene.tick(dt.datetime(2026, 7, 1, 10, tzinfo=dt.timezone.utc))
    return scene["flood"]


def test_a_source_that_answers_but_has_nothing_new_turns_stale(flood_layer: object) -> None:
    """The other kind of outage: the service answers, but its newest reading grows older than ``stale_after`` (the default, 10 min)."""
    from twin.app.source_badges import source_row

    newest = flood_layer.health.newest_reading  # type: ignore[attr-defined]
    assert newest is not None
    fresh = source_row(flood_layer, newest + dt.timedelta(minutes=2))  # type: ignore[arg-type]
    assert fresh == {"id": "flood", "title": "积水 Flood", "age": "2 min", "stale": False, "failing": False, "tip": fresh["tip"]}
    silent = source_row(flood_layer, newest + dt.timedelta(minutes=16))  # type: ignore[arg-type]
    assert silent["stale"] and not silent["failing"] and silent["age"] == "16 min"
    assert "no new data for 16 min" in silent["tip"]


def test_a_failing_source_is_named_on_its_badge(flood_layer: object) -> None:
    from twin.app.source_badges import source_row

    health = flood_layer.health  # type: ignore[attr-defined]
    health.error, health.last_error = "ogcapi http://127.0.0.1:9/ flood_readings: connection refused", health.last_success
    row = source_row(flood_layer, health.newest_reading + dt.timedelta(seconds=30))  # type: ignore[arg-type]
    assert row["stale"] and row["failing"] and row["age"] == "30 s"
    assert "connection refused" in row["tip"] and "127.0.0.1:9" in row["tip"]


def test_the_compressed_clock_runs_faster_and_rejects_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    from twin.errors import TwinError
    from twin.session.session import live_clock

    monkeypatch.setenv("TWIN_CLOCK_SPEED", "3600")
    clock = live_clock()
    first = clock()
    time.sleep(0.05)
    assert dt.timedelta(seconds=150) < clock() - first < dt.timedelta(seconds=3600)  # 0.05 s x 3600, with slack for a busy machine
    assert first.tzinfo is not None
    monkeypatch.setenv("TWIN_CLOCK_SPEED", "fast")
    with pytest.raises(TwinError, match=r"^TWIN_CLOCK_SPEED='fast' is not a number"):
        live_clock()
    with pytest.raises(TwinError, match=r"^clock speed -2\.0 must be a positive number"):
        live_clock(-2.0)
    real = live_clock(1.0)
    assert abs((real() - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 1
