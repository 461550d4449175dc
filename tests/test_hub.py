"""`twin hub`: every planner's browser gets its own session (its own app process), behind one front door.

Real ``twin hub`` subprocesses on free ports, driven by the Debian headless Chromium (tests/browsing.py):
two browsers stay independent (layer, camera, pick, replay time), the cap answers with a "full" page,
an idle session is closed and its place freed, the front door applies ``twin serve``'s access rules,
and neither a stopped nor a killed hub leaves an app process behind. The non-loopback path runs on
127.0.0.2 (twin treats it as "not 127.0.0.1": a token is needed), so nothing leaves the machine.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from browsing import TwinServer, chromium, differ, start_twin, view_pixels, wait_for_changes, wait_for_view, wait_until
from playwright import sync_api

from twin.cli import main

TOKEN = "hub-test-token-0123456789"
SCENE_NAME = "Hub test scene"
SCENE_TITLE = "Districts and flood"
NEEDS_TOKEN = "twin: this server needs a token: open the address with ?token=YOUR_TOKEN or send Authorization: Bearer YOUR_TOKEN"
SCENE = """\
version: 1
name: {name}
frame: {{crs: auto, center: [121.48, 31.23]}}
settings: {{title: {title}}}
cameras:
  overview: {{target: [121.47, 31.22], heading: 0, pitch: 90, range: 60000}}
camera: overview
layers:
  - id: districts
    type: vector
    title: 上海各区
    source: {{type: file, path: "{districts}", crs: GCJ02}}
    color_by: name
    palette: tab20
  - id: flood
    type: flood_points
    title: 积水 Flood
    source: {{type: flood_sim, cycle: 2m, storm: 80s, interval: 10s}}
    stations: {{type: demo, dataset: flood_points}}
    history: 15m
