"""Real servers for tests, on 127.0.0.1 only: free ports, wait-until-listening, logs, cleanup.

Each ``start_*`` returns an object with ``url`` and ``stop()`` (idempotent, also kills child
processes: pygeoapi's Flask reloader runs one). Use them from module- or session-scoped
fixtures and stop in a ``finally``/after ``yield``; a server that fails to start raises with
the tail of its log.

>>> port = free_port()
>>> 1024 <= port <= 65535
True
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` (default 127.0.0.1) that nothing listens on right now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A port that refuses connections (bound and released; nothing listens)."""
    return free_port()


def is_listening(port: int, host: str = HOST) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_listening(port: int, *, host: str = HOST, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    """Block until ``host:port`` accepts connections; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_listening(port, host):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode} before listening on {host}:{port}\n{tail(log)}")
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {host}:{port} within {timeout:g} s\n{tail(log)}")


def tail(log: Path | None, lines: int = 40) -> str:
    """The last lines of a log file (for failure messages)."""
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def console_script(name: str) -> Path:
    """A console script installed beside the running interpreter (the venv's ``bin``)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            raise FileNotFoundError(f"{name} is not installed next to {sys.executable}")
        path = Path(found)
    return path


@dataclass
class ServerProcess:
    """A server running as a child process (in its own process group)."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    path: str = "/"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process group (the server and any children it forked), then reap."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        else:  # the leader is gone; a forked child may still hold the group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)


def start_process(name: str, cmd: list[str], *, port: int, log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 30.0, path: str = "/") -> ServerProcess:
    """Run ``cmd`` with output to ``log_path`` and wait until it listens on ``port``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)
    server = ServerProcess(name, process, port, log_path, path)
    try:
        wait_listening(port, timeout=timeout, process=process, log=log_path)
    except BaseException:
        server.stop()
        raise
    return server


def run_checked(cmd: list[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 60.0) -> str:
    """Run a setup command; raise with its output when it fails."""
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


# -- pygeoapi (OGC API - Features) -------------------------------------------------------------
def pygeoapi_config(port: int, resources: Mapping[str, Any], *, default_items: int = 10, max_items: int = 10_000) -> dict[str, Any]:
    """A minimal pygeoapi 0.21 configuration serving ``resources`` on 127.0.0.1:``port``."""
    return {
        "server": {
            "bind": {"host": HOST, "port": port},
            "url": f"http://{HOST}:{port}",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "language": "en-US",
            "pretty_print": False,
            "limits": {"default_items": default_items, "max_items": max_items},
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": "OSM"},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {"title": "twin tests", "description": "test data", "keywords": ["test"], "keywords_type": "theme", "terms_of_service": "https://example.org", "url": "https://example.org"},
            "license": {"name": "CC-BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
            "provider": {"name": "twin", "url": "https://example.org"},
            "contact": {"name": "twin"},
        },
        "resources": dict(resources),
    }


def feature_collection(name: str, provider: Mapping[str, Any], *, bbox: tuple[float, float, float, float] = (121.0, 30.7, 122.0, 31.9), begin: dt.datetime | None = None) -> dict[str, Any]:
    """A pygeoapi ``collection`` resource with one feature provider."""
    extents: dict[str, Any] = {"spatial": {"bbox": list(bbox), "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}}
    if begin is not None:
        extents["temporal"] = {"begin": begin, "end": None}
    return {"type": "collection", "title": name, "description": name, "keywords": [name], "extents": extents, "providers": [{"type": "feature", **provider}]}


def start_pygeoapi(workdir: Path, resources: Mapping[str, Any], *, default_items: int = 10, max_items: int = 10_000) -> ServerProcess:
    """``pygeoapi openapi generate`` then ``pygeoapi serve`` (Flask, with its reloader child)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config, openapi = workdir / "pygeoapi-config.yml", workdir / "pygeoapi-openapi.yml"
    config.write_text(yaml.safe_dump(pygeoapi_config(port, resources, default_items=default_items, max_items=max_items), allow_unicode=True), encoding="utf-8")
    exe = str(console_script("pygeoapi"))
    run_checked([exe, "openapi", "generate", str(config), "--output-file", str(openapi)], cwd=workdir)
    env = {"PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
    return start_process("pygeoapi", [exe, "serve"], port=port, log_path=workdir / "pygeoapi.log", env=env, cwd=workdir)


# -- django-ogc-sensorthings (SensorThings API 1.1) -------------------------------------------
_STA_SETTINGS = """\
from pathlib import Path
from uuid import UUID

SECRET_KEY = "twin-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "sensorthings.versions.v1_1",
    "sensorthings.versions.v1_1.backends.django",
]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": str(Path(__file__).with_name("sta.sqlite3"))}}}}
ROOT_URLCONF = "twin_sta_urls"
USE_TZ = True
SENSORTHINGS_V1_1_SERVICE_URL = "http://127.0.0.1:{port}/sensorthings"
SENSORTHINGS_V1_1_BACKEND_ADAPTER = "sensorthings.versions.v1_1.backends.django.adapter.DjangoBackendAdapter"
SENSORTHINGS_V1_1_ID_TYPE = UUID  # the Django backend's ids are UUIDs; the default (int) makes every GET fail with 500
SENSORTHINGS_V1_1_ID_DELIMITER = "'"
SENSORTHINGS_V1_1_MAX_TOP = {max_top}
LOGGING = {{"version": 1, "handlers": {{"console": {{"class": "logging.StreamHandler"}}}}, "loggers": {{"django.request": {{"handlers": ["console"], "level": "ERROR"}}}}}}
"""

_STA_URLS = """\
from django.urls import include, path

urlpatterns = [path("sensorthings/", include("sensorthings.versions.v1_1.urls"))]
"""


def start_sensorthings(workdir: Path, *, max_top: int = 100) -> ServerProcess:
    """django-ogc-sensorthings on SQLite: write settings, ``migrate``, ``runserver --noreload``.

    The service root is ``server.url`` (``.../sensorthings/v1.1/``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (workdir / "twin_sta_settings.py").write_text(_STA_SETTINGS.format(port=port, max_top=max_top), encoding="utf-8")
    (workdir / "twin_sta_urls.py").write_text(_STA_URLS, encoding="utf-8")
    env = {"PYTHONPATH": str(workdir), "DJANGO_SETTINGS_MODULE": "twin_sta_settings"}
    exe = str(console_script("django-admin"))
    run_checked([exe, "migrate", "-v", "0"], env=env, cwd=workdir)
    return start_process(
        "sensorthings", [exe, "runserver", f"{HOST}:{port}", "--noreload"], port=port, log_path=workdir / "sensorthings.log", env=env, cwd=workdir, path="/sensorthings/v1.1/"
    )


# -- in-process HTTP servers (a CGI front for MapServer, scripted faults) -----------------------
class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class ThreadServer:
    """An ``http.server`` in a daemon thread on 127.0.0.1."""

    server: http.server.ThreadingHTTPServer
    thread: threading.Thread
    path: str = "/"

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_thread_server(handler: type[http.server.BaseHTTPRequestHandler], *, path: str = "/") -> ThreadServer:
    server = _Server((HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name=f"test-http-{server.server_address[1]}")
    thread.start()
    return ThreadServer(server, thread, path)


def mapserv_path() -> str | None:
    """The MapServer CGI binary (Debian ``mapserver-bin``), or None."""
    return shutil.which("mapserv")


def start_mapserver(workdir: Path, mapfile: Path, *, mapserv: str | None = None) -> ThreadServer:
    """A tiny CGI front: each GET runs ``mapserv`` with QUERY_STRING, REQUEST_METHOD and
    MAPSERVER_CONFIG_FILE (whose ENV block sets MS_MAPFILE) and relays its status and body.

    ``server.requests`` counts requests; ``server.log`` holds mapserv's stderr.
    """
    exe = mapserv or mapserv_path()
    if exe is None:
        raise FileNotFoundError("mapserv is not installed (Debian package mapserver-bin)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "mapserver.conf"
    config.write_text(f'CONFIG\n  ENV\n    MS_MAP_PATTERN "^{mapfile.parent}"\n    MS_MAPFILE "{mapfile}"\n  END\nEND\n', encoding="utf-8")
    log_path = workdir / "mapserv.log"
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urlsplit(self.path).query
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "QUERY_STRING": query, "REQUEST_METHOD": "GET", "MAPSERVER_CONFIG_FILE": str(config), "SERVER_NAME": HOST, "SERVER_PORT": str(self.server.server_address[1]), "SCRIPT_NAME": "/"}
            done = subprocess.run([exe], check=False, env=env, capture_output=True, timeout=60)
            with lock, log_path.open("ab") as log:
                log.write(b"GET " + self.path.encode() + b"\n" + done.stderr)
            status, headers, body = _parse_cgi(done.stdout)
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return start_thread_server(Handler)


def _parse_cgi(output: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of CGI output: headers end at the first empty line (MapServer
    prints only that empty line, no Content-Type, for an OUTPUTFORMAT without MIMETYPE)."""
    status, headers, rest = 200, [], output
    while rest:
        line, sep, after = rest.partition(b"\n")
        text = line.rstrip(b"\r").decode("latin-1")
        rest = after
        if not text or not sep:
            break
        key, _, value = text.partition(":")
        if key.strip().lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers.append((key.strip(), value.strip()))
    return status, headers, rest


@dataclass
class Reply:
    """A scripted HTTP response. ``body`` may be bytes, str, or JSON-able; ``delay`` sleeps
    first; ``content_length`` overrides the header (to fake a truncated body); ``drop``
    closes the connection without answering; ``stream`` (an iterator of byte chunks, which may
    sleep between them) is sent instead of ``body``, without Content-Length, until it ends or
    the client goes away."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_length: int | None = None
    drop: bool = False
    stream: Iterator[bytes] | None = None

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


@dataclass
class Seen:
    """A request the scripted server received."""

    path: str
    headers: dict[str, str]


class ScriptedServer:
    """A misbehaving server: ``route(request) -> Reply`` decides each answer; requests are recorded.

    >>> server = ScriptedServer(lambda seen: Reply(body={"ok": True}))
    >>> import requests
    >>> requests.get(server.url + "x", timeout=2).json()
    {'ok': True}
    >>> server.stop(); [s.path for s in server.requests]
    ['/x']
    """

    def __init__(self, route: Callable[[Seen], Reply], *, keep_alive: bool = False) -> None:
        """``keep_alive``: answer HTTP/1.1 keep-alive (connections stay open between requests, as
        real services' do), instead of closing each connection after its answer."""
        self.route = route
        self.requests: list[Seen] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                seen = Seen(self.path, {k: v for k, v in self.headers.items()})
                outer.requests.append(seen)
                reply = outer.route(seen)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if reply.stream is not None:
                    self._send_stream(reply)
                    return
                body = reply.payload()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(reply.content_length if reply.content_length is not None else len(body)))
                if not keep_alive:
                    self.send_header("Connection", "close")
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body)
                    self.wfile.flush()
                self.close_connection = not keep_alive

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle wait between header and body

            def _send_stream(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for key, value in {"Content-Type": "application/json", **reply.headers}.items():
                    self.send_header(key, value)
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    for chunk in reply.stream or ():
                        self.wfile.write(chunk)
                        self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = start_thread_server(Handler)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def port(self) -> int:
        return self._server.port

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def scripted(route: Callable[[Seen], Reply], *, keep_alive: bool = False) -> Iterator[ScriptedServer]:
    """``with scripted(route) as server:`` — a :class:`ScriptedServer` stopped on exit."""
    server = ScriptedServer(route, keep_alive=keep_alive)
    try:
        yield server
    finally:
        server.stop()


# -- scripted one-map services that misbehave the way public bug reports describe ----------------
def _query(seen: Seen) -> dict[str, str]:
    """The request's query, keys upper-cased (WFS KVP keys are case-insensitive)."""
    return {k.upper(): v for k, v in parse_qsl(urlsplit(seen.path).query)}


def wfs_capped_route(capabilities: bytes, features: list[dict[str, Any]], *, cap: int, number_matched: int | str | None) -> Callable[[Seen], Reply]:
    """A WFS 2.0 service (``capabilities`` as given) that holds ``features``, honours STARTINDEX
    and COUNT but returns at most ``cap`` per GetFeature (advertised nowhere), as GeoJSON with
    ``numberMatched`` (a number, ``"unknown"``, or left out when None)."""

    def route(seen: Seen) -> Reply:
        q = _query(seen)
        if q.get("REQUEST", "").lower() == "getcapabilities":
            return Reply(body=capabilities, headers={"Content-Type": "text/xml"})
        if q.get("REQUEST", "").lower() != "getfeature":
            return Reply(400, b"unknown request")
        start = int(q.get("STARTINDEX", "0"))
        count = min(int(q.get("COUNT", str(len(features)))), cap)
        chunk = features[start : start + count]
        body: dict[str, Any] = {"type": "FeatureCollection", "features": chunk, "numberReturned": len(chunk)}
        if number_matched is not None:
            body["numberMatched"] = number_matched
        return Reply(body=body, headers={"Content-Type": "application/json; subtype=geojson"})

    return route


@dataclass
class Gauge:
    """A SensorThings Thing with one Datastream and its observations (id, ISO time, result)."""

    datastream: int
    name: str
    lon: float
    lat: float
    observations: list[tuple[int, str, float]]


def sta_route(gauges: list[Gauge], next_link: Callable[[str, int, int], str | None], *, location: Callable[[Gauge], list[float]] | None = None) -> Callable[[Seen], Reply]:
    """A SensorThings service: ``/Things`` (with Locations and Datastreams), and Observations both
    under ``/Datastreams(n)/Observations`` and as the whole ``/Observations`` collection, honouring
    ``$top``/``$skip`` (not ``$filter``) and ``$expand=Datastream``. ``next_link(path, skip, top)``
    writes each page's ``@iot.nextLink`` (None: none): the place to misbehave."""

    def obs(gauge: Gauge, entry: tuple[int, str, float], expand: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"@iot.id": entry[0], "phenomenonTime": entry[1], "result": entry[2]}
        if expand:
            out["Datastream"] = {"@iot.id": gauge.datastream}
        return out

    def route(seen: Seen) -> Reply:
        parts = urlsplit(seen.path)
        path = unquote(parts.path)
        q = dict(parse_qsl(parts.query))
        if path.endswith("/Things"):
            things = [
                {
                    "@iot.id": g.datastream * 10,
                    "name": g.name,
                    "Locations": [{"location": {"type": "Point", "coordinates": location(g) if location else [g.lon, g.lat]}}],
                    "Datastreams": [{"@iot.id": g.datastream, "name": f"{g.name} depth"}],
                }
                for g in gauges
            ]
            return Reply(body={"value": things})
        if not path.endswith("/Observations"):
            return Reply(404, {"message": "not found"})
        expand = "Datastream" in q.get("$expand", "")
        rows = [(g, o) for g in gauges for o in g.observations if f"Datastreams({g.datastream})/" in path or path.endswith("/v1.1/Observations")]
        skip, top = int(q.get("$skip", "0")), int(q.get("$top", "100"))
        body: dict[str, Any] = {"value": [obs(g, o, expand) for g, o in rows[skip : skip + top]]}
        if skip + top < len(rows):
            link = next_link(path, skip, top)
            if link:
                body["@iot.nextLink"] = link
        return Reply(body=body)

    return route
