"""The wall's overlays (:mod:`twin.app.kiosk`): clock and title, the tour, live sources, open alerts, the alert banner.

Templates over the shared state (``twin_hall``, ``twin_kiosk_clock``, ``twin_layers``, ``twin_live_info``,
``twin_alerts``, ``twin_scene_*``), every string through the catalogues; ``static/kiosk.css`` sizes them
with the screen (``vmin``) and shows them only on kiosk pages (``html.twin-kiosk``, set by ``static/kiosk.js``).
"""

from __future__ import annotations

from typing import Any

from trame.widgets import client, html

from twin.app.i18n import tr, tr_fmt
from twin.app.reconnect import STATIC

__all__ = ["OFF_WALL", "overlays", "page_flag", "ticking"]

OFF_WALL = "!twin_kiosk_page"
"""``v_if`` of what a wall page hides (the app bar, the drawers, the time bar, the pick card): a wall page does not build it,
so the state it reads (the replay range, the layer rows, every tick) does not re-render it there."""


def ticking(key: str, name: str) -> client.Getter:
    """A part of the page's template over state ``key``, called ``name`` inside it, that re-renders on its own when ``key`` changes
    (trame-client's ``<trame-getter>``, which renders no element of its own).

    For what changes on every tick (the wall's clock, the data ages). Read in the page's template, such a key re-rendered the whole
    page on every state update, ~5,000 JS calls of Vue and Vuetify a tick; their functions, each run a few times a tick, were
    compiled (V8's Maglev and TurboFan) one after another for the first hours of a compressed day, and the page's JS heap rose
    with that code. Inside a getter a tick re-renders only the few elements that show the key.
    """
    return client.Getter(name=key, value_name=name)


def page_flag(server: Any, *, kiosk: bool) -> None:
    """Each page's ``twin_kiosk_page`` set before its template renders (``static/kiosk_flag.js``, a module script loaded before
    the template mounts), from ``?kiosk=`` or the server's default ``kiosk`` (state ``twin_kiosk_default``)."""
    server.state.twin_kiosk_default = kiosk
    server.enable_module({"serve": {"__twin_static": str(STATIC)}, "scripts": ["__twin_static/kiosk_flag.js"]})  # reconnect's static entry


def overlays(*, kiosk: bool) -> None:
    """The kiosk layer with its data attributes (``mode``, ``camera``, ``stop``, ``pose``, ``flying``: what the wall shows),
    the stylesheet, the script that decides per page whether it is a kiosk (``kiosk``: the server's default), and the
    note an operator's page shows while the wall runs (it follows the wall's camera)."""
    client.Style(STATIC.joinpath("kiosk.css").read_text(encoding="utf-8"))
    client.Script(STATIC.joinpath("kiosk.js").read_text(encoding="utf-8").replace("__KIOSK_DEFAULT__", "true" if kiosk else "false"))
    with html.Div(id="twin-kiosk", classes="twin-kiosk-layer", raw_attrs=[
        ':data-mode="twin_hall.mode"', ':data-camera="twin_hall.camera"', ':data-stop="twin_hall.stop"', ':data-pose="twin_hall.pose"',
        ':data-flying="twin_hall.flying ? 1 : 0"',
    ]):
        with html.Div(classes="twin-kiosk-head"):
            html.Div("{{ twin_scene_title || twin_scene_name }}", classes="twin-kiosk-title")
            with ticking("twin_kiosk_clock", "clock"):
                html.Div("{{ clock.time }}", id="twin-kiosk-clock", classes="twin-kiosk-clock")
                html.Div("{{ clock.date }} +08:00", classes="twin-kiosk-date")
        html.Div("{{ twin_hall.error }}", v_if="twin_hall.error", classes="twin-kiosk-error")
        with html.Div(v_if="twin_hall.active && twin_hall.tour", classes="twin-kiosk-tour", id="twin-kiosk-tour"):
            html.Span(tr_fmt("Tour {tour}", tour="twin_hall.tour"))
            html.Span(tr_fmt("Stop {n}/{total}", n="twin_hall.stop + 1", total="twin_hall.stops"), classes="twin-kiosk-dim")
        _sources()
        _alerts()
        _banner()
    html.Div(tr("Following the wall: its tour moves this view"), v_if="twin_hall.active", id="twin-follow-note", classes="twin-follow-note")


