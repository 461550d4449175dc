"""The legend component: one entry per visible layer that has a legend (``twin_legends``), as HTML beside the view."""

from __future__ import annotations

import logging
from typing import Any

from matplotlib import colormaps
from trame.app import TrameComponent
from trame.widgets import html

from twin.app.i18n import LANGUAGES, N_, gettext, tr_expr, tr_fmt
from twin.render.view import SceneView
from twin.session import LayerChange, Session
from twin.style import Legend, LegendEntry, text_in

__all__ = ["MODEL_MESSAGES", "LegendPanel", "entry_labels", "legend_dict"]

log = logging.getLogger(__name__)

_MAX_LEGEND_ENTRIES = 24
MODEL_MESSAGES = frozenset({N_("(no value)")})
"""The msgids the model puts in legends (:data:`twin.style.NO_VALUE`), marked for the catalogues."""
_AGGREGATES = "({count: " + tr_expr("count") + ", sum: " + tr_expr("sum") + ", mean: " + tr_expr("mean") + ", max: " + tr_expr("max") + "})"
_LIVE_TITLE = f"({_AGGREGATES}[lg.live.aggregate] || lg.live.aggregate) + ' / ' + " + tr_expr("{n} min") + ".replace('{n}', lg.live.window)"


class LegendPanel(TrameComponent):
    """Legends of the layers the view draws; rebuilt when a layer fails or comes back, filtered by visibility."""

    def __init__(self, server: Any, session: Session, view: SceneView) -> None:
        super().__init__(server)
        self.session, self.view = session, view
        self._legends: dict[str, dict[str, Any]] | None = None
        self._left_out: tuple[set[str], set[str]] = (set(), set())  # (failed, pending) layers when the legends were collected
        self.refresh()
        session.layer_changed.connect(self._restyled)

    def _restyled(self, change: LayerChange) -> None:
        """A layer's colours changed (colour by, colormap, range): its legend is collected again."""
        if "style" in change.kinds:
            self._legends = None
            self.refresh()

    def _collect(self) -> dict[str, dict[str, Any]]:
        legends: dict[str, dict[str, Any]] = {}
        for layer in self.session.scene.layers:
            if layer.id in self.view.errors or layer.id in self.view.pending:
                continue
            try:
                legend = layer.visual(self.session.scene.frame).style.legend
            except Exception as exc:  # noqa: BLE001  (a broken plugin must not stop the app)
                log.warning("layer %s: no legend: %s", layer.id, exc)
                continue
            if legend is not None:
                legends[layer.id] = legend_dict(layer.id, layer.title, legend, {lang: layer.title_for(lang) for lang in LANGUAGES})
                legends[layer.id]["live"] = _live_title(layer)
        return legends

    def refresh(self, fatal: bool = False) -> None:
        """Push the legends of visible layers (``fatal``: the scene cannot be drawn, no legends)."""
        with self.session.lock:
            if fatal:
                self._legends = {}
            elif self._legends is None or (set(self.view.errors), set(self.view.pending)) != self._left_out:  # a layer failed, came back or came in
                self._legends = self._collect()
                self._left_out = (set(self.view.errors), set(self.view.pending))
            visible = {layer.id for layer in self.session.scene.layers if layer.visible}
        self.state.twin_legends = [lg for lid, lg in self._legends.items() if lid in visible]

    def ui(self) -> None:
        with (
            html.Div(classes="twin-overlay twin-legend", id="twin-legend", v_if="twin_legends.length"),
            html.Div(v_for="lg in twin_legends", key="lg.id", classes="mb-2", raw_attrs=[':data-layer-id="lg.id"']),
        ):
            html.Div("{{ lg.live ? (lg.layer_titles[twin_lang] || lg.title) + ': ' + " + _LIVE_TITLE + " : (lg.titles[twin_lang] || lg.title) }}",
                     classes="twin-legend-title")
            with html.Div(v_if="lg.kind === 'categorical'"):
                with html.Div(v_for="(e, i) in lg.entries", key="i", classes="twin-legend-row"):
                    html.Span(classes="twin-swatch", style=("{ background: e.color }",))
                    html.Span("{{ e.labels[twin_lang] || e.label }}", classes="twin-legend-label")
                html.Div(tr_fmt("… {n} more", n="lg.more"), v_if="lg.more", classes="text-caption text-medium-emphasis")
            with html.Div(v_if="lg.kind === 'continuous'"):
                html.Div(classes="twin-gradient", style=("{ background: lg.gradient }",))
                with html.Div(classes="twin-gradient-range"):
                    html.Span("{{ lg.vmin }}")
                    html.Span("{{ lg.vmax }}")


def _live_title(layer: Any) -> dict[str, str] | None:
    """For a layer aggregating readings over a window: the aggregate and the window (minutes), which the page shows in its language."""
    params = getattr(layer, "params", None)
    window, aggregate = getattr(params, "window", None), getattr(params, "aggregate", None)
    if window is None or aggregate is None:
        return None
    return {"aggregate": str(aggregate), "window": f"{window.total_seconds() / 60:g}"}


def _css_rgba(color: tuple[int, int, int, int] | tuple[float, ...]) -> str:
    r, g, b, a = (list(color) + [255])[:4]
    return f"rgba({int(r)}, {int(g)}, {int(b)}, {float(a) / 255:.3f})"


def _fmt_number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def legend_dict(layer_id: str, layer_title: str, legend: Legend, titles: dict[str, str] | None = None) -> dict[str, Any]:
    """A legend for the page: a CSS gradient with its range, or up to 24 colour swatches with labels.

    ``titles``: the layer's title per language (``lang -> title``); ``titles`` of the result holds the legend's title per language
    (the layer's title there, and the legend's own in that language when the model words it per language: :attr:`Legend.titles`).
    """
    title = f"{layer_title}: {legend.title}" if legend.title else layer_title
    by_lang = {lang: f"{text}: {own}" if (own := text_in(dict(legend.titles), lang) if legend.titles else legend.title) else text
               for lang, text in (titles or {}).items()}
    common = {"id": layer_id, "title": title, "titles": by_lang, "layer_titles": dict(titles or {}), "live": None}
    if legend.is_continuous:
        cmap = colormaps[legend.colormap or "viridis"]
        stops = ", ".join(f"{_css_rgba(tuple(round(c * 255) for c in cmap(i / 8)))} {100 * i / 8:.1f}%" for i in range(9))
        return {**common, "kind": "continuous", "gradient": f"linear-gradient(to right, {stops})",
                "vmin": _fmt_number(legend.vmin), "vmax": _fmt_number(legend.vmax), "entries": [], "more": 0}
    entries = [{"label": e.label, "labels": entry_labels(e), "color": _css_rgba(e.color)} for e in legend.entries[:_MAX_LEGEND_ENTRIES]]
    return {**common, "kind": "categorical", "entries": entries, "more": max(len(legend.entries) - _MAX_LEGEND_ENTRIES, 0)}


def entry_labels(entry: LegendEntry) -> dict[str, str]:
    """A legend entry's label in each of the app's languages: a catalogue message translated, a label the scene gives
    per language in that language (or the nearest one), else the label as it is (a data value)."""
    if entry.msgid:
        return {lang: gettext(lang, entry.label) for lang in LANGUAGES}
    return {lang: text_in(dict(entry.labels), lang) if entry.labels else entry.label for lang in LANGUAGES}
