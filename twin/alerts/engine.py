"""The alert engine: rules over live layers, each alert moving pending → firing → resolved.

Hysteresis (``clear``) and minimum durations (``for``, ``clear_for``) keep a value wobbling at
a threshold from flapping. Alerts can be acknowledged; every transition is an event that the
app and notebooks can subscribe to, and closed alerts are kept in a bounded history (count and
age). Rules can be edited in place (:meth:`AlertEngine.set_rules`). With a ``store`` file the
open alerts and the history survive a restart (:mod:`twin.alerts.store`)::

    engine = AlertEngine(scene.alerts, store=state_dir / "alerts.sqlite")  # state_dir: e.g. default_state_dir(scene.name)
    scene.alert_engine = engine  # the scene hands it rule edits from then on
    ...
    engine.close()

>>> import datetime as dt, pandas as pd
>>> from twin.alerts.rules import parse_rule
>>> from twin.live import LiveSnapshot
>>> engine = AlertEngine([parse_rule({"id": "deep", "kind": "threshold", "layer": "flood", "above": 20})])
>>> t = dt.datetime(2026, 7, 1, 18, tzinfo=dt.timezone.utc)
>>> table = pd.DataFrame({"value": [25.0], "lon": [121.48], "lat": [31.23], "time": [t]}, index=["FP001"])
>>> [e.kind for e in engine.evaluate({"flood": LiveSnapshot("flood", table, t)}, t)]
['pending', 'firing']
>>> engine.firing()[0].value
25.0
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.alerts.rules import StaleRule, ThresholdRule
from twin.alerts.store import AlertStore, StoredAlert
from twin.errors import StateStoreError, TwinError
from twin.live import LiveSnapshot

__all__ = ["Alert", "AlertEngine", "AlertEvent", "AlertState", "EventLog"]

log = logging.getLogger(__name__)

LAYER_KEY = "(layer)"


class AlertState(str, Enum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class Alert:
    """One alert: where, which layer and rule, the value, and since when (slots: the history holds thousands).

    ``title`` is the rule's title in its first (default) language (:attr:`~twin.alerts.rules.ThresholdRule.shown_title`);
    the app shows the rule's title in the page's language (:meth:`~twin.alerts.rules.ThresholdRule.title_in`).
    """

    id: str
    rule_id: str
    layer_id: str
    key: str
    severity: str
    title: str
    state: AlertState
    since: dt.datetime
    value: float | None = None
    peak: float | None = None
    lon: float | None = None
    lat: float | None = None
    name: str | None = None
    fired_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    acknowledged: bool = False
    acknowledged_by: str | None = None
    acknowledged_at: dt.datetime | None = None
    note: str | None = None
    clearing_since: dt.datetime | None = field(default=None, repr=False)

    @property
    def is_open(self) -> bool:
        return self.state in (AlertState.PENDING, AlertState.FIRING)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (times as ISO strings) for the app and logs."""
        return _public(_shown(self))


@dataclass(frozen=True)
class AlertEvent:
    """A transition of one alert: pending, firing, resolved, cancelled or acknowledged."""

    kind: str
    alert: dict[str, Any]
    at: dt.datetime


Subscriber = Callable[[AlertEvent], None]

_SHOWN = tuple(f.name for f in fields(Alert) if f.name != "clearing_since")
"""The Alert fields an event shows, in order."""


def _shown(alert: Alert) -> tuple[Any, ...]:
    """The values of the fields in :data:`_SHOWN` (immutable objects, shared with the alert, not copied)."""
    return tuple(getattr(alert, name) for name in _SHOWN)


def _public(values: tuple[Any, ...]) -> dict[str, Any]:
    """:func:`_shown` values as :meth:`Alert.to_dict` gives them: state as its value, times as ISO 8601 strings."""
    out = dict(zip(_SHOWN, values))
    out["state"] = out["state"].value
    for key, value in out.items():
        if isinstance(value, dt.datetime):
            out[key] = value.isoformat()
    return out


