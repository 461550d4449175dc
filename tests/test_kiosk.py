"""The command-hall wall in headless Chromium: ``twin serve --kiosk`` started by the test, fed through the one-map path.

The one-map service is a real pygeoapi on 127.0.0.1 serving gauge readings from a TinyDB file
(as the district's service does); an alert is injected by writing a reading past the threshold
into it. The server ticks every second (``TWIN_TICK_SECONDS=1``); the wall's tour and alerts use
seconds-long dwells, flights and ``resume_after`` so the file runs in about two minutes.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browsing import CLOSED_PAGES, KIOSK_OVERLAYS, block_means, chromium, differ, start_twin, view_pixels, wait_until, without
from playwright import sync_api
from servers import ServerProcess, feature_collection, start_pygeoapi

from twin.scene.camera import preset_pose
from twin.scene.model import Scene

TICK_S = 1.0
RESUME_S = 6.0
FLIGHT_S = 2.0
GAUGES = {"G1": (121.488, 31.236), "G2": (121.475, 31.226), "G3": (121.462, 31.215), "G4": (121.500, 31.222)}

SCENE = """\
version: 1
name: 墙面测试 Wall test
frame: {{crs: auto, center: [121.47, 31.23]}}
settings: {{title: 城市运行 · 墙面测试}}
cameras:
  city: {{target: [121.45, 31.2], heading: 0, pitch: 70, range: 60000}}
  bund: {{target: [121.485, 31.235], heading: 60, pitch: 45, range: 9000}}
  east: {{target: [121.62, 31.18], heading: 200, pitch: 55, range: 30000}}
camera: city
tours:
  patrol:
    - {{camera: city, dwell: 4s}}
    - {{camera: bund, dwell: 4s, flight: 2s}}
    - {{camera: east, dwell: 4s, flight: 2s}}
layers:
  - id: districts
    type: vector
    title: 上海各区
    source: {{type: file, path: "{districts}", crs: GCJ02}}
    color_by: name
    palette: tab20
    outline_color: white
  - id: gauges
    type: flood_points
    title: 积水监测
    source: {{type: ogcapi_readings, url: "{onemap}", collection: gauges, time_property: time, value_property: value,
              sensor_property: sensor_id, poll_interval: 1s, timeout: 10}}
    stale_after: 10m
alerts:
  - {{id: deep, kind: threshold, layer: gauges, above: 20, for: 0, severity: critical, title: 积水过深}}
wall:
  tour: patrol
  resume_after: {resume:g}s
  flight: {flight:g}s
  range: 3000
"""


# -- the one-map service -------------------------------------------------------------------------
class OneMap:
    """pygeoapi serving gauge readings from a TinyDB file that the test writes (atomically, as a feeder does)."""

    def __init__(self, workdir: Path) -> None:
        self.db = workdir / "gauges.tinydb"
        self.readings: list[dict[str, object]] = []
        stamp = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=30)
        for sensor in GAUGES:
            self.add(sensor, 5.0, stamp)
        provider = {"name": "TinyDB", "data": str(self.db), "id_field": "id", "time_field": "time"}
        self.server: ServerProcess = start_pygeoapi(workdir, {"gauges": feature_collection("gauges", provider)})

    def add(self, sensor: str, value: float, when: dt.datetime | None = None) -> None:
        """A reading of ``sensor`` (cm) at ``when`` (default: now), written to the service at once."""
        stamp = (when or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lon, lat = GAUGES[sensor]
        self.readings.append({"type": "Feature", "id": f"{sensor}-{stamp}", "geometry": {"type": "Point", "coordinates": [lon, lat]},
                              "properties": {"sensor_id": sensor, "time": stamp, "value": value}})
        tmp = self.db.with_suffix(".tmp")
        tmp.write_text(json.dumps({"_default": {str(i + 1): f for i, f in enumerate(self.readings)}}), encoding="utf-8")
        os.replace(tmp, self.db)


@pytest.fixture(scope="module")
def onemap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OneMap]:
    service = OneMap(tmp_path_factory.mktemp("onemap"))
    try:
        yield service
    finally:
        service.server.stop()


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory: pytest.TempPathFactory, onemap: OneMap, shared_data: Path) -> Path:
    path = tmp_path_factory.mktemp("wall") / "wall.yaml"
    path.write_text(SCENE.format(districts=(shared_data / "shanghai_districts_gcj02.geojson").as_posix(), onemap=onemap.server.url,
                                 resume=RESUME_S, flight=FLIGHT_S), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def wall_url(scene_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``twin serve SCENE --kiosk`` (remote view, a tick a second); at the end it still runs and logged no traceback."""
    server = start_twin(scene_file, tmp_path_factory.mktemp("serve") / "serve.log", kiosk=True, env={"TWIN_TICK_SECONDS": f"{TICK_S:g}"})
    try:
        yield server.url
        assert server.process.poll() is None, server.log()
        assert "Traceback" not in without(server.log(), *CLOSED_PAGES), server.log()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with chromium() as launched:
        yield launched


