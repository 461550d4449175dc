"""A local stand-in for the district's one-map (一张图) service, for ``twin demo``.

It starts a real OGC API – Features server (pygeoapi) on 127.0.0.1 serving the demo district's
collections, and a feeder thread that writes simulated flood-gauge readings into a
time-enabled collection, so the viewer pulls everything through the same source plugins it
uses in production. As real gauges do, each reading reaches the service some seconds to a
minute after its time stamp (``lateness``). Stopping it stops the server.

    with OneMapDemo(seed=0) as onemap:
        print(onemap.url)            # http://127.0.0.1:PORT/
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from twin.demo.district import cached_district
from twin.errors import MissingDependencyError, TwinError
from twin.source import ReadingsSource

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["COLLECTIONS", "OneMapDemo", "pygeoapi_command", "route_through"]

log = logging.getLogger(__name__)

COLLECTIONS = ("boundary", "river", "roads", "buildings", "flood_points", "sensor_sites", "resources")
READINGS = "flood_readings"
_TITLES = {
    "boundary": "区界 District boundary", "river": "黄浦江 River", "roads": "道路 Roads", "buildings": "建筑 Buildings",
    "flood_points": "积水监测点 Flood monitoring points", "sensor_sites": "传感器 Sensor sites", "resources": "应急资源 Emergency resources",
    READINGS: "积水深度 Water-depth readings",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pygeoapi_command() -> list[str]:
    """The command line that runs pygeoapi's CLI with this Python (not whichever ``pygeoapi`` is on PATH).

    Raises :class:`~twin.errors.MissingDependencyError` naming the ``demo`` extra when pygeoapi is not installed.
    """
    if importlib.util.find_spec("pygeoapi") is None:
        raise MissingDependencyError(
            "twin demo needs pygeoapi (the local one-map server), which is not installed: "
            "pip install 'twin[demo]', or run twin demo --offline"
        )
    return [sys.executable, "-c", "import sys; from pygeoapi import cli; sys.exit(cli())"]


def _last_line(output: bytes) -> str:
    """The last non-empty line of a process's output (where Python puts the error)."""
    lines = output.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "no output"


