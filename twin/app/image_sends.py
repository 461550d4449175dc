"""The remote view's images go to the browsers one at a time, the newest of each view: a slow page never makes a backlog.

trame-vtk publishes every frame it renders (up to 30 a second during a flight, a still after each change) and wslink
sends each publish as its own task, one at a time per server: a page that reads more slowly than the server renders
(a busy machine, a software-rendered browser, a slow network) left every frame waiting in memory with its packed copy.
On the wall (``benchmarks/bench_wall.py``, 1920x1080) 166 sends were waiting after a few simulated hours, ~100 MB of
the server's heap, and the page's own updates (clock, banner) waited behind them until it reloaded.

:class:`NewestImages` stands in for an image delivery's ``publish``: while an image is being sent, a newer image of the
same view replaces the one waiting (counted in :attr:`NewestImages.replaced`), so at most one image per view waits and
the last one always goes out. Other topics are published as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from wslink import schedule_coroutine

__all__ = ["IMAGE_TOPIC", "NewestImages", "newest_images"]

log = logging.getLogger(__name__)

IMAGE_TOPIC = "viewport.image.push.subscription"
"""trame-vtk's topic of the remote view's images."""


class NewestImages:
    """A delivery's ``publish`` (``publish(topic, data, client_id=None, skip_last_active_client=False)``, a wslink handler's
    bound method) that keeps at most one image per view waiting, and sends images through that handler."""

    def __init__(self, publish: Callable[..., None]) -> None:
        self._publish = publish
        self._handler: Any = publish.__self__  # type: ignore[attr-defined]
        self._waiting: dict[str, dict[str, Any]] = {}
        self._sending = False
        self.replaced = 0
        """Images replaced by a newer one of their view before they were sent."""

    @property
    def waiting(self) -> int:
        """Images waiting to be sent (at most one per view)."""
        return len(self._waiting)

    def __call__(self, topic: str, data: Any, client_id: str | None = None, skip_last_active_client: bool = False) -> None:
        if topic != IMAGE_TOPIC or client_id is not None or not isinstance(data, dict):
            self._publish(topic, data, client_id=client_id, skip_last_active_client=skip_last_active_client)
            return
        view = str(data.get("id"))
        if view in self._waiting:
            self.replaced += 1
        self._waiting[view] = data
        if not self._sending:
            self._sending = True
            schedule_coroutine(0, self._drain)

    async def _drain(self) -> None:
        """Send the waiting images, oldest view first, until none waits."""
        try:
            while self._waiting:
                view = next(iter(self._waiting))
                await self._send(self._waiting.pop(view))
        finally:
            self._sending = False

    async def _send(self, data: dict[str, Any]) -> None:
        """One image to every authenticated browser of the handler, as its ``publish`` sends it; a failed send is logged."""
        handler = self._handler
        manager = handler.pub_manager
        for client in list(handler.connections):
            if not handler.isClientAuthenticated(client):
                continue
            for protocol in list(manager.protocols):
                protocol.network_monitor.on_enter()
                try:
                    await protocol.sendWrappedMessage(f"publish:{IMAGE_TOPIC}:{manager.publishCount}", data, client_id=client)
                except Exception as exc:  # noqa: BLE001 - a browser gone mid-send must not stop the others' images
                    log.info("image to browser %s not sent: %s", client, exc)
                finally:
                    protocol.network_monitor.on_exit()


def newest_images(link: Any) -> None:
    """Make ``link`` (a trame-vtk image delivery) publish through :class:`NewestImages` (once; a link whose ``publish`` is not a
    wslink handler's is left as it is)."""
    publish = link.publish
    if not isinstance(publish, NewestImages) and hasattr(getattr(publish, "__self__", None), "pub_manager"):
        link.publish = NewestImages(publish)
