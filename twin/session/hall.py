"""The command-hall wall as a model: a tour cycled all day, and alerts interrupting it (no view, no trame, no VTK).

Time-driven and pure: every method takes ``t``, seconds on any monotonic clock (the app passes
``time.monotonic()``, tests their own numbers), and what the wall shows at ``t`` is
:meth:`Hall.frame_at`. The scene file's ``wall:`` section (:class:`~twin.scene.wall.WallSpec`)
says which tour, which alerts interrupt it and for how long.

- **Tour.** Each leg is an eased flight to a stop (``flight``; none for the first stop at the
  start) and the stop's ``dwell``; after the last stop the tour flies back to the first.
- **Interrupt.** When an alert that ``interrupt_on`` takes fires, the tour pauses at the stop it
  was flying to or dwelling at; the camera flies (``wall.flight``, eased) to look at the alert
  from ``wall.range`` metres, keeping its heading, and the banner shows it for ``resume_after``.
- **Queue.** Alerts firing meanwhile wait, most severe first, then oldest; at most ``max_queue``
  (the least severe newest one is dropped and counted in :attr:`Hall.dropped`).
- **Resume.** When the banner's time is up, or its alert is acknowledged (anywhere), the next
  queued alert is shown; with none, the tour flies back to the paused stop and dwells there again.
- **Resolved while shown.** The banner stays, flagged ``resolved``; a queued alert that resolves
  or is acknowledged leaves the queue.

No event moves the camera at the instant it is handled: each change of course starts from the
pose at that moment, so the wall never jump-cuts.

>>> from twin.geo import Frame
>>> a = HallStop("a", CameraPose((0.0, -1000.0, 1000.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0)), dwell=10, flight=4)
>>> b = HallStop("b", CameraPose((500.0, -500.0, 800.0), (500.0, 0.0, 0.0), (0.0, 0.0, 1.0)), dwell=10, flight=4)
>>> hall = Hall([a, b], WallSpec(resume_after="30s"), Frame.auto(121.48, 31.23), start=0.0)
>>> [(f.camera, f.flying) for f in map(hall.frame_at, (5.0, 12.0, 15.0, 25.0))]
[('a', False), ('b', True), ('b', False), ('a', True)]
>>> hall.fire(HallAlert("7", "critical", "deep", lon=121.49, lat=31.23), 26.0), hall.frame_at(27.0).camera
(True, 'alert')
>>> hall.frame_at(57.0).mode, hall.frame_at(57.0).camera  # 30 s later: back to the paused stop
('tour', 'a')
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from twin.alerts.engine import Alert, AlertEvent
from twin.errors import TwinError
from twin.geo.frame import Frame
from twin.scene.camera import CameraPose, CameraPreset, fly, preset_pose
from twin.scene.model import Scene
from twin.scene.wall import SEVERITIES, WallSpec, parse_wall

__all__ = ["MIN_ALERT_PITCH", "Banner", "Hall", "HallAlert", "HallFrame", "HallStop"]

log = logging.getLogger(__name__)

MIN_ALERT_PITCH = 50.0
"""Degrees below the horizon the camera looks at an alert from, at least (a low view hides a point behind buildings)."""
HOME_DWELL = 3600.0
"""Seconds the wall holds the scene's camera between rests when it has no tour (one stop, no movement)."""


