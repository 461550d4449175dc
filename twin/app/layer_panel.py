"""The layer panel: one row per layer (switch, opacity, style controls, error, data age of live layers).

State: ``twin_layers`` (each row's ``titles`` holds the layer's title per language), ``twin_live_info``; the style
controls are :class:`~twin.app.layer_controls.LayerControls`.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from trame.app import TrameComponent
from trame.decorators import controller
from trame.widgets import html
from trame.widgets import vuetify3 as v3

from twin.app.bridge import LoopBridge
from twin.app.i18n import LANGUAGES, tr
from twin.app.layer_controls import LayerControls
from twin.app.live import layer_live_info
from twin.errors import TwinError
from twin.render.view import SceneView
from twin.session import Session

__all__ = ["LayerPanel"]

log = logging.getLogger(__name__)


class LayerPanel(TrameComponent):
    """Layer rows from the session's scene and the errors of the view drawing it."""

    def __init__(self, server: Any, session: Session, bridge: LoopBridge, view: SceneView) -> None:
        super().__init__(server)
        self.session, self.view = session, view
        self.state.twin_live_info = {}
        self.controls = LayerControls(server, session, bridge)
        self.refresh()
        session.time_changed.connect(lambda change: bridge.soon(lambda: self.refresh_live(change.now), key=self.refresh_live))
        self.state.change("twin_lang")(lambda **_: self.session.now is not None and self.refresh_live(self.session.now))  # ages in the page's language

    def refresh(self) -> None:
        """Push the layer rows (visibility, opacity, the view's error for the layer)."""
        with self.session.lock:
            rows = []
            for layer in self.session.scene.layers:
                error = self.view.errors.get(layer.id)
                rows.append({"id": layer.id, "title": layer.title, "titles": {lang: layer.title_for(lang) for lang in LANGUAGES}, "visible": layer.visible,
                             "opacity": layer.opacity, "error": error.message if error else ""})
        self.state.twin_layers = rows

    def refresh_live(self, now: dt.datetime) -> None:
        """Push the data age and stale/error flags of the live layers at ``now``."""
        with self.session.lock:
            self.state.twin_live_info = {layer.id: layer_live_info(layer, now, self.state.twin_lang or "en") for layer in self.session.live_layers()}

    @controller.set("twin_set_visible")
    def set_layer_visible(self, layer_id: str, visible: bool) -> None:
        """Show or hide one layer (by its stable id)."""
        self._update(layer_id, visible=bool(visible))

    @controller.set("twin_set_opacity")
    def set_layer_opacity(self, layer_id: str, opacity: float) -> None:
        """Set one layer's opacity (0..1)."""
        self._update(layer_id, opacity=float(opacity))

    def _update(self, layer_id: str, **changes: Any) -> None:
        try:
            self.session.set_layer(layer_id, **changes)
        except TwinError as exc:
            log.warning("layer %s: %s", layer_id, exc)

    def ui(self) -> None:
        with html.Div(classes="pa-3", id="twin-layers"):
            html.Div(tr("Layers"), classes="text-overline text-medium-emphasis mb-1")
            with (
                v3.VCard(v_for="layer in twin_layers", key="layer.id", classes="twin-layer mb-2", variant="tonal", raw_attrs=[':data-layer-id="layer.id"']),
                v3.VCardText(classes="py-1 px-3"),
            ):
                with html.Div(classes="d-flex align-center"):
                    v3.VSwitch(
                        v_model="layer.visible", update_modelValue=(self.set_layer_visible, "[layer.id, $event]"), disabled=("!!layer.error",),
                        color="primary", density="compact", hide_details=True, inset=True, classes="twin-layer-switch flex-grow-0 mr-2",
                    )
                    html.Span("{{ layer.titles[twin_lang] || layer.title }}", classes="twin-layer-title text-body-1")
                    v3.VSpacer()
                    v3.VChip(tr("error"), v_if="layer.error", color="error", variant="flat", size="x-small", prepend_icon="mdi-alert",
                             classes="twin-layer-error", title=("layer.error",))
                html.Div("{{ layer.error }}", v_if="layer.error", classes="text-caption text-error pb-1")
                self._live_chips()
                with html.Div(v_if="!layer.error", classes="d-flex align-center"):
                    v3.VIcon("mdi-circle-opacity", size="small", classes="mr-2 text-medium-emphasis")
                    v3.VSlider(
                        v_model="layer.opacity", end=(self.set_layer_opacity, "[layer.id, $event]"), min=0, max=1, step=0.05,
                        density="compact", hide_details=True, color="primary", thumb_size=12, classes="twin-layer-opacity",
                    )
                self.controls.ui()

    @staticmethod
    def _live_chips() -> None:
        """Data age and a stale chip in a live layer's row (inside the layer list's ``v-for``)."""
        with html.Div(v_if="twin_live_info[layer.id]", classes="d-flex align-center pb-1"):
            v3.VIcon("mdi-access-point", size="x-small", classes="mr-1 text-medium-emphasis")
            html.Span("{{ twin_live_info[layer.id].age }}", classes="twin-layer-age", title=("twin_live_info[layer.id].tip",))
            v3.VSpacer()
            v3.VChip(
                tr("stale"), v_if="twin_live_info[layer.id].stale", color=("twin_live_info[layer.id].color",), variant="flat", size="x-small",
                prepend_icon=("twin_live_info[layer.id].error ? 'mdi-lan-disconnect' : 'mdi-timer-sand'",), classes="twin-layer-stale",
                title=("twin_live_info[layer.id].tip",), raw_attrs=[':data-error="twin_live_info[layer.id].error ? 1 : 0"'],
            )