@dataclass(frozen=True, slots=True)
class _Transition:
    """One transition as the engine keeps it: the alert's field values then (a tuple, ~0.2 KB), not a dict of strings (~0.9 KB)."""

    kind: str
    values: tuple[Any, ...]
    at: dt.datetime

    @classmethod
    def of(cls, kind: str, alert: Alert, at: dt.datetime) -> _Transition:
        return cls(kind, _shown(alert), at)

    def event(self) -> AlertEvent:
        return AlertEvent(self.kind, _public(self.values), self.at)


class EventLog(Sequence[AlertEvent]):
    """The latest transitions, oldest first, at most ``maxlen``; read as :class:`AlertEvent` objects.

    Kept compact (the alert's field values at the transition, shared with the alert), so a full
    log of 10,000 transitions takes ~3 MB rather than ~9 MB; each read builds the event's dict anew.
    """

    def __init__(self, maxlen: int) -> None:
        self._items: deque[_Transition] = deque(maxlen=maxlen)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> AlertEvent:  # type: ignore[override]  (no slices: a deque has none)
        return self._items[index].event()

    def __iter__(self) -> Iterator[AlertEvent]:
        return (item.event() for item in list(self._items))

    def append(self, transition: _Transition) -> None:
        self._items.append(transition)

    def forget_before(self, cutoff: dt.datetime) -> None:
        """Drop the transitions that happened before ``cutoff``."""
        items = self._items
        while items and items[0].at < cutoff:
            items.popleft()