class OneMapDemo:
    """pygeoapi on 127.0.0.1 with the demo district and live flood readings."""

    def __init__(
        self,
        *,
        seed: int = 0,
        n_buildings: int = 30_000,
        port: int | None = None,
        feed_seconds: float = 10.0,
        history: dt.timedelta = dt.timedelta(hours=1),
        lateness: tuple[float, float] = (2.0, 60.0),
    ) -> None:
        """``lateness``: (min, max) seconds between a reading's time stamp and its arrival in the
        service, drawn per reading (deterministic for a seed); (0, 0) writes each reading on time."""
        self.seed = seed
        self.n_buildings = n_buildings
        self.port = port or _free_port()
        self.feed_seconds = feed_seconds
        self.history = history
        self.url = f"http://127.0.0.1:{self.port}/"
        self._workdir = Path(tempfile.mkdtemp(prefix="twin-onemap-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._feeder: threading.Thread | None = None
        if not 0 <= lateness[0] <= lateness[1]:
            raise TwinError(f"lateness {lateness} must be (min, max) seconds with 0 <= min <= max")
        self.lateness = lateness
        self._readings: list[dict[str, Any]] = []
        self._pending = pd.DataFrame()
        """Readings simulated but not yet arrived, with their ``arrival`` time."""
        self._fed_until: dt.datetime | None = None
        self._simulator: ReadingsSource | None = None

    # -- data and configuration ----------------------------------------------------------
    def _write_collections(self) -> dict[str, Any]:
        district = cached_district(seed=self.seed, n_buildings=self.n_buildings)
        resources: dict[str, Any] = {}
        for name in COLLECTIONS:
            frame = getattr(district, name).copy()
            frame.insert(0, "fid", range(len(frame)))
            path = self._workdir / f"{name}.geojson"
            path.write_text(frame.to_json(drop_id=True, ensure_ascii=False), encoding="utf-8")
            resources[name] = self._resource(name, {"name": "GeoJSON", "data": str(path), "id_field": "fid"}, frame.total_bounds.tolist())
        self._readings_path().write_text(json.dumps({"_default": {}}), encoding="utf-8")
        bounds = district.boundary.total_bounds.tolist()
        resources[READINGS] = self._resource(READINGS, {"name": "TinyDB", "data": str(self._readings_path()), "id_field": "id", "time_field": "time"}, bounds)
        return resources

    @staticmethod
    def _resource(name: str, provider: dict[str, Any], bbox: list[float]) -> dict[str, Any]:
        return {
            "type": "collection",
            "title": _TITLES[name],
            "description": f"twin demo district: {name}",
            "keywords": ["twin", "demo"],
            "extents": {"spatial": {"bbox": bbox, "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
            "providers": [{"type": "feature", **provider}],
        }

    def _readings_path(self) -> Path:
        return self._workdir / f"{READINGS}.json"

    def _write_config(self) -> Path:
        config = {
            "server": {
                "bind": {"host": "127.0.0.1", "port": self.port},
                "url": self.url.rstrip("/"),
                "mimetype": "application/json; charset=UTF-8",
                "encoding": "utf-8",
                "languages": ["en-US"],
                "limits": {"default_items": 1000, "max_items": 10000},
                "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": "none"},
            },
            "logging": {"level": "ERROR"},
            "metadata": {
                "identification": {"title": "twin demo one-map", "description": "Local one-map stand-in", "keywords": ["twin"],
                                   "keywords_type": "theme", "terms_of_service": "none", "url": self.url},
                "license": {"name": "CC-BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
                "provider": {"name": "twin", "url": self.url},
                "contact": {"name": "twin"},
            },
            "resources": self._write_collections(),
        }
        path = self._workdir / "pygeoapi.yml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path

    # -- live readings ---------------------------------------------------------------------
    def feed(self, now: dt.datetime) -> int:
        """Write the simulated readings that have arrived by ``now`` into the readings collection
        (each arrives ``lateness`` after its time stamp); returns how many were added."""
        if self._simulator is None:
            from twin.plugins import source_types

            self._simulator = source_types().get("flood_sim")(seed=self.seed)
        start = self._fed_until or (now - dt.timedelta(minutes=15))
        frame = self._simulator.readings(start, now)
        if len(frame):
            frame = frame.assign(arrival=pd.to_datetime(frame["time"], utc=True) + pd.to_timedelta(self._delays(frame), unit="s"))
            self._pending = pd.concat([self._pending, frame], ignore_index=True) if len(self._pending) else frame
        arrived = self._pending[self._pending["arrival"] <= pd.Timestamp(now)] if len(self._pending) else self._pending
        self._pending = self._pending.drop(arrived.index).reset_index(drop=True) if len(arrived) else self._pending
        for row in arrived.itertuples(index=False):
            stamp = pd.Timestamp(row.time).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
            self._readings.append({
                "type": "Feature", "id": f"{row.sensor_id}-{stamp}",
                "geometry": {"type": "Point", "coordinates": [row.lon, row.lat]},
                "properties": {"sensor_id": row.sensor_id, "time": stamp, "value": float(row.value)},
            })
        oldest = (now - self.history).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._readings = [f for f in self._readings if f["properties"]["time"] >= oldest]
        table = {"_default": {str(i + 1): feature for i, feature in enumerate(self._readings)}}
        tmp = self._readings_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(table), encoding="utf-8")
        os.replace(tmp, self._readings_path())  # readers never see a half-written file
        self._fed_until = now
        return len(arrived)

    @property
    def fed_until(self) -> dt.datetime | None:
        """The moment the last :meth:`feed` brought the collection up to (None before the first)."""
        return self._fed_until

    def _delays(self, frame: pd.DataFrame) -> np.ndarray:
        """Seconds from each reading's time stamp to its arrival: uniform in ``lateness``, fixed per (seed, sensor, time)."""
        lo, hi = self.lateness
        keys = pd.util.hash_pandas_object(frame[["sensor_id", "time"]], index=False).to_numpy() ^ np.uint64(self.seed)
        return lo + (keys % np.uint64(1_000_003)).astype(np.float64) / 1_000_003 * (hi - lo)

    def _feed_loop(self) -> None:
        while not self._stop.wait(self.feed_seconds):
            try:
                self.feed(dt.datetime.now(dt.timezone.utc))
            except Exception:  # keep feeding: the demo must survive a bad tick
                log.exception("one-map demo feeder failed")

    # -- process ---------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> str:
        """Write the data, start pygeoapi and the feeder; returns the service URL.

        Raises :class:`~twin.errors.MissingDependencyError` without pygeoapi, :class:`~twin.errors.TwinError` when it fails to start.
        """
        try:
            pygeoapi = pygeoapi_command()
        except MissingDependencyError:
            self.stop()
            raise
        config = self._write_config()
        self.feed(dt.datetime.now(dt.timezone.utc))
        openapi = self._workdir / "openapi.yml"
        env = {**os.environ, "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
        generated = subprocess.run([*pygeoapi, "openapi", "generate", str(config), "--output-file", str(openapi)], check=False, env=env,
                                   capture_output=True, timeout=120)
        if generated.returncode != 0:
            self.stop()
            raise TwinError(f"pygeoapi could not write its OpenAPI document: {_last_line(generated.stderr)}")
        log_file = open(self._workdir / "pygeoapi.log", "wb")  # noqa: SIM115 (kept open for the process)
        self._process = subprocess.Popen([*pygeoapi, "serve"], env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                reason = _last_line((self._workdir / "pygeoapi.log").read_bytes())
                self.stop()
                raise TwinError(f"pygeoapi exited on start: {reason}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            self.stop()
            raise TwinError(f"pygeoapi did not start on port {self.port} within {timeout:g} s")
        self._feeder = threading.Thread(target=self._feed_loop, name="onemap-feeder", daemon=True)
        self._feeder.start()
        return self.url

    def stop(self) -> None:
        """Stop the feeder and the server, remove the working files."""
        self._stop.set()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def route_through(scene: dict[str, Any], url: str) -> dict[str, Any]:
    """Scene-file data with every demo source replaced by the one-map service at ``url``.

    ``demo`` sources become ``ogcapi`` collections; the ``flood_sim`` simulator becomes the
    ``ogcapi_readings`` collection the feeder writes. Other sources are left as they are.
    """
    routed = json.loads(json.dumps(scene, default=str))

    def features(spec: dict[str, Any]) -> dict[str, Any]:
        return {"type": "ogcapi", "url": url, "collection": spec["dataset"], "limit": 10_000}

    for layer in routed.get("layers", []):
        source = layer.get("source") or {}
        if source.get("type") == "demo":
            layer["source"] = features(source)
        elif source.get("type") == "flood_sim":
            layer["source"] = {"type": "ogcapi_readings", "url": url, "collection": READINGS, "limit": 10_000,
                               "time_property": "time", "value_property": "value", "sensor_property": "sensor_id"}
        stations = layer.get("stations")
        if isinstance(stations, dict) and stations.get("type") == "demo":
            layer["stations"] = features(stations)
    return routed
