"""The command-hall wall (``twin serve --kiosk``, or ``?kiosk=1`` on any page): the 3D view full screen, overlays
readable across a hall, the tour and alert banners of one shared :class:`~twin.session.hall.Hall`.

Whether a page is a kiosk is the page's own business (``static/kiosk.js`` reads ``?kiosk=`` and
sets ``html.twin-kiosk``; ``static/kiosk.css`` hides the chrome and sizes the overlays in ``vmin``),
so a kiosk page never changes the planners' pages. What the wall shows is shared server state:
the hall runs on the server while the server is a ``--kiosk`` one or a kiosk page said it is
open in the last :data:`ALIVE_S` seconds, and every page of the server shows the same stop and
banner. It moves the server's camera eased: the remote view streams JPEG frames (up to :data:`FLIGHT_FPS` a
second, fewer on a slow renderer) during a flight and a WebP still at rest.

While the wall runs its camera is the tour's (one render window for all pages): drags and the wheel move nothing
(:mod:`.kiosk_camera`) and a camera another page moves (a preset, a saved view, a flight) is taken back at once.
Other pages (``?kiosk=0``) are operator consoles: they follow the wall (``static/kiosk.js`` keeps their mouse off
the view, hides the camera presets and says so) and acknowledge alerts, which the wall follows.

State: ``twin_hall`` (``active``, ``mode``, ``stop``, ``stops``, ``camera``, ``tour``, ``flying``,
``pose`` — the view's camera at rest, ``"x,y,z|fx,fy,fz"`` in frame metres —, ``banner``,
``queued``, ``error``) and ``twin_kiosk_clock`` (``date``, ``time``, +08:00); ``twin_kiosk_page`` is each page's own (client only):
true on a kiosk page (set before its template renders, ``static/kiosk_flag.js``; ``twin_kiosk_default``: the server's default),
which then does not build what it hides (:data:`~twin.app.kiosk_overlays.OFF_WALL`: the bars, the drawers, the time bar).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from trame.app import TrameComponent

from twin.alerts.engine import AlertEvent
from twin.app.bridge import LoopBridge
from twin.app.kiosk_camera import CameraHold, at
from twin.app.kiosk_overlays import overlays, page_flag
from twin.app.live import SEVERITY_COLORS, alert_rows, focus_dict
from twin.app.view_panel import ViewPanel
from twin.clock import SHANGHAI
from twin.errors import TwinError
from twin.scene.camera import CameraPose
from twin.session import CameraPose as SessionPose
from twin.session import Session
from twin.session.hall import Banner, Hall, HallFrame

__all__ = ["ALIVE_S", "FLIGHT_FPS", "KioskPanel"]

log = logging.getLogger(__name__)

FLIGHT_FPS = 12.0
"""Frames a second the server renders during the wall's flights."""
ALIVE_S = 15.0
"""A ``?kiosk=1`` page reports every 5 s; the hall stops this long after the last report (unless ``--kiosk``)."""
_REST_STEP_S = 0.5
_IDLE = {"active": False, "mode": "", "stop": -1, "stops": 0, "camera": "", "tour": "", "flying": False, "pose": "", "banner": None, "queued": 0, "error": ""}


