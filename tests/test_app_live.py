"""Live data in the browser app: ticks, scene time, alerts, replay and a failing source.

Like test_app_browser.py: ``twin serve`` in a subprocess, driven by the Debian headless
Chromium. ``TWIN_TICK_SECONDS=1`` makes the server tick every second (the default is 5 s).
The flood layer is fed by the rain simulator (a storm every 2 minutes, readings every 10 s);
it is deterministic in wall-clock time, and water stands ≥ 20 cm somewhere for about 3/4 of
each cycle, so a firing alert shows within a bounded wait (worst case ~40 s).
A few fast in-process tests cover what needs no browser (tick failures, view mode, fly-to).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browsing import CLOSED_PAGES, chromium, differ, twin_serve, wait_for_changes, wait_for_language, wait_for_view, wait_until
from playwright import sync_api

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DISTRICTS = DATA / "shanghai_districts_gcj02.geojson"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+08:00$")
ALERT_WAIT = 50.0  # s: longer than the dry part of the simulated storm cycle

FLOOD = """\
  - id: flood
    type: flood_points
    title: 积水 Flood
    source: {{type: flood_sim, cycle: 2m, storm: 80s, interval: 10s{seed}}}
    stations: {{type: demo, dataset: flood_points}}
    labels: {labels}
    history: 15m
"""

LIVE_SCENE = """\
version: 1
name: Live flood test
frame: {{crs: auto, center: [121.48, 31.23]}}
cameras:
  overview: {{target: [121.48, 31.232], heading: 0, pitch: 55, range: 7500}}
camera: overview
layers:
{flood}{extra}alerts:
  - {{id: deep, kind: threshold, layer: flood, above: 20, for: 0, severity: critical, title: Deep water}}
"""

FAILING_SCENE = """\
version: 1
name: Failing feed test
frame: {{crs: auto}}
layers:
  - id: districts
    type: vector
    title: 上海各区
    source: {{type: file, path: "{districts}", crs: GCJ02}}
    color_by: name
    palette: tab20
{flood}"""


def _live_scene(folder: Path, *, labels: str = "all", extra: str = "") -> Path:
    path = folder / "live.yaml"
    path.write_text(LIVE_SCENE.format(flood=FLOOD.format(seed="", labels=labels), extra=extra), encoding="utf-8")
    return path


def _failing_scene(folder: Path) -> Path:
    """The flood feed raises on every poll (the simulator is misconfigured: a negative seed)."""
    if not DISTRICTS.is_file():
        pytest.fail(f"test data missing: expected {DISTRICTS.name} in {DATA}")
    path = folder / "failing.yaml"
    flood = FLOOD.format(seed=", seed: -1", labels="alerting")
    path.write_text(FAILING_SCENE.format(districts=DISTRICTS.as_posix(), flood=flood), encoding="utf-8")
    return path


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Both servers (live, failing feed); their URLs once the ports answer. At the end both still run (the tick loop
    did not die), logged no traceback (but wslink's on a page that had just closed), and exit 0 on SIGTERM."""
    env: dict[str, str | None] = {"TWIN_TICK_SECONDS": "1", "TWIN_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "twin-cache")}
    scenes = {"live": _live_scene(tmp_path_factory.mktemp("live")), "failing": _failing_scene(tmp_path_factory.mktemp("failing"))}
    with contextlib.ExitStack() as running:
        yield {name: running.enter_context(twin_serve(scene, tmp_path_factory.mktemp("serve") / f"{name}.log", env=env, strict=True, noise=CLOSED_PAGES))
               for name, scene in scenes.items()}


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def live_page(browser: sync_api.Browser, servers: dict[str, str]) -> Iterator[sync_api.Page]:
    page = _open(browser, servers["live"])
    yield page
    page.close()


def _open(browser: sync_api.Browser, url: str) -> sync_api.Page:
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    page.goto(url)
    page.wait_for_selector("#twin-scene-name", timeout=20_000)
    wait_for_language(page)
    return page


# -- page helpers ------------------------------------------------------------------------------
def _scene_time(page: sync_api.Page) -> dt.datetime:
    text = page.locator("#twin-time").inner_text().strip()
    assert TIME_RE.match(text), f"scene time {text!r} is not YYYY-MM-DD HH:MM:SS +08:00"
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")


def _firing(page: sync_api.Page) -> list[dict[str, object]]:
    """The firing alerts shown: id, depth in cm (from the value text) and whether acknowledged."""
    return page.eval_on_selector_all(
        '.twin-alert[data-state="firing"]',
        """els => els.map(e => ({id: e.dataset.alertId, value: e.querySelector('.twin-alert-value').textContent.trim(),
                                 acked: !!e.querySelector('.twin-alert-acknowledged')}))""",
    )


def _depth(value: object) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?) cm", str(value))
    assert match, f"alert value {value!r} is not a depth like '23 cm'"
    return float(match.group(1))


