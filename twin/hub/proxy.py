"""Forwarding a session's requests and websocket to its app process, with aiohttp's client.

The page of a session lives under ``/s/<id>/``; the trame client builds its websocket address from the
page's path (``/s/<id>/ws``) and loads its assets by relative paths, so stripping the prefix is all the
app needs. Forwarded requests carry the child's secret as ``Authorization: Bearer`` and the child's own
``Host``; the browser's cookies, ``Authorization`` and ``Origin`` stay at the hub (it has checked them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

import aiohttp
from aiohttp import WSMsgType, hdrs, web
from multidict import CIMultiDict, istr

from twin.app.reconnect import HEARTBEAT
from twin.hub.child import Child

__all__ = ["ChildProxy", "is_input"]

_HOP_BY_HOP = frozenset(istr(name) for name in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade"))
_KEPT_AT_HUB = frozenset(istr(name) for name in ("Host", "Origin", "Cookie", "Authorization", "Referer"))
_CHUNK = 1 << 16
_HEARTBEAT = HEARTBEAT.encode()
_HEARTBEAT_MAX_BYTES = 512


def _upstream_headers(headers: Mapping[str, str], child: Child) -> CIMultiDict[str]:
    """The request headers to send the child: hop-by-hop and the hub's own ones dropped, the child's Host and secret added."""
    out = CIMultiDict((name, value) for name, value in headers.items() if name not in _HOP_BY_HOP and name not in _KEPT_AT_HUB)
    out[hdrs.HOST] = f"127.0.0.1:{child.port}"
    out[hdrs.AUTHORIZATION] = f"Bearer {child.secret}"
    return out


def _downstream_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """The child's response headers minus hop-by-hop ones and cookies (the child sets none the browser needs)."""
    return CIMultiDict((name, value) for name, value in headers.items() if name not in _HOP_BY_HOP and name != hdrs.SET_COOKIE)


def _is_upgrade(request: web.Request) -> bool:
    return "websocket" in request.headers.get(hdrs.UPGRADE, "").lower()


class ChildProxy:
    """Forwards requests to session apps through one client (no cookie jar, bodies passed through undecoded). Close with :meth:`close`."""

    def __init__(self) -> None:
        self._client: aiohttp.ClientSession | None = None

    @property
    def client(self) -> aiohttp.ClientSession:
        """The shared client, made on first use (inside the event loop)."""
        if self._client is None:
            self._client = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                                                 timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._client

    async def close(self) -> None:
        """Close the client."""
        if self._client is not None:
            await self._client.close()

    async def forward(self, request: web.Request, child: Child, path: str, on_input: Callable[[], None]) -> web.StreamResponse:
        """Forward ``request`` to ``path`` (``/...``, the part after the session prefix) of ``child``; a websocket is relayed both ways.

        ``on_input`` is called for the request and for every websocket message from the browser. Answers 502
        with one line if the child does not answer.
        """
        on_input()
        url = child.url + path + (f"?{request.query_string}" if request.query_string else "")
        try:
            if _is_upgrade(request):
                return await self._websocket(request, child, url, on_input)
            return await self._http(request, child, url)
        except aiohttp.ClientError as exc:
            raise web.HTTPBadGateway(text=f"twin hub: the session's app did not answer ({type(exc).__name__})\n") from None

    async def _http(self, request: web.Request, child: Child, url: str) -> web.StreamResponse:
        body = request.content if request.can_read_body else None
        async with self.client.request(request.method, url, headers=_upstream_headers(request.headers, child), data=body,
                                       allow_redirects=False) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=_downstream_headers(upstream.headers))
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                await response.write(chunk)
            await response.write_eof()
            return response

    async def _websocket(self, request: web.Request, child: Child, url: str, on_input: Callable[[], None]) -> web.StreamResponse:
        """Relay one websocket: the child's is opened first (so a dead child gets 502), then the browser's is accepted."""
        headers = {hdrs.AUTHORIZATION: f"Bearer {child.secret}"}
        async with self.client.ws_connect(url, headers=headers, max_msg_size=0, autoping=True) as upstream:
            downstream = web.WebSocketResponse(max_msg_size=0, autoping=True)
            await downstream.prepare(request)
            pumps = [asyncio.create_task(_pump(downstream, upstream, lambda message: is_input(message) and on_input())),
                     asyncio.create_task(_pump(upstream, downstream, None))]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                on_input()  # closing the page counts as input: idle time starts now
                await downstream.close()
            return downstream


def is_input(message: aiohttp.WSMessage) -> bool:
    """Whether a page's websocket message is a person's input: any message but the heartbeat (:data:`twin.app.reconnect.HEARTBEAT`),
    which a page left open sends by itself every few seconds (a small wslink call naming it; larger messages are always input)."""
    data = message.data.encode() if message.type is WSMsgType.TEXT else message.data if message.type is WSMsgType.BINARY else b""
    return not (len(data) <= _HEARTBEAT_MAX_BYTES and _HEARTBEAT in data)


async def _pump(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse, target: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                on_message: Callable[[aiohttp.WSMessage], object] | None) -> None:
    """Copy text and binary messages from ``source`` to ``target`` until either closes; ``on_message`` sees each first."""
    with contextlib.suppress(ConnectionError, aiohttp.ClientError):
        async for message in source:
            if on_message is not None:
                on_message(message)
            if message.type is WSMsgType.TEXT:
                await target.send_str(message.data)
            elif message.type is WSMsgType.BINARY:
                await target.send_bytes(message.data)
