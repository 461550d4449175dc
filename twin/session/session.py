"""The live Session: one scene, its live clock, its alert engine and its camera, for every kind of view.

The wall, the browser app and notebooks drive a scene through a Session and subscribe to its
events (psygnal signals, called in the thread that made the change):

- ``layer_changed(LayerChange)``: a layer's data, geometry, style or visibility changed;
- ``time_changed(TimeChange)``: the shown time or the live clock moved (every tick);
- ``alert_event(AlertEvent)``: an alert transition (pending, firing, resolved, cancelled, acknowledged);
- ``health_changed(HealthChange)``: a source started or stopped failing, or new readings came;
- ``camera_changed(CameraChange)``: a preset was chosen or a flight to a target started;
- ``focus_changed(Focus | None)`` and ``selection_changed(Selection | None)``: what a view highlights.

**Threads.** :meth:`tick` reads the sources (network I/O, possibly slow) holding only the poll
lock, so a frozen server never blocks a user's action; it then changes the model under
:attr:`lock`, which views also hold while they read layers or alerts. :meth:`start` ticks every
``tick_seconds`` in a daemon thread. **Replay** shows a past time (:attr:`shown_time`) while
ticks go on polling and evaluating alerts at the live clock (:attr:`now`).

>>> import datetime as dt, twin
>>> session = Session(twin.Scene(center=(121.48, 31.23)), tick_seconds=1)
>>> t = dt.datetime(2026, 7, 1, 10, tzinfo=dt.timezone.utc)
>>> session.tick(t), session.live, session.shown_time == t
([], True, True)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import functools
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from psygnal import Signal

from twin.alerts.engine import AlertEngine, AlertEvent
from twin.alerts.rules import StaleRule, ThresholdRule
from twin.errors import TwinError, unknown_name
from twin.layer import Layer
from twin.live import LiveLayer
from twin.live_layer import ReadingsLayer, ReadingsPoll
from twin.params import ID_RULE, is_id
from twin.scene.model import Scene
from twin.scene.views import SavedView, ViewError, view_from_pose
from twin.session.camera import CameraChange, CameraPose, fly_to
from twin.session.events import ChangeKind, Focus, HealthChange, LayerChange, Selection, TimeChange
from twin.session.help import focus_of, replay_start, resource_layer_ids
from twin.viewfetch import ViewSource, follow_view, view_extent, view_footprint

__all__ = ["CLOCK_SPEED_ENV", "CLOCK_START_ENV", "DEFAULT_TICK_SECONDS", "TICK_ENV", "Session", "clock_start", "live_clock", "resolve_tick_seconds"]

log = logging.getLogger(__name__)

TICK_ENV = "TWIN_TICK_SECONDS"
CLOCK_SPEED_ENV = "TWIN_CLOCK_SPEED"
CLOCK_START_ENV = "TWIN_CLOCK_START"
DEFAULT_TICK_SECONDS = 5.0
ALERTS_FILE = "alerts.sqlite"


def resolve_tick_seconds(value: float | None = None) -> float:
    """The tick interval (s): ``value``, else ``$TWIN_TICK_SECONDS``, else 5 s; at least 0.2 s.

    Raises :class:`TwinError` for a value that is not a positive number of seconds.
    """
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


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def clock_start(text: str | None = None) -> dt.datetime | None:
    """The moment a live clock starts from: ``text`` (ISO 8601 with a UTC offset), else ``$TWIN_CLOCK_START``; None: now.

    Benchmarks start each compressed day at the same time of day (``2026-07-01T00:00+08:00``), so runs see the same
    day slice whenever they are started. Raises :class:`TwinError` for a text that is not an ISO time with an offset.
    """
    name = "clock start" if text is not None else CLOCK_START_ENV
    text = (os.environ.get(CLOCK_START_ENV, "") if text is None else text).strip()
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise TwinError(f"{name}={text!r} is not an ISO time with a UTC offset, e.g. 2026-07-01T00:00+08:00")
    return when.astimezone(dt.timezone.utc)


def live_clock(speed: float | None = None, start: dt.datetime | None = None) -> Callable[[], dt.datetime]:
    """The live clock (tz-aware UTC): real time, or ``speed`` times faster, from now or from ``start``.

    ``speed`` defaults to ``$TWIN_CLOCK_SPEED``, else 1; ``start`` (tz-aware) to ``$TWIN_CLOCK_START`` (see :func:`clock_start`),
    else now. A compressed clock runs a simulated day in minutes for soak runs and benchmarks (``benchmarks/bench_wall.py``:
    ``TWIN_CLOCK_SPEED=144`` is an hour in 25 s); simulated sources follow it, services on the network do not.
    Raises :class:`TwinError` for a speed that is not a positive number, or a start that is not an ISO time with an offset.
    """
    if speed is None:
        text = os.environ.get(CLOCK_SPEED_ENV, "").strip()
        try:
            speed = float(text) if text else 1.0
        except ValueError:
            raise TwinError(f"{CLOCK_SPEED_ENV}={text!r} is not a number (how many times faster than real time the clock runs)") from None
    if not math.isfinite(speed) or speed <= 0:
        raise TwinError(f"clock speed {speed!r} must be a positive number (1: real time)")
    if start is None:
        start = clock_start()
    elif start.tzinfo is None:
        raise TwinError(f"clock start {start.isoformat()} needs a UTC offset, e.g. 2026-07-01T00:00+08:00")
    if speed == 1 and start is None:
        return _utcnow
    begin, origin = (start or _utcnow()).astimezone(dt.timezone.utc), time.monotonic()
    return lambda: begin + dt.timedelta(seconds=(time.monotonic() - origin) * speed)


class Session:
    """A scene being watched: live clock, replay, alerts, camera, focus and selection (no view, no trame, no VTK).

    ``state_dir``: folder keeping the alert engine's history and open alerts (``alerts.sqlite``)
    across restarts; None keeps them in memory. ``resource_layers``: ids or titles of layers
    listing help (pumps, teams) searched around a focused alert (a layer with id ``resources``
    is used without being named). ``clock``: the live clock (tz-aware UTC; tests pass their own; default :func:`live_clock`).
    """

    layer_changed = Signal(LayerChange)
    time_changed = Signal(TimeChange)
    alert_event = Signal(AlertEvent)
    health_changed = Signal(HealthChange)
    camera_changed = Signal(CameraChange)
    focus_changed = Signal(object)
    selection_changed = Signal(object)

    def __init__(
        self,
        scene: Scene,
        *,
        tick_seconds: float | None = None,
        state_dir: str | Path | None = None,
        resource_layers: Sequence[str] | None = None,
        help_radius_m: float = 3000.0,
        focus_range_m: float = 800.0,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        tune_heap()
        self.scene = scene
        self.tick_seconds = resolve_tick_seconds(tick_seconds)
        self.clock = clock or live_clock()
        self.help_radius_m = help_radius_m
        self.focus_range_m = focus_range_m
        self.resource_layers = resource_layer_ids(scene, resource_layers)
        self.lock = threading.RLock()
        """Held while the model changes; views hold it while they read layers, alerts or health."""
        self._poll_lock = threading.Lock()
        self.state_dir = None if state_dir is None else Path(state_dir)
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            scene.alert_engine = AlertEngine(scene.alerts, store=self.state_dir / ALERTS_FILE)  # the scene's engine, kept on disk
        self.ticks = 0
        self.tick_error = ""
        self.camera: CameraPose | None = None
        self.camera_name = scene.camera
        self.focus: Focus | None = None
        self.selection: Selection | None = None
        self._now: dt.datetime | None = None
        self._live = True
        self._health: dict[str, tuple[Any, ...]] = {}
        self._seek_timer: threading.Timer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()

    # -- state ---------------------------------------------------------------------------
    @property
    def engine(self) -> AlertEngine:
        """The alert engine evaluating the scene's rules."""
        return self.scene.alert_engine

    @property
    def live(self) -> bool:
        """True while the view follows the live clock; False while replaying."""
        return self._live

    @property
    def now(self) -> dt.datetime | None:
        """The live clock: the time of the last tick (None before the first)."""
        return self._now

    @property
    def shown_time(self) -> dt.datetime | None:
        """The time the views show: the live clock, or the replayed moment."""
        return self.scene.time

    def live_layers(self) -> list[Layer]:
        """The scene's layers whose values change over time."""
        return [layer for layer in self.scene.layers if isinstance(layer, LiveLayer)]

    def replay_start(self, now: dt.datetime | None = None) -> dt.datetime:
        """The oldest moment replay can show (the oldest reading kept), at ``now`` (default: the live clock)."""
        with self.lock:
            return replay_start(self.scene, now or self._now or self.clock())

    # -- the live clock ------------------------------------------------------------------
    def tick(self, now: dt.datetime | None = None) -> list[AlertEvent]:
        """Poll the sources up to ``now`` (default: the clock) and evaluate the alert rules at ``now``.

        While replaying, the views keep showing the replayed time. Ticks are serialised; one
        whose ``now`` is before the last tick's runs at the last tick's time. Returns the alert
        transitions (also emitted as ``alert_event``). Raises what a rule or a layer raised.
        """
        now = now or self.clock()
        if now.tzinfo is None:
            raise TwinError(f"tick time {now.isoformat()} needs a time zone")
        with self._poll_lock:
            polls = self._fetch(now)  # network I/O: the model lock is free meanwhile
            with self.lock:
                recovered = bool(self.tick_error)
                now = max(now, self._now) if self._now is not None else now
                for layer, poll in polls:
                    layer.apply(poll)
                events = self.engine.evaluate(self.scene.live_snapshots(now), now)
                self._now = now
                self.scene.set_time(now if self._live else (self.scene.time or now))
                self.ticks += 1
                self.tick_error = ""
                health = self._health_changes()
                change = self.time_state()
                live_ids = [layer.id for layer in self.live_layers()]
        self._emit_layers({*live_ids, *(layer.id for layer, _ in polls)}, "data")
        self.time_changed.emit(change)
        for event in events:
            self.alert_event.emit(event)
        if health.layer_ids or recovered:
            self.health_changed.emit(health)
        _release_free_heap()
        return events

    def safe_tick(self, now: dt.datetime | None = None) -> bool:
        """:meth:`tick`, with a failure logged and kept in :attr:`tick_error` (emitted as ``health_changed``); False if it failed."""
        try:
            self.tick(now)
        except Exception as exc:  # (a failing tick must not stop later ticks)
            log.exception("scene %s: live tick failed", self.scene.name)
            self.tick_error = f"{type(exc).__name__}: {exc}"
            self.health_changed.emit(HealthChange((), self.tick_error))
            return False
        return True

    def _fetch(self, now: dt.datetime) -> list[tuple[ReadingsLayer, ReadingsPoll]]:
        """Read every due source; readings layers return their poll, other polled layers swap their data in."""
        polls = []
        for layer in self.scene.layers:
            if isinstance(layer, ReadingsLayer):
                poll = layer.fetch(now)
                if poll is not None:
                    polls.append((layer, poll))
            else:
                layer.refresh(now)
        return polls

    def _health_changes(self) -> HealthChange:
        changed = []
        for layer in self.scene.layers:
            h = layer.health
            signature = (h.error, h.last_success, getattr(h, "newest_reading", None))
            if self._health.get(layer.id) != signature:
                self._health[layer.id] = signature
                changed.append(layer.id)
        return HealthChange(tuple(changed), self.tick_error)

    def time_state(self) -> TimeChange:
        """The shown time, the live clock and the mode, as ``time_changed`` reports them."""
        return TimeChange(self.scene.time, self._now or self.clock(), self._live)

    def start(self) -> None:
        """Tick every ``tick_seconds`` in a daemon thread until :meth:`stop` (failures are logged, not fatal)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"twin-session-{self.scene.name}", daemon=True)
        self._thread.start()

    def tick_soon(self) -> None:
        """Ask the ticking thread for a tick now rather than at the next interval."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.tick_seconds)
            self._wake.clear()
            if not self._stop.is_set():
                self.safe_tick()

    def stop(self, timeout: float | None = 1.0) -> None:
        """Stop the ticking thread and any pending seek (a poll in progress ends in its own time)."""
        self._cancel_seek()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        """Stop ticking, close the alert store and the scene's sources."""
        self.stop()
        self.engine.close()
        self.scene.close()

    # -- replay --------------------------------------------------------------------------
    def replay(self, when: dt.datetime | float) -> dt.datetime:
        """Show the scene at ``when`` (tz-aware, or epoch seconds), clamped to what is kept; returns the time shown.

        Polling and alert evaluation go on at the live clock.
        """
        when = _as_time(when)
        with self.lock:
            now = self._now or self.clock()
            shown = min(max(when, replay_start(self.scene, now)), now)
            self._live = False
            self.scene.set_time(shown)
            change = self.time_state()
        self._emit_layers([layer.id for layer in self.live_layers()], "data")
        self.time_changed.emit(change)
        return shown

    def seek(self, when: dt.datetime | float, *, debounce_s: float = 0.0) -> None:
        """Replay to ``when`` after ``debounce_s`` seconds without another seek (a dragged slider sends many)."""
        self._cancel_seek()
        if debounce_s <= 0:
            self.replay(when)
            return
        with self.lock:
            self._live = False
            change = self.time_state()
        self.time_changed.emit(change)
        timer = threading.Timer(debounce_s, self._seek_due, (when, ))
        timer.daemon = True
        self._seek_timer = timer
        timer.start()

    def _seek_due(self, when: dt.datetime | float) -> None:
        if not self._live:
            try:
                self.replay(when)
            except Exception:  # (a layer that cannot replay must not end the session)
                log.exception("scene %s: replay to %s failed", self.scene.name, when)

    def _cancel_seek(self) -> None:
        if self._seek_timer is not None:
            self._seek_timer.cancel()
            self._seek_timer = None

    def go_live(self) -> None:
        """Follow the live clock again (shows the last tick's time; the next tick comes at once when ticking)."""
        self._cancel_seek()
        with self.lock:
            self._live = True
            if self._now is not None:
                self.scene.set_time(self._now)
            change = self.time_state()
        self._emit_layers([layer.id for layer in self.live_layers()], "data")
        self.time_changed.emit(change)
        self.tick_soon()

    # -- layers --------------------------------------------------------------------------
    def set_layer(self, layer_id: str, **changes: Any) -> LayerChange:
        """Change a layer: ``visible``, ``opacity`` (0..1), ``where`` (a filter) or its own parameters; raises :class:`TwinError` naming the layer.

        Colour (``color_by``, ``colormap``, ``clim``, ...), opacity and filter changes are ``style`` changes: views
        recolour the mesh they have; only a layer's ``geometry_keys`` are ``geometry`` changes (a new mesh).
        """
        with self.lock:
            try:
                layer = self.scene[layer_id]
            except KeyError as exc:
                raise TwinError(str(exc.args[0])) from None
            if "opacity" in changes:
                changes["opacity"] = min(max(float(changes["opacity"]), 0.0), 1.0)
            kinds: set[ChangeKind] = set()
            for key in changes:
                kinds.add("visibility" if key == "visible" else "style" if key == "opacity" else "geometry" if key in layer.geometry_keys else "style")
            layer.update(**changes)
            drop_selection = not layer.visible and self.selection is not None and self.selection.layer_id == layer_id
        change = LayerChange(layer_id, frozenset(kinds))
        self.layer_changed.emit(change)
        if drop_selection:
            self.select(None)
        return change

    def _emit_layers(self, layer_ids: Iterable[str], kind: ChangeKind) -> None:
        for layer_id in dict.fromkeys(layer_ids):
            self.layer_changed.emit(LayerChange(layer_id, frozenset({kind})))

    # -- saved views -----------------------------------------------------------------------
    def save_view(self, name: str, pose: CameraPose | None = None) -> SavedView:
        """Name what the views show: the camera (``pose``, default the last one a view reported), the visible layers and the
        time (None while live). Kept in ``scene.views`` and written to the scene's file when it has one.

        Raises :class:`ViewError` for an invalid name or no known camera, TwinError when the file cannot be written.
        """
        if not is_id(name):
            raise ViewError(f"view name {name!r} is invalid: {ID_RULE}")
        pose = pose or self.camera
        if pose is None:
            raise ViewError(f"view {name!r}: no camera to save yet (move or pick a camera first)")
        with self.lock:
            shown = [layer.id for layer in self.scene.layers if layer.visible]
            time = None if self._live else self.scene.time
            view = view_from_pose(pose.position, pose.focal_point, frame=self.scene.frame, layers=shown, time=time)
            self.scene.views[name] = view
            if self.scene.path is not None:
                self.scene.write_views()
        return view

    def apply_view(self, view: SavedView | str) -> CameraPose:
        """Show a saved view (or one by name): its layers' visibility and its time (replay, or live without one).

        Returns the camera pose (local metres) for the calling view to take; no ``camera_changed`` is emitted
        (each view applies the pose itself). Raises :class:`ViewError` for an unknown name.
        """
        if isinstance(view, str):
            if view not in self.scene.views:
                raise ViewError(unknown_name("view", view, list(self.scene.views), listed="saved views", none="none saved"))
            view = self.scene.views[view]
        if view.layers is not None:
            for layer in self.scene.layers:
                if layer.visible != (layer.id in view.layers):
                    self.set_layer(layer.id, visible=layer.id in view.layers)
        if view.time is not None and self.live_layers():
            self.replay(view.time)
        elif view.time is not None:
            with self.lock:
                self.scene.set_time(view.time)
                change = self.time_state()
            self.time_changed.emit(change)
        elif not self._live:
            self.go_live()
        self.camera = CameraPose(*view.camera.resolve(self.scene.frame))
        return self.camera

    # -- alerts --------------------------------------------------------------------------
    def acknowledge(self, alert_id: str, *, by: str | None = "operator", note: str | None = None) -> AlertEvent:
        """An operator has seen an open alert (it stays open until it resolves); raises :class:`TwinError` for others."""
        with self.lock:
            event = self.engine.acknowledge(str(alert_id), by=by, note=note)
        self.alert_event.emit(event)
        return event

    def set_rules(self, rules: Iterable[ThresholdRule | StaleRule]) -> None:
        """Replace the alert rules; open alerts of rules that remain keep their state and acknowledgements.

        Raises :class:`TwinError` naming a rule whose layer is not in the scene.
        """
        rules = list(rules)
        ids = {layer.id for layer in self.scene.layers}
        for rule in rules:
            if rule.layer not in ids:
                raise TwinError(f"alert rule {rule.id!r}: no layer {rule.layer!r} in scene {self.scene.name!r}; layers: {', '.join(sorted(ids))}")
        with self.lock:
            self.scene.alerts = rules
            _ = self.scene.alert_engine  # the scene hands the new rules to its engine

    def focus_alert(self, alert_id: str, *, fly: bool = True) -> Focus:
        """Focus an alert: the help within reach, and (``fly``) a flight to it (``focus_range_m``) keeping the view's direction.

        ``fly=False``: whoever focuses moves the camera itself (the wall flies there eased, see :mod:`twin.session.hall`).
        """
        with self.lock:
            alert = self.engine.get(str(alert_id))
            focus = focus_of(self.scene, alert, self.resource_layers, self.help_radius_m)
            flight = None
            if fly and focus.lon is not None and focus.lat is not None:
                x, y, z = (float(v) for v in self.scene.frame.lonlat_to_local([focus.lon], [focus.lat])[0])
                self.camera = fly_to(self.camera, (x, y, z), self.focus_range_m)
                flight = CameraChange(target=(x, y, z), range=self.focus_range_m, pose=self.camera)
            self.focus = focus
        self.focus_changed.emit(focus)
        if flight is not None:
            self.camera_changed.emit(flight)
        return focus

    def clear_focus(self) -> None:
        """No focused alert (views drop its highlight)."""
        self.focus = None
        self.focus_changed.emit(None)

    # -- camera and selection ------------------------------------------------------------
    def set_camera(self, name: str | None) -> CameraChange:
        """Go to a camera preset of the scene (None: its default view); raises :class:`TwinError` for an unknown name."""
        if name is not None and name not in self.scene.cameras:
            raise TwinError(f"unknown camera {name!r}; cameras: {', '.join(self.scene.cameras) or 'none defined'}")
        preset = self.scene.cameras.get(name or self.scene.camera or "")
        pose = CameraPose(*preset.resolve(self.scene.frame)) if preset is not None else None
        self.camera_name, self.camera = name, pose
        change = CameraChange(preset=name, pose=pose)
        self.camera_changed.emit(change)
        return change

    def camera_moved(self, pose: CameraPose, *, view_angle: float = 30.0, aspect: float = 16 / 9) -> list[str]:
        """A view reports where its user moved the camera and left it (no camera event: the view is already there).

        Layers read by view (source ``type: view``) are told the camera's ground extent; those
        that must fetch what came into view are reloaded and announced as changed (``data``).
        ``view_angle`` is the vertical field of view in degrees, ``aspect`` width / height.
        Returns the ids of the reloaded layers.
        """
        self.camera = pose
        viewed = [layer for layer in self.scene.layers if isinstance(layer.source, ViewSource)]
        if not viewed:
            return []
        try:
            ground = view_footprint(pose.position, pose.focal_point, pose.up, view_angle, aspect)
        except ValueError:  # a degenerate camera (position on its focal point): nothing to fetch by
            return []
        extent = view_extent(self.scene.frame, ground)
        with self.lock:
            reloaded = [layer.id for layer in viewed if follow_view(layer, extent, settled=True)]
        self._emit_layers(reloaded, "data")
        return reloaded

    def select(self, hit: dict[str, Any] | None) -> Selection | None:
        """Select a picked feature (``layer``, ``feature``, ``attributes``, ``lon``, ``lat`` as views pick them) or none."""
        selection = None
        if hit:
            lon, lat = hit.get("lon"), hit.get("lat")
            selection = Selection(str(hit.get("layer")), int(hit.get("feature", -1)), dict(hit.get("attributes") or {}),
                                  lon if isinstance(lon, float) else None, lat if isinstance(lat, float) else None)
        self.selection = selection
        self.selection_changed.emit(selection)
        return selection


