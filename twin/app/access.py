"""Who may use a served app: loopback by default, a token for any other address, same-origin websockets.

``twin serve`` binds 127.0.0.1 unless told otherwise. Only ``127.0.0.1``, ``::1`` and ``localhost``
count as loopback here; binding any other address (``0.0.0.0``, a LAN address, even
``127.0.0.2``) needs a token, from ``$TWIN_TOKEN`` or a token file, unless ``--no-auth`` is given
(then a warning is printed). A configured token is checked on every bind, loopback included.

A token file holds one token a line, either ``name:token`` (the name is recorded as who
acknowledged an alert) or a bare token (name ``operator``); blank lines and ``#`` comments are
skipped. Tokens are at least 16 characters and never logged.

A browser sends the token once, as ``?token=...`` on the page address: the server answers with a
redirect to the same address without it, setting an HttpOnly, SameSite=Strict cookie that the
page's websocket upgrade carries. Scripts may send ``Authorization: Bearer TOKEN`` instead.
A websocket upgrade whose ``Origin`` is neither this server's own host:port (the ``Host`` header)
nor one of ``allow_origins`` is refused with 403. Without a token (loopback), requests whose
``Host`` is not a loopback name are refused too (DNS rebinding). Request paths with ``..`` or ``.``
segments, raw or percent-encoded, get 404, so nothing beyond the app's own assets is served.
"""

from __future__ import annotations

import contextvars
import hmac
import html
import ipaddress
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import hdrs, web
from yarl import URL

from twin.errors import AccessError

__all__ = ["DEFAULT_USER", "AccessPolicy", "access_policy", "current_token", "current_user", "is_loopback", "parse_tokens"]

DEFAULT_USER = "operator"
MIN_TOKEN_LENGTH = 16
TOKEN_ENV = "TWIN_TOKEN"
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "::1", "localhost"})
_TOKEN_HINT = "make one with: python -c 'import secrets; print(secrets.token_urlsafe())'"
_current_user: contextvars.ContextVar[str] = contextvars.ContextVar("twin_user", default=DEFAULT_USER)
_page_token: contextvars.ContextVar[str | None] = contextvars.ContextVar("twin_page_token", default=None)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def current_user() -> str:
    """The name the token of the request being handled maps to (``"operator"`` without a token)."""
    return _current_user.get()


def current_token() -> str | None:
    """The token a person opened the page being served with (``?token=``, then its cookie), for links that reopen the
    page such as a saved view's; None without one, and for a script's or the hub's ``Authorization: Bearer`` token."""
    return _page_token.get()


def is_loopback(host: str) -> bool:
    """True for the addresses served without a token: ``127.0.0.1``, ``::1``, ``localhost`` (not the rest of 127.0.0.0/8)."""
    return host.strip("[]").lower() in _LOOPBACK_NAMES


def _is_loopback_name(host: str) -> bool:
    """True if a ``Host`` header's host name points at this machine (any 127.0.0.0/8 or ::1 address, ``localhost``, ``*.localhost``)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _check_token(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_LENGTH:
        raise AccessError(f"{where}: the token is only {len(token)} characters, at least {MIN_TOKEN_LENGTH} are needed ({_TOKEN_HINT})")
    if any(ch.isspace() for ch in token):
        raise AccessError(f"{where}: the token contains white space")
    return token


def parse_tokens(text: str, source: str) -> dict[str, str]:
    """Tokens of a token file's ``text`` as ``{token: name}``; ``source`` names the file in errors.

    Raises AccessError naming ``source`` and the line for a short or repeated token or an empty name,
    and for a file with no token at all.
    """
    tokens: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.partition(":")
        name, token = (name.strip(), token.strip()) if sep else (DEFAULT_USER, name)
        where = f"{source}:{number}"
        if not name:
            raise AccessError(f"{where}: the name before ':' is empty (write name:token, or the token alone)")
        if _check_token(token, where) in tokens:
            raise AccessError(f"{where}: this token is already given on an earlier line")
        tokens[token] = name
    if not tokens:
        raise AccessError(f"{source}: no token in the file (write name:token or a bare token, one a line)")
    return tokens


def _read_tokens(token_file: Path | None, env: Mapping[str, str]) -> dict[str, str]:
    """Tokens from ``token_file`` (if given) and ``$TWIN_TOKEN`` (name ``operator``), as ``{token: name}``."""
    tokens: dict[str, str] = {}
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AccessError(f"--token-file {token_file}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
        tokens.update(parse_tokens(text, str(token_file)))
    if env.get(TOKEN_ENV):
        tokens.setdefault(_check_token(env[TOKEN_ENV].strip(), f"${TOKEN_ENV}"), DEFAULT_USER)
    return tokens


def _origin(value: str, what: str) -> tuple[str, int | None]:
    """``(host, port)`` of an origin such as ``https://wall.example.com:8443``; raises AccessError if it has no host."""
    url = URL(value.strip())
    if not url.host or url.scheme not in ("http", "https"):
        raise AccessError(f"{what} {value!r} is not an origin such as https://wall.example.com:8443")
    return url.host.lower(), url.port


