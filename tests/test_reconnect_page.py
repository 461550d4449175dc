"""The wall page through reconnections: it stays as it was (no growth, no page errors) and a busy server is no outage.

``twin serve --kiosk`` in a subprocess started, killed and restarted by the tests (``TWIN_TICK_SECONDS=1``), driven by
the Debian headless Chromium. The page's size is read with CDP ``Performance.getMetrics`` (``Nodes``: DOM nodes alive,
attached or not; ``JSEventListeners``) after ``HeapProfiler.collectGarbage``. Page errors are Playwright's
``pageerror`` (uncaught exceptions and unhandled rejections) and the console errors trame forwards to the server's log
(``JS Error => ...``). No console listener is attached: Playwright would keep every console argument alive.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browsing import TwinServer, chromium, wait_for_view, wait_until
from playwright import sync_api
from servers import free_port
from test_unattended import FOUND_S, LIVE_SCENE, LIVE_SETTLED, LOSS_S, MASK, RECOVER_S, StallingProxy, _drawn, _open, _status, start_wall

GROWTH = 0.03  # a reconnection leaves the page's nodes and listeners within 3 % of what they were
OPEN = 1  # a WebSocket's readyState while it is open
BUSY_S = 2 * LOSS_S + 2
"""How long the busy server's answers are held: longer than the heartbeat's loss time, whatever the beats' phase."""
HOLD_S = LOSS_S - 1
"""How long a page that connected again waits for its first picture here: longer than its next try's back-off (1, 2 s after
the first tries; before, that try opened a second connection), shorter than the heartbeat's loss time."""


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture()
def scene(tmp_path: Path) -> Path:
    path = tmp_path / "live.yaml"
    path.write_text(LIVE_SCENE, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def wall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinServer]:
    """One ``twin serve --kiosk`` for the tests that leave it running as it was (they stop it for a while at most)."""
    folder = tmp_path_factory.mktemp("wall")
    (folder / "live.yaml").write_text(LIVE_SCENE, encoding="utf-8")
    server = start_wall(folder / "live.yaml", folder / "serve.log", kiosk=True)
    try:
        yield server
    finally:
        server.stop()


def _size(cdp: sync_api.CDPSession) -> tuple[int, int]:
    """The page's DOM nodes (attached or not) and JS event listeners, after a full garbage collection."""
    cdp.send("HeapProfiler.collectGarbage")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return int(metrics["Nodes"]), int(metrics["JSEventListeners"])


def _sockets(cdp: sync_api.CDPSession) -> list[int]:
    """The ``readyState`` of each WebSocket object the page still holds, after a full garbage collection (CDP's handles to them
    are released: a handle kept would keep its socket alive)."""
    cdp.send("HeapProfiler.collectGarbage")
    try:
        proto = cdp.send("Runtime.evaluate", {"expression": "WebSocket.prototype", "objectGroup": "twin-sockets"})["result"]["objectId"]
        found = cdp.send("Runtime.queryObjects", {"prototypeObjectId": proto, "objectGroup": "twin-sockets"})["objects"]["objectId"]
        states = cdp.send("Runtime.callFunctionOn", {"objectId": found, "functionDeclaration": "function () { return this.map((w) => w.readyState); }",
                                                      "returnByValue": True})
        return list(states["result"]["value"])
    finally:
        cdp.send("Runtime.releaseObjectGroup", {"objectGroup": "twin-sockets"})


def _connected_again(page: sync_api.Page, reconnects: int) -> bool:
    """Whether the page is connected again after its outage: waiting for the new view's first picture, or past it."""
    now = _status(page)
    return bool(now["awaiting"]) or int(now["reconnects"]) > reconnects


def _js_errors(logs: list[Path]) -> list[str]:
    """The page's console errors that trame forwarded to the servers' logs."""
    return [line for log in logs if log.exists() for line in log.read_text(errors="replace").splitlines() if "JS Error" in line]


def test_reconnections_leave_the_page_as_it_was_without_page_errors(tmp_path: Path, browser: sync_api.Browser, scene: Path) -> None:
    """Three server restarts: the page recovers each time with no page error; each leaves its DOM nodes and listeners where
    the first connection had them, and one WebSocket, open (before: each reconnection kept a detached copy of the page,
    +590 nodes and +60 listeners here, and an unhandled rejection from the view's calls on the dropped connection; then the
    first connection's client and closed socket stayed, held by trame's first "beforeunload" listener, +6 listeners; a
    wall page built the chrome it hides again on each reconnection, +1,800 nodes on the demo wall)."""
    port = free_port()
    logs: list[Path] = []

    def start() -> TwinServer:
        logs.append(tmp_path / f"serve{len(logs) + 1}.log")
        return start_wall(scene, logs[-1], port=port, kiosk=True)

    server = start()
    page = _open(browser, server.url)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"{error.name}: {error.message}"))
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    first, sizes, sockets = _size(cdp), [], []
    try:
        for restart in range(1, 4):
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=20)
            page.locator("#twin-reconnecting").wait_for(timeout=10_000)
            server = start()
            wait_until(lambda: _status(page)["reconnects"] == restart, RECOVER_S, f"the page to reconnect after restart {restart}")  # noqa: B023
            wait_for_view(page, lambda px: _drawn(px) > 300, 30, mask=MASK, what=f"the settled picture after restart {restart}", settled=LIVE_SETTLED)
            sizes.append(_size(cdp))
            sockets.append(_sockets(cdp))
        assert errors == [], f"page errors during the reconnections: {errors}"
        assert _js_errors(logs) == []
        assert _status(page)["dropped"] >= 1  # the view's calls on each dropped connection were expected, not errors
        assert sockets == [[OPEN]] * 3, f"the page's WebSockets (readyState) after each reconnection: {sockets}"
        for nodes, listeners in sizes:
            assert nodes <= first[0] * (1 + GROWTH), f"DOM nodes at the first connection {first[0]}, after each reconnection: {sizes}"
            assert listeners <= first[1] * (1 + GROWTH), f"JS event listeners at the first connection {first[1]}, after each reconnection: {sizes}"
        assert page.locator(".twin-kiosk-layer").count() == 1 and page.locator("#twin-view").count() == 1
    finally:
        page.close()
        server.stop()


