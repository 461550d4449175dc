"""Start-up in the page's order: the page at once, each static layer as soon as it is built, live layers after their first poll.

:class:`SceneLoader` builds the scene's static layers (reading sources, meshing) in worker
threads, in parallel where the work allows, from the moment the app is made; each built layer is drawn
once the server listens (on its loop: VTK is never used from the worker threads). Live layers are built
there too before their first poll (drawn empty: what they read besides their readings, e.g. a flood
layer's stations, is read off the server's thread). When every layer is in, the live layers are polled
once, then tick as usual. Each layer's progress is shown
in the page over the view, in the page's language (state ``twin_loading``: one row per layer, its title per language
in ``titles``, with ``status`` ``loading`` / ``waiting`` / ``polling`` / ``ready`` / ``failed``); ``twin_loading_done`` turns true once every
layer was built and the live layers were polled once. A layer that fails is shown failed here and
as an error badge by the view; the others load on. Once the static layers are drawn, the page's
first picture (:mod:`.first_picture`) is answered before the live layers' first poll starts. Static
layers whose sources allow it take their meshes from an earlier run (:mod:`.geometry_cache`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Literal

from trame.app import TrameComponent
from trame.widgets import html
from trame.widgets import vuetify3 as v3

from twin.app.alerts_panel import ALERTS_DRAWER_PX
from twin.app.bridge import LoopBridge
from twin.app.first_picture import FirstPicture
from twin.app.geometry_cache import build_geometry
from twin.app.i18n import LANGUAGES, tr, tr_expr
from twin.errors import TwinError
from twin.layer import Layer
from twin.live import LiveLayer
from twin.render.view import SceneView
from twin.session import Session

__all__ = ["SceneLoader"]

log = logging.getLogger(__name__)

FIRST_PICTURE_WAIT_S = 10.0
"""Longest the live layers' first poll waits for the first picture to be answered."""

Status = Literal["loading", "waiting", "polling", "ready", "failed"]
_STATUS = ("({loading: " + tr_expr("loading") + ", waiting: " + tr_expr("waits for the first poll") + ", polling: " + tr_expr("first poll")
           + ", ready: " + tr_expr("ready") + ", failed: " + tr_expr("failed") + "})")
"""A row's status in the page's language (a JavaScript object: status → text)."""


