"""The hub's planner sessions: at most ``cap`` at once, each owned by one browser, closed when idle or when their app dies.

A session is idle while no input comes from its page: no request, no websocket message (a mouse move,
a click, a layer switch), no page opening or closing. A page left open without input counts as idle
too (its heartbeat is no input: :func:`twin.hub.proxy.is_input`), so a forgotten tab does not hold a place for ever.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from twin.hub.child import Child
from twin.hub.scenes import SceneEntry

__all__ = ["Session", "SessionTable"]

log = logging.getLogger(__name__)

ChildFactory = Callable[[SceneEntry, str, str], Child]
"""Makes the (not yet started) app process of a session from (scene, user, session id)."""


@dataclass
class Session:
    """One planner's session: ``id`` (unguessable, in its address), the browser that ``owner``s it (a cookie value), its app."""

    id: str
    scene: SceneEntry
    owner: str
    child: Child
    started: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    def touch(self) -> None:
        """Note input from the session's page now."""
        self.last_active = time.monotonic()

    def owned_by(self, browser: str | None) -> bool:
        """True if ``browser`` (the hub cookie's value) is the one that opened the session (compared in constant time)."""
        return browser is not None and hmac.compare_digest(self.owner.encode(), browser.encode())


class SessionTable:
    """The running sessions (see the module docs).

    ``cap``: most sessions at once (starting ones count). ``idle_timeout``: seconds without input before a
    session is closed. ``make_child``: builds a session's app process. ``ready_timeout``: seconds an app may take to listen.
    """

    def __init__(self, *, cap: int, idle_timeout: float, make_child: ChildFactory, ready_timeout: float = 120.0) -> None:
        self.cap = cap
        self.idle_timeout = idle_timeout
        self.ready_timeout = ready_timeout
        self._make_child = make_child
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def full(self) -> bool:
        """True when ``cap`` sessions run (or start)."""
        return len(self._sessions) >= self.cap

    def get(self, session_id: str) -> Session | None:
        """The running session ``session_id``, or None."""
        return self._sessions.get(session_id)

    def owned_by(self, browser: str | None) -> list[Session]:
        """The sessions ``browser`` opened, oldest first."""
        return [s for s in self._sessions.values() if s.owned_by(browser)]

    async def open(self, scene: SceneEntry, *, owner: str, user: str) -> Session | None:
        """Start a session of ``scene`` for browser ``owner`` (``user``: who the hub's token says it is); None when full.

        Waits until the session's app listens. Raises HubError (naming the scene file) if the app does not start.
        """
        if self.full:
            log.warning("all %d sessions are in use: refused a session of %s", self.cap, scene.path.name)
            return None
        session_id = secrets.token_urlsafe(16)
        session = Session(id=session_id, scene=scene, owner=owner, child=self._make_child(scene, user, session_id))
        self._sessions[session_id] = session  # holds its place while the app starts
        try:
            await session.child.start(self.ready_timeout)
        except BaseException:
            self._sessions.pop(session_id, None)
            raise
        session.touch()  # idle time counts from when the page can load
        session.watcher = asyncio.create_task(self._watch(session))
        log.info("session %s started: %s for %s (pid %s, port %d, %d of %d in use)", session_id, scene.path.name, user, session.child.pid,
                 session.child.port, len(self), self.cap)
        return session

    async def close(self, session: Session, reason: str) -> None:
        """Stop ``session``'s app and free its place; logs ``reason``."""
        if self._sessions.pop(session.id, None) is None:
            return
        code = await session.child.stop()
        log.info("session %s stopped: %s (exit code %s, %d of %d in use)", session.id, reason, code, len(self), self.cap)

    async def _watch(self, session: Session) -> None:
        """Free the place of ``session`` as soon as its app exits on its own (a crash, a kill from outside)."""
        assert session.child.process is not None
        await session.child.process.wait()
        if self.get(session.id) is session:
            await self.close(session, f"its app exited on its own ({session.child.last_error()})")

    async def reap(self, now: float | None = None) -> None:
        """Close the started sessions that had no input for ``idle_timeout`` seconds or more."""
        now = time.monotonic() if now is None else now
        for session in list(self._sessions.values()):
            if session.watcher is not None and now - session.last_active >= self.idle_timeout:
                await self.close(session, f"no input for {now - session.last_active:.0f} s")

    async def reap_forever(self) -> None:
        """:meth:`reap` four times per idle timeout (every 0.25 s to 30 s), until cancelled."""
        period = min(max(self.idle_timeout / 4, 0.25), 30.0)
        while True:
            await asyncio.sleep(period)
            await self.reap()

    async def close_all(self) -> None:
        """Stop every session's app (hub shutdown), all at once."""
        await asyncio.gather(*(self.close(s, "the hub is stopping") for s in list(self._sessions.values())))

