"""The HTML the hub writes itself: the scene list, and one-paragraph pages for a full hub, an ended session, a failed start.

Every page is small, self-contained (no script) and escapes all text it shows. Each message page has an
``id="twin-hub-message"`` paragraph holding its one line, for people and for tests.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from urllib.parse import quote

from aiohttp import hdrs, web

from twin.hub.scenes import SceneEntry
from twin.hub.sessions import Session

__all__ = ["ended_page", "failed_page", "full_page", "landing_page", "message_page"]

_STYLE = ("body{font-family:system-ui,sans-serif;background:#0a1020;color:#e2e8f0;margin:2rem auto;max-width:46rem;padding:0 1rem}"
          "a{color:#38bdf8}li{margin:.6rem 0}.title{color:#94a3b8;margin-left:.5rem}.error{color:#f59e0b}"
          "button{background:#38bdf8;color:#0a1020;border:0;border-radius:4px;padding:.3rem .9rem;cursor:pointer;margin-left:.6rem}"
          "form{display:inline}")


def _document(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def message_page(status: int, title: str, line: str, *, headers: dict[str, str] | None = None) -> web.Response:
    """A page of one message ``line`` (with a link back to the scene list), answered with HTTP ``status``."""
    body = f'<h1>{html.escape(title)}</h1><p id="twin-hub-message">{html.escape(line)}</p><p><a href="/">Back to the scenes</a></p>'
    return web.Response(status=status, text=_document(title, body), content_type="text/html", headers=headers)


def full_page(cap: int) -> web.Response:
    """503: every place is taken (with ``Retry-After``)."""
    taken = "The one planner session is" if cap == 1 else f"All {cap} planner sessions are"
    return message_page(503, "twin: all sessions in use", f"{taken} in use; try again in a few minutes.",
                        headers={hdrs.RETRY_AFTER: "120"})


def ended_page() -> web.Response:
    """404: no running session has this address (closed when idle, its app stopped, the hub restarted, or a mistyped address)."""
    return message_page(404, "twin: session ended", "This planner session has ended (it was closed after a time without use, "
                        "or the hub was restarted). Open the scene again from the list.")


def failed_page(line: str) -> web.Response:
    """500: a scene's app could not start; ``line`` names the scene file and says why."""
    return message_page(500, "twin: the scene could not be opened", line)


def _ago(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes} min ago" if minutes else "just now"


def _scene_item(entry: SceneEntry) -> str:
    name = html.escape(entry.name)
    if entry.error:
        return f'<li data-scene="{html.escape(entry.key)}"><b>{name}</b> <span class="error">cannot be opened: {html.escape(entry.error)}</span></li>'
    title = f'<span class="title">{html.escape(entry.title)}</span>' if entry.title else ""
    return (f'<li data-scene="{html.escape(entry.key)}"><b>{name}</b>{title}'
            f'<form method="post" action="/start/{quote(entry.key, safe="")}"><button type="submit">Open</button></form></li>')


def landing_page(entries: Sequence[SceneEntry], mine: Sequence[Session], in_use: int, cap: int) -> web.Response:
    """The front page: this browser's running sessions (to go back to) and the scenes to open, with how many places are taken."""
    now = time.monotonic()
    parts = ["<h1>twin · planner sessions</h1>",
             (f'<p id="twin-hub-places">{in_use} of {cap} sessions in use. Each session is your own: camera, layers, time and picks '
              "are not shared with anyone.</p>")]
    if mine:
        items = "".join(f'<li><a href="/s/{s.id}/">{html.escape(s.scene.name)}</a> <span class="title">opened {_ago(now - s.started)}</span></li>'
                        for s in mine)
        parts.append(f'<h2>Your sessions</h2><ul id="twin-hub-mine">{items}</ul>')
    parts.append(f'<h2>Scenes</h2><ul id="twin-hub-scenes">{"".join(_scene_item(e) for e in entries)}</ul>')
    return web.Response(text=_document("twin · planner sessions", "".join(parts)), content_type="text/html")
