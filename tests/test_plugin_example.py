"""The example third-party plugin package (examples/twin-plugin-example) is found through its
entry point alone and used from a scene file, against a local HTTP server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import twin

FEATURES = {
    "type": "FeatureCollection",
    "features": [
        {"type": "Feature", "properties": {"name": "移动泵车 1", "kind": "pump"}, "geometry": {"type": "Point", "coordinates": [121.478, 31.232]}},
        {"type": "Feature", "properties": {"name": "抢险队 A", "kind": "rescue_team"}, "geometry": {"type": "Point", "coordinates": [121.485, 31.228]}},
    ],
}


class _Handler(BaseHTTPRequestHandler):
    seen_auth: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802
        _Handler.seen_auth.append(self.headers.get("Authorization"))
        body = json.dumps(FEATURES).encode()
        self.send_response(200 if self.path == "/pumps.geojson" else 404)
        self.send_header("Content-Type", "application/geo+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_entry_point_comes_from_the_example_distribution() -> None:
    found = {ep.name: ep for ep in entry_points(group="twin.sources")}
    assert "geojson_url" in found, "run scripts/setup.sh: it installs examples/twin-plugin-example"
    assert found["geojson_url"].dist.name == "twin-plugin-example"
    code = "import sys, twin.plugins as p; print('geojson_url' in p.source_types().names(), 'twin_example_plugin' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]  # listed, not imported


def test_used_from_a_scene_file(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUMPS_TOKEN", "s3cret-value")
    path = tmp_path / "scene.yaml"
    path.write_text(
        f"version: 1\nlayers:\n  - id: pumps\n    type: vector\n    source: {{type: geojson_url, url: '{server}/pumps.geojson', token_env: PUMPS_TOKEN}}\n    color_by: kind\n",
        encoding="utf-8",
    )
    scene = twin.Scene.from_file(path)
    data = scene["pumps"].data()
    assert sorted(data["name"]) == ["抢险队 A", "移动泵车 1"]
    assert _Handler.seen_auth[-1] == "Bearer s3cret-value"
    saved = scene.to_file(tmp_path / "again.yaml").read_text(encoding="utf-8")
    assert "s3cret" not in saved and "PUMPS_TOKEN" in saved
    assert type(scene["pumps"].source).__module__ == "twin_example_plugin.geojson_url"
