"""Pages that outlive their server: the page script that reconnects by itself (static/reconnect.js).

When the websocket closes (the server restarts, the network drops), the page keeps its content and the last
picture of the 3D view, shows a "reconnecting" badge and tries again after 1, 2, 4, 8, 15, 15 ... s, until the
server answers; then it reconnects in place (or reloads, covered by the last picture) with no click. The badge
texts come from the message catalogue, rendered here as hidden elements the script reads when the connection drops.

A silent loss (the socket stays open and nothing comes back: a stopped server process, a proxy that stopped
forwarding) is found by a heartbeat: each page calls the trigger :data:`HEARTBEAT` every quarter of the loss time, one
call at a time, and counts the connection lost when one stays unanswered while nothing at all came from the server for
the loss time (:func:`heartbeat_loss`: 10 s, ``$TWIN_HEARTBEAT_LOSS`` sets another; the page reads it from the state
key ``twin_heartbeat_loss``): a busy server answers late, but its state updates keep coming, and that is no outage. wslink's own keep-alive (aiohttp's
``heartbeat``, ``$WSLINK_HEART_BEAT``) only lets the server find dead browsers: a page's WebSocket can neither send
nor see protocol pings.

``static/keep_buffers.js`` is loaded before the page's views are made: their WebGL contexts keep the drawing buffer, so
the local (vtk.js) view's last picture can be read back like the remote view's image. ``static/component_listeners.js``,
loaded with it, removes the ``window`` listeners a component added in its setup when it unmounts: a reconnection remounts
the page's template, and trame-client's ``ClientTriggers`` kept each old copy of the page alive through one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from typing import Any

from trame.widgets import client, html

from twin.alerts.rules import parse_duration
from twin.app.i18n import tr
from twin.errors import TwinError

__all__ = ["HEARTBEAT", "HEARTBEAT_LOSS_ENV", "SCRIPT", "heartbeat_loss", "ui"]

STATIC = resources.files("twin.app").joinpath("static")
SCRIPT = STATIC.joinpath("reconnect.js")
"""The page script (see its header for the protocol)."""
_EARLY = {"serve": {"__twin_static": str(STATIC)}, "scripts": ["__twin_static/keep_buffers.js", "__twin_static/component_listeners.js"]}
"""The trame module loading ``static/keep_buffers.js`` and ``static/component_listeners.js`` before the page mounts its template."""
HEARTBEAT = "twin_heartbeat"
"""The trigger the pages call to tell that the server still answers."""
HEARTBEAT_LOSS_ENV = "TWIN_HEARTBEAT_LOSS"
"""Environment variable: how long a page hears nothing from its server before it counts the connection lost (a duration)."""
DEFAULT_LOSS_S, LOSS_RANGE_S = 10.0, (5.0, 600.0)
"""The loss time (s) unless the environment says, and the loss times allowed (s): a beat goes every quarter of it."""


def heartbeat_loss(env: Mapping[str, str] | None = None) -> float:
    """Seconds a page waits without hearing from its server before it counts the connection lost: ``$TWIN_HEARTBEAT_LOSS``
    (``env``, default os.environ; a duration: ``10``, ``10s``, ``1m``), else 10 s.

    Raises :class:`~twin.errors.TwinError` naming the variable for text that is not a duration from 5 s to 10 min (shorter, a
    server's pauses read as outages: at 3 s a page found two or three false ones while its server started; longer, a stopped
    server would go unnoticed for too long).
    """
    text = (os.environ if env is None else env).get(HEARTBEAT_LOSS_ENV, "").strip()
    if not text:
        return DEFAULT_LOSS_S
    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError as exc:
        raise TwinError(f"{HEARTBEAT_LOSS_ENV}: {exc}") from None
    low, high = LOSS_RANGE_S
    if not low <= seconds <= high:
        raise TwinError(f"{HEARTBEAT_LOSS_ENV}={text!r}: the heartbeat's loss time must be from {low:g} s to {high / 60:g} min, e.g. 10s")
    return seconds


def _beat() -> None:
    """A heartbeat: answering is all it does."""


def ui(server: Any) -> None:
    """The script, the badge's texts (hidden; shown by the script in the page's language) and ``server``'s heartbeat with its loss
    time (:func:`heartbeat_loss`, in the state key ``twin_heartbeat_loss``); once per page layout. Raises TwinError for a bad
    ``$TWIN_HEARTBEAT_LOSS``."""
    server.state.twin_heartbeat_loss = heartbeat_loss()
    server.enable_module(_EARLY)
    server.trigger(HEARTBEAT)(_beat)
    client.Script(SCRIPT.read_text(encoding="utf-8"))
    with html.Div(style="display: none;", aria_hidden="true"):
        html.Span(tr("Reconnecting…"), id="twin-reconnect-text")
        html.Span(tr("last picture {time}"), id="twin-reconnect-since")