# -- page helpers --------------------------------------------------------------------------------
# When the page's state first showed each alert firing (the alert list) and on the banner, and each change of the wall's mode
# (epoch seconds, the machine's clock): the page's own timeline, free of the test's polling delays.
# And the wall's still images: trame-vtk's remote view shows each image the server sends as an <img> over its transparent
# canvas, its src a blob: URL new for every image (the Blob is typed image/jpeg whatever it holds). Frames in flight are VTK's
# JPEGs; the still at rest is a WebP (twin.app.remote_view.BudgetStills), found here by its bytes ("RIFF....WEBP"). Its size
# tells nothing: every page gets the size the page that asked last wants (an operator's page makes the wall's stills its size).
# ``shown``: images the view showed so far; ``still``: the number of the latest WebP among them; ``flightAt``: ``shown`` when
# the latest flight began (a still numbered above it came after that flight).
RECORDER = """() => {
  const log = window.twinLog = {firing: {}, banner: {}, modes: [], src: "", shown: 0, still: 0, flightAt: 0, flying: false};
  window.setInterval(() => {
    const state = window.trame && window.trame.state;
    if (!state) return;
    const now = Date.now() / 1000, hall = state.get("twin_hall") || {};
    for (const a of state.get("twin_alerts") || []) if (a.state === "firing" && !(a.id in log.firing)) log.firing[a.id] = now;
    if (hall.banner && !(hall.banner.id in log.banner)) log.banner[hall.banner.id] = now;
    if (!log.modes.length || log.modes[log.modes.length - 1][0] !== hall.mode) log.modes.push([hall.mode, now]);
    if (hall.flying && !log.flying) log.flightAt = log.shown;
    log.flying = !!hall.flying;
    const view = document.querySelector("#twin-view");
    const image = view && [...view.querySelectorAll("img")].filter((i) => i.complete && i.naturalWidth > 1).pop();
    if (!image || image.src === log.src) return;
    const src = log.src = image.src, number = log.shown += 1;
    fetch(src).then((r) => r.arrayBuffer()).then((bytes) => {
      if (bytes.byteLength > 12 && new TextDecoder().decode(new Uint8Array(bytes, 8, 4)) === "WEBP") log.still = Math.max(log.still, number);
    }).catch(() => {});  // revoked meanwhile: a later image is shown
  }, 25);
}"""


def _open(browser: sync_api.Browser, url: str, width: int = 1280, height: int = 720) -> sync_api.Page:
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.wait_for_selector("#twin-kiosk[data-mode]:not([data-mode=''])", timeout=30_000)
    page.evaluate(RECORDER)
    return page


def _close(page: sync_api.Page) -> None:
    """Leave the page as a person does (its connection closes, no request left waiting), then close it."""
    page.evaluate("window.clearInterval(window.twinKioskAlive)")
    page.goto("about:blank")
    page.close()


