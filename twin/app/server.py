"""The browser app: one trame server composing components around one live :class:`~twin.session.Session`.

The components (3D view with picking, layer panel, legend, time bar, alerts drawer, pick card)
each receive the session, own their controllers and state keys, and follow the session's
events; this module only composes them and starts the server. Shared state holds only small UI
values (layer rows, legends, alerts, the picked feature), never meshes; every browser connected
to one server sees (and changes) the same state.

Live scenes tick in the session's own thread every ``tick_seconds`` (default 5 s, or the
``TWIN_TICK_SECONDS`` environment variable), so a source that stops answering never holds the
page; the time bar replays the live layers' history while polling and alerts go on live.

Serving a scene from Python (blocks until stopped)::

    from twin.scene.model import Scene
    TwinApp(Scene.from_file("scene.yaml")).start(port=8080)
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from trame.app import TrameApp, get_server
from trame.widgets import client, html
from trame.widgets import vuetify3 as v3

from twin.app import reconnect, saved_views, screenshot
from twin.app.access import AccessPolicy, access_policy
from twin.app.alerts_panel import AlertsPanel
from twin.app.bridge import LoopBridge
from twin.app.i18n import DEFAULT_LANGUAGE, I18n, tr_expr, tr_fmt
from twin.app.kiosk import KioskPanel
from twin.app.layer_panel import LayerPanel
from twin.app.legend import LegendPanel
from twin.app.page_layout import PageLayout
from twin.app.pick_card import PickCard
from twin.app.source_badges import SourceBadges
from twin.app.startup import SceneLoader
from twin.app.theme import VUETIFY_CONFIG
from twin.app.time_bar import TimeBar
from twin.app.trame_args import hidden_argv
from twin.app.view_panel import ViewMode, ViewPanel
from twin.render.view import SceneView
from twin.scene.model import Scene
from twin.session import Session

__all__ = ["TwinApp"]

log = logging.getLogger(__name__)

_server_ids = itertools.count(1)



class TwinApp(TrameApp):
    """The browser app for one scene: layer list, camera presets, legends, errors, picking, live data and alerts.

    ``tick_seconds``: how often live layers are polled (default: ``$TWIN_TICK_SECONDS`` or 5 s).
    ``resource_layers``: ids or titles of layers listing help (pumps, teams) shown near an alert;
    a layer with id ``resources`` is used without being named. ``state_dir``: where the session
    keeps alert history and acknowledgements across restarts (None: in memory). ``lang``: the page's language (a key of
    :data:`twin.app.i18n.LANGUAGES`), or None to follow each browser's (Chinese on a kiosk). ``kiosk``: every page is the
    command-hall wall unless it asks ``?kiosk=0`` (any page can ask ``?kiosk=1``, see :mod:`twin.app.kiosk`).
    ``stream``: the page first, the scene loads behind it (:mod:`.startup`).
    """

    def __init__(
        self,
        scene: Scene,
        *,
        view_mode: ViewMode = "auto",
        triangle_budget: int = 2_000_000,
        size: tuple[int, int] = (1280, 720),
        server: str | None = None,
        tick_seconds: float | None = None,
        resource_layers: Sequence[str] | None = None,
        state_dir: str | Path | None = None,
        lang: str | None = None, kiosk: bool = False,
        stream: bool = False,
    ) -> None:
        self.session = Session(scene, tick_seconds=tick_seconds, resource_layers=resource_layers, state_dir=state_dir)
        super().__init__(server=get_server(server or f"twin-app-{next(_server_ids)}", client_type="vue3"))
        self.scene = scene
        self.bridge = bridge = LoopBridge(self.server)
        self.i18n = I18n(self.server, lang or (DEFAULT_LANGUAGE if kiosk else None))
        session = self.session
        self.time_bar = TimeBar(self.server, session, bridge)
        self.alerts = AlertsPanel(self.server, session, bridge)
        self.pick_card = PickCard(self.server, session, bridge)
        if session.live_layers() and not stream:  # poll once before the first picture so live layers show data straight away
            session.safe_tick()
        self.view_panel = ViewPanel(self.server, session, bridge, view_mode=view_mode, triangle_budget=triangle_budget, size=size, load=not stream)
        self.loader = SceneLoader(self.server, session, bridge, self.view_panel.view, redraw=self.view_panel.redraw,
                                  on_static=lambda: self.view_panel.settle_mode() and self._build_ui(), kiosk=kiosk) if stream else None  # auto: local if fits
        self.view: SceneView = self.view_panel.view
        self.layer_panel = LayerPanel(self.server, session, bridge, self.view)
        self.legend = LegendPanel(self.server, session, self.view)
        self.source_badges = SourceBadges(self.server, session, bridge)
        self.screenshot, self.saved_views = screenshot.Screenshot(self.server, session, self.view), saved_views.SavedViews(self.server, session, self.view_panel)
        self.kiosk = KioskPanel(self.server, session, bridge, self.view_panel, kiosk=kiosk)
        self.view_panel.drawn.connect(self._on_drawn)
        self.state.update({"trame__title": scene.name, "twin_scene_name": scene.name, "twin_scene_title": scene.settings.title or ""})
        if session.now is not None:
            self.layer_panel.refresh_live(session.now)
        self._build_ui()
        self.ctrl.on_server_ready.add(self._start_live)
        self.ctrl.on_server_exited.add(self._stop_live)

    @property
    def ticks(self) -> int:
        """Live ticks that succeeded so far."""
        return self.session.ticks

    def _on_drawn(self) -> None:
        self.layer_panel.refresh()
        self.legend.refresh(fatal=self.view_panel.fatal is not None)

    def on_timer(self, now: dt.datetime | None = None) -> bool:
        """One live tick now, in the calling thread (the server ticks in the session's thread); False if it failed (logged, shown)."""
        return self.session.safe_tick(now)

    def _start_live(self, **_: Any) -> None:
        self.bridge.attach()
        if self.loader is not None:
            self.loader.start()  # builds the layers, polls once, then ticks
        elif self.session.live_layers():
            self.session.start()

    def _stop_live(self, **_: Any) -> None:
        self.session.stop()
        self.bridge.detach()

    def _build_ui(self) -> None:
        self.view_mode = self.view_panel.view_mode
        with PageLayout(self.server, drawer_width=320, vuetify_config=VUETIFY_CONFIG) as layout:
            self.ui = layout
            client.Style(resources.files("twin.app").joinpath("static", "twin.css").read_text(encoding="utf-8"))
            reconnect.ui(self.server)
            with layout.title:
                html.Span("{{ twin_scene_name }}", id="twin-scene-name", classes="font-weight-bold")
                html.Span("{{ twin_scene_title }}", v_if="twin_scene_title", classes="text-medium-emphasis text-body-2 ml-4")
            with layout.toolbar:
                layout.toolbar.density = "compact"
                layout.toolbar.color = "surface"
                v3.VSpacer()
                self.time_bar.clock()
                v3.VSelect(
                    v_if="twin_cameras.length", v_model=("twin_camera",), items=("twin_cameras",), density="compact", hide_details=True,
                    variant="solo-filled", flat=True, prepend_inner_icon="mdi-video-outline", style="max-width: 240px;", id="twin-camera",
                    classes="twin-camera mr-2",
                )
                with v3.VBtn(icon=True, click=self.view_panel.reset_camera, title=(tr_expr("Reset view"),), density="comfortable"):
                    v3.VIcon("mdi-crosshairs-gps")
                self.saved_views.ui()
                self.screenshot.ui()
                v3.VChip(tr_fmt("{mode} · {n} cells", mode="(twin_view_mode === 'local' ? " + tr_expr("browser view") + " : " + tr_expr("server view") + ")", n="twin_cells"), size="small", variant="tonal", color="secondary", classes="mx-2",
                         prepend_icon="mdi-monitor")
                self.alerts.button()
                self.i18n.ui()
            with layout.drawer:
                layout.drawer.color = "surface"
                self.layer_panel.ui()
            self.alerts.ui()
            with layout.content, html.Div(classes="twin-main", id="twin-main"):
                with html.Div(classes="twin-view", id="twin-view"):
                    self.view_panel.ui()
                    if self.loader is not None:
                        self.loader.ui()
                    self.legend.ui()
                    self.pick_card.ui()
                    self.source_badges.ui(only_stale=True)
                    self.kiosk.ui()
                self.time_bar.ui()

    def start(self, host: str = "127.0.0.1", port: int = 8080, open_browser: bool = False, access: AccessPolicy | None = None) -> None:
        """Serve until SIGINT/SIGTERM (blocking). Binds loopback unless ``host`` says otherwise.

        ``access``: who may connect (default: :func:`~twin.app.access.access_policy` for ``host``, with ``$TWIN_TOKEN``);
        raises AccessError for a non-loopback ``host`` without a token.
        """
        try:
            self.ctrl.on_server_bind.add((access or access_policy(host, port)).install)
            with hidden_argv():
                self.server.start(host=host, port=port, open_browser=open_browser, timeout=0, show_connection_info=False)
        finally:
            self.session.close()
            self.view.close()