def _sources() -> None:
    """One badge per live source: its data age, and "stale" when no new data came in time (or the source fails)."""
    stale = ':class="{ \'twin-kiosk-stale\': info[layer.id].stale }"'
    with (
        html.Div(classes="twin-kiosk-sources", id="twin-kiosk-sources"),
        ticking("twin_live_info", "info"),
        html.Template(v_for="layer in twin_layers", key="layer.id"),
        html.Div(v_if="info[layer.id]", classes="twin-kiosk-source", raw_attrs=[':data-layer-id="layer.id"', stale]),
    ):
        html.Span("{{ layer.titles[twin_lang] || layer.title }}", classes="twin-kiosk-source-title")
        html.Span("{{ info[layer.id].age }}", classes="twin-kiosk-dim")
        html.Span(tr("Stale"), v_if="info[layer.id].stale", classes="twin-kiosk-stale-badge")

def _alerts() -> None:
    """The open alerts, most urgent first (four, and how many more)."""
    with html.Div(v_if="twin_has_alerts", classes="twin-kiosk-alerts", id="twin-kiosk-alerts"):
        html.Div(tr_fmt("Open alerts: {n}", n="twin_alert_count"), classes="twin-kiosk-alerts-head")
        html.Div(tr("No open alerts"), v_if="!twin_alerts.length", classes="twin-kiosk-dim")
        with html.Div(v_for="a in twin_alerts.slice(0, 4)", key="a.id", classes="twin-kiosk-alert",
                      style=("{ borderLeftColor: a.color }",),
                      raw_attrs=[':data-alert-id="a.id"', ':class="{ \'twin-kiosk-pending\': a.state !== \'firing\' }"']):
            html.Span("{{ a.title }}", classes="twin-kiosk-alert-title")
            html.Span("{{ a.name || a.key }}", classes="twin-kiosk-dim")
            html.Span("{{ a.value }}", classes="twin-kiosk-alert-value", style=("{ color: a.color }",))
        html.Div(tr_fmt("{n} more", n="twin_alerts.length - 4"), v_if="twin_alerts.length > 4", classes="twin-kiosk-dim")

def _banner() -> None:
    """The alert the wall turned to, in large type: what, where, value, since; help within reach; resolved; waiting."""
    with html.Div(v_if="twin_hall.banner", id="twin-kiosk-banner", classes="twin-kiosk-banner", style=("{ borderColor: twin_hall.banner.color }",),
                  raw_attrs=[':data-alert-id="twin_hall.banner.id"', ':data-resolved="twin_hall.banner.resolved ? 1 : 0"']):
        with html.Div(classes="twin-kiosk-banner-head"):
            html.Span("{{ twin_hall.banner.title }}", classes="twin-kiosk-banner-title")
            html.Span(tr("Resolved"), v_if="twin_hall.banner.resolved", classes="twin-kiosk-resolved")
        with html.Div(classes="twin-kiosk-banner-body"):
            html.Span("{{ twin_hall.banner.value }}", classes="twin-kiosk-banner-value", style=("{ color: twin_hall.banner.color }",))
            with html.Div():
                html.Div("{{ twin_hall.banner.name ? twin_hall.banner.name + ' · ' + twin_hall.banner.key : twin_hall.banner.key }}",
                         classes="twin-kiosk-banner-where")
                html.Div(tr_fmt("Since {since} · {duration}", since="twin_hall.banner.since", duration="twin_hall.banner.duration"),
                         v_if="twin_hall.banner.since", classes="twin-kiosk-dim")
        with html.Div(v_if="twin_hall.banner.help.length", classes="twin-kiosk-help"):
            html.Div(tr("Help within reach"), classes="twin-kiosk-dim")
            with html.Div(v_for="(r, i) in twin_hall.banner.help", key="i", classes="twin-kiosk-help-row"):
                html.Span("{{ r.name }}")
                html.Span("{{ r.kind || r.layer }}", classes="twin-kiosk-dim")
                html.Span("{{ r.distance }}")
        html.Div(tr_fmt("{n} more alerts waiting", n="twin_hall.queued"), v_if="twin_hall.queued", classes="twin-kiosk-dim")
