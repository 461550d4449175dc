"""Pages that outlive their server: the page script that reconnects by itself (static/reconnect.js).

When the websocket closes (the server restarts, the network drops), the page keeps its content and the last
picture of the 3D view, shows a "reconnecting" badge and tries again after 1, 2, 4, 8, 15, 15 ... s, until the
server answers; then it reconnects in place (or reloads, covered by the last picture) with no click. The badge
texts come from the message catalogue, rendered here as hidden elements the script reads when the connection drops.
"""

from __future__ import annotations

from importlib import resources

from trame.widgets import client, html

from twin.app.i18n import tr

__all__ = ["SCRIPT", "ui"]

SCRIPT = resources.files("twin.app").joinpath("static", "reconnect.js")
"""The page script (see its header for the protocol)."""


def ui() -> None:
    """The script and the badge's texts (hidden; shown by the script in the page's language); once per page layout."""
    client.Script(SCRIPT.read_text(encoding="utf-8"))
    with html.Div(style="display: none;", aria_hidden="true"):
        html.Span(tr("Reconnecting…"), id="twin-reconnect-text")
        html.Span(tr("last picture {time}"), id="twin-reconnect-since")
