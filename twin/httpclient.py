"""HTTP behaviour shared by every network source: timeouts, retries with backoff and jitter,
conditional requests, a bound on concurrent requests per host, and credentials read from
environment variables named in the scene file (never stored, never logged).

>>> params = HttpParams(url="http://127.0.0.1:9/", token_env="ONEMAP_TOKEN", retries=0, timeout=0.5)
>>> client = HttpClient(params, name="one-map")
>>> try:
...     client.get_json("http://127.0.0.1:9/collections")
... except SourceError as e:
...     print(str(e).split(":")[0])
one-map
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from pydantic import Field, field_validator

from twin.alerts.rules import parse_duration
from twin.errors import SourceError
from twin.source import SourceParams

__all__ = ["HttpClient", "HttpParams", "HttpResult", "redact_url"]

log = logging.getLogger(__name__)

_SECRET_WORDS = ("token", "key", "password", "secret", "auth", "signature", "sig")
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_HOST_LIMITS: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_HOST_LOCK = threading.Lock()
_MAX_VALIDATORS = 256


class HttpParams(SourceParams):
    """Parameters every HTTP source accepts (mixed into each source's own ``Params``)."""

    url: str = Field(description="base URL of the service (http or https)")
    timeout: float = Field(10.0, gt=0, le=300, description="seconds to wait for a connection and for each read")
    retries: int = Field(3, ge=0, le=10, description="retries after a timeout, a dropped connection, HTTP 429 or 5xx")
    backoff: float = Field(0.5, ge=0, le=60, description="first retry delay in seconds; doubles each time, with jitter")
    max_concurrent: int = Field(4, ge=1, le=64, description="requests in flight at once to this host, across sources")
    poll_interval: dt.timedelta | None = Field(None, description="re-read this often (e.g. 30s); none: read once")
    headers: dict[str, str] = Field({}, description="extra request headers (not for secrets: use *_env)")
    token_env: str | None = Field(None, description="environment variable with a bearer token")
    api_key_env: str | None = Field(None, description="environment variable with an API key")
    api_key_header: str = Field("X-API-Key", description="header that carries the API key")
    username_env: str | None = Field(None, description="environment variable with the basic-auth user")
    password_env: str | None = Field(None, description="environment variable with the basic-auth password")

    _interval = field_validator("poll_interval", mode="before")(classmethod(lambda cls, v: None if v is None else parse_duration(v)))

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
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*,:/"), ""))


def _host_limit(url: str, limit: int) -> threading.BoundedSemaphore:
    parts = urlsplit(url)
    key = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    with _HOST_LOCK:
        if key not in _HOST_LIMITS:
            _HOST_LIMITS[key] = threading.BoundedSemaphore(limit)
        return _HOST_LIMITS[key]


class HttpClient:
    """GET with retries, conditional requests and per-host concurrency for one source."""

    def __init__(self, params: HttpParams, *, name: str, sleep: Any = time.sleep) -> None:
        self.params = params
        self.name = name
        self._local = threading.local()  # one requests.Session per thread (sessions are not thread-safe)
        self._sessions: list[requests.Session] = []
        self._validators: dict[str, _Validator] = {}
        self._sleep = sleep
        self.requests_made = 0

    @property
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxies from the environment: the one-map service is local
            self._local.session = session
            self._sessions.append(session)
        return session

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

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        accept: str = "application/json",
        conditional: bool = True,
        known: tuple[str | None, str | None, bytes] | None = None,
    ) -> HttpResult:
        """GET ``url`` (with ``params``); retries transient failures; raises SourceError naming the source and URL.

        ``known`` = (ETag, Last-Modified, body) of a copy the caller keeps (e.g. on disk): the
        request is conditional on it, and a 304 returns that body.
        """
        full = requests.Request("GET", url, params=dict(params or {})).prepare().url or url
        shown = redact_url(full)
        same_host = urlsplit(full).netloc == urlsplit(self.params.url).netloc
        secrets = self._secret_headers() if same_host else {}  # never hand credentials to another host
        headers = {"Accept": accept, "User-Agent": "twin", **self.params.headers, **secrets}
        if known is not None:
            cached: _Validator | None = _Validator(known[0], known[1], known[2])
            conditional = False  # the caller keeps the copy: do not keep another in memory
        else:
            cached = self._validators.get(full) if conditional else None
        if cached is not None:
            if cached.etag:
                headers["If-None-Match"] = cached.etag
            if cached.last_modified:
                headers["If-Modified-Since"] = cached.last_modified
        auth = self._auth() if same_host else None
        attempts = self.params.retries + 1
        last_problem = ""
        for attempt in range(attempts):
            if attempt:
                delay = min(self.params.backoff * 2 ** (attempt - 1), 30.0)
                self._sleep(random.uniform(0, delay) + delay / 2)  # exponential backoff with jitter
            try:
                with _host_limit(full, self.params.max_concurrent):
                    self.requests_made += 1
                    response = self._session.get(full, headers=headers, auth=auth, timeout=self.params.timeout, allow_redirects=True)
                    body = response.content
            except requests.Timeout:
                last_problem = f"no answer within {self.params.timeout:g} s"
                continue
            except requests.exceptions.ChunkedEncodingError:
                last_problem = "connection closed mid-body (truncated response)"
                continue
            except requests.ConnectionError as exc:
                last_problem = f"cannot connect ({type(exc).__name__})"
                continue
            except requests.RequestException as exc:
                raise SourceError(f"{self.name}: GET {shown}: {type(exc).__name__}") from None
            if response.status_code == 304 and cached is not None:
                return HttpResult(shown, 304, cached.body, cached.headers, not_modified=True)
            if response.status_code in _RETRY_STATUS:
                last_problem = f"HTTP {response.status_code}"
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit() and attempt + 1 < attempts:
                    self._sleep(min(float(retry_after), 30.0))
                continue
            if response.status_code >= 400:
                detail = " ".join(body[:300].decode("utf-8", "replace").split())
                raise SourceError(f"{self.name}: GET {shown}: HTTP {response.status_code} {response.reason}" + (f": {detail}" if detail else ""), status=response.status_code)
            etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
            if conditional and (etag or modified):
                self._validators.pop(full, None)
                self._validators[full] = _Validator(etag, modified, body, dict(response.headers))
                while len(self._validators) > _MAX_VALIDATORS:  # oldest first: a bounded memory
                    self._validators.pop(next(iter(self._validators)))
            return HttpResult(shown, response.status_code, body, response.headers)
        status = int(last_problem[5:8]) if last_problem.startswith("HTTP ") else None
        raise SourceError(f"{self.name}: GET {shown}: {last_problem} (after {attempts} attempt{'s' if attempts > 1 else ''})", status=status)

    def get_json(self, url: str, params: Mapping[str, Any] | None = None, *, conditional: bool = True) -> tuple[Any, HttpResult]:
        """GET and parse JSON; malformed JSON is a SourceError naming the URL."""
        result = self.get(url, params, conditional=conditional)
        try:
            return json.loads(result.body), result
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceError(f"{self.name}: GET {result.url}: malformed JSON ({exc})") from None

    def close(self) -> None:
        for session in self._sessions:
            session.close()
        self._sessions.clear()
