"""Who may use `twin serve`: loopback by default, a token beyond it (page and websocket), same-origin websockets, no path traversal.

The non-loopback path is exercised for real by binding 127.0.0.2, which twin treats as "not 127.0.0.1"
(only 127.0.0.1, ::1 and localhost are served without a token), so nothing leaves the machine.
Requests with odd paths go through ``http.client`` so that no client normalises them.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from browsing import chromium, twin_serve
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.app.access import AccessPolicy, _has_dot_segment, access_policy, current_token, current_user, parse_tokens
from twin.cli import main
from twin.errors import AccessError

ALICE = "alices-token-0123456789"
BARE = "bare-token-abcdefghijklmnop"
TOKENS = f"# who may use the hall server\nalice:{ALICE}\n\n{BARE}\n"
SCENE_NAME = "Access test scene"
NEEDS_TOKEN = "twin: this server needs a token: open the address with ?token=YOUR_TOKEN or send Authorization: Bearer YOUR_TOKEN"
TRAVERSALS = ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/static/..%2f..%2fpyproject.toml", "/%2E%2E/pyproject.toml",
              "/index.html/../../pyproject.toml", "/%252e%252e/pyproject.toml", "/..%5c..%5cpyproject.toml", "/./index.html"]


# -- the rules, without a server ---------------------------------------------------------------
def test_token_file_names_and_bare_tokens() -> None:
    assert parse_tokens(TOKENS, "tokens.txt") == {ALICE: "alice", BARE: "operator"}


@pytest.mark.parametrize(("text", "message"), [
    ("alice:short\n", "tokens.txt:1: the token is only 5 characters, at least 16 are needed"),
    (f"# tokens\n:{ALICE}\n", "tokens.txt:2: the name before ':' is empty (write name:token, or the token alone)"),
    (f"alice:{ALICE}\nbob:{ALICE}\n", "tokens.txt:2: this token is already given on an earlier line"),
    (f"alice:{ALICE} x\n", "tokens.txt:1: the token contains white space"),
    ("# nothing yet\n\n", "tokens.txt: no token in the file (write name:token or a bare token, one a line)"),
])
def test_bad_token_file_names_file_and_line(text: str, message: str) -> None:
    with pytest.raises(AccessError) as caught:
        parse_tokens(text, "tokens.txt")
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "127.0.0.2", "::"])
def test_non_loopback_without_token_is_refused(host: str) -> None:
    with pytest.raises(AccessError, match=rf"^--host {host}: serving beyond 127.0.0.1 needs a token: set \$TWIN_TOKEN or pass --token-file FILE"):
        access_policy(host, 8080, env={})


def test_token_from_env_is_required_even_on_loopback() -> None:
    policy = access_policy("127.0.0.1", 8080, env={"TWIN_TOKEN": ALICE})
    assert policy.user(ALICE) == "operator" and policy.user(ALICE[:-1]) is None and policy.user(None) is None
    assert ALICE not in repr(policy)  # never logged
    assert not access_policy("localhost", 8080, env={}).tokens


def test_no_auth_warns_and_contradicts_a_token(tmp_path: Path) -> None:
    warnings: list[str] = []
    policy = access_policy("0.0.0.0", 8080, no_auth=True, env={}, warn=warnings.append)
    assert not policy.tokens and not policy.loopback
    assert warnings == ["serving on 0.0.0.0 with --no-auth: anyone who can reach port 8080 sees the scene and can acknowledge alerts"]
    with pytest.raises(AccessError, match=r"^--no-auth contradicts the token given \(\$TWIN_TOKEN\): drop one of them$"):
        access_policy("0.0.0.0", 8080, no_auth=True, env={"TWIN_TOKEN": ALICE})


def test_missing_token_file_and_bad_origin(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(AccessError, match=rf"^--token-file {missing}: cannot read it \(No such file or directory\)$"):
        access_policy("0.0.0.0", 8080, token_file=missing, env={})
    with pytest.raises(AccessError, match=r"^--allow-origin 'wall\.example\.com' is not an origin such as https://"):
        access_policy("127.0.0.1", 8080, allow_origins=["wall.example.com"], env={})


def test_cli_refuses_open_bind_without_token_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    scene = tmp_path / "scene.yaml"
    scene.write_text("version: 1\nname: x\nlayers: []\n", encoding="utf-8")
    monkeypatch.delenv("TWIN_TOKEN", raising=False)
    assert main(["serve", str(scene), "--host", "0.0.0.0", "--no-browser"]) == 1
    assert capsys.readouterr().err.splitlines() == [(
        "twin: error: --host 0.0.0.0: serving beyond 127.0.0.1 needs a token: set $TWIN_TOKEN or pass --token-file FILE "
        "(make one with: python -c 'import secrets; print(secrets.token_urlsafe())'), or pass --no-auth to let anyone on the network in")]


_segment = st.text(st.characters(blacklist_characters="/\\%\0?#", blacklist_categories=("Cs",)), min_size=1, max_size=8).filter(
    lambda s: s not in (".", ".."))
_dots = st.sampled_from(["..", ".", "%2e%2e", "%2E.", ".%2e", "%252e%252e", "%2e"])
_sep = st.sampled_from(["/", "%2f", "%2F", "\\", "%5c", "%252f"])


@settings(max_examples=100, deadline=None)
@given(before=st.lists(_segment, max_size=3), dots=_dots, sep=_sep, after=st.lists(_segment, min_size=1, max_size=3))
def test_any_encoded_dot_segment_is_caught(before: list[str], dots: str, sep: str, after: list[str]) -> None:
    path = "/" + "".join(part + sep for part in before) + dots + sep + sep.join(after)
    assert _has_dot_segment(path)


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(_segment, max_size=4), query=st.text(max_size=10))
def test_plain_paths_pass(parts: list[str], query: str) -> None:
    assert not _has_dot_segment("/" + "/".join(parts) + "?" + query.replace("#", ""))


# -- the middleware in-process: the token's name reaches the code handling the request -----------
async def _whoami(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return web.Response(text=current_user())
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await ws.send_str(current_user())  # as the acknowledge controller does, within the websocket's task
    return ws


async def _names() -> list[str]:
    policy = AccessPolicy(port=1, tokens=parse_tokens(TOKENS, "tokens.txt"), loopback=False)
    app = web.Application(middlewares=[policy.middleware])
    app.router.add_get("/whoami", _whoami)
    async with TestClient(TestServer(app)) as client:
        names = [await (await client.get("/whoami", headers={"Authorization": f"Bearer {ALICE}"})).text()]
        names.append(await (await client.get("/whoami", headers={"Authorization": f"Bearer {BARE}"})).text())
        async with client.ws_connect("/whoami", headers={"Authorization": f"Bearer {ALICE}"}) as ws:
            await ws.send_str("who?")
            names.append(await ws.receive_str())
        names.append(str((await client.get("/whoami")).status))
    return names


@pytest.mark.parametrize(("host", "origin", "allowed"), [
    ("twin.example.com", "https://twin.example.com", True),  # behind a TLS proxy: no port in either
    ("twin.example.com", "https://twin.example.com:8443", False),
    ("twin.example.com:8080", "http://TWIN.example.com:8080", True),
    ("twin.example.com:8080", "http://twin.example.com", False),
    ("twin.example.com", "https://wall.example.com", True),  # --allow-origin
    ("twin.example.com", "https://wall.example.com:444", False),
    ("twin.example.com", "file://", False),
])
def test_origin_must_match_host_or_be_allowed(host: str, origin: str, allowed: bool) -> None:
    policy = access_policy("127.0.0.1", 8080, allow_origins=["https://wall.example.com"], env={})
    request = make_mocked_request("GET", "/ws", headers={"Host": host, "Origin": origin, "Upgrade": "websocket"})
    assert policy._same_origin(request) is allowed


def test_acknowledging_user_is_the_tokens_name() -> None:
    assert asyncio.run(_names()) == ["alice", "operator", "alice", "401"]
    assert current_user() == "operator"  # nothing leaks out of a request


async def _page_tokens() -> list[str]:
    """What :func:`current_token` says while a request is handled, for each way the token comes."""
    policy = AccessPolicy(port=1, tokens=parse_tokens(TOKENS, "tokens.txt"), loopback=False)

    async def page_token(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(text=str(current_token()))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(str(current_token()))
        return ws

    app = web.Application(middlewares=[policy.middleware])
    app.router.add_get("/token", page_token)
    async with TestClient(TestServer(app)) as client:
        seen = [await (await client.get("/token", cookies={policy.cookie: ALICE})).text()]
        seen.append(await (await client.get("/token", headers={"Authorization": f"Bearer {ALICE}"})).text())
        async with client.ws_connect("/token", headers={"Cookie": f"{policy.cookie}={BARE}"}) as ws:
            await ws.send_str("which?")
            seen.append(await ws.receive_str())
    return seen


def test_a_pages_token_is_known_to_its_websocket_but_a_bearer_token_is_not() -> None:
    """Saved-view links carry the token a person opened the page with; a script's or the hub's Bearer secret never reaches a link."""
    assert asyncio.run(_page_tokens()) == [ALICE, "None", BARE]
    assert current_token() is None


# -- a real `twin serve` -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Callable[..., int]]:
    """Start ``twin serve`` on a host with extra options; returns the port once it listens. All are stopped at module end."""
    folder = tmp_path_factory.mktemp("access")
    scene = folder / "scene.yaml"
    scene.write_text(f"version: 1\nname: {SCENE_NAME}\nframe: {{crs: auto}}\nlayers:\n  - id: bus\n    type: vector\n"
                     f"    source: {{type: file, path: \"{(shared_data / 'bund_busline_71.geojson').as_posix()}\"}}\n", encoding="utf-8")
    (folder / "tokens.txt").write_text(TOKENS, encoding="utf-8")
    env: dict[str, str | None] = {"TWIN_TOKEN": None, "TWIN_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "twin-cache")}
    started = itertools.count()
    with contextlib.ExitStack() as servers:

        def start(host: str, *options: str) -> int:
            log = folder / f"serve-{next(started)}.log"
            args = [o.replace("TOKENS", str(folder / "tokens.txt")) for o in options]
            url = servers.enter_context(twin_serve(scene, log, host=host, timeout=60, env=env, args=args))
            return int(urllib.parse.urlsplit(url).port or 0)

        yield start


@pytest.fixture(scope="module")
def open_port(serve: Callable[..., int]) -> int:
    """A server on 127.0.0.2 (not 127.0.0.1: a token is needed) with the token file."""
    return serve("127.0.0.2", "--token-file", "TOKENS")


@pytest.fixture(scope="module")
def loopback_port(serve: Callable[..., int]) -> int:
    """A server on 127.0.0.1 without a token."""
    return serve("127.0.0.1")


def _get(host: str, port: int, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", path, headers=headers or {})  # the path goes out exactly as written
    response = conn.getresponse()
    response.body = response.read() if response.status != 101 else b""  # type: ignore[attr-defined]
    conn.close()
    return response


def _upgrade(host: str, port: int, **headers: str) -> int:
    """Status of a raw websocket upgrade request to the app's /ws."""
    base = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    return _get(host, port, "/ws", {**base, **{k.replace("_", "-"): v for k, v in headers.items()}}).status


