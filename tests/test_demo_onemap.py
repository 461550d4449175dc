"""`twin demo` goes through the real path: pygeoapi on 127.0.0.1 serving the demo district,
a simulator feeding live readings, the viewer pulling through the production source plugins.
(The whole command, ``twin demo --render`` through pygeoapi, runs from an installed wheel in ``tests/test_packaging.py``.)"""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import yaml

import twin
from twin.demo.onemap import OneMapDemo, route_through

REPO = Path(__file__).resolve().parents[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def demo_scene_data() -> dict:
    return yaml.safe_load((REPO / "scenes" / "demo.yaml").read_text(encoding="utf-8"))


def test_route_through_replaces_demo_sources_only() -> None:
    routed = route_through(demo_scene_data(), "http://127.0.0.1:5000/")
    sources = {layer["id"]: layer["source"] for layer in routed["layers"]}
    assert sources["buildings"] == {"type": "ogcapi", "url": "http://127.0.0.1:5000/", "collection": "buildings", "limit": 10_000}
    assert sources["flood"]["type"] == "ogcapi_readings" and sources["flood"]["collection"] == "flood_readings"
    flood = next(layer for layer in routed["layers"] if layer["id"] == "flood")
    assert flood["stations"]["collection"] == "flood_points"
    # everything but the crowd pings (a simulator plugin in its own right: ~4,000 readings a minute) goes through the server
    assert {lid: s["type"] for lid, s in sources.items() if s["type"] not in ("ogcapi", "ogcapi_readings")} == {"crowd": "crowd_sim"}


def test_viewer_pulls_the_district_and_live_readings_from_pygeoapi() -> None:
    onemap = OneMapDemo(n_buildings=2000, feed_seconds=3600)
    with onemap:
        assert onemap.url.startswith("http://127.0.0.1:") and port_open(onemap.port)
        data = demo_scene_data()
        data.pop("time")
        scene = twin.Scene.from_dict(route_through(data, onemap.url))
        now = dt.datetime.now(dt.timezone.utc)
        scene.tick(now)
        assert len(scene["buildings"].data()) == 2000
        assert set(scene["roads"].data()["kind"]) == {"primary", "secondary", "pedestrian"}
        flood = scene["flood"]
        assert flood.health.error is None and len(flood.buffer) > 0
        before = len(flood.buffer)
        later = now + dt.timedelta(minutes=3)
        assert onemap.feed(later) > 0  # the simulator writes new readings into the server
        scene.tick(later)
        assert len(flood.buffer) > before  # ... and the viewer pulls only those
        assert flood.current()["level"].isin(["normal", "warning", "alarm", "stale"]).all()
        port = onemap.port
    assert not port_open(port)  # stopping the demo stops the server