class AlertEngine:
    """Evaluates rules over live-layer snapshots at a given time (scene time).

    Memory stays bounded: closed alerts leave the live maps for the history, which keeps at most
    ``history_limit`` alerts (and events), none closed longer than ``history_max_age`` before
    the latest evaluation time. With ``store`` (a SQLite file, see :mod:`twin.alerts.store`),
    open alerts (with their state and acknowledgement) and the history are loaded at
    construction and written on every transition, and ids never repeat across restarts.
    Rules can be replaced with :meth:`set_rules` without losing acknowledgements, history or
    subscribers. All methods are thread-safe (one lock); subscribers run in the calling thread
    while it holds the lock, so they must not wait for another thread that uses the engine.
    """

    def __init__(
        self,
        rules: Iterable[ThresholdRule | StaleRule],
        *,
        history_limit: int = 10_000,
        history_max_age: dt.timedelta | None = dt.timedelta(days=30),
        store: str | Path | None = None,
    ) -> None:
        """``history_limit``: closed alerts (and events) kept; ``history_max_age``: how long a closed alert
        stays in the history (None: no age limit); ``store``: the SQLite file to load from and write to.

        Raises TwinError for duplicate rule ids or bad limits, :class:`~twin.errors.StateStoreError`
        for a store that cannot be opened or was written by a newer twin (a corrupt one is moved
        aside with a warning and an empty one started).
        """
        if history_limit < 1:
            raise TwinError(f"alert history_limit must be at least 1, got {history_limit}")
        if history_max_age is not None and history_max_age <= dt.timedelta(0):
            raise TwinError(f"alert history_max_age must be positive, got {history_max_age}")
        self._rules = _checked(rules)
        self.history_limit = history_limit
        self.history_max_age = history_max_age
        self._lock = threading.RLock()
        self._open: dict[tuple[str, str], Alert] = {}
        self._by_id: dict[str, Alert] = {}
        self.history: deque[Alert] = deque()
        """Closed alerts, oldest closed first (at most ``history_limit``)."""
        self.events = EventLog(history_limit)
        """The latest transitions (at most ``history_limit``, none older than ``history_max_age``), oldest first."""
        self._subscribers: list[Subscriber] = []
        self._serial = 0
        self.future_readings = 0
        """Readings ignored because their time was after the evaluation time (clock skew)."""
        self._dirty: dict[str, Alert] = {}  # changed since the last store write, closed ones in closing order
        self._removed: set[str] = set()  # left the history since the last store write
        self.store_write_failures = 0
        """Store writes that failed (logged; the changes stay in memory and are retried at the next change)."""
        self._store = None if store is None else AlertStore(store)
        if self._store is not None:
            self._restore(self._store)

    @property
    def rules(self) -> tuple[ThresholdRule | StaleRule, ...]:
        """The rules evaluated (replace them with :meth:`set_rules`)."""
        return self._rules

    def set_rules(self, rules: Iterable[ThresholdRule | StaleRule], *, at: dt.datetime | None = None) -> list[AlertEvent]:
        """Evaluate ``rules`` from now on, keeping subscribers, history and acknowledgements.

        Open alerts whose rule id remains (watching the same layer, with the same kind, value
        field and per-feature setting) stay open, taking the new severity and title; the new
        thresholds judge them at the next :meth:`evaluate`. Open alerts of removed (or
        retargeted) rules close as ``cancelled`` at ``at`` (default: the clock); returns (and
        emits) those events. Raises TwinError for duplicate rule ids (the old rules then stay).
        """
        if at is not None and at.tzinfo is None:
            raise TwinError(f"rule change time {at.isoformat()} needs a time zone, e.g. +08:00")
        checked = _checked(rules)
        with self._lock:
            old = {rule.id: rule for rule in self._rules}
            self._rules = checked
            events: list[_Transition] = []
            self._reconcile(old, at or dt.datetime.now(dt.timezone.utc), events)
            self._flush()
            return self._emit(events)

    def _reconcile(self, old: Mapping[str, ThresholdRule | StaleRule], now: dt.datetime, events: list[_Transition]) -> None:
        """Cancel open alerts that no rule (of the same target) watches any more; refresh severity and title of the others."""
        rules = {rule.id: rule for rule in self._rules}
        for alert in list(self._open.values()):
            rule = rules.get(alert.rule_id)
            if rule is None or not _same_target(alert, old.get(alert.rule_id), rule):
                self._close(alert, AlertState.CANCELLED, now, events)
            elif (alert.severity, alert.title) != (rule.severity, rule.shown_title):
                alert.severity, alert.title = rule.severity, rule.shown_title
                self._touch(alert)

    # -- queries -------------------------------------------------------------------------
    def active(self) -> list[Alert]:
        """Open alerts (pending and firing), oldest first."""
        with self._lock:
            return sorted(self._open.values(), key=lambda a: (a.since, a.id))

    def firing(self) -> list[Alert]:
        return [a for a in self.active() if a.state is AlertState.FIRING]

    def get(self, alert_id: str) -> Alert:
        """An open alert or one still in the history, by id; raises TwinError for others."""
        with self._lock:
            try:
                return self._by_id[alert_id]
            except KeyError:
                raise TwinError(f"no alert {alert_id!r}") from None

    # -- subscriptions -------------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` on every transition; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def _emit(self, transitions: list[_Transition]) -> list[AlertEvent]:
        """Log the transitions and call the subscribers with each one's event; returns the events."""
        events = [transition.event() for transition in transitions]
        for transition, event in zip(transitions, events):
            self.events.append(transition)
            for callback in list(self._subscribers):
                try:
                    callback(event)
                except Exception:  # one bad subscriber must not stop alerts reaching the others
                    log.exception("alert subscriber %r failed", callback)
        return events

    # -- acknowledging -------------------------------------------------------------------
    def acknowledge(self, alert_id: str, *, by: str | None = None, note: str | None = None, at: dt.datetime | None = None) -> AlertEvent:
        """Mark an open alert as seen by an operator; it stays open until it resolves."""
        with self._lock:
            alert = self.get(alert_id)
            if not alert.is_open:
                raise TwinError(f"alert {alert_id!r} is {alert.state.value}; only open alerts can be acknowledged")
            alert.acknowledged = True
            alert.acknowledged_by = by
            alert.acknowledged_at = at or dt.datetime.now(dt.timezone.utc)
            alert.note = note
            self._touch(alert)
            self._flush()
            return self._emit([_Transition.of("acknowledged", alert, alert.acknowledged_at)])[0]

    # -- evaluation ----------------------------------------------------------------------
    def evaluate(self, snapshots: Mapping[str, LiveSnapshot], now: dt.datetime) -> list[AlertEvent]:
        """Apply every rule to the snapshots at time ``now``; returns (and emits) the transitions."""
        if now.tzinfo is None:
            raise TwinError("alert evaluation time must be timezone-aware")
        with self._lock:
            events: list[_Transition] = []
            try:
                for rule in self._rules:
                    snapshot = snapshots.get(rule.layer)
                    if isinstance(rule, ThresholdRule):
                        if snapshot is not None:
                            self._threshold(rule, snapshot, now, events)
                    else:
                        self._stale(rule, snapshot, now, events)
                self._prune(now)
            finally:
                self._flush()  # what changed before an error is written too
            return self._emit(events)

    def _threshold(self, rule: ThresholdRule, snapshot: LiveSnapshot, now: dt.datetime, events: list[_Transition]) -> None:
        table = snapshot.table
        if rule.field not in table.columns:
            raise TwinError(f"alert rule {rule.id!r}: layer {rule.layer!r} has no value {rule.field!r}; values: {', '.join(map(str, table.columns))}")
        values = pd.to_numeric(table[rule.field], errors="coerce").to_numpy(dtype=np.float64)
        times = pd.to_datetime(table["time"], utc=True, errors="coerce") if "time" in table.columns else pd.Series(pd.NaT, index=table.index)
        usable = np.isfinite(values) & ~times.isna().to_numpy()  # no usable reading: leave the alert as it is (never read as 0)
        future = usable & (times > pd.Timestamp(now)).to_numpy()
        self.future_readings += int(future.sum())
        usable &= ~future
        with np.errstate(invalid="ignore"):
            breached = (values >= rule.above) if rule.above is not None else (values <= rule.below)
        keys = table.index.astype(str)
        open_keys = {key for (rule_id, key) in self._open if rule_id == rule.id}
        # only rows past the threshold, or with an alert already open, can change anything
        candidates = np.flatnonzero(usable & (breached | keys.isin(open_keys)))
        for i in candidates:
            value = float(values[i])
            row = table.iloc[i]
            self._step(rule, keys[i], value, times.iloc[i].to_pydatetime(), now, row, bool(breached[i]), rule.cleared(value), rule.for_, rule.clear_for, events)

    def _stale(self, rule: StaleRule, snapshot: LiveSnapshot | None, now: dt.datetime, events: list[_Transition]) -> None:
        zero = dt.timedelta(0)
        if not rule.per_feature:
            updated = None if snapshot is None else snapshot.updated_at
            age = math.inf if updated is None else (now - updated).total_seconds()
            breached = age > rule.max_age.total_seconds()
            self._step(rule, LAYER_KEY, age, now, now, None, breached, not breached, zero, zero, events)
            return
        if snapshot is None:
            return
        table = snapshot.table
        times = pd.to_datetime(table["time"], utc=True, errors="coerce") if "time" in table.columns else pd.Series(pd.NaT, index=table.index)
        ages = ((pd.Timestamp(now) - times).dt.total_seconds()).fillna(math.inf).to_numpy()
        breached = ages > rule.max_age.total_seconds()
        keys = table.index.astype(str)
        open_keys = {key for (rule_id, key) in self._open if rule_id == rule.id}
        for i in np.flatnonzero(breached | keys.isin(open_keys)):  # only these can change anything
            self._step(rule, keys[i], float(ages[i]), now, now, table.iloc[i], bool(breached[i]), not breached[i], zero, zero, events)

    def _step(
        self,
        rule: ThresholdRule | StaleRule,
        key: str,
        value: float,
        when: dt.datetime,
        now: dt.datetime,
        row: pd.Series | None,
        breached: bool,
        cleared: bool,
        hold: dt.timedelta,
        clear_hold: dt.timedelta,
        events: list[_Transition],
    ) -> None:
        alert = self._open.get((rule.id, key))
        before = None if alert is None else _observed(alert)
        if alert is None:
            if not breached:
                return
            alert = self._new(rule, key, when)
            events.append(_Transition.of("pending", alert, now))
        self._observe(alert, value, row)
        self._judge(alert, breached, cleared, when, now, hold, clear_hold, events)
        if alert.is_open and _observed(alert) != before:  # closed ones are written by _close; unchanged ones not at all
            self._touch(alert)

    def _judge(
        self,
        alert: Alert,
        breached: bool,
        cleared: bool,
        when: dt.datetime,
        now: dt.datetime,
        hold: dt.timedelta,
        clear_hold: dt.timedelta,
        events: list[_Transition],
    ) -> None:
        """Move an open alert on: pending → firing after ``hold``, or cancelled; firing → resolved after ``clear_hold`` cleared."""
        if alert.state is AlertState.PENDING:
            if not breached:
                self._close(alert, AlertState.CANCELLED, now, events)
            elif now - alert.since >= hold:
                alert.state = AlertState.FIRING
                alert.fired_at = now
                events.append(_Transition.of("firing", alert, now))
            return
        if cleared:
            alert.clearing_since = alert.clearing_since or when
            if now - alert.clearing_since >= clear_hold:
                self._close(alert, AlertState.RESOLVED, now, events)
        else:
            alert.clearing_since = None

    def _new(self, rule: ThresholdRule | StaleRule, key: str, since: dt.datetime) -> Alert:
        self._serial += 1
        alert = Alert(
            id=f"{rule.id}:{key}:{self._serial}",
            rule_id=rule.id,
            layer_id=rule.layer,
            key=key,
            severity=rule.severity,
            title=rule.shown_title,
            state=AlertState.PENDING,
            since=since,
        )
        self._open[(rule.id, key)] = alert
        self._by_id[alert.id] = alert
        return alert

    @staticmethod
    def _observe(alert: Alert, value: float, row: pd.Series | None) -> None:
        alert.value = value
        alert.peak = value if alert.peak is None else max(alert.peak, value)
        if row is not None:
            alert.lon = _number(row.get("lon"))
            alert.lat = _number(row.get("lat"))
            name = row.get("name")
            alert.name = None if name is None or (isinstance(name, float) and math.isnan(name)) else str(name)

    def _close(self, alert: Alert, state: AlertState, now: dt.datetime, events: list[_Transition]) -> None:
        alert.state = state
        alert.resolved_at = now
        self._open.pop((alert.rule_id, alert.key), None)
        self._dirty.pop(alert.id, None)
        self._touch(alert)  # at the end: the store gives closed alerts their history place in writing order
        self.history.append(alert)
        events.append(_Transition.of(state.value, alert, now))
        self._prune(now)

    def _prune(self, now: dt.datetime) -> None:
        """Forget the oldest closed alerts beyond ``history_limit`` or closed before ``now - history_max_age``; drop old events."""
        cutoff = None if self.history_max_age is None else now - self.history_max_age
        history = self.history
        while history and (len(history) > self.history_limit or (cutoff is not None and history[0].resolved_at is not None and history[0].resolved_at < cutoff)):
            gone = history.popleft()
            self._by_id.pop(gone.id, None)
            self._dirty.pop(gone.id, None)
            self._removed.add(gone.id)
        if cutoff is not None:
            self.events.forget_before(cutoff)

    # -- the store -----------------------------------------------------------------------
    def _touch(self, alert: Alert) -> None:
        """Mark an alert as changed since the last store write."""
        if self._store is not None:
            self._dirty[alert.id] = alert

    def _flush(self) -> None:
        """Write the changed and forgotten alerts to the store in one transaction; on failure log, count and keep them for the next try."""
        if self._store is None or not (self._dirty or self._removed):
            return
        records = [StoredAlert(alert.id, alert.is_open, _encode(alert)) for alert in self._dirty.values()]
        try:
            self._store.save(records, removed=sorted(self._removed), serial=self._serial)
        except StateStoreError as exc:
            if not self.store_write_failures:
                log.warning("%s; alerts stay in memory and the write is retried at the next change", exc)
            self.store_write_failures += 1
            return
        if self.store_write_failures:
            log.warning("alert store %s is written again after %d failed writes", self._store.path, self.store_write_failures)
            self.store_write_failures = 0
        self._dirty.clear()
        self._removed.clear()

    def _restore(self, store: AlertStore) -> None:
        """Load the open alerts and history from ``store``; cancel open alerts that no current rule watches."""
        self._serial, alerts = store.load(_decode)
        for alert in alerts:
            if alert.is_open:
                self._open[(alert.rule_id, alert.key)] = alert
            else:
                self.history.append(alert)
            self._by_id[alert.id] = alert
        while len(self.history) > self.history_limit:
            gone = self.history.popleft()
            self._by_id.pop(gone.id, None)
            self._removed.add(gone.id)
        events: list[_Transition] = []
        self._reconcile({}, dt.datetime.now(dt.timezone.utc), events)
        self._flush()
        for transition in events:
            self.events.append(transition)

    def close(self) -> None:
        """Write what is pending and close the store (the engine keeps working in memory only)."""
        with self._lock:
            if self._store is not None:
                self._flush()
                self._store.close()
                self._store = None