def test_without_token_page_and_websocket_are_refused(open_port: int) -> None:
    page = _get("127.0.0.2", open_port, "/index.html")
    assert (page.status, page.body.decode().strip()) == (401, NEEDS_TOKEN)  # type: ignore[attr-defined]
    assert _upgrade("127.0.0.2", open_port, Origin=f"http://127.0.0.2:{open_port}") == 401
    assert _get("127.0.0.2", open_port, "/index.html?token=" + ALICE[:-1] + "x").status == 401
    assert _upgrade("127.0.0.2", open_port, Cookie=f"twin_token_{open_port}={BARE}x") == 401


def test_with_token_page_and_websocket_work(open_port: int) -> None:
    bearer = _get("127.0.0.2", open_port, "/index.html", {"Authorization": f"Bearer {BARE}"})
    assert bearer.status == 200 and b"<html" in bearer.body.lower()  # type: ignore[attr-defined]
    handed = _get("127.0.0.2", open_port, f"/index.html?token={ALICE}&ui=wall")
    assert (handed.status, handed.getheader("Location")) == (303, "/index.html?ui=wall")  # the token leaves the address
    cookie = handed.getheader("Set-Cookie") or ""
    assert cookie.startswith(f"twin_token_{open_port}={ALICE};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert _upgrade("127.0.0.2", open_port, Cookie=f"twin_token_{open_port}={ALICE}", Origin=f"http://127.0.0.2:{open_port}") == 101
    assert _upgrade("127.0.0.2", open_port, Authorization=f"Bearer {ALICE}") == 101  # a script: no Origin


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.2:1", "null", "http://127.0.0.2.evil.example"])
def test_foreign_origin_is_refused_even_with_token(open_port: int, loopback_port: int, origin: str) -> None:
    assert _upgrade("127.0.0.2", open_port, Cookie=f"twin_token_{open_port}={ALICE}", Origin=origin) == 403
    assert _upgrade("127.0.0.1", loopback_port, Origin=origin.replace("127.0.0.2", "127.0.0.1")) == 403


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_gets_404(open_port: int, loopback_port: int, path: str) -> None:
    assert _get("127.0.0.2", open_port, path, {"Authorization": f"Bearer {ALICE}"}).status == 404  # not 401: refused as a path
    response = _get("127.0.0.1", loopback_port, path)
    assert response.status == 404 and b"[project]" not in response.body and b"root:" not in response.body  # type: ignore[attr-defined]


def test_loopback_serves_without_token_but_only_to_loopback_names(loopback_port: int) -> None:
    assert _get("127.0.0.1", loopback_port, "/index.html").status == 200
    assert _upgrade("127.0.0.1", loopback_port, Origin=f"http://127.0.0.1:{loopback_port}") == 101
    assert _upgrade("127.0.0.1", loopback_port, Origin=f"http://localhost:{loopback_port}", Host=f"localhost:{loopback_port}") == 101
    rebound = _get("127.0.0.1", loopback_port, "/index.html", {"Host": f"evil.example:{loopback_port}"})  # DNS rebinding
    assert (rebound.status, rebound.body.decode().strip()) == (403, f"twin: Host 'evil.example:{loopback_port}' is not this loopback server")  # type: ignore[attr-defined]


def test_browser_with_token_loads_the_app(open_port: int) -> None:
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"http://127.0.0.2:{open_port}/?token={ALICE}")
        page.wait_for_selector("#twin-scene-name", timeout=30_000)
        page.wait_for_function("document.querySelector('#twin-scene-name').textContent.trim().length > 0", timeout=30_000)
        assert page.inner_text("#twin-scene-name").strip() == SCENE_NAME  # state came over the websocket
        assert "token" not in page.url
