"""HTTP behaviour shared by every network source: timeouts, retries with backoff and jitter,
conditional requests, a bound on concurrent requests per host, and credentials read from
environment variables named in the scene file (never stored, never logged).

Every request is bounded: ``deadline`` seconds in all (retries, waits and a slow body
included), ``max_bytes`` of (decoded) body, read as a stream. Each client keeps a small pool of
HTTP sessions for its whole life (never more than the requests it ran at once), closed by
:meth:`HttpClient.close`. Answers with an ETag or Last-Modified are kept for conditional
requests only for URLs that repeat (from their second request on), within a byte budget: a
one-off URL (a live window that moves every poll) never grows the cache.

>>> params = HttpParams(url="http://127.0.0.1:9/", token_env="ONEMAP_TOKEN", retries=0, timeout=0.5)
>>> client = HttpClient(params, name="one-map")
>>> try:
...     client.get_json("http://127.0.0.1:9/collections")
... except SourceError as e:
...     print(str(e).split(":")[0])
one-map
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
import urllib3
from pydantic import Field, field_validator

from twin.alerts.rules import parse_duration
from twin.errors import SourceError
from twin.source import SourceParams

__all__ = ["HttpClient", "HttpParams", "HttpResult", "PagedParams", "redact_url"]

log = logging.getLogger(__name__)

_SECRET_WORDS = ("token", "key", "password", "secret", "auth", "signature", "sig")
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_HOST_LIMITS: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_HOST_LOCK = threading.Lock()
_MAX_VALIDATORS = 256
_MAX_CACHED_BYTES = 128 * 2**20
"""Bodies kept for conditional requests, per client, in bytes (oldest dropped first)."""
_MAX_SEEN_ONCE = 4096
"""URLs remembered (as digests) after their first request, to cache them on their second."""
_CHUNK = 65536


class HttpParams(SourceParams):
    """Parameters every HTTP source accepts (mixed into each source's own ``Params``)."""

    url: str = Field(description="base URL of the service (http or https)")
    timeout: float = Field(10.0, gt=0, le=300, description="seconds to wait for a connection and for each read")
    retries: int = Field(3, ge=0, le=10, description="retries after a timeout, a dropped connection, HTTP 429 or 5xx")
    backoff: float = Field(0.5, ge=0, le=60, description="first retry delay in seconds; doubles each time, with jitter")
    max_concurrent: int = Field(4, ge=1, le=64, description="requests in flight at once to this host, across sources")
    deadline: float = Field(30.0, gt=0, le=3600, description="seconds one request may take in all, retries and a slow body included (e.g. 30s)")
    max_bytes: int = Field(64 * 2**20, ge=1024, le=2**34, description="largest answer read, in bytes after decompression; a larger one is an error")
    poll_interval: dt.timedelta | None = Field(None, description="re-read this often (e.g. 30s); none: read once")
    headers: dict[str, str] = Field({}, description="extra request headers (not for secrets: use *_env)")
    token_env: str | None = Field(None, description="environment variable with a bearer token")
    api_key_env: str | None = Field(None, description="environment variable with an API key")
    api_key_header: str = Field("X-API-Key", description="header that carries the API key")
    username_env: str | None = Field(None, description="environment variable with the basic-auth user")
    password_env: str | None = Field(None, description="environment variable with the basic-auth password")

    _interval = field_validator("poll_interval", mode="before")(classmethod(lambda cls, v: None if v is None else parse_duration(v)))
    _deadline = field_validator("deadline", mode="before")(classmethod(lambda cls, v: parse_duration(v).total_seconds()))

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("headers")
    @classmethod
    def _no_secrets_inline(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name.lower() in ("authorization", "cookie") or any(w in name.lower() for w in ("token", "key", "secret")):
                raise ValueError(f"header {name!r} looks secret: name an environment variable with token_env / api_key_env instead")
        return value


class PagedParams(HttpParams):
    """Parameters of sources that follow pages (next links, startIndex)."""

    max_pages: int = Field(1000, ge=1, le=1_000_000, description="most pages one read follows; more is an error (set a larger page size)")


@dataclass
class HttpResult:
    """A response body (bytes) with its URL, status and headers; ``not_modified`` after a 304."""

    url: str
    status: int
    body: bytes
    headers: Mapping[str, str]
    not_modified: bool = False


@dataclass
class _Validator:
    etag: str | None
    last_modified: str | None
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def redact_url(url: str) -> str:
    """The URL with secret-looking query values replaced by ``***`` (for logs and errors)."""
    parts = urlsplit(url)
    query = [(k, "***" if any(w in k.lower() for w in _SECRET_WORDS) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*,:/$'()"), ""))


def _host_limit(url: str, limit: int) -> threading.BoundedSemaphore:
    parts = urlsplit(url)
    key = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    with _HOST_LOCK:
        if key not in _HOST_LIMITS:
            _HOST_LIMITS[key] = threading.BoundedSemaphore(limit)
        return _HOST_LIMITS[key]


class _Retry(Exception):
    """A transient failure of one attempt (the message says what happened)."""


class _Expired(Exception):
    """The request's deadline passed (the message says where)."""


def _set_read_timeout(response: requests.Response, seconds: float) -> None:
    """Bound the next socket read of a streamed response to ``seconds``."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


class HttpClient:
    """GET with retries, conditional requests, per-host concurrency and bounded I/O for one source.

    Sessions are pooled for the life of the client (one per request in flight, reused);
    :meth:`close` closes them (the owning source's ``close()`` calls it).
    """

    def __init__(self, params: HttpParams, *, name: str, sleep: Any = time.sleep) -> None:
        self.params = params
        self.name = name
        self._lock = threading.Lock()
        self._idle: list[requests.Session] = []
        self._sessions: set[requests.Session] = set()
        self._validators: OrderedDict[str, _Validator] = OrderedDict()
        self._seen_once: OrderedDict[str, None] = OrderedDict()
        self._sleep = sleep
        self.requests_made = 0

    # -- resources -----------------------------------------------------------------------------
    @property
    def open_sessions(self) -> int:
        """HTTP sessions this client holds (idle or in use)."""
        return len(self._sessions)

    @property
    def cached_urls(self) -> int:
        """URLs whose answer is kept for conditional requests."""
        return len(self._validators)

    @property
    def cached_bytes(self) -> int:
        """Bytes of answers kept for conditional requests."""
        return sum(len(v.body) for v in self._validators.values())

    @contextlib.contextmanager
    def _session(self) -> Iterator[requests.Session]:
        """An idle pooled session, or a new one; back to the pool afterwards (sessions are not thread-safe)."""
        with self._lock:
            session = self._idle.pop() if self._idle else None
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxies from the environment: the one-map service is local
            with self._lock:
                self._sessions.add(session)
        try:
            yield session
        finally:
            with self._lock:
                if session in self._sessions:
                    self._idle.append(session)
                else:  # closed meanwhile
                    session.close()

    def close(self) -> None:
        """Close every pooled session (a later request opens a new one)."""
        with self._lock:
            sessions, self._sessions, self._idle = self._sessions, set(), []
        for session in sessions:
            session.close()

    # -- credentials ---------------------------------------------------------------------------
    def _secret_headers(self) -> dict[str, str]:
        p = self.params
        headers: dict[str, str] = {}
        if p.token_env:
            headers["Authorization"] = f"Bearer {self._env(p.token_env)}"
        if p.api_key_env:
            headers[p.api_key_header] = self._env(p.api_key_env)
        return headers

    def _auth(self) -> tuple[str, str] | None:
        p = self.params
        if p.username_env or p.password_env:
            if not (p.username_env and p.password_env):
                raise SourceError(f"{self.name}: basic auth needs both username_env and password_env")
            return (self._env(p.username_env), self._env(p.password_env))
        return None

    def _env(self, variable: str) -> str:
        value = os.environ.get(variable)
        if not value:
            raise SourceError(f"{self.name}: environment variable {variable} (a credential named in the scene) is not set")
        return value

    # -- the conditional-request cache -----------------------------------------------------------
    def _repeats(self, url: str) -> bool:
        """Whether ``url`` was requested before (remembered as a digest, a bounded number of them)."""
        key = hashlib.sha1(url.encode("utf-8")).hexdigest()
        with self._lock:
            if key in self._seen_once:
                self._seen_once.move_to_end(key)
                return True
            self._seen_once[key] = None
            while len(self._seen_once) > _MAX_SEEN_ONCE:
                self._seen_once.popitem(last=False)
            return False

    def _remember(self, url: str, validator: _Validator) -> None:
        """Keep an answer for conditional requests; oldest dropped past the count and byte budgets."""
        with self._lock:
            self._validators.pop(url, None)
            if len(validator.body) > _MAX_CACHED_BYTES:
                return
            self._validators[url] = validator
            total = sum(len(v.body) for v in self._validators.values())
            while len(self._validators) > _MAX_VALIDATORS or total > _MAX_CACHED_BYTES:
                total -= len(self._validators.popitem(last=False)[1].body)

    # -- GET -------------------------------------------------------------------------------------
    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        accept: str = "application/json",
        conditional: bool = True,
        known: tuple[str | None, str | None, bytes] | None = None,
        payload: tuple[str, bytes] | None = None,
    ) -> HttpResult:
        """GET ``url`` (with ``params``); retries transient failures; raises SourceError naming the source and URL.

        The whole call (waits for a free slot, retries, backoff and the body) ends within
        ``deadline`` seconds; a body over ``max_bytes`` is an error. ``known`` = (ETag,
        Last-Modified, body) of a copy the caller keeps (e.g. on disk): the request is
        conditional on it, and a 304 returns that body. ``payload`` = (Content-Type, body): POST
        it instead (never conditional); :meth:`post` is the public way.
        """
        method = "GET" if payload is None else "POST"
        full = requests.Request("GET", url, params=dict(params or {})).prepare().url or url
        shown = redact_url(full)
        same_host = urlsplit(full).netloc == urlsplit(self.params.url).netloc
        secrets = self._secret_headers() if same_host else {}  # never hand credentials to another host
        headers = {"Accept": accept, "User-Agent": "twin", **self.params.headers, **secrets}
        if payload is not None:
            headers["Content-Type"] = payload[0]
            known, conditional = None, False
        if known is not None:
            cached: _Validator | None = _Validator(known[0], known[1], known[2])
            conditional = False  # the caller keeps the copy: do not keep another in memory
        else:
            cached = self._validators.get(full) if conditional else None
            conditional = conditional and self._repeats(full)
        if cached is not None:
            if cached.etag:
                headers["If-None-Match"] = cached.etag
            if cached.last_modified:
                headers["If-Modified-Since"] = cached.last_modified
        auth = self._auth() if same_host else None
        deadline_at = time.monotonic() + self.params.deadline
        attempts = self.params.retries + 1
        last_problem = ""
        for attempt in range(attempts):
            try:
                if attempt:
                    delay = min(self.params.backoff * 2 ** (attempt - 1), 30.0)
                    self._pause(random.uniform(0, delay) + delay / 2, deadline_at)  # exponential backoff with jitter
                response, body = self._attempt(full, shown, headers, auth, deadline_at, payload)
            except _Retry as problem:
                last_problem = str(problem)
                continue
            except _Expired as expired:
                tried = f"; {last_problem} before" if last_problem else ""
                raise SourceError(f"{self.name}: {method} {shown}: no complete answer within the {self.params.deadline:g} s deadline ({expired}{tried})") from None
            if response.status_code == 304 and cached is not None:
                return HttpResult(shown, 304, cached.body, cached.headers, not_modified=True)
            if response.status_code in _RETRY_STATUS:
                last_problem = f"HTTP {response.status_code}"
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit() and attempt + 1 < attempts:
                    self._sleep(min(float(retry_after), 30.0, max(deadline_at - time.monotonic(), 0.0)))
                continue
            if response.status_code >= 400:
                detail = " ".join(body[:300].decode("utf-8", "replace").split())
                raise SourceError(f"{self.name}: {method} {shown}: HTTP {response.status_code} {response.reason}" + (f": {detail}" if detail else ""), status=response.status_code)
            etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
            if conditional and (etag or modified):
                self._remember(full, _Validator(etag, modified, body, dict(response.headers)))
            return HttpResult(shown, response.status_code, body, response.headers)
        status = int(last_problem[5:8]) if last_problem.startswith("HTTP ") else None
        raise SourceError(f"{self.name}: {method} {shown}: {last_problem} (after {attempts} attempt{'s' if attempts > 1 else ''})", status=status)

    def _pause(self, seconds: float, deadline_at: float) -> None:
        remaining = deadline_at - time.monotonic()
        if seconds >= remaining:
            raise _Expired("a retry would start after it")
        self._sleep(seconds)

    def _attempt(
        self, full: str, shown: str, headers: Mapping[str, str], auth: tuple[str, str] | None, deadline_at: float, payload: tuple[str, bytes] | None = None
    ) -> tuple[requests.Response, bytes]:
        """One GET (or POST of ``payload``): the response and its whole body (an error body: its start). Raises _Retry or _Expired."""
        slot = _host_limit(full, self.params.max_concurrent)
        if not slot.acquire(timeout=max(deadline_at - time.monotonic(), 0.0)):
            raise _Expired("waiting for a free connection to the host")
        try:
            with self._session() as session:
                wait = min(self.params.timeout, deadline_at - time.monotonic())
                if wait <= 0:
                    raise _Expired("before the request was sent")
                self.requests_made += 1
                try:
                    method, data = ("GET", None) if payload is None else ("POST", payload[1])
                    response = session.request(method, full, data=data, headers=headers, auth=auth, timeout=wait, allow_redirects=True, stream=True)
                except requests.Timeout:
                    if time.monotonic() >= deadline_at - 0.01:
                        raise _Expired("waiting for the answer") from None
                    raise _Retry(f"no answer within {self.params.timeout:g} s") from None
                except requests.ConnectionError as exc:
                    raise _Retry(f"cannot connect ({type(exc).__name__})") from None
                except requests.RequestException as exc:
                    raise SourceError(f"{self.name}: {method} {shown}: {type(exc).__name__}") from None
                with contextlib.closing(response):
                    limit = self.params.max_bytes if response.status_code < 300 else 4096
                    body = self._body(response, shown, deadline_at, limit, truncate=response.status_code >= 300)
                    return response, body
        finally:
            slot.release()

    def _body(self, response: requests.Response, shown: str, deadline_at: float, limit: int, *, truncate: bool) -> bytes:
        """The (decoded) body, read as a stream within the deadline; over ``limit`` bytes an error
        (or, with ``truncate``, cut there). Raises _Retry, _Expired or SourceError."""
        declared = response.headers.get("Content-Length", "")
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if not truncate and not encoded and declared.isdigit() and int(declared) > limit:
            raise SourceError(f"{self.name}: {response.request.method} {shown}: the answer is {int(declared)} bytes, over max_bytes={limit}; ask for smaller pages or raise max_bytes")
        body = bytearray()
        try:
            while True:
                remaining = deadline_at - time.monotonic()
                if remaining <= 0:
                    raise _Expired(f"{len(body)} bytes of the body received")
                _set_read_timeout(response, min(self.params.timeout, remaining))
                chunk = response.raw.read1(_CHUNK, decode_content=True)
                if not chunk:
                    break
                body += chunk
                if len(body) > limit:
                    if truncate:
                        break
                    raise SourceError(f"{self.name}: {response.request.method} {shown}: the answer is over max_bytes={limit} (stopped reading at {len(body)} bytes); ask for smaller pages or raise max_bytes")
        except urllib3.exceptions.ReadTimeoutError:
            if time.monotonic() >= deadline_at - 0.01:
                raise _Expired(f"{len(body)} bytes of the body received") from None
            raise _Retry(f"no answer within {self.params.timeout:g} s") from None
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError, OSError):
            raise _Retry("connection closed mid-body (truncated response)") from None
        if not truncate:
            response.raw.release_conn()  # read to the end: the connection can serve the next request
        return bytes(body)

    def post(self, url: str, params: Mapping[str, Any] | None = None, *, data: bytes, content_type: str, accept: str = "application/json") -> HttpResult:
        """POST ``data`` (of ``content_type``) to ``url`` (with query ``params``), bounded and retried like :meth:`get`
        (only for requests that change nothing on the server, e.g. a query sent as a body); raises SourceError."""
        return self.get(url, params, accept=accept, conditional=False, payload=(content_type, data))

    def get_json(self, url: str, params: Mapping[str, Any] | None = None, *, conditional: bool = True) -> tuple[Any, HttpResult]:
        """GET and parse JSON; malformed JSON is a SourceError naming the URL."""
        result = self.get(url, params, conditional=conditional)
        try:
            return json.loads(result.body), result
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise SourceError(f"{self.name}: GET {result.url}: malformed JSON ({exc})") from None
