"""The pick card: the attributes of the feature selected in the session (``twin_pick``), for every layer type: its layer,
a label, where it was picked (lon/lat), the scene time it shows and its attributes; times in local time (+08:00)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
from trame.app import TrameComponent
from trame.decorators import controller
from trame.widgets import html
from trame.widgets import vuetify3 as v3

from twin.app.bridge import LoopBridge
from twin.app.i18n import LANGUAGES, tr_expr, tr_fmt
from twin.app.kiosk_overlays import OFF_WALL
from twin.clock import fmt_datetime
from twin.scene.model import Scene
from twin.session import Selection, Session
from twin.style import text_in

__all__ = ["PickCard", "pick_dict"]

_MAX_PICK_ATTRIBUTES = 40
_LABEL_KEYS = ("name", "title", "label", "NAME", "Name", "id")


class PickCard(TrameComponent):
    """Shows the session's selection; closing it clears the selection."""

    def __init__(self, server: Any, session: Session, bridge: LoopBridge) -> None:
        super().__init__(server)
        self.session = session
        self.state.twin_pick = None
        session.selection_changed.connect(lambda selection: bridge.soon(lambda: self._show(selection), key=self._show))

    def _show(self, selection: Selection | None) -> None:
        self.state.twin_pick = None if selection is None else pick_dict(self.session.scene, selection, self.session.shown_time)

    @controller.set("twin_clear_pick")
    def clear_pick(self) -> None:
        self.session.select(None)

    def ui(self) -> None:
        with html.Div(classes="twin-overlay twin-pick", id="twin-pick", v_if=f"twin_pick && {OFF_WALL}"):
            with html.Div(classes="d-flex align-center mb-1"):
                v3.VIcon("mdi-map-marker", color="primary", size="small", classes="mr-1")
                with html.Div():
                    html.Div("{{ twin_pick.label }}", classes="font-weight-bold twin-pick-label")
                    html.Div("{{ twin_pick.titles[twin_lang] || twin_pick.title }} · #{{ twin_pick.feature }}", classes="text-caption text-medium-emphasis")
                v3.VSpacer()
                with v3.VBtn(icon=True, size="x-small", variant="text", click=self.clear_pick, title=(tr_expr("Close"),)):
                    v3.VIcon("mdi-close")
            html.Div(tr_fmt("lon {lon}, lat {lat}", lon="twin_pick.lon_text", lat="twin_pick.lat_text"), v_if="twin_pick.lon_text",
                     classes="text-caption text-medium-emphasis twin-pick-lonlat")
            html.Div(tr_fmt("at {time}", time="twin_pick.time"), v_if="twin_pick.time", classes="text-caption text-medium-emphasis mb-1 twin-pick-time")
            with html.Table(), html.Tr(v_for="(row, i) in twin_pick.attributes", key="i"):
                html.Td("{{ row[0] }}")
                html.Td("{{ row[2] && row[2][twin_lang] || row[1] }}")


def fmt_value(value: Any) -> str:
    """A picked attribute for the card: times with a zone in the app's display zone (+08:00), as everywhere in the app."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return fmt_datetime(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _per_language(texts: Mapping[str, Mapping[str, str]], value: Any) -> dict[str, str] | None:
    """``value`` in each of the app's languages when the layer made it in several (:meth:`~twin.layer.Layer.own_texts`), else None."""
    if not isinstance(value, str) or value not in texts:
        return None
    return {lang: text_in(dict(texts[value]), lang) for lang in LANGUAGES}


def pick_dict(scene: Scene, selection: Selection, shown: dt.datetime | None = None) -> dict[str, Any]:
    """The card's content: layer title (and per language), a label (name, title, ...), where (lon/lat text, 6 decimals),
    the scene time ``shown`` (+08:00; '' without one) and the first 40 attributes as ``[name, text, per language]``:
    the text per language (``{lang: text}``) for a value the layer made in several languages (an H3 level name), else None."""
    try:
        layer = scene[selection.layer_id]
        title, titles, texts = layer.title, {lang: layer.title_for(lang) for lang in LANGUAGES}, layer.own_texts()
    except KeyError:
        title, titles, texts = selection.layer_id, {}, {}
    attributes = selection.attributes
    rows = [[str(k), fmt_value(v), _per_language(texts, v)] for k, v in list(attributes.items())[:_MAX_PICK_ATTRIBUTES]]
    lon, lat = selection.lon, selection.lat
    located = lon is not None and lat is not None
    label = next((fmt_value(attributes[k]) for k in _LABEL_KEYS if attributes.get(k) not in (None, "")), f"#{selection.feature}")
    return {"layer": selection.layer_id, "title": title, "titles": titles, "label": label, "feature": selection.feature,
            "lon_text": f"{lon:.6f}" if located else "", "lat_text": f"{lat:.6f}" if located else "", "lon": lon, "lat": lat,
            "time": fmt_datetime(shown), "attributes": rows}
