"""The alert engine: rules over live layers, each alert moving pending → firing → resolved.

Hysteresis (``clear``) and minimum durations (``for``, ``clear_for``) keep a value wobbling at
a threshold from flapping. Alerts can be acknowledged; every transition is an event that the
app and notebooks can subscribe to, and closed alerts are kept in the history.

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
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from twin.alerts.rules import StaleRule, ThresholdRule
from twin.errors import TwinError
from twin.live import LiveSnapshot

__all__ = ["Alert", "AlertEngine", "AlertEvent", "AlertState"]

log = logging.getLogger(__name__)

LAYER_KEY = "(layer)"


class AlertState(str, Enum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


@dataclass
class Alert:
    """One alert: where, which layer and rule, the value, and since when."""

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
        out = asdict(self)
        out.pop("clearing_since")
        out["state"] = self.state.value
        for key, value in out.items():
            if isinstance(value, dt.datetime):
                out[key] = value.isoformat()
        return out


@dataclass(frozen=True)
class AlertEvent:
    """A transition of one alert: pending, firing, resolved, cancelled or acknowledged."""

    kind: str
    alert: dict[str, Any]
    at: dt.datetime


Subscriber = Callable[[AlertEvent], None]


class AlertEngine:
    """Evaluates rules over live-layer snapshots at a given time (scene time)."""

    def __init__(self, rules: Iterable[ThresholdRule | StaleRule], *, history_limit: int = 10_000) -> None:
        """``history_limit``: closed alerts (and events) kept; memory stays bounded by it plus the open alerts."""
        self.rules = tuple(rules)
        ids = [rule.id for rule in self.rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise TwinError(f"duplicate alert rule ids: {', '.join(duplicates)}")
        self._open: dict[tuple[str, str], Alert] = {}
        self._by_id: dict[str, Alert] = {}
        self.history: deque[Alert] = deque(maxlen=history_limit)
        self.events: deque[AlertEvent] = deque(maxlen=history_limit)
        self._subscribers: list[Subscriber] = []
        self._serial = 0
        self.future_readings = 0
        """Readings ignored because their time was after the evaluation time (clock skew)."""

    # -- queries -------------------------------------------------------------------------
    def active(self) -> list[Alert]:
        """Open alerts (pending and firing), oldest first."""
        return sorted(self._open.values(), key=lambda a: (a.since, a.id))

    def firing(self) -> list[Alert]:
        return [a for a in self.active() if a.state is AlertState.FIRING]

    def get(self, alert_id: str) -> Alert:
        """An open alert or one still in the history, by id; raises TwinError for others."""
        try:
            return self._by_id[alert_id]
        except KeyError:
            raise TwinError(f"no alert {alert_id!r}") from None

    # -- subscriptions -------------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` on every transition; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def _emit(self, events: list[AlertEvent]) -> None:
        for event in events:
            self.events.append(event)
            for callback in list(self._subscribers):
                try:
                    callback(event)
                except Exception:  # one bad subscriber must not stop alerts reaching the others
                    log.exception("alert subscriber %r failed", callback)

    # -- acknowledging -------------------------------------------------------------------
    def acknowledge(self, alert_id: str, *, by: str | None = None, note: str | None = None, at: dt.datetime | None = None) -> AlertEvent:
        """Mark an open alert as seen by an operator; it stays open until it resolves."""
        alert = self.get(alert_id)
        if not alert.is_open:
            raise TwinError(f"alert {alert_id!r} is {alert.state.value}; only open alerts can be acknowledged")
        alert.acknowledged = True
        alert.acknowledged_by = by
        alert.acknowledged_at = at or dt.datetime.now(dt.timezone.utc)
        alert.note = note
        event = AlertEvent("acknowledged", alert.to_dict(), alert.acknowledged_at)
        self._emit([event])
        return event

    # -- evaluation ----------------------------------------------------------------------
    def evaluate(self, snapshots: Mapping[str, LiveSnapshot], now: dt.datetime) -> list[AlertEvent]:
        """Apply every rule to the snapshots at time ``now``; returns (and emits) the transitions."""
        if now.tzinfo is None:
            raise TwinError("alert evaluation time must be timezone-aware")
        events: list[AlertEvent] = []
        for rule in self.rules:
            snapshot = snapshots.get(rule.layer)
            if isinstance(rule, ThresholdRule):
                if snapshot is not None:
                    self._threshold(rule, snapshot, now, events)
            else:
                self._stale(rule, snapshot, now, events)
        self._emit(events)
        return events

    def _threshold(self, rule: ThresholdRule, snapshot: LiveSnapshot, now: dt.datetime, events: list[AlertEvent]) -> None:
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

    def _stale(self, rule: StaleRule, snapshot: LiveSnapshot | None, now: dt.datetime, events: list[AlertEvent]) -> None:
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
        events: list[AlertEvent],
    ) -> None:
        slot = (rule.id, key)
        alert = self._open.get(slot)
        if alert is None:
            if not breached:
                return
            alert = self._new(rule, key, when)
            events.append(AlertEvent("pending", alert.to_dict(), now))
        self._observe(alert, value, row)
        if alert.state is AlertState.PENDING:
            if not breached:
                self._close(alert, AlertState.CANCELLED, now, events)
            elif now - alert.since >= hold:
                alert.state = AlertState.FIRING
                alert.fired_at = now
                events.append(AlertEvent("firing", alert.to_dict(), now))
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
            title=rule.title or rule.id,
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

    def _close(self, alert: Alert, state: AlertState, now: dt.datetime, events: list[AlertEvent]) -> None:
        alert.state = state
        alert.resolved_at = now
        self._open.pop((alert.rule_id, alert.key), None)
        if len(self.history) == self.history.maxlen:  # the oldest closed alert leaves the history: forget it
            self._by_id.pop(self.history[0].id, None)
        self.history.append(alert)
        events.append(AlertEvent(state.value, alert.to_dict(), now))


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number
