"""The app on its Session, in-process (no browser): a frozen one-map server never holds the page,
focusing an alert leaves the scene as it was, and the app stays a set of small components.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from twin.app.server import TwinApp
from twin.scene.model import Scene

APP_DIR = Path(__file__).resolve().parents[1] / "twin" / "app"


class _OneMap(http.server.ThreadingHTTPServer):
    """An OGC API that answers with no readings until ``frozen`` is set, then holds every request until ``release``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.frozen, self.waiting, self.release = threading.Event(), threading.Event(), threading.Event()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _OneMap

    def do_GET(self) -> None:
        if self.server.frozen.is_set():
            self.server.waiting.set()
            self.server.release.wait(30)
        body = json.dumps({"type": "FeatureCollection", "features": [], "links": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/geo+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture()
def onemap() -> Iterator[_OneMap]:
    server = _OneMap()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def test_a_frozen_onemap_server_does_not_hold_the_page(tmp_path: Path, onemap: _OneMap) -> None:
    """While a poll waits on a server that stopped answering, a user's action is answered within a second."""
    url = f"http://127.0.0.1:{onemap.server_address[1]}/"
    scene = tmp_path / "frozen.yaml"
    scene.write_text(
        "version: 1\nname: Frozen feed\nframe: {crs: auto, center: [121.48, 31.23]}\nlayers:\n"
        "  - {id: boundary, type: vector, source: {type: demo, dataset: boundary}}\n"
        f"  - {{id: gauges, type: flood_points, source: {{type: ogcapi_readings, url: '{url}', collection: gauges, timeout: 20, retries: 0}}}}\n",
        encoding="utf-8",
    )
    app = TwinApp(Scene.from_file(scene), view_mode="remote", tick_seconds=0.2)
    try:
        assert app.ticks == 1
        onemap.frozen.set()

        async def scenario() -> float:
            app._start_live()  # what the server does once it listens: the session ticks in its own thread
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, onemap.waiting.wait, 10), "the session never polled the frozen server"
            await asyncio.sleep(0.5)  # the poll is now waiting on the server
            started = time.monotonic()
            done = loop.create_future()
            loop.call_soon(lambda: (app.ctrl.twin_set_visible("boundary", False), done.set_result(time.monotonic())))  # a click
            answered = await asyncio.wait_for(done, 5)
            return answered - started

        took = asyncio.run(scenario())
        assert took < 1.0, f"a UI action waited {took:.1f} s behind the poll"
        assert not onemap.release.is_set()  # the poll was still waiting
        assert app.state.twin_layers[0] == {"id": "boundary", "title": "boundary", "titles": {"zh_CN": "boundary", "en": "boundary"}, "visible": False,
                                            "opacity": 1.0, "error": ""}
    finally:
        onemap.release.set()
        app._stop_live()
        app.view.close()


def test_scene_file_round_trips_after_an_alert_was_focused_with_help_within_reach(tmp_path: Path) -> None:
    text = (
        "version: 1\nname: Focus test\nframe: {crs: auto, center: [121.48, 31.23]}\nsettings: {title: 示范区}\n"
        "layers:\n"
        "  - {id: flood, type: flood_points, source: {type: flood_sim, cycle: 2m, storm: 80s, interval: 10s}, "
        "stations: {type: demo, dataset: flood_points}, history: 15m}\n"
        "  - {id: resources, type: vector, source: {type: demo, dataset: resources}}\n"
        "alerts:\n  - {id: deep, kind: threshold, layer: flood, above: 20, for: 0}\n"
    )
    path = tmp_path / "focus.yaml"
    path.write_text(text, encoding="utf-8")
    scene = Scene.from_file(path)
    app = TwinApp(scene, view_mode="remote", tick_seconds=1)
    try:
        start = dt.datetime.now(dt.timezone.utc)  # after the first tick (the clock), which the app made
        for i in range(60):  # up to 2.5 storm cycles: stop while water stands deep (it drains in the dry part)
            app.on_timer(start + dt.timedelta(seconds=5 * i))
            if any(a["state"] == "firing" for a in app.state.twin_alerts):
                break
        row = next(a for a in app.state.twin_alerts if a["state"] == "firing")
        app.alerts.focus(row["id"])
        assert app.state.twin_focus["resources"], "no help within reach of the alert"
        assert app.view.overlays["help_within_reach"].data()["kind"].iloc[0] == "reach"
        assert app.state.twin_scene_title == "示范区" and scene.settings.title == "示范区" and scene.settings.show_legend
        assert [layer.id for layer in scene.layers] == ["flood", "resources"]
        saved = Scene.from_file(scene.to_file(tmp_path / "saved.yaml"))
        assert saved.to_dict() == scene.to_dict() and saved.settings.title == "示范区"
    finally:
        app.view.close()


def test_the_app_is_small_components() -> None:
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in APP_DIR.glob("*.py")}
    assert sizes["server.py"] <= 200, sizes
    assert max(sizes.values()) <= 300, sizes
    assert (APP_DIR / "static" / "twin.css").is_file()