class KioskPanel(TrameComponent):
    """The wall's overlays and the hall ticking on the server's loop; ``kiosk``: every page is a kiosk unless it says ``?kiosk=0``."""

    def __init__(self, server: Any, session: Session, bridge: LoopBridge, view_panel: ViewPanel, *, kiosk: bool) -> None:
        super().__init__(server)
        self.session, self.bridge, self.view_panel, self.kiosk = session, bridge, view_panel, kiosk
        self.hall: Hall | None = None
        self._alive_until = 0.0
        self._applied: tuple[float, ...] | None = None
        self._leg, self._banner_id, self._banner_row = -1, "", None
        self._base_visible: dict[str, bool] = {}
        self._help: list[dict[str, Any]] = []
        self._focused, self._flying = "", False
        self.camera_hold = CameraHold(view_panel.view.window)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.state.update({"twin_hall": dict(_IDLE), "twin_kiosk_clock": {"date": "", "time": ""}, "twin_kiosk_page": False})
        self.state.client_only("twin_kiosk_page")  # each page's own (static/kiosk_flag.js): a wall page leaves out what it hides
        page_flag(server, kiosk=kiosk)
        session.alert_event.connect(self._on_alert)
        session.camera_changed.connect(self._on_camera)
        self.server.trigger("twin_kiosk_alive")(self.alive)
        self.ctrl.on_server_ready.add(self._start)
        self.ctrl.on_server_exited.add(self._stop)

    # -- running -------------------------------------------------------------------------------
    def alive(self) -> None:
        """A kiosk page is open (it says so every 5 s): run the hall for the next :data:`ALIVE_S` seconds."""
        self._alive_until = time.monotonic() + ALIVE_S
        self._wake.set()

    def active(self, now: float) -> bool:
        """Whether the wall runs: a ``--kiosk`` server, or a kiosk page seen lately."""
        return self.kiosk or now < self._alive_until

    def _start(self, **_: Any) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _stop(self, **_: Any) -> None:
        if self._task is not None:
            self._task.cancel()
        self._task = None

    async def _run(self) -> None:
        """Step the wall on the server's loop: its state reaches the pages before the view is redrawn."""
        while True:
            self._wake.clear()
            with self.state:
                frame, delay = self._advance()
            if frame is not None:
                await asyncio.sleep(0)  # the state goes out now: a redraw holds the loop
                with self.state:
                    delay = self._render(frame)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _on_alert(self, event: AlertEvent) -> None:
        """An alert transition (any thread): the hall takes it now; the banner goes out with the tick's other updates."""
        if self.hall is not None:
            self.hall.on_event(event, time.monotonic())
            self.bridge.soon(self._alerted)

    def _on_camera(self, _change: object) -> None:
        """A page moved the shared camera (any thread): the running wall takes it back at its next step, now."""
        if self.hall is not None:
            self.bridge.soon(self._wake.set, key=self._on_camera)

    def _alerted(self) -> None:
        """On the loop: publish the hall, then let the wall step (fly) at once."""
        self._advance()
        self._wake.set()

    def step(self) -> float:
        """One step of the wall now, outside the server's loop (tests, notebooks); the seconds until the next."""
        frame, delay = self._advance()
        return delay if frame is None else self._render(frame)

    def _advance(self) -> tuple[HallFrame | None, float]:
        """The hall now, published (mode, stop, banner); None and the seconds to wait while the wall does not run.

        Failures are logged and the wall goes on (it must never stop).
        """
        now = time.monotonic()
        try:
            if not self.active(now):
                self._retire()
                return None, 1.0
            if self.hall is None and not self._build(now):
                return None, 5.0
            assert self.hall is not None
            frame = self.hall.frame_at(now)
            banner_id = frame.banner.alert.id if frame.banner is not None else ""
            if banner_id != self._banner_id:
                self._banner_id, self._banner_row, self._help = banner_id, None, []
            self._publish(frame)
        except Exception:  # the wall keeps running
            log.exception("wall: step failed")
            return None, 1.0
        return frame, 0.0

    def _render(self, frame: HallFrame) -> float:
        """The view as ``frame`` wants it (camera, layers, focus), published again; the seconds until the next step."""
        started = time.monotonic()
        try:
            if self._banner_id != self._focused:
                self._focused = self._banner_id
                self._focus(self._banner_id)
            if self._applied is not None and not at(self._pose(), self._applied):
                self._applied = None  # something else moved the wall's camera: the tour's pose again
            self._show(frame)
            self._publish(frame)
        except Exception:  # the wall keeps running
            log.exception("wall: step failed")
            return 1.0
        busy = time.monotonic() - started  # a slow renderer gets fewer frames, never a busy loop
        return max(1.0 / FLIGHT_FPS, busy) if frame.flying else min(_REST_STEP_S, max(frame.next_at - time.monotonic(), 0.02, busy))

    def _build(self, now: float) -> bool:
        try:
            self.hall = Hall.from_scene(self.session.scene, start=now, home=self._pose())
        except TwinError as exc:
            log.error("wall: %s", exc)
            self.state.twin_hall = {**_IDLE, "error": str(exc)}
            return False
        with self.session.lock:
            firing = self.session.engine.firing()
        self.hall.follow(firing, now)
        self.camera_hold.hold(True)
        return True

    def _retire(self) -> None:
        """No kiosk page any more: give the camera, the layers and the focus back."""
        if self.hall is None:
            return
        self.hall = None
        self.camera_hold.hold(False)
        self._restore_layers({})
        if self._focused:
            self.session.clear_focus()
        if self._flying:
            self.view_panel.animate(False)
        self._applied, self._leg, self._banner_id, self._focused, self._flying = None, -1, "", "", False
        self.state.twin_hall = dict(_IDLE)

    # -- the view ------------------------------------------------------------------------------
    def _pose(self) -> CameraPose:
        camera = self.view_panel.view.renderer.GetActiveCamera()
        return CameraPose(camera.GetPosition(), camera.GetFocalPoint(), camera.GetViewUp(), camera.GetViewAngle())

    def _show(self, frame: HallFrame) -> None:
        """Move the camera (a frame of a flight, or a rest) and apply the stop's layers."""
        pose = frame.pose
        key = _key(pose)
        if key != self._applied:
            camera = self.view_panel.view.renderer.GetActiveCamera()
            camera.SetPosition(*pose.position)
            camera.SetFocalPoint(*pose.focal_point)
            camera.SetViewUp(*pose.up)
            camera.SetViewAngle(pose.view_angle)
            self.view_panel.view.renderer.ResetCameraClippingRange()
            self._applied = key
            if frame.flying != self._flying:  # remote: the view streams light frames in flight, a full still at rest
                self._flying = frame.flying
                self.view_panel.animate(frame.flying, fps=FLIGHT_FPS)
            if not frame.flying:  # at rest: layers read by view fetch what came into sight
                width, height = self.view_panel.view.window.GetSize()
                self.session.camera_moved(SessionPose(pose.position, pose.focal_point, pose.up), view_angle=pose.view_angle, aspect=width / max(height, 1))
            if not frame.flying or self.view_panel.view_mode == "local":
                self.view_panel.update_view(camera=True)
        if frame.leg != self._leg:
            self._leg = frame.leg
            self._restore_layers(frame.layers)

    def _restore_layers(self, overrides: Mapping[str, bool]) -> None:
        """Layers as the stop wants them; those an earlier stop changed and this one does not name go back to how they were."""
        wanted = {**{lid: v for lid, v in self._base_visible.items() if lid not in overrides}, **dict(overrides)}
        for layer_id, visible in wanted.items():
            try:
                layer = self.session.scene[layer_id]
            except KeyError:
                continue
            self._base_visible.setdefault(layer_id, layer.visible)
            if layer.visible != visible:
                self.session.set_layer(layer_id, visible=visible)
        for layer_id in [lid for lid in self._base_visible if lid not in overrides]:
            del self._base_visible[layer_id]

    def _focus(self, alert_id: str) -> None:
        """Help within reach of the banner's alert (the hall flies the camera; the session must not)."""
        if not alert_id:
            self.session.clear_focus()
            return
        try:
            focus = self.session.focus_alert(alert_id, fly=False)
        except TwinError as exc:
            log.warning("wall: %s", exc)
            return
        shown = focus_dict(focus, self.session.scene)
        self._help = shown["resources"][:4] if shown else []

    # -- state ---------------------------------------------------------------------------------
    def _publish(self, frame: HallFrame) -> None:
        assert self.hall is not None
        seen, at_rest = self._pose(), not frame.flying and self._applied == _key(frame.pose)
        pose = "|".join(",".join(f"{v:.1f}" for v in vec) for vec in (seen.position, seen.focal_point)) if at_rest else ""
        hall = {"active": True, "mode": frame.mode, "stop": frame.stop, "stops": len(self.hall.stops), "camera": frame.camera, "tour": self.hall.wall.tour or "",
                "flying": frame.flying, "pose": pose, "banner": self._banner(frame.banner), "queued": len(frame.queue), "error": ""}
        if hall != self.state.twin_hall:
            self.state.twin_hall = hall
        now = self.session.clock().astimezone(SHANGHAI)
        clock = {"date": now.strftime("%Y-%m-%d"), "time": now.strftime("%H:%M:%S")}
        if clock != self.state.twin_kiosk_clock:
            self.state.twin_kiosk_clock = clock

    def _banner(self, banner: Banner | None) -> dict[str, Any] | None:
        """The banner's alert as the page shows it: what, where, value, since, help within reach; resolved ones keep their last values."""
        if banner is None:
            return None
        alert = banner.alert
        lang = self.state.twin_lang or "en"
        with self.session.lock:
            rows = alert_rows(self.session.engine, self.session.scene, self.session.now or self.session.clock(), lang)
            rule = next((r for r in self.session.scene.alerts if r.id == alert.rule_id), None)
        row = next((r for r in rows if r["id"] == alert.id), None) or self._banner_row
        self._banner_row = row
        title = rule.title_in(lang) if rule is not None else alert.title  # also for a resolved alert's kept row
        base = {"name": "", "key": "", "value": "", "since": "", "duration": "", "severity": alert.severity}
        return {**base, **(row or {}), "title": title, "id": alert.id, "color": SEVERITY_COLORS.get(alert.severity, "#94a3b8"), "resolved": banner.resolved,
                "help": self._help, "located": alert.lon is not None}

    # -- UI ------------------------------------------------------------------------------------
    def ui(self) -> None:
        """The kiosk's overlays (inside the view box; shown only on kiosk pages), stylesheet and script."""
        overlays(kiosk=self.kiosk)


def _key(pose: CameraPose) -> tuple[float, ...]:
    """A pose as numbers, to tell whether the view already shows it."""
    return (*pose.position, *pose.focal_point, *pose.up, pose.view_angle)