def _hall(page: sync_api.Page) -> dict[str, str]:
    """What the page says the wall shows: ``mode``, ``camera``, ``stop``, ``pose`` (at rest), ``flying``."""
    return page.eval_on_selector("#twin-kiosk", "e => ({...e.dataset})")


def _view(page: sync_api.Page) -> np.ndarray:
    """The 3D view's pixels, the wall's overlays painted black."""
    return view_pixels(page, KIOSK_OVERLAYS)


def _colours(pixels: np.ndarray) -> int:
    """Distinct colours in a view (16 levels a channel): a drawn scene has many, an empty view a few."""
    quantized = (pixels[::2, ::2] // 16).reshape(-1, 3)
    return len(np.unique(quantized[:, 0] * 256 + quantized[:, 1] * 16 + quantized[:, 2]))


def _focal(pose: str) -> tuple[float, ...]:
    return tuple(float(v) for v in pose.split("|")[1].split(","))


def _position(pose: str) -> tuple[float, ...]:
    return tuple(float(v) for v in pose.split("|")[0].split(","))


STILL_S = 10.0
"""How long a rest's still image may take after the page's state says the wall rests (its WebP encode on a loaded machine)."""


def _rest(page: sync_api.Page, camera: str | None = None, timeout: float = 20.0) -> dict[str, str]:
    """Wait until the wall rests (a dwell) at ``camera`` (any when None) and the page shows the rest's still image (a WebP that
    came after the flight there began: :data:`RECORDER`); what the page says then."""
    wait_until(lambda: (h := _hall(page))["flying"] == "0" and h["pose"] != "" and camera in (None, h["camera"]), timeout, f"a rest at {camera or 'a stop'}")
    try:
        wait_until(lambda: page.evaluate("(log => log.still > log.flightAt)(window.twinLog)"), STILL_S,
                   f"the still image of the rest at {camera or 'a stop'}", every=0.05)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the page shows {_images(page)}") from None
    return _hall(page)


def _images(page: sync_api.Page) -> dict[str, object]:
    """What the view shows: its box, its images (the end of their URL, their size) and the recorder's counts (for a failure's message)."""
    return page.evaluate("""() => { const view = document.querySelector("#twin-view"), box = view.getBoundingClientRect(), log = window.twinLog;
        return {box: [box.width, box.height], images: [...view.querySelectorAll("img")].map((i) => [i.src.slice(-8), i.naturalWidth, i.naturalHeight, i.complete]),
                shown: log.shown, still: log.still, flightAt: log.flightAt}; }""")


# -- tests ---------------------------------------------------------------------------------------
def test_the_kiosk_fills_a_4k_page_and_reads_from_across_the_hall(browser: sync_api.Browser, wall_url: str) -> None:
    page = _open(browser, wall_url, 3840, 2160)
    try:
        page.wait_for_selector("#twin-kiosk-sources .twin-kiosk-source", timeout=20_000)
        page.wait_for_selector(".twin-legend .twin-legend-row", timeout=20_000)
        box = page.locator("#twin-view").bounding_box()
        assert box is not None and box["width"] * box["height"] >= 0.95 * 3840 * 2160
        assert not page.locator(".v-app-bar").is_visible() and not page.locator("#twin-layers").is_visible()  # no chrome
        sizes = page.evaluate("""() => [...document.querySelectorAll('#twin-kiosk *, .twin-legend *')]
            .filter(e => e.offsetParent !== null && [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()))
            .map(e => [e.textContent.trim().slice(0, 40), parseFloat(getComputedStyle(e).fontSize)])""")
        texts = " ".join(text for text, _ in sizes)
        assert len(sizes) >= 12 and min(size for _, size in sizes) >= 24, sorted(sizes, key=lambda s: s[1])[:5]
        for shown in ("城市运行 · 墙面测试", "积水监测", "上海各区", "黄浦区", "巡视 patrol", "当前告警"):  # title, live source, legend, tour (Chinese)
            assert shown in texts, shown
        clock = page.locator("#twin-kiosk-clock").inner_text()
        assert len(clock) == 8 and clock[2] == ":" and clock[5] == ":"
        assert page.evaluate("document.fonts.check('32px \"Noto Sans CJK SC\"', '墙面测试')")  # a CJK font is there
    finally:
        _close(page)


def test_the_tour_visits_its_stops_in_order(browser: sync_api.Browser, wall_url: str, scene_file: Path) -> None:
    scene = Scene.from_file(scene_file)
    page = _open(browser, wall_url)
    try:
        rests: list[tuple[str, np.ndarray]] = []
        flying_seen = False
        deadline = time.monotonic() + 40
        while len(rests) < 4 and time.monotonic() < deadline:
            hall = _hall(page)
            if hall["mode"] == "tour" and hall["flying"] == "1":
                flying_seen = True
            elif hall["mode"] == "tour" and hall["pose"] and (not rests or rests[-1][0] != hall["camera"]) and flying_seen:
                hall = _rest(page, hall["camera"])
                expected = preset_pose(scene.cameras[hall["camera"]], scene.frame)
                assert math.dist(_position(hall["pose"]), expected.position) < 1.0, hall  # the camera the page reports is the stop's
                assert math.dist(_focal(hall["pose"]), expected.focal_point) < 1.0, hall
                rests.append((hall["camera"], _view(page)))
                assert _colours(rests[-1][1]) > 40, hall
                flying_seen = False
            time.sleep(0.1)
        names = [name for name, _ in rests]
        assert len(names) == 4, names
        order = ["city", "bund", "east"]
        start = order.index(names[0])
        assert names == [order[(start + i) % 3] for i in range(4)]  # in order, and round again
        for (a, pixels_a), (b, pixels_b) in itertools.pairwise(rests):
            assert differ(pixels_a, pixels_b) > 0.05, (a, b)  # the view changed at the dwell boundary
    finally:
        _close(page)


def test_an_alert_shows_its_banner_within_a_tick_flies_to_it_and_the_tour_resumes(browser: sync_api.Browser, wall_url: str, onemap: OneMap,
                                                                                 scene_file: Path) -> None:
    scene = Scene.from_file(scene_file)
    page = _open(browser, wall_url)
    try:
        _rest(page)
        before = _view(page)
        written = time.time()  # the reading exists from here on: the server cannot show its alert any earlier
        onemap.add("G2", 35.0)
        wait_until(lambda: page.locator("#twin-kiosk-banner").is_visible(), 20, "the alert banner")
        alert_id = page.get_attribute("#twin-kiosk-banner", "data-alert-id")
        wait_until(lambda: alert_id in page.evaluate("window.twinLog.firing"), 5, "the alert in the alert list")
        log = page.evaluate("window.twinLog")
        assert log["banner"][alert_id] - log["firing"][alert_id] <= TICK_S  # the banner comes with the tick that fired the alert
        banner = page.locator("#twin-kiosk-banner").inner_text()
        assert "积水过深" in banner and "35 cm" in banner and "G2" in banner, banner
        paused = _hall(page)
        assert paused["mode"] == "alert" and paused["camera"] == "alert"
        hall = _rest(page, "alert", timeout=FLIGHT_S + 3)
        x, y, _ = scene.frame.lonlat_to_local([GAUGES["G2"][0]], [GAUGES["G2"][1]])[0]
        assert math.dist(_focal(hall["pose"])[:2], (x, y)) < 2.0, hall  # the camera looks at the gauge
        assert math.dist(_position(hall["pose"]), _focal(hall["pose"])) == pytest.approx(3000.0, abs=2.0)
        at_alert = _view(page)
        assert differ(before, at_alert) > 0.05 and _colours(at_alert) > 40  # another picture, and a picture
        wait_until(lambda: _hall(page)["mode"] == "tour", RESUME_S + 4, "the tour to resume")
        modes = page.evaluate("window.twinLog.modes")
        (alerting, shown), (resumed, back) = modes[-2:]
        assert (alerting, resumed) == ("alert", "tour"), modes
        # resume_after runs from when the server showed the banner: after the reading was written, and before the page saw the banner
        # (a loaded page sees each change late, by up to seconds). So the tour resumed no sooner than resume_after after the reading,
        # and within resume_after (and a late page's slack) of the page seeing the banner.
        assert written + RESUME_S <= back <= shown + RESUME_S + 2.0, (written, modes)
        assert _hall(page)["stop"] == paused["stop"] and not page.locator("#twin-kiosk-banner").is_visible()  # back to the stop it paused at
    finally:
        _close(page)


def _operator_cannot_steer(wall: sync_api.Page, operator: sync_api.Page) -> None:
    """The operator drags and wheels in its view: the wall stays on its stop, its camera and picture unchanged."""
    hall = _hall(_wait_rest_start(wall))
    before = _view(wall)
    box = operator.locator("#twin-view").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    operator.mouse.move(x, y)
    operator.mouse.down()
    for step in range(1, 9):
        operator.mouse.move(x + 30 * step, y + 12 * step)
    operator.mouse.up()
    operator.mouse.wheel(0, -600)
    time.sleep(0.8)
    after = _hall(wall)
    assert (after["camera"], after["pose"]) == (hall["camera"], hall["pose"]), (hall, after)  # the same stop, the camera where it was
    # and the same picture: compared on 8x8-pixel block means, so that the image codec's noise and a live tick's small marks between
    # the two shots do not count, while a camera the drag or wheel had moved would change most blocks
    assert differ(block_means(before), block_means(_view(wall))) < 0.05


def _wait_rest_start(page: sync_api.Page) -> sync_api.Page:
    """Wait for the start of a dwell (a flight just ended, its still shown), so a check fits in it; the page."""
    wait_until(lambda: _hall(page)["flying"] == "1", 20, "a flight")
    _rest(page)
    return page


def test_two_kiosk_pages_show_one_hall_and_an_operator_acknowledges_for_the_wall(browser: sync_api.Browser, wall_url: str, onemap: OneMap) -> None:
    """An operator's explorer page (``?kiosk=0``) follows the wall: its drags and wheel leave the wall's camera and picture as
    they are, and its acknowledgement resumes the wall's tour."""
    walls = [_open(browser, wall_url, 960, 540) for _ in range(2)]
    operator = browser.new_page(viewport={"width": 1400, "height": 800})
    try:
        operator.goto(wall_url + "?kiosk=0")
        operator.wait_for_selector("#twin-layers", timeout=30_000)
        assert operator.locator("#twin-layers").is_visible() and not operator.locator("#twin-kiosk").is_visible()  # the explorer, on the same server
        operator.locator("#twin-follow-note").wait_for(timeout=10_000)  # it says it follows the wall, and offers no camera presets
        assert not operator.locator(".twin-camera").is_visible()
        _rest(walls[0])
        assert _hall(walls[0]) == _hall(walls[1])  # the same stop, the same camera
        _operator_cannot_steer(walls[0], operator)
        onemap.add("G3", 42.0)
        for page in walls:
            page.wait_for_selector("#twin-kiosk-banner", timeout=10_000)
        ids = [page.get_attribute("#twin-kiosk-banner", "data-alert-id") for page in walls]
        assert ids[0] == ids[1] and walls[0].locator("#twin-kiosk-banner").inner_text() == walls[1].locator("#twin-kiosk-banner").inner_text()
        assert "42 cm" in walls[0].locator("#twin-kiosk-banner").inner_text()
        if not operator.locator("#twin-alerts").is_visible():
            operator.locator("#twin-alerts-toggle").click()
        card = operator.locator(f'.twin-alert[data-alert-id="{ids[0]}"]')
        card.locator(".twin-alert-ack").click()
        for page in walls:
            wait_until(lambda page=page: _hall(page)["mode"] == "tour", RESUME_S + 5, "the wall to follow the acknowledgement")
            (alerting, shown), (resumed, back) = page.evaluate("window.twinLog.modes")[-2:]
            assert (alerting, resumed) == ("alert", "tour") and back - shown < RESUME_S - 2  # on the acknowledgement, before resume_after
        assert not any(page.locator("#twin-kiosk-banner").is_visible() for page in walls)
    finally:
        for page in (*walls, operator):
            _close(page)


def test_a_plain_server_runs_the_wall_only_while_a_kiosk_page_is_open(scene_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``?kiosk=1`` on a plain ``twin serve``: the page's reports (every 5 s) start the hall; without them it stops
    and gives the layers and camera back (in-process, no browser)."""
    from twin.app import kiosk
    from twin.app.server import TwinApp

    scene = Scene.from_file(scene_file)
    scene.alerts = []  # the tour alone (the gauges other tests flooded stay flooded)
    app = TwinApp(scene, view_mode="remote", kiosk=False)
    clock = [1000.0]
    monkeypatch.setattr(kiosk.time, "monotonic", lambda: clock[0])
    try:
        app.kiosk.step()
        assert app.state.twin_hall["active"] is False and app.kiosk.hall is None  # planners' pages only: no tour
        app.kiosk.alive()
        app.kiosk.step()
        assert app.state.twin_hall["active"] and app.state.twin_hall["camera"] == "city"
        clock[0] += 7.0
        app.kiosk.step()
        assert app.state.twin_hall["camera"] == "bund"  # the tour goes on (4 s dwell, 2 s flight)
        clock[0] += kiosk.ALIVE_S
        app.kiosk.step()
        assert app.state.twin_hall["active"] is False and app.kiosk.hall is None
    finally:
        app.view.close()


def _drag(interactor: object) -> None:
    """A mouse drag and a wheel step, as trame-vtk hands a remote page's mouse to the view's interactor."""
    interactor.SetEventInformation(200, 200)  # type: ignore[attr-defined]
    interactor.LeftButtonPressEvent()  # type: ignore[attr-defined]
    for step in range(1, 10):
        interactor.SetEventInformation(200 + 25 * step, 200 + 10 * step)  # type: ignore[attr-defined]
        interactor.MouseMoveEvent()  # type: ignore[attr-defined]
    interactor.LeftButtonReleaseEvent()  # type: ignore[attr-defined]
    interactor.MouseWheelForwardEvent()  # type: ignore[attr-defined]


def test_the_running_wall_holds_the_shared_camera_and_gives_it_back(scene_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whichever page sends them (the server cannot tell), mouse drags and the wheel do not move the wall's camera, and a preset
    chosen on another page is taken back at the wall's next step; once the wall stops, drags move the camera again (in-process)."""
    from twin.app import kiosk
    from twin.app.server import TwinApp

    scene = Scene.from_file(scene_file)
    scene.alerts = []
    app = TwinApp(scene, view_mode="remote", kiosk=False)
    clock = [1000.0]
    monkeypatch.setattr(kiosk.time, "monotonic", lambda: clock[0])
    camera, interactor = app.view.renderer.GetActiveCamera(), app.view.window.GetInteractor()
    interactor.Enable()
    try:
        app.kiosk.alive()
        app.kiosk.step()
        stop = preset_pose(scene.cameras[app.state.twin_hall["camera"]], scene.frame)
        assert math.dist(camera.GetPosition(), stop.position) < 1.0
        _drag(interactor)
        assert math.dist(camera.GetPosition(), stop.position) < 1.0 and math.dist(camera.GetFocalPoint(), stop.focal_point) < 1.0
        other = next(name for name in scene.cameras if name != app.state.twin_hall["camera"])
        app.session.set_camera(other)
        assert math.dist(camera.GetPosition(), stop.position) > 100.0  # another page's preset moved the shared camera
        app.kiosk.step()
        assert math.dist(camera.GetPosition(), stop.position) < 1.0  # the wall took it back
        clock[0] += kiosk.ALIVE_S + 1
        app.kiosk.step()  # no kiosk page any more: the wall stops
        assert app.kiosk.hall is None
        before = camera.GetPosition()
        _drag(interactor)
        assert math.dist(camera.GetPosition(), before) > 1.0  # the page's mouse moves the camera again
    finally:
        app.view.close()