class SceneLoader(TrameComponent):
    """Loads a session's scene while the page is composed and served, showing each layer's progress in the page.

    Static layers start building (in threads) when the loader is made; they are drawn once the server's loop runs.

    ``view``: the view whose :attr:`~twin.render.view.SceneView.pending` layers this builds; ``redraw()``: called
    on the server's loop when one of them is built and no longer pending; ``on_static()``: called on the
    loop once every static layer is built, before the first poll;
    ``workers``: threads building layers (default: the CPU count, at most 4); ``kiosk``: pages are the wall unless they ask
    ``?kiosk=0`` (the first picture then fills the page).
    """

    def __init__(self, server: Any, session: Session, bridge: LoopBridge, view: SceneView, *, redraw: Callable[[], None], on_static: Callable[[], object],
                 workers: int | None = None, kiosk: bool = False) -> None:
        super().__init__(server)
        self.session, self.bridge, self.view, self.redraw, self.on_static = session, bridge, view, redraw, on_static
        self.workers = workers or min(os.cpu_count() or 2, 4)
        self._rows: dict[str, dict[str, Any]] = {
            layer.id: {"id": layer.id, "title": layer.title or layer.id, "titles": {lang: layer.title_for(lang) for lang in LANGUAGES},
                       "status": "waiting" if isinstance(layer, LiveLayer) else "loading", "message": ""}
            for layer in session.scene.layers
        }
        self.first_picture = FirstPicture(view, right_px=ALERTS_DRAWER_PX if session.scene.alerts else 0, kiosk=kiosk)
        self.server.controller.on_server_bind.add(self.first_picture.install)
        self._built: set[str] = set()
        self._built_lock = threading.Lock()
        pending = [layer for layer in session.scene.layers if layer.id in view.pending]
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="twin-build") if pending else None
        self._builds = {self._pool.submit(self._build, layer): layer for layer in pending} if self._pool else {}
        """Layers building from now on, while the page is composed and served (drawn once the loop runs)."""
        self._thread: threading.Thread | None = None
        self.done = threading.Event()
        """Set once every layer was built and the live layers were polled once (or failed)."""
        self.state.update({"twin_loading": list(self._rows.values()), "twin_loading_done": False})

    def start(self) -> None:
        """Draw the static layers as they are built, then poll the live ones (call once the server's loop runs); returns at once."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="twin-startup", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        live = self.session.live_layers()
        try:
            self._draw_built()
            self.bridge.soon(self.on_static)
            self.bridge.soon(self.first_picture.ready)
            self.first_picture.settled.wait(FIRST_PICTURE_WAIT_S)  # the first render has the CPU to itself
            if live:
                self._poll(live)
        finally:
            self.bridge.soon(self.first_picture.ready)  # also when a build raised: waiting pages get their answer
            self.done.set()
            self.bridge.soon(self._finish)
        if live and self.bridge.serving:
            self.session.start()  # live ticks from now on

    def _draw_built(self) -> None:
        """Draw each layer as soon as it is built (those built before the loop ran at once); live layers wait for their poll."""
        if self._pool is None:
            return
        for future in as_completed(self._builds):
            layer, error = self._builds[future], future.result()
            self._set(layer.id, "failed" if error else "waiting" if isinstance(layer, LiveLayer) else "ready", error)  # live: ready once polled
            with self._built_lock:
                self._built.add(layer.id)
            self.bridge.soon(self._draw)  # layers built while a draw waits are drawn together
        self._pool.shutdown(wait=False)

    def _draw(self) -> None:
        """On the loop: the layers built so far are no longer pending; draw them."""
        with self._built_lock:
            built, self._built = self._built, set()
        self.view.pending.difference_update(built)
        if built:
            self.redraw()

    def _poll(self, live: list[LiveLayer]) -> None:
        """The live layers' first poll (the session shows its own error if it fails)."""
        for layer in live:
            self._set(layer.id, "polling")
        ok = self.session.safe_tick()
        for layer in live:
            self._set(layer.id, "ready" if ok else "failed", "" if ok else str(self.session.tick_error or ""))

    def _build(self, layer: Layer) -> str:
        """Build one layer's geometry and style now (cached by the layer); its one-line error, or ``""``."""
        try:  # no lock: nothing else reads a pending layer (the view and the legend leave it out)
            build_geometry(layer, self.session.scene.frame)  # kept from an earlier run when its source allows
            layer.visual(self.session.scene.frame)
        except TwinError as exc:
            return str(exc)
        except Exception as exc:  # the view records it again, naming the layer; the page goes on
            log.exception("layer %s failed to build", layer.id)
            return f"{type(exc).__name__}: {exc}"
        return ""

    def _set(self, layer_id: str, status: Status, message: str = "") -> None:
        self._rows[layer_id] = {**self._rows[layer_id], "status": status, "message": message}
        rows = list(self._rows.values())
        self.bridge.soon(lambda: self.state.update({"twin_loading": rows}))

    def _finish(self) -> None:
        self.state.twin_loading_done = True

    def ui(self) -> None:
        """The per-layer progress card (over the view until every layer is in)."""
        with html.Div(v_if="!twin_loading_done", classes="twin-overlay twin-loading", id="twin-loading"):
            html.Div(tr("Loading the scene …"), classes="twin-loading-title")
            with html.Div(v_for="row in twin_loading", key="row.id", classes="twin-loading-layer",
                          raw_attrs=[':data-layer-id="row.id"', ':data-status="row.status"', ':title="row.message"']):
                v3.VProgressCircular(v_if="['loading', 'waiting', 'polling'].includes(row.status)", indeterminate=True, size=14, width=2)
                v3.VIcon(v_else=True, icon=("row.status === 'ready' ? 'mdi-check' : 'mdi-alert-circle-outline'",), size="small")
                html.Span("{{ row.titles[twin_lang] || row.title }}")
                html.Span("{{ " + _STATUS + "[row.status] || row.status }}", classes="text-medium-emphasis twin-loading-status")
