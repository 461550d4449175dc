"""The hub's front door: the scene list, opening sessions, and forwarding ``/s/<id>/...`` to each session's app.

Routes (all behind :class:`~twin.app.access.AccessPolicy`, the same rules as ``twin serve``):

- ``GET /``: the scene list and this browser's sessions; gives the browser its hub cookie.
- ``POST /start/<scene>``: a new session of ``<scene>.yaml`` for this browser (or back to the one it has), then
  303 to ``/s/<id>/``; 503 with a "full" page when every place is taken; refused from another site's page.
- ``/s/<id>/...``: the session's app (pages, assets, websocket), only for the browser that opened it.

Serving (blocks until SIGINT/SIGTERM, then stops every session's app)::

    run_hub(HubSettings(Path("scenes"), sessions=4), host="127.0.0.1", port=8080, access=access_policy("127.0.0.1", 8080))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiohttp import hdrs, web

from twin.app.access import AccessPolicy, current_user
from twin.errors import HubError
from twin.hub.child import Child
from twin.hub.pages import ended_page, failed_page, full_page, landing_page, message_page
from twin.hub.proxy import ChildProxy
from twin.hub.scenes import SceneEntry, find_scene, list_scenes
from twin.hub.sessions import Session, SessionTable

__all__ = ["Hub", "HubSettings", "run_hub"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubSettings:
    """What a hub serves. ``scenes``: a folder of ``.yaml`` scene files (or one scene file). ``sessions``: most at once.

    ``idle_timeout``: seconds without input before a session is closed. ``view``: ``twin serve --view`` of every session.
    ``ready_timeout``: seconds a session's app may take to load its scene and listen.
    """

    scenes: Path
    sessions: int = 4
    idle_timeout: float = 1800.0
    view: str = "auto"
    ready_timeout: float = 120.0


class Hub:
    """The front door's handlers and state (see the module docs); ``workdir`` is a private folder for the sessions' token files."""

    def __init__(self, settings: HubSettings, access: AccessPolicy, workdir: Path) -> None:
        self.settings = settings
        self.access = access
        self.workdir = workdir
        self.cookie = f"twin_hub_{access.port}"
        self.table = SessionTable(cap=settings.sessions, idle_timeout=settings.idle_timeout, make_child=self._child,
                                  ready_timeout=settings.ready_timeout)
        self.proxy = ChildProxy()
        self._reaper: asyncio.Task[None] | None = None

    def _child(self, scene: SceneEntry, user: str, session_id: str) -> Child:
        return Child(scene.path, user=user, workdir=self.workdir, label=session_id, view=self.settings.view)

    def app(self) -> web.Application:
        """The aiohttp application: access checks first, then the routes; stops every session's app on shutdown."""
        app = web.Application(middlewares=[self.access.middleware])
        app.router.add_get("/", self.landing)
        app.router.add_post("/start/{scene}", self.start)
        app.router.add_route("*", "/s/{session}", self.session_root)
        app.router.add_route("*", "/s/{session}/{path:.*}", self.session)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_startup(self, _: web.Application) -> None:
        self._reaper = asyncio.create_task(self.table.reap_forever())

    async def _on_shutdown(self, _: web.Application) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self.table.close_all()
        await self.proxy.close()

    # -- the browser a request comes from ------------------------------------------------------
    def _browser(self, request: web.Request) -> str | None:
        return request.cookies.get(self.cookie)

    def _remember(self, request: web.Request, response: web.StreamResponse, browser: str) -> web.StreamResponse:
        """Give the browser its hub cookie (HttpOnly, SameSite=Strict) if it has none yet."""
        if self._browser(request) != browser:
            response.set_cookie(self.cookie, browser, httponly=True, samesite="Strict", secure=request.secure, path="/")
        return response

    # -- handlers ------------------------------------------------------------------------------
    async def landing(self, request: web.Request) -> web.StreamResponse:
        """``GET /``: the scene list, with this browser's own sessions."""
        browser = self._browser(request) or secrets.token_urlsafe(24)
        try:
            entries = list_scenes(self.settings.scenes)
        except HubError as exc:
            return self._remember(request, failed_page(str(exc)), browser)
        page = landing_page(entries, self.table.owned_by(browser), len(self.table), self.table.cap)
        return self._remember(request, page, browser)

    async def start(self, request: web.Request) -> web.StreamResponse:
        """``POST /start/<scene>``: open a session (see the module docs)."""
        if not self.access.same_origin(request):
            return message_page(403, "twin: refused", f"A page from {request.headers.get(hdrs.ORIGIN)} may not open sessions here.")
        key = request.match_info["scene"]
        browser = self._browser(request) or secrets.token_urlsafe(24)
        try:
            entry = find_scene(self.settings.scenes, key)
            if entry is None:
                return message_page(404, "twin: no such scene", f"There is no scene {key!r} here any more.")
            if entry.error is not None:
                return self._remember(request, failed_page(entry.error), browser)
            mine = next((s for s in self.table.owned_by(browser) if s.scene.path == entry.path), None)
            session = mine or await self.table.open(entry, owner=browser, user=current_user())
        except HubError as exc:
            log.warning("%s", exc)
            return self._remember(request, failed_page(str(exc)), browser)
        if session is None:
            return self._remember(request, full_page(self.table.cap), browser)
        return self._remember(request, _redirect(303, f"/s/{session.id}/"), browser)

    def _own_session(self, request: web.Request) -> Session | web.StreamResponse:
        """The session the address names if this browser opened it, else the page to answer instead."""
        session = self.table.get(request.match_info["session"])
        if session is None:
            return ended_page()
        if not session.owned_by(self._browser(request)):
            return message_page(403, "twin: not your session", "This planner session belongs to another browser; open your own from the list.")
        return session

    async def session_root(self, request: web.Request) -> web.StreamResponse:
        """``/s/<id>``: on to ``/s/<id>/`` (the app's relative addresses need the slash)."""
        found = self._own_session(request)
        return found if isinstance(found, web.StreamResponse) else _redirect(302, f"/s/{found.id}/")

    async def session(self, request: web.Request) -> web.StreamResponse:
        """``/s/<id>/<path>``: forwarded to the session's app; input resets its idle time."""
        found = self._own_session(request)
        if isinstance(found, web.StreamResponse):
            return found
        return await self.proxy.forward(request, found.child, "/" + request.match_info["path"], found.touch)


def _redirect(status: int, location: str) -> web.Response:
    return web.Response(status=status, headers={hdrs.LOCATION: location})


def run_hub(settings: HubSettings, *, host: str, port: int, access: AccessPolicy) -> None:
    """Serve the hub on ``host``:``port`` with ``access`` until SIGINT/SIGTERM, then stop every session's app (SIGTERM, then SIGKILL)."""
    with tempfile.TemporaryDirectory(prefix="twin-hub-") as workdir:  # mode 0700: the sessions' token files
        hub = Hub(settings, access, Path(workdir))
        web.run_app(hub.app(), host=host, port=port, print=None, access_log=None, shutdown_timeout=5, handle_signals=True)