def _as_time(when: dt.datetime | float) -> dt.datetime:
    if isinstance(when, dt.datetime):
        if when.tzinfo is None:
            raise TwinError(f"replay time {when.isoformat()} needs a time zone, e.g. +08:00")
        return when
    value = float(when)
    if not math.isfinite(value):
        raise TwinError(f"replay time {when!r} is not a finite number of epoch seconds")
    return dt.datetime.fromtimestamp(value, dt.timezone.utc)


def _release_free_heap() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``; nothing where there is none).

    Every tick allocates and frees arrays and frames of varying sizes; glibc keeps the freed pages
    inside its heap resident, so an unattended wall's RSS crept up by ~30 MB an hour at first while
    its live data (tracemalloc) stayed flat. About 1 ms a tick.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def tune_heap() -> bool:
    """Set glibc's heap for a process that runs for months (once per process; True if set, False off glibc or where the
    environment already says, by ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_ARENA_MAX`` or ``GLIBC_TUNABLES``).

    Blocks of :data:`HEAP_MMAP_THRESHOLD` bytes or more (frames, arrays of a tick) get pages of their own, given back
    when freed. By default glibc raises that threshold to the largest block freed so far (up to 32 MiB), after which
    such temporaries come from the heap, where small blocks allocated meanwhile keep them resident: the wall's level
    stood ~40 MiB higher (``benchmarks/bench_wall.py``, hours 2-11: 807-857 MiB, tuned 764-816 MiB). At most :data:`HEAP_ARENAS` heaps are
    shared by the threads (glibc keeps one per thread up to 8 per core, each with its own free space).
    """
    if any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX", "GLIBC_TUNABLES")):
        return False
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD)) and bool(mallopt(_M_ARENA_MAX, HEAP_ARENAS))


HEAP_MMAP_THRESHOLD = 1 << 20
"""Bytes from which a block gets pages of its own (:func:`tune_heap`)."""
HEAP_ARENAS = 2
"""Heaps the threads share at most (:func:`tune_heap`)."""
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # glibc's malloc.h


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None (another C library, another system)."""
    return _libc_function("malloc_trim")


@functools.cache
def _libc_function(name: str) -> Callable[..., int] | None:
    """The C library's function ``name`` on Linux, or None (another C library, another system)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return getattr(libc, name, None)
