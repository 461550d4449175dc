"""Data-age and stale badges of the live sources, as an overlay on the view (the wall's form of the layer panel's chips).

One badge per live layer: its title and data age (the age of its newest reading, twin's health model); a badge
turns stale when the data is older than the layer's ``stale_after`` or its source is failing (the layer keeps
drawing its last good data meanwhile), and clears by itself when data comes again. State: ``twin_sources``, a list
of ``{id, title, age, stale, failing, tip}`` refreshed at each tick and health change.

Place it with :meth:`SourceBadges.ui` inside a positioned box (the view): ``only_stale=True`` (the explorer) shows
only stale sources; the kiosk shows them all.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from trame.app import TrameComponent
from trame.widgets import html

from twin.app.bridge import LoopBridge
from twin.app.i18n import tr, tr_expr, tr_fmt
from twin.app.kiosk_overlays import ticking
from twin.app.live import fmt_age, layer_live_info
from twin.layer import Layer
from twin.session import Session

__all__ = ["SourceBadges", "source_row"]


def source_row(layer: Layer, now: dt.datetime, lang: str = "en") -> dict[str, Any]:
    """One live layer's badge at ``now``: ``age`` is its data age for people ('' before any data), ``stale`` past
    ``stale_after`` or failing, ``failing`` when its last poll failed, ``tip`` says why (source and error); texts (the layer's
    title too) in ``lang``."""
    info = layer_live_info(layer, now, lang)
    health = getattr(layer, "health", None)
    age = health.data_age(now) if health is not None else None
    return {
        "id": layer.id,
        "title": layer.title_for(lang),
        "age": "" if age is None else fmt_age(age, lang),
        "stale": bool(info["stale"]),
        "failing": bool(info["error"]),
        "tip": info["tip"],
    }


class SourceBadges(TrameComponent):
    """The live sources' badges of one session (state ``twin_sources``), refreshed on ticks and health changes."""

    def __init__(self, server: Any, session: Session, bridge: LoopBridge) -> None:
        super().__init__(server)
        self.session = session
        self.state.twin_sources = []
        self.refresh()
        session.time_changed.connect(lambda _change: bridge.soon(self.refresh, key=self.refresh))
        session.health_changed.connect(lambda _change: bridge.soon(self.refresh, key=self.refresh))
        self.state.change("twin_lang")(lambda **_: self.refresh())  # the ages and tips are written in the page's language

    def refresh(self) -> None:
        """Push the badges as of the live clock (nothing before the first tick)."""
        now = self.session.now
        if now is None:
            return
        with self.session.lock:
            rows = [source_row(layer, now, self.state.twin_lang or "en") for layer in self.session.live_layers()]
        if rows != self.state.twin_sources:
            self.state.twin_sources = rows

    def ui(self, *, only_stale: bool = False) -> None:
        """The badges, bottom left of the enclosing box; ``only_stale``: show a source only while it is stale."""
        shown = "src in sources.filter(s => s.stale)" if only_stale else "src in sources"
        box = "sources.filter(s => s.stale).length" if only_stale else "sources.length"
        badge = ("['twin-source', src.stale ? 'twin-source-stale' : '', src.failing ? 'twin-source-failing' : '']",)
        flags = [':data-layer-id="src.id"', ':data-stale="src.stale ? 1 : 0"', ':data-failing="src.failing ? 1 : 0"']
        with (
            ticking("twin_sources", "sources"),  # the ages change every tick: only the badges re-render then
            html.Div(v_if=box, classes="twin-overlay twin-sources", id="twin-sources"),
            html.Div(v_for=shown, key="src.id", classes=badge, title=("src.tip",), raw_attrs=flags),
        ):
            html.Span("{{ src.title }}", classes="twin-source-title")
            html.Span(tr_fmt("data {age} old", age="src.age"), v_if="src.age", classes="twin-source-age")
            html.Span(tr("no data yet"), v_if="!src.age", classes="twin-source-age")
            html.Span("{{ src.failing ? " + tr_expr("source down") + " : " + tr_expr("stale") + " }}", v_if="src.stale", classes="twin-source-flag")
