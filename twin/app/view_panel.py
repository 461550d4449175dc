"""The 3D view component: one :class:`~twin.render.view.SceneView` of the session's scene, picking, camera, overlays.

Session events drive it: layer changes redraw, camera changes move the VTK camera (a flight
keeps the user's current direction), a focused alert shows help within reach and a picked
feature is marked — as the view's own overlay layers, never as layers of the scene.
State keys: ``twin_view_mode``, ``twin_cells``, ``twin_fatal``, ``twin_errors``,
``twin_picking``, ``twin_cameras``, ``twin_camera``; in local mode ``twin_block_layouts`` and
``twin_block_ticks`` (live H3 ticks as a few bytes per cell, applied by static/block_ticks.js).
``TWIN_LOCAL_TICKS=0`` sends ticks the old way (the whole changed arrays; the benchmark's baseline).

Streamed start-up (``load=False``): every layer is pending until built (:mod:`twin.app.startup`); remote images: :mod:`twin.app.remote_view`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any, Literal

import geopandas as gpd
from psygnal import Signal
from trame.app import TrameComponent
from trame.decorators import change, controller
from trame.widgets import client, html
from trame.widgets import vtk as vtk_widgets
from trame.widgets import vuetify3 as v3
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingUI import vtkGenericRenderWindowInteractor

from twin.app.block_ticks import SCRIPT, BlockTicks
from twin.app.bridge import LoopBridge
from twin.app.i18n import LANGUAGES, tr_expr, tr_fmt
from twin.app.live import shows_labels
from twin.app.picking import marker, pick_along_ray
from twin.app.remote_view import remote_view
from twin.errors import TwinError
from twin.plugins import layer_types
from twin.render.lod import LodSettings, choose_view_mode
from twin.render.view import SceneView
from twin.session import CameraChange, CameraPose, Focus, Selection, Session, fly_to

__all__ = ["ViewMode", "ViewPanel"]

log = logging.getLogger(__name__)

ViewMode = Literal["auto", "remote", "local"]
WHEEL_SETTLE_S = 0.3  # seconds after the last wheel step until the remote view draws its still frame
HELP_COLORS = {"reach": "#00e5ff", "pump": "#ffd60a", "rescue_team": "#ff7b00", "materials": "#b5ff3b", "alert": "#ff2d55", "picked": "#ffffff"}


class ViewPanel(TrameComponent):
    """The scene in 3D for one page (``remote``: JPEG images; ``local``: geometry for vtk.js; ``auto``: local when the browser can hold it, see :func:`twin.render.lod.choose_view_mode`)."""

    drawn = Signal()
    """Emitted (on the loop) after each redraw: layer errors and legends may have changed."""

    def __init__(self, server: Any, session: Session, bridge: LoopBridge, *, view_mode: ViewMode, triangle_budget: int, size: tuple[int, int],
                 load: bool = True) -> None:
        super().__init__(server)
        if view_mode not in ("auto", "remote", "local"):
            raise TwinError(f"view mode {view_mode!r} is not one of auto, remote, local")
        self.session, self.bridge, self.scene = session, bridge, session.scene
        self.view = SceneView(self.scene, size=size, offscreen=True, show_title=False, show_legend=False)
        self._interactor = vtkGenericRenderWindowInteractor()
        self._interactor.SetRenderWindow(self.view.window)
        self._interactor.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        self._interactor.AddObserver("LeftButtonPressEvent", self._on_press)
        self._wheel_steps = 0
        for wheel in ("MouseWheelForwardEvent", "MouseWheelBackwardEvent"):
            self._interactor.AddObserver(wheel, self._on_wheel)
        self._camera_at_press: tuple[float, ...] | None = None
        self._press_xy: tuple[float, float] | None = None
        self._widget: Any = None
        self._requested_mode, self._triangle_budget = view_mode, triangle_budget
        self.view_mode: Literal["remote", "local"] = "remote"  # auto: images until settle_mode() decides
        self.view.pending = set() if load else {layer.id for layer in self.scene.layers}  # built in the loader's threads, live ones too (their stations, empty)
        self.fatal = self._sync()
        self.view.lod = LodSettings()  # remote: lighter tiles of big layers while the camera moves (the browser's drag reaches VTK's style)
        self.settle_mode()
        self.block_ticks = BlockTicks(self.view)
        self.block_ticks.publish(self.state, time.time())
        self.state.update({"twin_view_mode": self.view_mode, "twin_cameras": list(self.scene.cameras), "twin_camera": self.scene.camera,
                           "twin_picking": ["click"], "twin_fatal": self.fatal or ""})
        self._publish()
        session.layer_changed.connect(lambda _change: bridge.soon(self.redraw, key=self.redraw))
        session.camera_changed.connect(lambda change: bridge.soon(lambda: self._apply_camera(change)))
        session.focus_changed.connect(lambda focus: bridge.soon(lambda: self._show_focus(focus), key=self._show_focus))
        session.selection_changed.connect(lambda selection: bridge.soon(lambda: self._show_selection(selection), key=self._show_selection))

    def settle_mode(self) -> bool:
        """Choose the view mode (``auto``: once no layer is pending, local under the triangle budget); True if it became local: the page needs :meth:`ui` again."""
        if self.view_mode == "local" or (self.view.pending and self._requested_mode == "auto") or self._choose_mode(self._requested_mode, self._triangle_budget) == "remote":
            return False
        self.view_mode, self.view.direct_colors, self.view.lod = "local", True, None  # vtk.js shows colours given per cell, not through our LUTs
        self.view.cell_ticks = os.environ.get("TWIN_LOCAL_TICKS", "1") != "0"
        self.fatal = self._sync()
        self.state.twin_view_mode = self.view_mode
        return True

    def _choose_mode(self, mode: ViewMode, budget: int) -> Literal["remote", "local"]:
        """``auto``: the browser-side view only when it can hold the scene (see :func:`twin.render.lod.choose_view_mode`)."""
        if mode != "auto":
            return mode
        labelled = [layer.id for layer in self.scene.layers if layer.id not in self.view.errors and shows_labels(layer, self.scene)] if self.fatal is None else []
        chosen, reason = choose_view_mode(labelled=labelled, triangles=self.view.triangle_count(), nbytes=self.view.geometry_bytes(), triangle_budget=budget)
        log.info("%s view: %s", chosen, reason)
        return chosen

    # -- drawing -------------------------------------------------------------------------
    def _sync(self) -> str | None:
        """Bring the actors up to date (under the session's lock); the scene's one-line error if it cannot be drawn at all."""
        try:
            with self.session.lock:
                self.view.sync()
        except TwinError as exc:
            log.error("scene %s: %s", self.scene.name, exc)
            return str(exc)
        return None

    def _publish(self) -> None:
        errors = [{"id": layer.id, "title": layer.title, "titles": {lang: layer.title_for(lang) for lang in LANGUAGES}, "message": error.message}
                  for layer in self.scene.layers if (error := self.view.errors.get(layer.id))]
        self.state.twin_errors = errors
        self.state.twin_cells = f"{self.view.triangle_count():,}"
        self.drawn.emit()

    def redraw(self) -> None:
        """Draw the scene as it is now and send it to the browsers (in local mode, a tick alone sends only its block ticks)."""
        stamp = time.time()
        self.fatal = self._sync()
        self.state.twin_fatal = self.fatal or ""
        self._publish()
        if self.view_mode == "local":
            self.block_ticks.publish(self.state, stamp)
            if not self.view.scene_changed:
                return
        self.update_view()

    @controller.set("twin_update_view")
    def update_view(self, camera: bool = False) -> None:
        """Send the current scene to the browsers (an image, or geometry for vtk.js)."""
        if self._widget is None:
            return
        self._widget.update()
        if camera and self.view_mode == "local":
            self._widget.push_camera()

    def animate(self, on: bool, *, fps: float = 12.0) -> None:
        """Remote view: stream frames (JPEG 60) at up to ``fps`` while the camera moves (``on``), then a still. Frames keep the
        page's size: at half size the render window was resized for each flight and back, reallocating its frame buffers (a wall's memory level moved by tens of MiB)."""
        if self._widget is None or self.view_mode != "remote":
            return
        if on:
            self._widget.start_animation(fps=fps, quality=60, ratio=1)
        else:
            self._widget.stop_animation()

    # -- camera --------------------------------------------------------------------------
    def pose(self) -> CameraPose:
        """Where the VTK camera is now."""
        camera = self.view.renderer.GetActiveCamera()
        return CameraPose(camera.GetPosition(), camera.GetFocalPoint(), camera.GetViewUp())

    def _report_camera(self) -> None:
        """Tell the session where the camera is (layers read by view fetch what came into sight)."""
        width, height = self.view.window.GetSize()
        angle = self.view.renderer.GetActiveCamera().GetViewAngle()
        self.session.camera_moved(self.pose(), view_angle=angle, aspect=width / max(height, 1))

    def _apply_camera(self, change: CameraChange) -> None:
        if change.target is not None and change.range is not None:  # a flight: from where the user looks now
            pose = fly_to(self.pose(), change.target, change.range)
            camera = self.view.renderer.GetActiveCamera()
            camera.SetFocalPoint(*pose.focal_point)
            camera.SetPosition(*pose.position)
            camera.OrthogonalizeViewUp()
            self.view.renderer.ResetCameraClippingRange()
        else:
            self.view.set_camera(change.preset)
        self._report_camera()
        self.update_view(camera=True)

    @change("twin_camera")
    def _on_camera(self, twin_camera: str | None = None, **_: Any) -> None:
        if twin_camera and twin_camera in self.scene.cameras:
            self.session.set_camera(twin_camera)

    @controller.set("twin_reset_camera")
    def reset_camera(self) -> None:
        """Go back to the selected camera preset (or the scene's default view)."""
        self.session.set_camera(self.state.twin_camera or None)

    # -- overlays ------------------------------------------------------------------------
    def _overlay(self, name: str, features: gpd.GeoDataFrame | None, **style: Any) -> None:
        """Show ``features`` (column ``kind`` picks the colour) as the view's overlay ``name``; None removes it."""
        if features is None or features.empty:
            self.view.overlays.pop(name, None)
        else:
            self.view.overlays[name] = layer_types().get("vector")(name, data=features, color_by="kind", categories=HELP_COLORS, **style)

    def _show_focus(self, focus: Focus | None) -> None:
        """Help within reach (the search circle and the resources found) and a marker on the focused alert."""
        located = focus is not None and focus.lon is not None and focus.lat is not None
        self._overlay("help_within_reach", focus.reach if located and focus is not None else None,
                      title="救援力量 Help within reach", point_size=18, line_width=3, elevation=4)
        alert_marker = marker("alert", focus.lon, focus.lat) if located and focus is not None else None
        self._overlay("focused_alert", alert_marker, point_size=24, elevation=5)
        self.redraw()

    def _show_selection(self, selection: Selection | None) -> None:
        """A marker where the selected feature was picked."""
        picked_marker = marker("picked", selection.lon, selection.lat) if selection is not None else None
        self._overlay("picked_feature", picked_marker, point_size=10, elevation=6)
        self.redraw()

    def _on_wheel(self, *_: Any) -> None:
        """Wheel zoom: frames stay light until :data:`WHEEL_SETTLE_S` after the last step, then one still frame goes out."""
        self.view.hold_moving(WHEEL_SETTLE_S)
        self._wheel_steps = step = self._wheel_steps + 1
        if self.bridge.serving and self.bridge.loop is not None:
            self.bridge.loop.call_later(WHEEL_SETTLE_S + 0.05, lambda: step == self._wheel_steps and self.update_view())

    # -- picking -------------------------------------------------------------------------
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
            return  # the press started a rotation/pan, not a click on a feature
        self._report_camera()
        width, height = self.view.window.GetSize()
        size = event.get("size") or [width, height]
        x = float(event["position"]["x"]) * width / max(float(size[0]), 1.0)
        y = float(event["position"]["y"]) * height / max(float(size[1]), 1.0)
        self.show_pick(lambda: self.view.pick(round(x), round(y)))

    def _on_local_press(self, position: dict[str, float] | None) -> None:
        self._press_xy = (float(position["x"]), float(position["y"])) if position else None

    @controller.set("twin_pick_local")
    def on_local_click(self, event: dict[str, Any] | None) -> None:
        """Pick in the vtk.js view: cast the clicked ray (browser camera) through the server's scene."""
        if not event or "ray" not in event:
            self.session.select(None)
            return
        press, at = self._press_xy, event.get("displayPosition") or [0, 0]
        if press is not None and math.hypot(press[0] - at[0], press[1] - at[1]) > 6:
            return  # the press started a rotation/pan
        near, far = event["ray"]
        self.show_pick(lambda: pick_along_ray(self.view, near, far))

    def show_pick(self, pick: Callable[[], dict[str, Any] | None]) -> None:
        """Run a pick (under the session's lock) and select what it hit (or nothing)."""
        try:
            with self.session.lock:
                hit = pick()
        except TwinError as exc:
            log.warning("pick failed: %s", exc)
            hit = None
        if hit and hit.get("layer") in self.view.overlays:
            hit = None  # a highlight is not a feature of the scene
        self.session.select(hit)

    # -- UI ------------------------------------------------------------------------------
    def ui(self) -> None:
        """The view widget and its error badges (inside the page's view box)."""
        if self.view_mode == "remote":
            self._widget = remote_view(self.view.window, ref="twin_view", picking_modes=("twin_picking",), click=(self.on_click, "[$event]"))
        else:
            client.Script(SCRIPT.read_text(encoding="utf-8"))
            self._widget = vtk_widgets.VtkLocalView(
                self.view.window, ref="twin_view", picking_modes=("twin_picking",), click=(self.on_local_click, "[$event]"),
                interactor_events=("twin_interactor_events", ["LeftButtonPress"]),
                LeftButtonPress=(self._on_local_press, "[$event.position && {x: $event.position.x, y: $event.position.y}]"),
                after_scene_loaded="window.twinBlockTicks && window.twinBlockTicks.apply()",
                style="width: 100%; height: 100%;",
            )
        with html.Div(classes="twin-overlay twin-errors", v_if="twin_errors.length || twin_fatal"):
            v3.VAlert(tr_fmt("Scene cannot be drawn: {error}", error="twin_fatal"), v_if="twin_fatal", type="error", variant="flat", density="compact", classes="ma-1")
            v3.VAlert(
                v_for="err in twin_errors", key="err.id", type="error", variant="flat", density="compact",
                title=(tr_expr("Layer {title} ({id}) failed") + ".replace('{title}', err.titles[twin_lang] || err.title).replace('{id}', err.id)",), text=("err.message",),
                classes="twin-error-badge ma-1", raw_attrs=[':data-layer-id="err.id"'],
            )