@dataclass(frozen=True)
class AccessPolicy:
    """Who may use a served app (see the module docs); build one with :func:`access_policy`.

    ``tokens`` maps each token to the user name it stands for (empty: no token needed; never shown in repr).
    ``allow_origins``: extra (host, port) pairs websockets may come from. ``loopback``: refuse foreign Host headers.
    ``port``: the served port, naming the cookie so two servers on one host keep their tokens apart.
    """

    port: int
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    allow_origins: frozenset[tuple[str, int | None]] = frozenset()
    loopback: bool = True

    @property
    def cookie(self) -> str:
        """Name of the cookie holding the token."""
        return f"twin_token_{self.port}"

    def user(self, token: str | None) -> str | None:
        """The name ``token`` stands for, or None if it is no valid token (compared in constant time)."""
        found = None
        for known, name in self.tokens.items():
            if token is not None and hmac.compare_digest(known.encode(), token.encode()):
                found = name
        return found

    def install(self, web_app: Any) -> None:
        """Put the access checks in front of every route of wslink's aiohttp ``WebAppServer`` (a trame ``on_server_bind`` callback)."""
        web_app.app.middlewares.insert(0, self.middleware)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """aiohttp middleware: 404 for dot segments, 403 for a foreign Host or Origin, 401 without a valid token."""
        if _has_dot_segment(request.raw_path):
            raise web.HTTPNotFound(text="twin: not found\n")
        if self.loopback and not self.tokens and not _is_loopback_name(request.url.host or ""):
            raise web.HTTPForbidden(text=f"twin: Host {request.host!r} is not this loopback server\n")
        if _is_upgrade(request) and not self._same_origin(request):
            raise web.HTTPForbidden(text=f"twin: websocket from foreign Origin {request.headers.get(hdrs.ORIGIN)!r} refused\n")
        if not self.tokens:
            return await handler(request)
        query_token = request.query.get("token")
        user = self.user(_bearer(request) or query_token or request.cookies.get(self.cookie))
        if user is None:
            return _unauthorized(request)
        if query_token is not None and not _is_upgrade(request):
            return self._token_redirect(request, query_token)
        reset = _current_user.set(user)
        reset_token = _page_token.set(None if _bearer(request) else query_token or request.cookies.get(self.cookie))
        try:
            return await handler(request)
        finally:
            _page_token.reset(reset_token)
            _current_user.reset(reset)

    def same_origin(self, request: web.Request) -> bool:
        """True if ``request`` may act for a page of this server: no Origin (not a browser), or one on this host:port or in ``allow_origins``."""
        return self._same_origin(request)

    def _same_origin(self, request: web.Request) -> bool:
        """True if the request has no Origin (not a browser) or one on this host:port or in ``allow_origins``."""
        value = request.headers.get(hdrs.ORIGIN)
        if value is None:
            return True
        try:
            host, port = _origin(value, "Origin")
        except AccessError:
            return False
        if (host, port) in self.allow_origins:
            return True
        own = URL(f"http://{request.host}")
        # no port in Host (a proxy on 80/443): the origin must use its scheme's default port too
        same_port = URL(value.strip()).explicit_port is None if own.explicit_port is None else own.explicit_port == port
        return host == (own.host or "").lower() and same_port

    def _token_redirect(self, request: web.Request, token: str) -> web.StreamResponse:
        """303 to the same address without ``?token=``, setting the token cookie (keeps the token out of history and referrers)."""
        query = request.query.copy()
        query.popall("token")
        response = web.Response(status=303, headers={hdrs.LOCATION: str(request.rel_url.with_query(query))})
        response.set_cookie(self.cookie, token, httponly=True, samesite="Strict", secure=request.secure, path="/")
        return response