@dataclass(frozen=True)
class HallStop:
    """One stop of the wall's tour: its camera's name and pose (frame metres), ``dwell`` and ``flight`` seconds, layer overrides."""

    name: str
    pose: CameraPose
    dwell: float
    flight: float
    layers: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class HallAlert:
    """What the wall needs of an alert: its id, severity, rule, title and location (lon/lat; None when it has none)."""

    id: str
    severity: str
    rule_id: str
    title: str = ""
    lon: float | None = None
    lat: float | None = None

    @classmethod
    def of(cls, alert: Alert | Mapping[str, Any]) -> HallAlert:
        """From an engine :class:`~twin.alerts.engine.Alert` or its ``to_dict()`` form (as an :class:`AlertEvent` carries it)."""
        data = alert.to_dict() if isinstance(alert, Alert) else alert
        lon, lat = data.get("lon"), data.get("lat")
        located = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (lon, lat))
        return cls(str(data["id"]), str(data.get("severity") or "warning"), str(data.get("rule_id") or ""), str(data.get("title") or ""),
                   float(lon) if located else None, float(lat) if located else None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Banner:
    """The alert the wall shows, since when (``shown_at``, s) and whether it resolved while shown."""

    alert: HallAlert
    shown_at: float
    resolved: bool = False


@dataclass(frozen=True)
class HallFrame:
    """What the wall shows at ``t``.

    ``stop``: the tour stop flown to or dwelt at (while an alert is shown: the stop the tour resumes at);
    ``camera``: that stop's name, or ``"alert"``; ``pose``: the camera (frame metres); ``flying``: in an
    eased flight; ``layers``: visibility overrides in force; ``queue``: ids of the alerts waiting, next
    first; ``next_at``: when the next flight, dwell or banner ends (s); ``leg``: counts legs and banners.
    """

    t: float
    mode: Literal["tour", "alert"]
    stop: int
    camera: str
    pose: CameraPose
    flying: bool
    layers: Mapping[str, bool]
    banner: Banner | None
    queue: tuple[str, ...]
    next_at: float
    leg: int


@dataclass(frozen=True)
class _Leg:
    index: int
    start: float
    origin: CameraPose | None  # where the flight to the stop starts; None: no flight (the tour's start)


@dataclass(frozen=True)
class _Showing:
    banner: Banner
    origin: CameraPose
    target: CameraPose | None  # None: the alert has no location, the camera holds still


class Hall:
    """The wall's tour and interrupt queue for ``stops`` (at least one) under ``wall``; ``frame`` locates alerts.

    ``start``: when the tour starts (s, at the first stop, no flight). Thread-safe (one lock): the app
    feeds alert events from the ticking thread and reads frames on its event loop. Raises
    :class:`TwinError` for no stops, or a stop whose flight is not positive or dwell negative.
    """

    def __init__(self, stops: Sequence[HallStop], wall: WallSpec, frame: Frame, *, start: float, max_queue: int = 100) -> None:
        if not stops:
            raise TwinError("the wall's tour needs at least one stop")
        for stop in stops:
            if not (stop.flight > 0 and stop.dwell >= 0):
                raise TwinError(f"wall stop {stop.name!r}: flight must be above 0 s and dwell at least 0 s, got {stop.flight:g} s and {stop.dwell:g} s")
        self.stops, self.wall, self.frame, self.max_queue = tuple(stops), wall, frame, max_queue
        self._lock = threading.Lock()
        self._t = start
        self._leg = _Leg(0, start, None)
        self._showing: _Showing | None = None
        self._paused = 0
        self._queue: list[tuple[int, float, int, HallAlert]] = []  # (severity rank, fired at, serial, alert), next first
        self._serial = itertools.count()
        self._legs = 0
        self.dropped = 0
        """Alerts left out because the queue was full."""

    @classmethod
    def from_scene(cls, scene: Scene, *, start: float, home: CameraPose | None = None, max_queue: int = 100) -> Hall:
        """The hall of ``scene``'s ``wall:`` (defaults without one): its tour's stops, or the scene's camera (else ``home``) held still.

        Raises :class:`TwinError` (one line) when the wall names a tour or alert rule the scene no
        longer has, or has no tour and there is no camera to hold.
        """
        wall = parse_wall(scene.wall or WallSpec(), list(scene.tours), [rule.id for rule in scene.alerts])
        flight = wall.flight.total_seconds()
        if wall.tour is not None:
            tour = scene.tours[wall.tour]
            stops = [HallStop(stop.camera if isinstance(stop.camera, str) else f"{tour.name}[{i}]", stop.pose(scene.cameras, scene.frame),
                              stop.dwell.total_seconds(), stop.flight.total_seconds(), dict(stop.layers)) for i, stop in enumerate(tour.stops)]
        elif scene.camera is not None:
            stops = [HallStop(scene.camera, preset_pose(scene.cameras[scene.camera], scene.frame), HOME_DWELL, flight)]
        elif home is not None:
            stops = [HallStop("home", home, HOME_DWELL, flight)]
        else:
            raise TwinError(f"scene {scene.name!r}: the wall has no tour (wall.tour) and the scene no camera to show (camera)")
        return cls(stops, wall, scene.frame, start=start, max_queue=max_queue)

    # -- what the wall shows -------------------------------------------------------------------
    def frame_at(self, t: float) -> HallFrame:
        """The wall at ``t`` (an earlier ``t`` than seen before counts as the latest: time never runs back)."""
        with self._lock:
            self._advance(t)
            return self._frame()

    def _frame(self) -> HallFrame:
        t, showing = self._t, self._showing
        queue = tuple(entry[3].id for entry in self._queue)
        if showing is not None:
            flight_end = showing.banner.shown_at + self._alert_flight
            flying = showing.target is not None and t < flight_end
            end = showing.banner.shown_at + self.wall.resume_after.total_seconds()
            return HallFrame(t, "alert", self._paused, "alert", self._pose_at(t), flying, self.stops[self._paused].layers,
                             showing.banner, queue, min(flight_end, end) if flying else end, self._legs)
        leg, stop = self._leg, self.stops[self._leg.index]
        flight_end = leg.start + (stop.flight if leg.origin is not None else 0.0)
        flying = t < flight_end
        return HallFrame(t, "tour", leg.index, stop.name, self._pose_at(t), flying, stop.layers, None, queue,
                         flight_end if flying else self._leg_end(leg), self._legs)

    @property
    def _alert_flight(self) -> float:
        return self.wall.flight.total_seconds()

    def _leg_end(self, leg: _Leg) -> float:
        stop = self.stops[leg.index]
        return leg.start + (stop.flight if leg.origin is not None else 0.0) + stop.dwell

    def _pose_at(self, t: float) -> CameraPose:
        if self._showing is not None:
            showing = self._showing
            if showing.target is None:
                return showing.origin
            return fly(showing.origin, showing.target, (t - showing.banner.shown_at) / self._alert_flight)
        leg, stop = self._leg, self.stops[self._leg.index]
        if leg.origin is None:
            return stop.pose
        return fly(leg.origin, stop.pose, (t - leg.start) / stop.flight)

    def _advance(self, t: float) -> None:
        """Move the legs and banners on to ``t``: each that ended hands over to the next at its own end time."""
        t = max(t, self._t)
        while True:
            if self._showing is not None:
                end = self._showing.banner.shown_at + self.wall.resume_after.total_seconds()
                if t < end:
                    break
                self._after_banner(end)
            else:
                end = self._leg_end(self._leg)
                if t < end:
                    break
                index = self._leg.index
                self._leg = _Leg((index + 1) % len(self.stops), end, self.stops[index].pose)
                self._legs += 1
        self._t = t

    def _after_banner(self, at: float) -> None:
        """The banner's time is up (or it was acknowledged) at ``at``: the next queued alert, else back to the paused stop."""
        pose = self._pose_at(at)
        self._showing = None
        if self._queue:
            self._show(self._queue.pop(0)[3], at, pose)
        else:
            self._leg = _Leg(self._paused, at, pose)
            self._legs += 1

    def _show(self, alert: HallAlert, at: float, origin: CameraPose) -> None:
        self._showing = _Showing(Banner(alert, at), origin, self._alert_pose(alert, origin))
        self._legs += 1

    def _alert_pose(self, alert: HallAlert, origin: CameraPose) -> CameraPose | None:
        """Looking at the alert from ``wall.range`` metres with ``origin``'s heading, at least :data:`MIN_ALERT_PITCH` down."""
        if alert.lon is None or alert.lat is None:
            return None
        dx, dy, dz = (f - p for f, p in zip(origin.focal_point, origin.position, strict=True))
        horizontal = math.hypot(dx, dy)
        heading = math.atan2(dx, dy) if horizontal > 1e-6 * max(abs(dz), 1.0) else math.atan2(origin.up[0], origin.up[1])
        pitch = min(max(math.degrees(math.atan2(-dz, horizontal)), MIN_ALERT_PITCH), 90.0)
        preset = CameraPreset(target=(alert.lon, alert.lat), heading=math.degrees(heading), pitch=pitch, range=self.wall.range,
                              view_angle=origin.view_angle)
        return preset_pose(preset, self.frame)

    # -- alerts --------------------------------------------------------------------------------
    def fire(self, alert: HallAlert, t: float) -> bool:
        """A firing alert at ``t``: shown at once (the tour pauses) or queued; False when ``interrupt_on`` does not take it
        or it is already shown or waiting."""
        with self._lock:
            self._advance(t)
            if not self.wall.interrupts(alert.severity, alert.rule_id) or self._holds(alert.id):
                return False
            if self._showing is None:
                self._paused = self._leg.index
                self._show(alert, self._t, self._pose_at(self._t))
            else:
                self._enqueue(alert)
            return True

    def _holds(self, alert_id: str) -> bool:
        shown = self._showing is not None and self._showing.banner.alert.id == alert_id
        return shown or any(entry[3].id == alert_id for entry in self._queue)

    def _enqueue(self, alert: HallAlert) -> None:
        rank = SEVERITIES.index(alert.severity) if alert.severity in SEVERITIES else len(SEVERITIES)
        bisect.insort(self._queue, (rank, self._t, next(self._serial), alert))
        if len(self._queue) > self.max_queue:
            left_out = self._queue.pop()[3]
            self.dropped += 1
            log.warning("wall: %d alerts waiting, leaving out alert %s (%s, %s)", self.max_queue, left_out.id, left_out.severity, left_out.title)

    def resolve(self, alert_id: str, t: float) -> None:
        """The alert resolved (or was cancelled) at ``t``: a shown banner says so and stays; a waiting one leaves the queue."""
        with self._lock:
            self._advance(t)
            showing = self._showing
            if showing is not None and showing.banner.alert.id == alert_id:
                self._showing = replace(showing, banner=replace(showing.banner, resolved=True))
            else:
                self._drop(alert_id)

    def acknowledge(self, alert_id: str, t: float) -> None:
        """Someone acknowledged the alert at ``t`` (on any page): its banner ends now, or it leaves the queue."""
        with self._lock:
            self._advance(t)
            if self._showing is not None and self._showing.banner.alert.id == alert_id:
                self._after_banner(self._t)
            else:
                self._drop(alert_id)

    def _drop(self, alert_id: str) -> None:
        self._queue = [entry for entry in self._queue if entry[3].id != alert_id]

    def on_event(self, event: AlertEvent, t: float) -> None:
        """Follow an alert engine transition at ``t``: firing (unless already acknowledged), resolved, cancelled, acknowledged."""
        alert_id = str(event.alert.get("id"))
        if event.kind == "firing" and not event.alert.get("acknowledged"):
            self.fire(HallAlert.of(event.alert), t)
        elif event.kind in ("resolved", "cancelled"):
            self.resolve(alert_id, t)
        elif event.kind == "acknowledged":
            self.acknowledge(alert_id, t)

    def follow(self, alerts: Iterable[Alert], t: float) -> None:
        """Take alerts already firing (and not acknowledged) when the wall starts, e.g. ``engine.firing()`` after a restart."""
        for alert in alerts:
            if not alert.acknowledged:
                self.fire(HallAlert.of(alert), t)