def _wait_for_firing(page: sync_api.Page) -> list[dict[str, object]]:
    wait_until(lambda: bool(_firing(page)), ALERT_WAIT, "a firing alert in the alerts panel")
    return _firing(page)


def _changed_pixels(a: np.ndarray, b: np.ndarray) -> int:
    """How many pixels changed clearly (:func:`browsing.differ`, level 40) between two pictures of the view."""
    return round(differ(a, b) * a.shape[0] * a.shape[1])


def _settled(page: sync_api.Page) -> np.ndarray:
    """The view's settled picture (two agreeing shots): a reference that a later change is measured against."""
    return wait_for_view(page, lambda _: True, what="a settled picture")


# -- browser tests -----------------------------------------------------------------------------
def test_scene_time_is_shown_and_advances(live_page: sync_api.Page) -> None:
    page = live_page
    assert "LIVE" in page.locator("#twin-time-mode").inner_text()
    first = _scene_time(page)
    assert abs((dt.datetime.now(dt.timezone.utc) - first).total_seconds()) < 30  # the wall clock, not the file
    wait_until(lambda: _scene_time(page) > first, 15, "the scene time to advance")
    assert re.fullmatch(r"data \d+ s old", page.locator('.twin-layer[data-layer-id="flood"] .twin-layer-age').inner_text().strip())
    assert page.locator('.twin-layer[data-layer-id="flood"] .twin-layer-stale').count() == 0


def test_alerts_fire_with_depths_and_the_view_follows_the_data(live_page: sync_api.Page) -> None:
    page = live_page
    firing = _wait_for_firing(page)
    assert all(_depth(a["value"]) >= 20 for a in firing), firing
    assert int(page.locator("#twin-alert-count").inner_text()) >= len(firing)
    assert page.locator(".twin-alert .twin-alert-since").first.inner_text().startswith("since ")
    assert "+08:00" in page.locator(".twin-alert .twin-alert-since").first.inner_text()
    # readings arrive every 10 s while water stands: columns and their labels change
    before = _settled(page)
    wait_for_view(page, lambda px: _changed_pixels(before, px) > 50, 25, settle=False, what="the flood columns changed")


def test_acknowledge_and_fly_to_an_alert(live_page: sync_api.Page) -> None:
    page = live_page
    firing = _wait_for_firing(page)
    target = max(firing, key=lambda a: _depth(a["value"]))  # the deepest: least likely to resolve meanwhile
    card = page.locator(f'.twin-alert[data-alert-id="{target["id"]}"]')
    before = _settled(page)
    card.click()  # fly there
    page.wait_for_selector("#twin-focus", timeout=10_000)
    wait_for_view(page, lambda px: _changed_pixels(before, px) > 5_000, 20, settle=False, what="the camera flown to the alert")
    card.locator(".twin-alert-ack").click()
    wait_until(lambda: "acknowledged" in page.locator("#twin-events").inner_text(), 10, "the acknowledgement in the event log")
    if card.count():  # unless the water dropped below 20 cm meanwhile (then the alert closed)
        card.locator(".twin-alert-acknowledged").wait_for(timeout=5_000)
        assert card.locator(".twin-alert-ack").count() == 0