"""
DISTRICTS_LEGEND = '#twin-legend [data-layer-id="districts"]'
STARTED = re.compile(r"session (\S+) started: \S+ for (\S+) \(pid (\d+), port (\d+),")


# -- hubs ----------------------------------------------------------------------------------------
def sessions(hub: TwinServer) -> dict[str, tuple[str, int, int]]:
    """The sessions a hub started, from its log: ``{id: (user, pid, port)}``."""
    return {m[1]: (m[2], int(m[3]), int(m[4])) for m in STARTED.finditer(hub.log())}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A folder with the test scene and a scene file that cannot be opened."""
    folder = tmp_path_factory.mktemp("scenes")
    districts = (shared_data / "shanghai_districts_gcj02.geojson").as_posix()
    (folder / "live.yaml").write_text(SCENE.format(name=SCENE_NAME, title=SCENE_TITLE, districts=districts), encoding="utf-8")
    (folder / "broken.yaml").write_text("version: 1\nname: [broken\n", encoding="utf-8")
    (folder / "unknown.yaml").write_text("version: 1\nname: Unknown layer type\nlayers:\n  - {id: x, type: nosuch}\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def start_hub(scenes: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., TwinServer]]:
    """Start ``twin hub`` (or its alias ``twin serve --sessions``: ``command="serve"``) on a host with extra options (and environment),
    ticking every second; returns it once it listens. All are stopped at module end and must have logged no traceback."""
    hubs: list[TwinServer] = []

    def start(host: str, *options: str, env: dict[str, str] | None = None, command: str = "hub") -> TwinServer:
        environment: dict[str, str | None] = {"TWIN_TOKEN": None, "TWIN_TICK_SECONDS": "1", "TWIN_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "twin-cache"), **(env or {})}
        hub = start_twin(scenes, tmp_path_factory.mktemp("hub") / "hub.log", command=command, host=host, env=environment, args=options)
        hubs.append(hub)
        return hub

    yield start
    for hub in hubs:
        hub.stop(timeout=20)
        assert "Traceback" not in hub.log(), hub.log()


@pytest.fixture(scope="module")
def hub(start_hub: Callable[..., TwinServer]) -> TwinServer:
    """Two places, the default idle time (30 min), loopback without a token; started as ``twin serve FOLDER --sessions 2``."""
    return start_hub("127.0.0.1", "--sessions", "2", command="serve")


@pytest.fixture(scope="module")
def guarded_hub(start_hub: Callable[..., TwinServer]) -> TwinServer:
    """One place, sessions closed after 3 s without input, on 127.0.0.2 with a token."""
    return start_hub("127.0.0.2", "--sessions", "1", "--idle-timeout", "3s", env={"TWIN_TOKEN": TOKEN})


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with chromium() as launched:
        yield launched


# -- helpers -------------------------------------------------------------------------------------
def _request(host: str, port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """Status, headers and body of one request sent exactly as written."""
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    body = response.read().decode(errors="replace") if response.status != 101 else ""
    conn.close()
    return response.status, dict(response.getheaders()), body


def _message(body: str) -> str:
    """The one line of a hub message page."""
    match = re.search(r'id="twin-hub-message">([^<]*)<', body)
    assert match, f"not a hub message page: {body[:300]}"
    return match[1].replace("&#x27;", "'")


def _alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _begin_session(browser: sync_api.Browser, url: str) -> tuple[sync_api.BrowserContext, sync_api.Page]:
    """A new browser (its own cookies) that asks the hub's front page for the test scene, without waiting for the app."""
    context = browser.new_context(viewport={"width": 1100, "height": 680})
    page = context.new_page()
    page.goto(url)
    page.locator('li[data-scene="live"] button').click(no_wait_after=True)
    return context, page


def _loaded(page: sync_api.Page) -> sync_api.Page:
    """``page`` once the session's app shows the scene (state came over the proxied websocket)."""
    page.wait_for_selector("#twin-scene-name", timeout=90_000)
    page.wait_for_function("document.querySelector('#twin-scene-name').textContent.trim().length > 0", timeout=30_000)
    return page


def _open_session(browser: sync_api.Browser, url: str) -> tuple[sync_api.BrowserContext, sync_api.Page]:
    """A new browser that opens the test scene from the hub's front page."""
    context, page = _begin_session(browser, url)
    return context, _loaded(page)


def _legend_colors(page: sync_api.Page) -> list[tuple[int, int, int]]:
    css = page.eval_on_selector_all(f"{DISTRICTS_LEGEND} .twin-swatch", "els => els.map(e => getComputedStyle(e).backgroundColor)")
    return [tuple(int(float(v)) for v in value[value.index("(") + 1 : value.index(")")].split(",")[:3]) for value in css]  # type: ignore[misc]


def _district_colors_shown(pixels: np.ndarray, colors: list[tuple[int, int, int]]) -> int:
    """How many legend colours cover at least 40 pixels of the view (JPEG-tolerant)."""
    return sum(int((np.abs(pixels - np.array(c, dtype=np.int16)).max(axis=2) <= 14).sum() >= 40) for c in colors)


def _moved(a: np.ndarray, b: np.ndarray, colors: list[tuple[int, int, int]]) -> float:
    """How much the districts' areas on screen differ between two views: sum of |area change| over the areas in ``b``.

    A camera turn or zoom moves much of it; the live layer's changing labels and a one-pixel shift of the image barely do.
    """
    def areas(pixels: np.ndarray) -> np.ndarray:
        return np.array([(np.abs(pixels - np.array(c, dtype=np.int16)).max(axis=2) <= 14).sum() for c in colors], dtype=float)

    before = areas(b)
    return float(np.abs(areas(a) - before).sum() / max(before.sum(), 1.0))


def _districts(page: sync_api.Page, colors: list[tuple[int, int, int]], what: str) -> np.ndarray:
    """The view's settled picture once it shows the districts (:func:`browsing.wait_for_view`): a reference, never the
    stretched half-size first picture or a frame on its way to the still."""
    return wait_for_view(page, lambda px: _district_colors_shown(px, colors) >= 8, what=what)


def _pick_a_district(page: sync_api.Page, pixels: np.ndarray, colors: list[tuple[int, int, int]]) -> None:
    """Click well inside the district covering most of the view."""
    masks = [np.abs(pixels - np.array(c, dtype=np.int16)).max(axis=2) <= 8 for c in colors]
    best = masks[int(np.argmax([m.sum() for m in masks]))]
    inner = best.copy()
    for dy in (-5, 0, 5):
        for dx in (-5, 0, 5):
            inner &= np.roll(np.roll(best, dy, axis=0), dx, axis=1)
    y, x = np.argwhere(inner)[int(inner.sum()) // 2]
    box = page.locator("#twin-view").bounding_box()
    assert box is not None
    scale = pixels.shape[1] / box["width"]
    page.mouse.click(box["x"] + x / scale, box["y"] + y / scale)


def _drag(page: sync_api.Page) -> None:
    """Turn the camera with a mouse drag across the view."""
    box = page.locator("#twin-view").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x + step * box["width"] * 0.04, y - step * box["height"] * 0.03)
    page.mouse.up()


# -- the scene list ------------------------------------------------------------------------------
def test_front_page_lists_the_scenes_with_titles_and_errors(hub: TwinServer) -> None:
    status, headers, body = _request(hub.host, hub.port, "/")
    assert status == 200
    assert f"<b>{SCENE_NAME}</b>" in body and SCENE_TITLE in body and 'action="/start/live"' in body
    assert "broken.yaml</b> <span class=\"error\">cannot be opened: " in body and "broken.yaml:3: invalid YAML" in body
    assert 'action="/start/broken"' not in body
    cookie = headers.get("Set-Cookie", "")
    assert cookie.startswith(f"twin_hub_{hub.port}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "twin: warning: scene broken.yaml is listed but cannot be opened: " in hub.log()


def test_a_missing_scene_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hub", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"twin: error: {tmp_path / 'nowhere'}: no such folder of scenes (give a folder of .yaml scene files, or one scene file)"]
    assert main(["hub", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines() == [f"twin: error: {tmp_path}: no .yaml scene file in this folder"]


def test_a_scene_whose_app_fails_shows_its_error(hub: TwinServer, scenes: Path) -> None:
    status, _, body = _request(hub.host, hub.port, "/start/unknown", "POST")
    path = scenes / "unknown.yaml"
    assert status == 500
    assert _message(body) == (f"{path}: the session's app stopped (exit code 1): {path}:4: layers[0].type: unknown layer type 'nosuch'; "
                              "known types: basemap, buildings, flood_points, h3, vector")

    assert "0 of 2 sessions in use" in _request(hub.host, hub.port, "/")[2]  # the failed start gave its place back


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--idle-timeout", "5x", "Invalid value for '--idle-timeout': '5x' is not a duration: use e.g. 30s, 5m, 2h, 1h30m or ISO 8601 (PT5M)"),
    ("--idle-timeout", "0s", "Invalid value for '--idle-timeout': '0s' must be longer than 0, e.g. 30m"),
    ("--start-timeout", "-1m", "Invalid value for '--start-timeout': duration '-1m' is negative"),
    ("--sessions", "0", "Invalid value for '--sessions': 0 is not in the range x>=1."),
])
def test_bad_hub_options_are_one_line(scenes: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str) -> None:
    assert main(["hub", str(scenes), option, value]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"Error: {message}"


def test_serve_with_sessions_is_the_hub(hub: TwinServer, capsys: pytest.CaptureFixture[str], scenes: Path) -> None:
    """`twin serve FOLDER --sessions N` is `twin hub FOLDER --sessions N` (the `hub` fixture starts it so); options of one app are refused."""
    assert f"twin: hub of 3 scenes at {hub.url} (at most 2 sessions; Ctrl+C stops)\n" in hub.log()
    assert main(["serve", str(scenes), "--sessions", "2", "--kiosk"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "Error: --sessions serves planners through the hub: it takes no --kiosk, --lang or --open-browser"
    assert main(["serve", str(scenes / "live.yaml"), "--sessions", "0"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "Error: Invalid value for '--sessions': 0 is not in the range x>=1."


# -- independent sessions ------------------------------------------------------------------------
def test_two_browsers_are_independent_and_the_cap_holds(browser: sync_api.Browser, hub: TwinServer) -> None:
    a_context, a = _begin_session(browser, hub.url)
    b_context, b = _begin_session(browser, hub.url)  # both apps start at once
    try:
        _loaded(a), _loaded(b)
        assert re.fullmatch(rf"{hub.url}s/[\w-]{{20,}}/(index\.html)?", a.url) and a.url.split("/")[4] != b.url.split("/")[4]
        pids = {pid for _, pid, _ in sessions(hub).values()}
        assert len(pids) == 2, "two browsers, two app processes"
        colors = _legend_colors(a)
        assert len(colors) >= 16
        a_start = _districts(a, colors, "the districts in A")
        b_start = _districts(b, colors, "the districts in B")

        _pick_a_district(a, a_start, colors)  # pick
        a.wait_for_selector("#twin-pick", timeout=20_000)
        _drag(a)  # camera
        turned = wait_for_view(a, lambda px: _moved(px, a_start, colors) > 0.3, what="the turned camera in A")
        a.locator(".twin-replay .v-slider-thumb").focus()  # time
        a.keyboard.press("Home")
        wait_until(lambda: "REPLAY" in a.locator("#twin-time-mode").inner_text(), 10, "replay mode in A")
        a.locator('.twin-layer[data-layer-id="districts"] .twin-layer-switch input').click()  # layer
        wait_for_view(a, lambda px: _district_colors_shown(px, colors) <= 1 and differ(px, turned) > 0.05, settle=False, what="A without districts")
        a.locator(DISTRICTS_LEGEND).wait_for(state="detached", timeout=10_000)

        wait_for_changes(lambda: b.locator("#twin-time").inner_text(), 2, 20, "B's scene time")  # what A changed, were it shared, would reach B by B's next ticks
        assert b.locator("#twin-pick").count() == 0
        assert "LIVE" in b.locator("#twin-time-mode").inner_text()
        assert b.locator('.twin-layer[data-layer-id="districts"] .twin-layer-switch input').is_checked()
        assert b.locator(DISTRICTS_LEGEND).count() == 1
        b_now = view_pixels(b)
        moved = _moved(b_now, b_start, colors)
        assert _district_colors_shown(b_now, colors) >= 8 and moved < 0.08, f"B's view changed with A's ({moved:.1%} of the district areas moved)"

        c_context = browser.new_context()  # a third browser: no place left
        c = c_context.new_page()
        c.goto(hub.url)
        with c.expect_response(lambda r: "/start/live" in r.url) as answer:
            c.locator('li[data-scene="live"] button').click()
        assert answer.value.status == 503
        assert _message(c.content()) == "All 2 planner sessions are in use; try again in a few minutes."
        c.goto(b.url)  # another browser's session is not reachable by its address
        assert _message(c.content()) == "This planner session belongs to another browser; open your own from the list."
        c_context.close()

        own = a.url.split("/")[4]
        a.goto(hub.url)  # the same browser again: its session is listed, and opening the scene goes back to it
        assert a.locator("#twin-hub-mine a").get_attribute("href") == f"/s/{own}/"
        a.locator('li[data-scene="live"] button').click()
        a.wait_for_selector("#twin-scene-name", timeout=30_000)
        assert a.url.split("/")[4] == own and len(sessions(hub)) == 2
    finally:
        a_context.close()
        b_context.close()


def test_killed_hub_leaves_no_app_process(hub: TwinServer) -> None:
    pids = [pid for _, pid, _ in sessions(hub).values()]
    assert pids and all(_alive(pid) for pid in pids)
    hub.process.kill()
    hub.process.wait()
    wait_until(lambda: not any(_alive(pid) for pid in pids), 15, "the sessions' apps to exit after the hub was killed")


# -- access, idle sessions, shutdown -------------------------------------------------------------
def test_front_door_needs_the_token_and_refuses_foreign_pages(guarded_hub: TwinServer) -> None:
    host, port = guarded_hub.host, guarded_hub.port
    status, _, body = _request(host, port, "/")
    assert (status, body.strip()) == (401, NEEDS_TOKEN)
    assert _request(host, port, "/", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert _request(host, port, "/s/%2e%2e/%2e%2e/pyproject.toml", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 404
    status, _, body = _request(host, port, "/start/live", "POST", {"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"})
    assert (status, _message(body)) == (403, "A page from http://evil.example may not open sessions here.")
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
               "Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"}
    assert _request(host, port, "/s/anything/ws", headers=upgrade)[0] == 403
    assert sessions(guarded_hub) == {}
    assert TOKEN not in guarded_hub.log()


def test_idle_or_dead_session_gives_its_place_back(browser: sync_api.Browser, guarded_hub: TwinServer) -> None:
    context, page = _open_session(browser, f"{guarded_hub.url}?token={TOKEN}")
    (session, (user, pid, port)), = sessions(guarded_hub).items()
    assert user == "operator" and _alive(pid)
    status, _, body = _request("127.0.0.1", port, "/index.html")  # the app itself answers only the hub
    assert (status, body.strip()) == (401, NEEDS_TOKEN)
    wait_until(lambda: f"session {session} stopped: no input for " in guarded_hub.log(), 15, "the idle session to close (its page left open, untouched)")
    assert not _alive(pid)
    page.reload()
    assert _message(page.content()).startswith("This planner session has ended (it was closed after a time without use")
    context.close()
    context, page = _open_session(browser, f"{guarded_hub.url}?token={TOKEN}")  # the one place is free again
    try:
        (second, (_, pid, _)), = (item for item in sessions(guarded_hub).items() if item[0] != session)
        os.kill(pid, signal.SIGKILL)  # the app dies under the page
        wait_until(lambda: f"session {second} stopped: its app exited on its own" in guarded_hub.log(), 10, "the hub to notice the dead app")
        front = _request(guarded_hub.host, guarded_hub.port, "/", headers={"Authorization": f"Bearer {TOKEN}"})[2]
        assert "0 of 1 sessions in use" in front
    finally:
        context.close()


def test_stopped_hub_stops_its_sessions(guarded_hub: TwinServer) -> None:
    wait_until(lambda: not any(_alive(pid) for _, pid, _ in sessions(guarded_hub).values()), 15, "the earlier sessions to be closed")
    status, headers, _ = _request(guarded_hub.host, guarded_hub.port, "/start/live", "POST", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 303 and re.fullmatch(r"/s/[\w-]{20,}/", headers["Location"])
    session = headers["Location"].split("/")[2]
    pid = sessions(guarded_hub)[session][1]
    assert guarded_hub.stop(timeout=20) == 0  # None: it had to be killed
    assert not _alive(pid)
    assert f"session {session} stopped: the hub is stopping" in guarded_hub.log()


def test_the_pages_heartbeat_is_no_input_but_a_persons_call_is() -> None:
    """Found when the heartbeat came (a page left open calls it every few seconds): the hub must not count it as use, or an
    idle session would never be closed. Messages framed as wslink frames them (msgpack, chunked)."""
    import msgpack
    from aiohttp import WSMessage, WSMsgType
    from wslink.chunking import generate_chunks

    from twin.app.reconnect import HEARTBEAT
    from twin.hub.proxy import is_input

    def frames(method: str, args: list[object]) -> list[WSMessage]:
        packed = msgpack.packb({"wslink": "1.0", "id": "rpc:c0:7", "method": method, "args": args, "kwargs": {}})
        return [WSMessage(WSMsgType.BINARY, chunk, None) for chunk in generate_chunks(packed, 1 << 20)]

    assert [is_input(m) for m in frames("trame.trigger", [HEARTBEAT, [], {}])] == [False]
    assert [is_input(m) for m in frames("trame.trigger", ["twin_set_visible", ["flood", False], {}])] == [True]  # a layer switch
    assert [is_input(m) for m in frames("trame.state.update", [[{"key": "twin_lang", "value": "en"}]])] == [True]  # the language switch
    assert is_input(WSMessage(WSMsgType.BINARY, b"x" * 600 + HEARTBEAT.encode(), None))  # a large message naming it is still input
    assert is_input(WSMessage(WSMsgType.TEXT, '{"method": "trame.trigger", "args": ["twin_focus_alert"]}', None))