def access_policy(
    host: str,
    port: int,
    *,
    token_file: Path | None = None,
    no_auth: bool = False,
    allow_origins: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> AccessPolicy:
    """The access rules for serving on ``host``:``port``, with tokens from ``token_file`` and ``$TWIN_TOKEN`` (``env``, default os.environ).

    Raises AccessError (one line naming the option or file) for a non-loopback ``host`` without a
    token, ``no_auth`` together with a token, an unreadable or bad token file, a bad origin.
    ``no_auth`` on a non-loopback host calls ``warn`` with a line saying anyone on the network may use the app.
    """
    origins = frozenset(_origin(value, "--allow-origin") for value in allow_origins)
    tokens = _read_tokens(token_file, os.environ if env is None else env)
    loopback = is_loopback(host)
    if no_auth:
        if tokens:
            raise AccessError(f"--no-auth contradicts the token given ({'--token-file' if token_file else '$' + TOKEN_ENV}): drop one of them")
        if not loopback and warn is not None:
            warn(f"serving on {host} with --no-auth: anyone who can reach port {port} sees the scene and can acknowledge alerts")
        return AccessPolicy(port=port, allow_origins=origins, loopback=loopback)
    if not loopback and not tokens:
        raise AccessError(f"--host {host}: serving beyond 127.0.0.1 needs a token: set ${TOKEN_ENV} or pass --token-file FILE "
                          f"({_TOKEN_HINT}), or pass --no-auth to let anyone on the network in")
    return AccessPolicy(port=port, tokens=tokens, allow_origins=origins, loopback=loopback)


def _is_upgrade(request: web.Request) -> bool:
    return "websocket" in request.headers.get(hdrs.UPGRADE, "").lower()


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _decodings(path: str) -> Iterator[str]:
    """``path`` and its successive percent-decodings until stable (catches ``%252e`` as well as ``%2e``)."""
    for _ in range(4):
        yield path
        decoded = unquote(path)
        if decoded == path:
            return
        path = decoded


def _has_dot_segment(raw_path: str) -> bool:
    """True if the path (query dropped), raw or percent-decoded, has a ``.`` or ``..`` segment (``/`` or ``\\`` separated) or a NUL."""
    path = raw_path.partition("?")[0]
    for text in _decodings(path):
        if "\0" in text or any(part in (".", "..") for part in text.replace("\\", "/").split("/")):
            return True
    return False


def _unauthorized(request: web.Request) -> web.StreamResponse:
    """401: a one-line text for scripts and the websocket, a small token form for a browser asking for a page."""
    line = "twin: this server needs a token: open the address with ?token=YOUR_TOKEN or send Authorization: Bearer YOUR_TOKEN"
    if request.method != "GET" or _is_upgrade(request) or "text/html" not in request.headers.get(hdrs.ACCEPT, ""):
        return web.Response(status=401, text=line + "\n", headers={hdrs.WWW_AUTHENTICATE: "Bearer"})
    form = (f"<!doctype html><title>twin: token needed</title><p>{html.escape(line)}</p>"
            f'<form method="get" action="{html.escape(request.path)}"><input name="token" type="password" autofocus>'
            "<button>Open</button></form>")
    return web.Response(status=401, text=form, content_type="text/html", headers={hdrs.WWW_AUTHENTICATE: "Bearer"})