def test_replay_pauses_and_live_resumes(live_page: sync_api.Page) -> None:
    page = live_page
    live_time = _scene_time(page)
    page.locator(".twin-replay .v-slider-thumb").focus()
    page.keyboard.press("Home")  # the oldest moment kept: 15 minutes ago
    wait_until(lambda: "REPLAY" in page.locator("#twin-time-mode").inner_text(), 10, "replay mode")
    wait_until(lambda: (live_time - _scene_time(page)).total_seconds() > 600, 10, "the scene time to go back ~15 min")
    replay_time = _scene_time(page)
    assert "−" in page.locator("#twin-replay-offset").inner_text()
    age = page.locator('.twin-layer[data-layer-id="flood"] .twin-layer-age')
    wait_for_changes(age.inner_text, 2, 15, "the flood layer's data age")  # ticks keep coming, but replay does not follow the clock
    assert _scene_time(page) == replay_time
    page.locator("#twin-live-btn").click()
    wait_until(lambda: "LIVE" in page.locator("#twin-time-mode").inner_text(), 10, "live mode")
    resumed = _scene_time(page)
    assert resumed >= live_time
    wait_until(lambda: _scene_time(page) > resumed, 15, "the scene time to advance again")


def test_failing_feed_shows_a_stale_chip_and_the_rest(browser: sync_api.Browser, servers: dict[str, str]) -> None:
    page = _open(browser, servers["failing"])
    try:
        chip = page.locator('.twin-layer[data-layer-id="flood"] .twin-layer-stale')
        chip.wait_for(timeout=10_000)
        assert chip.get_attribute("data-error") == "1"
        tip = chip.get_attribute("title") or ""
        assert "simulated flood readings" in tip and "seed" in tip, tip
        assert page.locator('.twin-layer[data-layer-id="flood"] .twin-layer-error').count() == 0  # still drawn
        assert page.locator('.twin-layer[data-layer-id="districts"] .twin-layer-stale').count() == 0
        assert page.locator(".twin-error-badge").count() == 0
        css = page.eval_on_selector_all('#twin-legend [data-layer-id="districts"] .twin-swatch',
                                        "els => els.map(e => getComputedStyle(e).backgroundColor)")
        colors = [tuple(int(float(v)) for v in c[c.index("(") + 1 : c.index(")")].split(",")[:3]) for c in css]
        assert len(colors) >= 16

        def districts_shown(pixels: np.ndarray) -> bool:
            return sum(int((np.abs(pixels - np.array(c, dtype=np.int16)).max(axis=2) <= 14).sum() >= 40) for c in colors) >= 8

        wait_for_view(page, districts_shown, 30, settle=False, what="the district colours")
        first = _scene_time(page)
        wait_until(lambda: _scene_time(page) > first, 15, "ticks to go on while the feed fails")
    finally:
        page.close()


# -- in-process tests (no browser) -------------------------------------------------------------
@pytest.fixture()
def live_scene_file(tmp_path: Path) -> Path:
    return _live_scene(tmp_path)