def _checked(rules: Iterable[ThresholdRule | StaleRule]) -> tuple[ThresholdRule | StaleRule, ...]:
    """The rules as a tuple; raises TwinError naming duplicate ids."""
    rules = tuple(rules)
    ids = [rule.id for rule in rules]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise TwinError(f"duplicate alert rule ids: {', '.join(duplicates)}")
    return rules


def _observed(alert: Alert) -> tuple[Any, ...]:
    """What evaluating can change in an open alert: a change means a store write."""
    return (alert.state, alert.value, alert.peak, alert.lon, alert.lat, alert.name, alert.clearing_since)


def _layer_wide(rule: ThresholdRule | StaleRule) -> bool:
    """Whether the rule's alerts are about the whole layer (one alert keyed ``(layer)``) rather than features."""
    return isinstance(rule, StaleRule) and not rule.per_feature


def _same_target(alert: Alert, old: ThresholdRule | StaleRule | None, new: ThresholdRule | StaleRule) -> bool:
    """Whether ``new`` still judges ``alert`` (raised under ``old``, unknown after a restart): same layer, kind and quantity."""
    if alert.layer_id != new.layer or (alert.key == LAYER_KEY) != _layer_wide(new):
        return False
    return old is None or _quantity(old) == _quantity(new)