def test_a_render_before_the_new_connections_state_arrives_reads_the_pages_values(browser: sync_api.Browser, wall: TwinServer) -> None:
    """trame's ``connect()`` replaces ``trame.state`` with an empty one and fills it when the server's state arrives; a
    render in between (any state change: on a busy server that takes seconds) read undefined keys: "Cannot read
    properties of undefined (reading 'Reconnecting…')" (the message catalogue ``twin_t``), "... (reading 'length')".
    Here trame's own swap is made in the page (a new state of trame's class, as ``connect()`` makes it) and every key is
    rendered again before any server state arrives."""
    page = _open(browser, wall.url)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"{error.name}: {error.message}"))
    try:
        seen = page.evaluate("""async () => {
            const trame = window.trame, last = trame.state;
            const fresh = new last.constructor(trame.client, last);  // what trame.connect() makes before the state arrives
            trame.state = fresh;
            const seen = {catalogue: !!fresh.get('twin_t'), views: Array.isArray(fresh.get('twin_views'))};
            fresh.notifyListeners({type: 'dirty-state', keys: Object.keys(fresh.get())});  // everything renders again
            await new Promise((done) => setTimeout(done, 1000));
            fresh.delete();
            trame.state = last;
            return seen;
        }""")
        assert seen == {"catalogue": True, "views": True}
        page.wait_for_timeout(1500)  # console errors reach the server's log
        assert errors == []
        assert _js_errors([wall.log_path]) == []
        assert page.locator("#twin-kiosk-clock").inner_text().strip() != ""
    finally:
        page.close()


def test_a_busy_server_whose_updates_still_arrive_is_no_outage_but_a_stopped_one_is(browser: sync_api.Browser, wall: TwinServer) -> None:
    """The page's heartbeat waits the loss time for an answer (:data:`LOSS_S` here, a beat every quarter of it). A server busy
    for :data:`BUSY_S` (longer than that, whatever the beats' phase) answers late, but its updates (the clock, every tick)
    keep coming: no reconnection (before: a false outage, the cause of the wall's reconnections in a day). A stopped server
    sends nothing: the heartbeat still finds it, and the page comes back with one connection and the nodes and listeners it had,
    also when its first picture after connecting again comes later than its next try would have been due."""
    proxy = StallingProxy(wall.port)
    page = _open(browser, proxy.url)
    group = wall.process.pid
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    try:
        start, first = _status(page), _size(cdp)
        clock = page.locator("#twin-kiosk-clock")
        proxy.stall(upstream=True)  # the page's calls wait, the server's updates flow
        shown, changes, began = clock.inner_text(), 0, time.monotonic()
        while time.monotonic() - began < BUSY_S:
            page.wait_for_timeout(500)
            changes += clock.inner_text() != shown
            shown = clock.inner_text()
            assert page.locator("#twin-reconnecting").count() == 0, "a busy server was taken for an outage"
        proxy.resume()
        page.wait_for_timeout(LOSS_S * 1000)  # the late answers arrive, and no loss is found after them
        assert changes >= BUSY_S / 2  # the updates kept coming meanwhile (a tick a second)
        now = _status(page)
        assert (now["silent"], now["reconnects"], now["lost"]) == (start["silent"], start["reconnects"], False)
        os.killpg(group, signal.SIGSTOP)
        try:
            wait_until(lambda: _status(page)["silent"] == start["silent"] + 1, FOUND_S, "the heartbeat to find the stopped server")
        finally:
            os.killpg(group, signal.SIGCONT)
        wait_until(lambda: _connected_again(page, start["reconnects"]), RECOVER_S, "the page to connect again after SIGCONT")
        if _status(page)["awaiting"]:  # connected, its first picture not there yet: held longer than the next try's back-off
            os.killpg(group, signal.SIGSTOP)
            try:
                time.sleep(HOLD_S)
            finally:
                os.killpg(group, signal.SIGCONT)
        wait_until(lambda: _status(page)["reconnects"] == start["reconnects"] + 1, RECOVER_S, "the page to recover after SIGCONT")
        wait_for_view(page, lambda px: _drawn(px) > 300, 30, mask=MASK, what="the settled picture after SIGCONT", settled=LIVE_SETTLED)
        assert _sockets(cdp) == [OPEN]  # one connection: the stopped one closed and let go, no second one opened
        (nodes, listeners) = _size(cdp)
        assert nodes <= first[0] * (1 + GROWTH) and listeners <= first[1] * (1 + GROWTH), f"nodes, listeners before {first}, after {(nodes, listeners)}"
    finally:
        os.killpg(group, signal.SIGCONT)
        page.close()
        proxy.close()