def test_a_failing_tick_is_logged_and_later_ticks_run(live_scene_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    from twin.app.server import TwinApp
    from twin.scene.model import Scene

    scene = Scene.from_file(live_scene_file)
    app = TwinApp(scene, view_mode="remote", tick_seconds=1)
    try:
        assert app.ticks == 1 and app.state.twin_time_text  # polled before the first picture
        real_tick = app.session.tick
        calls = {"n": 0}

        def flaky(now: dt.datetime | None = None) -> list[object]:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("feed exploded")
            return real_tick(now)

        app.session.tick = flaky  # type: ignore[method-assign]
        with caplog.at_level(logging.ERROR, logger="twin.app.server"):
            assert app.on_timer() is False
        assert "feed exploded" in caplog.text and "feed exploded" in app.state.twin_tick_error
        assert app.on_timer() is True and app.ticks == 2 and app.state.twin_tick_error == ""
    finally:
        app.view.close()


def test_auto_view_mode_is_remote_when_layers_draw_labels(tmp_path: Path) -> None:
    from twin.app.server import TwinApp
    from twin.scene.model import Scene

    labelled = TwinApp(Scene.from_file(_live_scene(tmp_path)), view_mode="auto")
    quiet_dir = tmp_path / "quiet"
    quiet_dir.mkdir()
    quiet = TwinApp(Scene.from_file(_live_scene(quiet_dir, labels="none")), view_mode="auto")
    try:
        assert labelled.view_mode == "remote"
        assert quiet.view_mode == "local"
    finally:
        labelled.view.close()
        quiet.view.close()


def test_focus_flies_800_m_keeping_the_direction_and_lists_help(tmp_path: Path) -> None:
    import geopandas as gpd
    import shapely

    from twin.app.server import TwinApp
    from twin.live import LiveSnapshot
    from twin.scene.model import Scene

    pumps = gpd.GeoDataFrame({"name": ["泵车1", "泵车2"], "kind": ["pump", "pump"]},
                             geometry=[shapely.Point(121.4910, 31.2300), shapely.Point(121.60, 31.23)], crs="EPSG:4326")
    pumps.to_file(tmp_path / "pumps.geojson", driver="GeoJSON")
    extra = "  - {id: resources, type: vector, title: 抢险资源, source: {type: file, path: pumps.geojson}}\n"
    scene = Scene.from_file(_live_scene(tmp_path, extra=extra))
    app = TwinApp(scene, view_mode="remote", tick_seconds=1)
    try:
        camera = app.view.renderer.GetActiveCamera()
        direction = np.subtract(camera.GetFocalPoint(), camera.GetPosition())
        direction /= np.linalg.norm(direction)
        now = dt.datetime.now(dt.timezone.utc)
        table = pd.DataFrame({"value": [31.0], "lon": [121.48], "lat": [31.23], "time": [now], "name": ["测试点"]}, index=["T1"])
        scene.alert_engine.evaluate({"flood": LiveSnapshot("flood", table, now)}, now)
        app.alerts.refresh(now)
        row = next(a for a in app.state.twin_alerts if a["key"] == "T1")
        assert row["value"] == "31 cm" and row["state"] == "firing" and row["since"].endswith("+08:00")
        app.alerts.focus(row["id"])
        target = scene.frame.lonlat_to_local([121.48], [31.23])[0]
        assert np.allclose(camera.GetFocalPoint(), target, atol=1e-3)
        assert camera.GetDistance() == pytest.approx(800.0, rel=1e-6)
        new_direction = np.subtract(camera.GetFocalPoint(), camera.GetPosition()) / camera.GetDistance()
        assert np.allclose(new_direction, direction, atol=1e-6)
        focus = app.state.twin_focus
        assert focus["has_resources"] and [r["name"] for r in focus["resources"]] == ["泵车1"]
        assert focus["resources"][0]["distance"].endswith(" m")
        help_layer = app.view.overlays["help_within_reach"]  # highlighted by the view, not in the scene: the 3 km circle and the pump
        assert "help_within_reach" not in [layer.id for layer in scene.layers]
        assert help_layer.data()["kind"].tolist() == ["reach", "pump"] and help_layer.data()["name"].tolist()[1] == "泵车1"
        assert app.view.triangle_count() > 0 and "help_within_reach" not in app.view.errors
        app.alerts.acknowledge(row["id"])
        acked = next(a for a in app.state.twin_alerts if a["id"] == row["id"])
        assert acked["acknowledged"] and acked["acknowledged_by"] == "operator"
        assert app.state.twin_events[0]["kind"] == "acknowledged"
    finally:
        app.view.close()
