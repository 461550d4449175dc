"""Session events to the page: view updates run on the trame server's event loop, whatever thread the event came from.

Session events arrive in the thread that made the change (the ticking thread, a replay timer,
or the loop itself for a user's action). :meth:`LoopBridge.soon` runs a view update on the
loop — at once when already there (or when no server runs: tests, notebooks), else gathered,
scheduled with ``call_soon_threadsafe`` and flushed to the browsers together; an update
already waiting is not queued twice, and one given a ``key`` replaces the update of that key still
waiting (the newest time, focus or selection wins). So the updates waiting stay bounded — one per key,
plus the unkeyed ones (alert transitions, each shown) — when ticks come faster than the loop runs them,
as on a loaded wall that renders large frames: without keys every tick added its refreshes, all run later.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["LoopBridge"]

log = logging.getLogger(__name__)


class LoopBridge:
    """Runs callables on the event loop of one trame server (``server``: its state is flushed after each)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._pending: dict[Hashable, Callable[[], None]] = {}
        self._lock = threading.Lock()

    @property
    def serving(self) -> bool:
        """True once attached to a running loop (a served page), False in tests and notebooks without a server."""
        return self.loop is not None and self.loop.is_running()

    def attach(self) -> None:
        """Use the running loop of the calling thread (call it from the server's ready hook)."""
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    def detach(self) -> None:
        """Stop using the loop (the server stopped): later updates run at once in the caller's thread."""
        self.loop = None
        self._loop_thread = None

    @property
    def waiting(self) -> int:
        """Updates waiting for the loop (bounded by the keys in use plus unkeyed updates since the last drain)."""
        with self._lock:
            return len(self._pending)

    def soon(self, update: Callable[[], None], *, key: Hashable | None = None) -> None:
        """Run ``update`` on the loop (now when on it or when no loop runs); failures are logged, never raised to the caller.

        Updates from other threads are gathered and run together, the state flushed once (one message per tick, not one per event).
        ``key``: an update waiting under the same key is replaced by this one, in its place (default: the update itself, so
        the same bound method waits once); give one where only the newest matters, e.g. ``key=self.refresh``.
        """
        if not self.serving or threading.get_ident() == self._loop_thread:
            self._run(update)
            return
        with self._lock:
            scheduled = bool(self._pending)  # a drain is already on its way
            self._pending[update if key is None else key] = update
            if scheduled:
                return
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            updates, self._pending = self._pending, {}
        with self.server.state:
            for update in updates.values():
                self._run(update)

    @staticmethod
    def _run(update: Callable[[], None]) -> None:
        try:
            update()
        except Exception:  # the page keeps running
            log.exception("view update %s failed", getattr(update, "__qualname__", update))