def _quantity(rule: ThresholdRule | StaleRule) -> tuple[str, str | bool]:
    """What a rule measures: its kind and, for thresholds, the value field, for stale rules, per feature or not."""
    return (rule.kind, rule.field) if isinstance(rule, ThresholdRule) else (rule.kind, rule.per_feature)


_TIMES = ("since", "fired_at", "resolved_at", "acknowledged_at", "clearing_since")
"""The Alert fields that hold times."""


def _encode(alert: Alert) -> dict[str, Any]:
    """An alert with every field, ``clearing_since`` too, as JSON-ready data (times as ISO 8601 with offset)."""
    data = alert.to_dict()
    data["clearing_since"] = None if alert.clearing_since is None else alert.clearing_since.isoformat()
    return data


def _decode(record: StoredAlert) -> Alert:
    """The alert written by :func:`_encode`; raises ValueError, KeyError or TypeError for a record that is not one."""
    data = dict(record.data)
    data["state"] = AlertState(data["state"])
    for name in _TIMES:
        if data.get(name) is not None:
            data[name] = dt.datetime.fromisoformat(data[name])
    alert = Alert(**data)
    if alert.id != record.id or alert.is_open != record.open or alert.since.tzinfo is None:
        raise ValueError(f"alert record {record.id!r} does not match its row")
    return alert


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number
