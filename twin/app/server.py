"""The browser app: one trame server showing one :class:`~twin.render.view.SceneView`.

The server renders (``remote``: JPEG images to the browser, works for any scene size) or ships
geometry to vtk.js (``local``); ``auto`` picks local below ``triangle_budget`` cells. Shared state
holds only small UI values (layer ids, titles, switches, legends, picked attributes), never meshes.
Every browser connected to one server sees (and changes) the same state.

Live scenes (layers with a ``snapshot``, e.g. flood gauges) tick on the server's asyncio loop
every ``tick_seconds`` (default 5 s, or the ``TWIN_TICK_SECONDS`` environment variable, which
lets tests and demos run fast): poll the sources, show the wall-clock time, evaluate alert rules
and push the new picture. The time bar replays the live layers' history (no polling while
replaying); "Live" goes back to the clock. The alerts drawer lists open alerts (acknowledge,
fly to, help within reach from ``resource_layers``) and the last transitions.

Serving a scene from Python (blocks until stopped)::

    from twin.scene.model import Scene
    TwinApp(Scene.from_file("scene.yaml")).start(port=8080)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import math
import os
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import pandas as pd
from matplotlib import colormaps
from trame.app import TrameApp, asynchronous, get_server
from trame.decorators import change, controller
from trame.ui.vuetify3 import SinglePageWithDrawerLayout
from trame.widgets import client, html
from trame.widgets import vtk as vtk_widgets
from trame.widgets import vuetify3 as v3
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingUI import vtkGenericRenderWindowInteractor

from twin.alerts.engine import AlertEngine, AlertEvent
from twin.app import panels
from twin.app.live import (
    SHANGHAI,
    alert_rows,
    event_row,
    fly_to,
    fmt_age,
    fmt_datetime,
    highlight_help,
    layer_live_info,
    live_layers,
    nearby_rows,
    replay_start,
    resource_layer_ids,
    shows_labels,
)
from twin.errors import TwinError
from twin.render.view import SceneView
from twin.scene.model import Scene
from twin.style import Legend

__all__ = ["TwinApp"]

log = logging.getLogger(__name__)

ViewMode = Literal["auto", "remote", "local"]

_server_ids = itertools.count(1)
_MAX_LEGEND_ENTRIES = 24
_MAX_PICK_ATTRIBUTES = 40
_LABEL_KEYS = ("name", "title", "label", "NAME", "Name", "id")
TICK_ENV = "TWIN_TICK_SECONDS"
DEFAULT_TICK_SECONDS = 5.0
FOCUS_RANGE_M = 800.0
NEARBY_RADIUS_M = 3000.0
_SEEK_DEBOUNCE_S = 0.2
_EVENT_LOG = 20

_VUETIFY_CONFIG: dict[str, Any] = {
    "theme": {
        "defaultTheme": "twinDark",
        "themes": {
            "twinDark": {
                "dark": True,
                "colors": {
                    "background": "#0a1020",
                    "surface": "#111a2e",
                    "surface-variant": "#1b2740",
                    "primary": "#38bdf8",
                    "secondary": "#94a3b8",
                    "error": "#ef4444",
                    "warning": "#f59e0b",
                    "success": "#22c55e",
                },
            }
        },
    }
}

_CSS = """
html, body { overflow: hidden; }
.twin-view { position: relative; width: 100%; flex: 1 1 auto; min-height: 0; background: #0a1020; }
.twin-overlay { position: absolute; z-index: 5; background: rgba(10, 16, 32, 0.82);
  border: 1px solid rgba(148, 163, 184, 0.25); border-radius: 6px; color: #e2e8f0; }
.twin-legend { right: 12px; top: 12px; max-height: calc(100% - 24px); overflow-y: auto; padding: 10px 12px; min-width: 180px; }
.twin-legend-title { font-weight: 600; font-size: 0.85rem; margin: 4px 0; color: #f8fafc; }
.twin-legend-row { display: flex; align-items: center; font-size: 0.8rem; line-height: 1.35rem; }
.twin-swatch { display: inline-block; width: 14px; height: 14px; border-radius: 2px; margin-right: 8px;
  border: 1px solid rgba(255, 255, 255, 0.35); flex: none; }
.twin-gradient { height: 12px; border-radius: 2px; width: 180px; border: 1px solid rgba(255, 255, 255, 0.3); }
.twin-gradient-range { display: flex; justify-content: space-between; font-size: 0.75rem; width: 180px; }
.twin-errors { left: 50%; transform: translateX(-50%); bottom: 12px; max-width: 60%; background: transparent; border: none; }
.twin-pick { left: 12px; top: 12px; width: 320px; max-height: calc(100% - 24px); overflow-y: auto; padding: 10px 12px; }
.twin-pick table { width: 100%; font-size: 0.8rem; border-collapse: collapse; }
.twin-pick td { padding: 2px 4px; border-bottom: 1px solid rgba(148, 163, 184, 0.15); vertical-align: top; }
.twin-pick td:first-child { color: #94a3b8; white-space: nowrap; }
"""


class TwinApp(TrameApp):
    """The browser app for one scene: layer list, camera presets, legends, errors, picking, live data.

    The app owns its :class:`SceneView`; the browser shows the scene title and legends as HTML, so
    the app turns off the view's own title and legend overlays (``scene.settings``).

    ``tick_seconds``: how often live layers are polled (default: ``$TWIN_TICK_SECONDS`` or 5 s).
    ``resource_layers``: ids or titles of layers listing help (pumps, teams) shown near an alert;
    a layer with id ``resources`` is used without being named.
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
    ) -> None:
        if view_mode not in ("auto", "remote", "local"):
            raise TwinError(f"view mode {view_mode!r} is not one of auto, remote, local")
        self.tick_seconds = _tick_seconds(tick_seconds)
        super().__init__(server=get_server(server or f"twin-app-{next(_server_ids)}", client_type="vue3"))
        self.scene = scene
        self.title = scene.settings.title
        scene.settings = scene.settings.model_copy(update={"show_legend": False, "title": None})
        self.view = SceneView(scene, size=size, offscreen=True)
        self._interactor = vtkGenericRenderWindowInteractor()
        self._interactor.SetRenderWindow(self.view.window)
        self._interactor.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        self._interactor.AddObserver("LeftButtonPressEvent", self._on_press)
        self._camera_at_press: tuple[float, ...] | None = None
        self._press_xy: tuple[float, float] | None = None
        self._fatal: str | None = None
        # live data: poll once before the first picture so live layers show data straight away
        self._live_layers = live_layers(scene)
        self._live = bool(self._live_layers)  # following the clock (False while replaying)
        self._events: deque[dict[str, Any]] = deque(maxlen=_EVENT_LOG)
        self._event_serial = 0
        self._engine: AlertEngine | None = None
        self._resource_ids = resource_layer_ids(scene, resource_layers)
        self._tick_task: asyncio.Task[None] | None = None
        self._seek_handle: asyncio.TimerHandle | None = None
        self._pending_seek: float | None = None
        self._tick_error = ""
        self.ticks = 0
        if self._live:
            try:
                self._tick_model(_utcnow())
            except Exception as exc:  # the page still shows; the next tick retries
                log.exception("scene %s: first live tick failed", scene.name)
                self._tick_error = f"{type(exc).__name__}: {exc}"
        self._legend_errors: set[str] = set()
        try:
            self.view.sync()
        except TwinError as exc:  # the scene as a whole cannot be drawn; say so in the page
            log.error("scene %s: %s", scene.name, exc)
            self._fatal = str(exc)
        self.view_mode: Literal["remote", "local"] = self._choose_mode(view_mode, triangle_budget)
        if self.view_mode == "local":  # vtk.js shows colours given per cell, not through our lookup tables
            self.view.direct_colors = True
            self._sync()
        self._legends = self._collect_legends()
        self._legend_errors = set(self.view.errors)
        self._init_state()
        self._build_ui()
        self.ctrl.on_server_ready.add(self._start_live_loop)
        self.ctrl.on_server_exited.add(self._stop_live_loop)

    # -- set-up --------------------------------------------------------------------------
    def _choose_mode(self, mode: ViewMode, budget: int) -> Literal["remote", "local"]:
        if mode != "auto":
            return mode
        if self._fatal is None:
            labelled = [layer.id for layer in self.scene.layers if layer.id not in self.view.errors and shows_labels(layer, self.scene)]
            if labelled:  # vtk.js cannot show VTK's billboard text: render on the server
                log.info("remote view: layers %s draw labels", ", ".join(labelled))
                return "remote"
        return "local" if self.view.triangle_count() <= budget else "remote"

    def _collect_legends(self) -> dict[str, dict[str, Any]]:
        legends: dict[str, dict[str, Any]] = {}
        if self._fatal is not None:
            return legends
        for layer in self.scene.layers:
            if layer.id in self.view.errors:
                continue
            try:
                legend = layer.visual(self.scene.frame).style.legend
            except Exception as exc:  # noqa: BLE001  (a broken plugin must not stop the app)
                log.warning("layer %s: no legend: %s", layer.id, exc)
                continue
            if legend is not None:
                legends[layer.id] = _legend_dict(layer.id, layer.title, legend)
        return legends

    def _init_state(self) -> None:
        state = self.state
        state.trame__title = self.scene.name
        state.twin_scene_name = self.scene.name
        state.twin_scene_title = self.title or ""
        state.twin_view_mode = self.view_mode
        state.twin_cameras = list(self.scene.cameras)
        state.twin_camera = self.scene.camera
        state.twin_pick = None
        state.twin_picking = ["click"]
        state.twin_fatal = self._fatal or ""
        state.twin_has_live = bool(self._live_layers)
        state.twin_has_alerts = bool(self._live_layers or self.scene.alerts)
        state.twin_alerts_open = bool(self.scene.alerts)
        state.twin_alert_selected = None
        state.twin_focus = None
        state.twin_live_info = {}
        state.twin_replay_t = 0
        state.twin_replay_min = 0
        state.twin_replay_max = 1
        state.twin_replay_step = 1
        state.twin_replay_start = ""
        state.twin_replay_end = ""
        state.twin_replay_offset = ""
        state.twin_tick_error = self._tick_error
        self._refresh_state()
        self._refresh_live_state(_utcnow())

    def _refresh_state(self) -> None:
        """Push layer rows, errors, legends and cell count to the shared state."""
        rows = []
        errors = []
        for layer in self.scene.layers:
            error = self.view.errors.get(layer.id)
            rows.append({"id": layer.id, "title": layer.title, "visible": layer.visible, "opacity": layer.opacity,
                         "error": error.message if error else ""})
            if error:
                errors.append({"id": layer.id, "title": layer.title, "message": error.message})
        self.state.twin_layers = rows
        self.state.twin_errors = errors
        if set(self.view.errors) != self._legend_errors:  # a layer failed or came back: redo legends
            self._legends = self._collect_legends()
            self._legend_errors = set(self.view.errors)
        visible = {layer.id for layer in self.scene.layers if layer.visible}
        self.state.twin_legends = [lg for lid, lg in self._legends.items() if lid in visible]
        self.state.twin_cells = f"{self.view.triangle_count():,}"

    # -- controllers and state changes ---------------------------------------------------
    @controller.set("twin_set_visible")
    def set_layer_visible(self, layer_id: str, visible: bool) -> None:
        """Show or hide one layer (by its stable id)."""
        self._update_layer(layer_id, visible=bool(visible))

    @controller.set("twin_set_opacity")
    def set_layer_opacity(self, layer_id: str, opacity: float) -> None:
        """Set one layer's opacity (0..1)."""
        self._update_layer(layer_id, opacity=min(max(float(opacity), 0.0), 1.0))

    def _update_layer(self, layer_id: str, **changes: Any) -> None:
        try:
            layer = self.scene[layer_id]
        except KeyError:
            log.warning("no layer %r to update", layer_id)
            return
        try:
            layer.update(**changes)
        except TwinError as exc:
            log.warning("layer %s: %s", layer_id, exc)
            return
        self._sync()
        if not changes.get("visible", True) and self.state.twin_pick and self.state.twin_pick.get("layer") == layer_id:
            self.state.twin_pick = None
        self._refresh_state()
        self.update_view()

    def _sync(self) -> None:
        try:
            self.view.sync()
            self.state.twin_fatal = ""
        except TwinError as exc:
            log.error("scene %s: %s", self.scene.name, exc)
            self.state.twin_fatal = str(exc)

    @change("twin_camera")
    def _on_camera(self, twin_camera: str | None = None, **_: Any) -> None:
        if twin_camera and twin_camera in self.scene.cameras:
            self.view.set_camera(twin_camera)
            self.update_view(camera=True)

    @controller.set("twin_reset_camera")
    def reset_camera(self) -> None:
        """Go back to the selected camera preset (or the scene's default view)."""
        self.view.set_camera(self.state.twin_camera or None)
        self.update_view(camera=True)

    @controller.set("twin_update_view")
    def update_view(self, camera: bool = False) -> None:
        """Send the current scene to the browsers (an image, or geometry for vtk.js)."""
        widget = getattr(self, "_view_widget", None)
        if widget is None:
            return
        widget.update()
        if camera and self.view_mode == "local":
            widget.push_camera()

    def _on_press(self, *_: Any) -> None:
        self._camera_at_press = self._camera_key()

    def _camera_key(self) -> tuple[float, ...]:
        camera = self.view.renderer.GetActiveCamera()
        return tuple(round(v, 3) for v in (*camera.GetPosition(), *camera.GetFocalPoint()))

    @controller.set("twin_pick")
    def on_click(self, event: dict[str, Any] | None) -> None:
        """Pick the feature under a click in the remote view; a drag that moved the camera picks nothing."""
        if not event or "position" not in event:
            return
        if self._camera_at_press is not None and self._camera_at_press != self._camera_key():
            log.debug("click ignored: the camera moved since the button was pressed")
            return  # the press started a rotation/pan, not a click on a feature
        width, height = self.view.window.GetSize()
        size = event.get("size") or [width, height]
        x = float(event["position"]["x"]) * width / max(float(size[0]), 1.0)
        y = float(event["position"]["y"]) * height / max(float(size[1]), 1.0)
        log.debug("remote click at %s (browser size %s) -> %.0f, %.0f", event["position"], size, x, y)
        self._show_pick(lambda: self.view.pick(round(x), round(y)))

    def _on_local_press(self, position: dict[str, float] | None) -> None:
        self._press_xy = (float(position["x"]), float(position["y"])) if position else None

    @controller.set("twin_pick_local")
    def on_local_click(self, event: dict[str, Any] | None) -> None:
        """Pick in the vtk.js view: cast the clicked ray (browser camera) through the server's scene."""
        if not event or "ray" not in event:
            self.state.twin_pick = None
            return
        press, at = self._press_xy, event.get("displayPosition") or [0, 0]
        if press is not None and math.hypot(press[0] - at[0], press[1] - at[1]) > 6:
            return  # the press started a rotation/pan
        near, far = event["ray"]
        self._show_pick(lambda: self._pick_along_ray(near, far))

    def _pick_along_ray(self, near: list[float], far: list[float]) -> dict[str, Any] | None:
        """Pick at the centre pixel of a server camera looking along near -> far, then restore it."""
        camera = self.view.renderer.GetActiveCamera()
        saved = (camera.GetPosition(), camera.GetFocalPoint(), camera.GetViewUp())
        direction = [f - n for n, f in zip(near, far)]
        length = math.sqrt(sum(d * d for d in direction)) or 1.0
        try:
            camera.SetPosition(*near)
            camera.SetFocalPoint(*far)
            camera.SetViewUp(*((0.0, 0.0, 1.0) if abs(direction[2] / length) < 0.9 else (0.0, 1.0, 0.0)))
            self.view.renderer.ResetCameraClippingRange()
            width, height = self.view.window.GetSize()
            return self.view.pick(width // 2, height // 2)
        finally:
            camera.SetPosition(*saved[0])
            camera.SetFocalPoint(*saved[1])
            camera.SetViewUp(*saved[2])
            self.view.renderer.ResetCameraClippingRange()

    def _show_pick(self, pick: Any) -> None:
        try:
            hit = pick()
        except TwinError as exc:
            log.warning("pick failed: %s", exc)
            hit = None
        self.state.twin_pick = _pick_dict(self.scene, hit) if hit else None

    @controller.set("twin_clear_pick")
    def clear_pick(self) -> None:
        self.state.twin_pick = None

    # -- live data: ticks, replay, alerts -----------------------------------------------
    def _start_live_loop(self, **_: Any) -> None:
        if self._live_layers and self._tick_task is None:
            self._tick_task = asynchronous.create_task(self._live_loop())

    def _stop_live_loop(self, **_: Any) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
            self._tick_task = None
        if self._seek_handle is not None:
            self._seek_handle.cancel()
            self._seek_handle = None

    async def _live_loop(self) -> None:
        """Tick every ``tick_seconds`` until the server stops; nothing a tick does ends the loop."""
        while True:
            await asyncio.sleep(self.tick_seconds)
            try:
                with self.state:
                    self.on_timer()
            except Exception:  # the wall display keeps running
                log.exception("live update failed")

    def on_timer(self, now: dt.datetime | None = None) -> bool:
        """One timer step: a live tick (when following the clock), else fresher ages and bounds.

        Returns False when the tick failed (logged, shown in the page, retried next time).
        """
        now = now or _utcnow()
        try:
            if self._live:
                self._tick(now)
            else:
                self._refresh_live_state(now)
        except Exception as exc:  # a failing tick must not stop later ticks
            log.exception("scene %s: live tick failed", self.scene.name)
            self._tick_error = f"{type(exc).__name__}: {exc}"
            self.state.twin_tick_error = self._tick_error
            return False
        self._tick_error = ""
        self.state.twin_tick_error = ""
        return True

    def _tick_model(self, now: dt.datetime) -> list[AlertEvent]:
        engine = self.scene.alert_engine
        if engine is not self._engine:  # the engine is rebuilt when the rules change
            engine.subscribe(self._on_alert_event)
            self._engine = engine
        events = self.scene.tick(now)
        self.ticks += 1
        return events

    def _tick(self, now: dt.datetime) -> None:
        self._tick_model(now)
        self._sync()
        self._refresh_state()
        self._refresh_live_state(now)
        self.update_view()

    def _on_alert_event(self, event: AlertEvent) -> None:
        self._event_serial += 1
        row = event_row(event, self._event_serial, self.scene)
        if self._engine is not None and not event.alert.get("name"):  # a "pending" event precedes the first reading
            try:
                alert = self._engine.get(str(event.alert.get("id")))
            except TwinError:
                alert = None
            if alert is not None and alert.name:
                row["name"] = alert.name
        self._events.append(row)

    def _refresh_live_state(self, now: dt.datetime) -> None:
        """Push scene time, replay bounds, data ages and alerts to the shared state."""
        state = self.state
        state.twin_live = self._live
        state.twin_time_text = fmt_datetime(self.scene.time)
        if self._live_layers:
            latest = math.floor(now.timestamp())
            earliest = min(math.floor(replay_start(self.scene, now).timestamp()), latest)
            state.twin_replay_max = latest
            state.twin_replay_min = earliest
            state.twin_replay_step = _replay_step(latest - earliest)
            edge = "%m-%d %H:%M" if latest - earliest >= 12 * 3600 else "%H:%M"
            state.twin_replay_start = dt.datetime.fromtimestamp(earliest, SHANGHAI).strftime(edge)
            state.twin_replay_end = now.astimezone(SHANGHAI).strftime(edge)
            if self._live or self.scene.time is None:
                state.twin_replay_t = latest
                state.twin_replay_offset = "live 实时"
            else:
                state.twin_replay_t = round(self.scene.time.timestamp())
                state.twin_replay_offset = f"−{fmt_age(now - self.scene.time)}"
            state.twin_live_info = {layer.id: layer_live_info(layer, now) for layer in self._live_layers}
        self._refresh_alerts(now)

    def _refresh_alerts(self, now: dt.datetime) -> None:
        if not (self._live_layers or self.scene.alerts):
            self.state.twin_alerts, self.state.twin_alert_count, self.state.twin_alert_firing = [], 0, 0
            self.state.twin_events = []
            return
        engine = self.scene.alert_engine
        self.state.twin_alerts = alert_rows(engine, self.scene, now)
        self.state.twin_alert_count = len(engine.active())
        self.state.twin_alert_firing = len(engine.firing())
        self.state.twin_events = list(reversed(self._events))

    @controller.set("twin_go_live")
    def go_live(self) -> None:
        """Follow the clock again: poll now and keep ticking."""
        if self._seek_handle is not None:
            self._seek_handle.cancel()
            self._seek_handle = None
        self._pending_seek = None
        self._live = True
        self.on_timer()

    @controller.set("twin_seek")
    def seek(self, when: float | str | None) -> None:
        """Replay: show the scene at ``when`` (epoch seconds); stops following the clock.

        Slider drags send many values: the last one is applied after a short pause.
        """
        try:
            value = float(when)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return
        if not (self._live_layers and math.isfinite(value)):
            return
        self._live = False
        self.state.twin_live = False
        self._pending_seek = value
        if self._seek_handle is not None:
            self._seek_handle.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no server loop (called from Python): apply now
            self._apply_seek()
            return
        self._seek_handle = loop.call_later(_SEEK_DEBOUNCE_S, self._apply_seek_flushed)

    def _apply_seek_flushed(self) -> None:
        with self.state:
            self._apply_seek()

    def _apply_seek(self, now: dt.datetime | None = None) -> None:
        self._seek_handle = None
        value, self._pending_seek = self._pending_seek, None
        if value is None or self._live:
            return
        now = now or _utcnow()
        earliest = replay_start(self.scene, now)
        when = min(max(dt.datetime.fromtimestamp(value, dt.timezone.utc), earliest), now)
        try:
            self.scene.set_time(when)
            self._sync()
            self._refresh_state()
            self._refresh_live_state(now)
            self.update_view()
        except Exception:  # a layer that cannot replay must not take the page down
            log.exception("scene %s: replay to %s failed", self.scene.name, when.isoformat())

    @controller.set("twin_acknowledge")
    def acknowledge(self, alert_id: str) -> None:
        """An operator has seen this alert (it stays open until it resolves)."""
        try:
            self.scene.alert_engine.acknowledge(str(alert_id), by="operator")
        except TwinError as exc:
            log.warning("cannot acknowledge: %s", exc)
        self._refresh_alerts(_utcnow())

    @controller.set("twin_focus_alert")
    def focus_alert(self, alert_id: str) -> None:
        """Select an alert: fly the camera to it (~800 m, same direction) and list help within reach."""
        try:
            alert = self.scene.alert_engine.get(str(alert_id))
        except TwinError as exc:
            log.warning("cannot focus: %s", exc)
            return
        self.state.twin_alert_selected = alert.id
        lon, lat = alert.lon, alert.lat
        if lon is None or lat is None or not (math.isfinite(lon) and math.isfinite(lat)):
            self.state.twin_focus = None
            return
        target = self.scene.frame.lonlat_to_local([lon], [lat])[0]
        fly_to(self.view.renderer.GetActiveCamera(), [float(v) for v in target], FOCUS_RANGE_M)
        self.view.renderer.ResetCameraClippingRange()
        self.update_view(camera=True)
        resources: list[dict[str, Any]] = []
        if self._resource_ids:
            try:
                resources = nearby_rows(self.scene, self._resource_ids, lon, lat, radius_m=NEARBY_RADIUS_M)
                highlight_help(self.scene, self._resource_ids, lon, lat, radius_m=NEARBY_RADIUS_M)
                self._sync()
            except TwinError as exc:
                log.warning("help within reach of %s: %s", alert.id, exc)
        self.state.twin_focus = {
            "id": alert.id,
            "name": alert.name or alert.key,
            "lonlat": f"{lon:.5f}, {lat:.5f}",
            "has_resources": bool(self._resource_ids),
            "resources": resources,
            "radius": f"{NEARBY_RADIUS_M / 1000:g} km",
        }

    # -- UI ------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        with SinglePageWithDrawerLayout(self.server, vuetify_config=_VUETIFY_CONFIG, width=320) as layout:
            self.ui = layout
            client.Style(_CSS + panels.LIVE_CSS)
            layout.footer.hide()
            layout.title.set_text("")
            with layout.title:
                html.Span("{{ twin_scene_name }}", id="twin-scene-name", classes="font-weight-bold")
                html.Span("{{ twin_scene_title }}", v_if="twin_scene_title", classes="text-medium-emphasis text-body-2 ml-4")
            with layout.toolbar:
                layout.toolbar.density = "compact"
                layout.toolbar.color = "surface"
                v3.VSpacer()
                panels.clock()
                v3.VSelect(
                    v_if="twin_cameras.length",
                    v_model=("twin_camera",),
                    items=("twin_cameras",),
                    density="compact",
                    hide_details=True,
                    variant="solo-filled",
                    flat=True,
                    prepend_inner_icon="mdi-video-outline",
                    style="max-width: 240px;",
                    id="twin-camera",
                    classes="twin-camera mr-2",
                )
                with v3.VBtn(icon=True, click=self.reset_camera, title="Reset view", density="comfortable"):
                    v3.VIcon("mdi-crosshairs-gps")
                v3.VChip(
                    "{{ twin_view_mode }} · {{ twin_cells }} cells",
                    size="small", variant="tonal", color="secondary", classes="mx-2", prepend_icon="mdi-monitor",
                )
                panels.alert_button(self)
            with layout.drawer:
                layout.drawer.color = "surface"
                with html.Div(classes="pa-3", id="twin-layers"):
                    html.Div("Layers", classes="text-overline text-medium-emphasis mb-1")
                    self._layer_rows()
            panels.alerts_drawer(self)
            with layout.content, html.Div(classes="twin-main", id="twin-main"):
                with html.Div(classes="twin-view", id="twin-view"):
                    self._view_widget = self._make_view()
                    self._overlays()
                panels.time_bar(self)

    def _layer_rows(self) -> None:
        with (
            v3.VCard(
                v_for="layer in twin_layers",
                key="layer.id",
                classes="twin-layer mb-2",
                variant="tonal",
                raw_attrs=[':data-layer-id="layer.id"'],
            ),
            v3.VCardText(classes="py-1 px-3"),
        ):
            with html.Div(classes="d-flex align-center"):
                v3.VSwitch(
                    v_model="layer.visible",
                    update_modelValue=(self.set_layer_visible, "[layer.id, $event]"),
                    disabled=("!!layer.error",),
                    color="primary",
                    density="compact",
                    hide_details=True,
                    inset=True,
                    classes="twin-layer-switch flex-grow-0 mr-2",
                )
                html.Span("{{ layer.title }}", classes="twin-layer-title text-body-1")
                v3.VSpacer()
                v3.VChip(
                    "error",
                    v_if="layer.error",
                    color="error",
                    variant="flat",
                    size="x-small",
                    prepend_icon="mdi-alert",
                    classes="twin-layer-error",
                    title=("layer.error",),
                )
            html.Div("{{ layer.error }}", v_if="layer.error", classes="text-caption text-error pb-1")
            panels.layer_live_chips()
            with html.Div(v_if="!layer.error", classes="d-flex align-center"):
                v3.VIcon("mdi-circle-opacity", size="small", classes="mr-2 text-medium-emphasis")
                v3.VSlider(
                    v_model="layer.opacity",
                    end=(self.set_layer_opacity, "[layer.id, $event]"),
                    min=0, max=1, step=0.05,
                    density="compact", hide_details=True, color="primary", thumb_size=12,
                    classes="twin-layer-opacity",
                )

    def _make_view(self) -> Any:
        if self.view_mode == "remote":
            return vtk_widgets.VtkRemoteView(
                self.view.window,
                ref="twin_view",
                interactive_ratio=0.5,
                interactive_quality=60,
                still_quality=92,
                picking_modes=("twin_picking",),
                click=(self.on_click, "[$event]"),
                style="width: 100%; height: 100%;",
            )
        return vtk_widgets.VtkLocalView(
            self.view.window,
            ref="twin_view",
            picking_modes=("twin_picking",),
            click=(self.on_local_click, "[$event]"),
            interactor_events=("twin_interactor_events", ["LeftButtonPress"]),
            LeftButtonPress=(self._on_local_press, "[$event.position && {x: $event.position.x, y: $event.position.y}]"),
            style="width: 100%; height: 100%;",
        )

    def _overlays(self) -> None:
        with html.Div(classes="twin-overlay twin-errors", v_if="twin_errors.length || twin_fatal"):
            v3.VAlert(
                "Scene cannot be drawn: {{ twin_fatal }}",
                v_if="twin_fatal", type="error", variant="flat", density="compact", classes="ma-1",
            )
            v3.VAlert(
                v_for="err in twin_errors",
                key="err.id",
                type="error",
                variant="flat",
                density="compact",
                title=("`Layer ${err.title} (${err.id}) failed`",),
                text=("err.message",),
                classes="twin-error-badge ma-1",
                raw_attrs=[':data-layer-id="err.id"'],
            )
        with (
            html.Div(classes="twin-overlay twin-legend", id="twin-legend", v_if="twin_legends.length"),
            html.Div(v_for="lg in twin_legends", key="lg.id", classes="mb-2", raw_attrs=[':data-layer-id="lg.id"']),
        ):
            html.Div("{{ lg.title }}", classes="twin-legend-title")
            with html.Div(v_if="lg.kind === 'categorical'"):
                with html.Div(v_for="(e, i) in lg.entries", key="i", classes="twin-legend-row"):
                    html.Span(classes="twin-swatch", style=("{ background: e.color }",))
                    html.Span("{{ e.label }}", classes="twin-legend-label")
                html.Div("… {{ lg.more }} more", v_if="lg.more", classes="text-caption text-medium-emphasis")
            with html.Div(v_if="lg.kind === 'continuous'"):
                html.Div(classes="twin-gradient", style=("{ background: lg.gradient }",))
                with html.Div(classes="twin-gradient-range"):
                    html.Span("{{ lg.vmin }}")
                    html.Span("{{ lg.vmax }}")
        with html.Div(classes="twin-overlay twin-pick", id="twin-pick", v_if="twin_pick"):
            with html.Div(classes="d-flex align-center mb-1"):
                v3.VIcon("mdi-map-marker", color="primary", size="small", classes="mr-1")
                with html.Div():
                    html.Div("{{ twin_pick.label }}", classes="font-weight-bold twin-pick-label")
                    html.Div("{{ twin_pick.title }} · #{{ twin_pick.feature }}", classes="text-caption text-medium-emphasis")
                v3.VSpacer()
                with v3.VBtn(icon=True, size="x-small", variant="text", click=self.clear_pick, title="Close"):
                    v3.VIcon("mdi-close")
            html.Div("{{ twin_pick.lonlat }}", classes="text-caption text-medium-emphasis mb-1 twin-pick-lonlat")
            with html.Table(), html.Tr(v_for="(row, i) in twin_pick.attributes", key="i"):
                html.Td("{{ row[0] }}")
                html.Td("{{ row[1] }}")

    # -- running -------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 8080, open_browser: bool = False) -> None:
        """Serve until SIGINT/SIGTERM (blocking). Binds loopback unless ``host`` says otherwise."""
        try:
            with _trame_argv():
                self.server.start(host=host, port=port, open_browser=open_browser, timeout=0, show_connection_info=False)
        finally:
            self.view.close()


# -- helpers ---------------------------------------------------------------------------------
def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _tick_seconds(value: float | None) -> float:
    """The tick interval: the argument, else ``$TWIN_TICK_SECONDS``, else 5 s (at least 0.2 s)."""
    if value is None:
        text = os.environ.get(TICK_ENV, "").strip()
        try:
            value = float(text) if text else DEFAULT_TICK_SECONDS
        except ValueError:
            log.warning("%s=%r is not a number of seconds; using %g s", TICK_ENV, text, DEFAULT_TICK_SECONDS)
            value = DEFAULT_TICK_SECONDS
    if not math.isfinite(value) or value <= 0:
        raise TwinError(f"tick interval {value!r} s must be a positive number of seconds")
    return max(float(value), 0.2)


def _replay_step(span_s: float) -> int:
    """Slider step (s): about 1,500 positions over the replay span, rounded to a readable step."""
    for step in (1, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if span_s / step <= 1500:
            return step
    return 3600


@contextmanager
def _trame_argv() -> Iterator[None]:
    """Hide our own command line from trame's argument parser (``TRAME_ARGS`` still applies)."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def _css_rgba(color: tuple[int, int, int, int] | tuple[float, ...]) -> str:
    r, g, b, a = (list(color) + [255])[:4]
    return f"rgba({int(r)}, {int(g)}, {int(b)}, {float(a) / 255:.3f})"


def _fmt_number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _legend_dict(layer_id: str, layer_title: str, legend: Legend) -> dict[str, Any]:
    title = f"{layer_title}: {legend.title}" if legend.title else layer_title
    if legend.is_continuous:
        cmap = colormaps[legend.colormap or "viridis"]
        stops = ", ".join(
            f"{_css_rgba(tuple(round(c * 255) for c in cmap(i / 8)))} {100 * i / 8:.1f}%" for i in range(9)
        )
        return {"id": layer_id, "title": title, "kind": "continuous", "gradient": f"linear-gradient(to right, {stops})",
                "vmin": _fmt_number(legend.vmin), "vmax": _fmt_number(legend.vmax), "entries": [], "more": 0}
    entries = [{"label": e.label, "color": _css_rgba(e.color)} for e in legend.entries[:_MAX_LEGEND_ENTRIES]]
    return {"id": layer_id, "title": title, "kind": "categorical", "entries": entries,
            "more": max(len(legend.entries) - _MAX_LEGEND_ENTRIES, 0)}


def _fmt_value(value: Any) -> str:
    """A picked attribute for the card: times with a zone in the app's display zone (+08:00), as everywhere in the app."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return fmt_datetime(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _pick_dict(scene: Scene, hit: dict[str, Any]) -> dict[str, Any]:
    layer_id = str(hit.get("layer"))
    try:
        title = scene[layer_id].title
    except KeyError:
        title = layer_id
    attributes = hit.get("attributes") or {}
    rows = [[str(k), _fmt_value(v)] for k, v in list(attributes.items())[:_MAX_PICK_ATTRIBUTES]]
    lon, lat = hit.get("lon"), hit.get("lat")
    lonlat = f"lon {lon:.6f}, lat {lat:.6f}" if isinstance(lon, float) and isinstance(lat, float) else ""
    label = next((_fmt_value(attributes[k]) for k in _LABEL_KEYS if attributes.get(k) not in (None, "")), f"#{hit.get('feature')}")
    return {"layer": layer_id, "title": title, "label": label, "feature": int(hit.get("feature", -1)), "lonlat": lonlat,
            "lon": lon, "lat": lat, "attributes": rows}
