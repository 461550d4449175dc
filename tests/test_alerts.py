"""Alert state machine on hand-made time series: minimum duration, hysteresis, resolve, acknowledge, stale."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pydantic import ValidationError

from twin.alerts import AlertEngine, AlertState, parse_rule
from twin.errors import TwinError
from twin.live import LiveSnapshot

T0 = dt.datetime(2026, 7, 1, 18, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def snapshot(values: dict[str, float | None], at: dt.datetime, layer: str = "flood", times: dict[str, dt.datetime] | None = None) -> dict[str, LiveSnapshot]:
    keys = list(values)
    table = pd.DataFrame(
        {
            "value": [float("nan") if values[k] is None else values[k] for k in keys],
            "lon": [121.48 + i * 0.001 for i in range(len(keys))],
            "lat": [31.23] * len(keys),
            "time": [(times or {}).get(k, at) for k in keys],
            "name": [f"{k} 积水点" for k in keys],
        },
        index=keys,
    )
    return {layer: LiveSnapshot(layer, table, at)}


def deep_rule(**extra) -> AlertEngine:
    rule = {"id": "deep", "kind": "threshold", "layer": "flood", "above": 20, "clear": 18, "for": "2m", "clear_for": "2m", "severity": "critical", **extra}
    return AlertEngine([parse_rule(rule)])


def run(engine: AlertEngine, series: list[tuple[float, float | None]], key: str = "FP1") -> list[tuple[float, str]]:
    """Feed (minute, value) readings one by one; return (minute, event kind) transitions."""
    out = []
    for minute, value in series:
        for event in engine.evaluate(snapshot({key: value}, minutes(minute)), minutes(minute)):
            out.append((minute, event.kind))
    return out


def test_fires_only_after_the_minimum_duration() -> None:
    engine = deep_rule()
    events = run(engine, [(0, 10), (1, 21), (2, 22), (3, 25), (4, 24)])
    assert events == [(1, "pending"), (3, "firing")]
    alert = engine.firing()[0]
    assert alert.since == minutes(1) and alert.fired_at == minutes(3)
    assert (alert.value, alert.peak, alert.layer_id, alert.rule_id, alert.severity) == (24, 25, "flood", "deep", "critical")
    assert (alert.lon, alert.lat, alert.name) == (121.48, 31.23, "FP1 积水点")


def test_a_short_spike_is_cancelled_not_fired() -> None:
    engine = deep_rule()
    assert run(engine, [(0, 21), (1, 19), (2, 10)]) == [(0, "pending"), (1, "cancelled")]
    assert engine.active() == [] and engine.history[-1].state is AlertState.CANCELLED


def test_no_flapping_when_wobbling_at_the_threshold() -> None:
    engine = deep_rule()
    wobble = [(m, 20.2 if m % 2 else 19.8) for m in range(4, 40)]
    events = run(engine, [(0, 22), (2, 22), (3, 21), *wobble])
    assert events == [(0, "pending"), (2, "firing")]  # 19.8 is above clear (18): it stays firing
    assert len(engine.firing()) == 1


def test_resolves_after_clear_for_below_clear() -> None:
    engine = deep_rule()
    events = run(engine, [(0, 25), (2, 25), (3, 17), (4, 19), (5, 17), (6, 16), (7, 15), (8, 30)])
    # 17 at 3, back to 19 at 4 (not past clear) resets; 17 from 5, still past clear at 7 -> resolved
    assert events == [(0, "pending"), (2, "firing"), (7, "resolved"), (8, "pending")]
    resolved = engine.history[-1]
    assert resolved.state is AlertState.RESOLVED and resolved.resolved_at == minutes(7) and resolved.peak == 25
    assert engine.active()[0].id != resolved.id  # a new crossing opens a new alert


def test_missing_values_are_not_zero() -> None:
    engine = deep_rule()
    assert run(engine, [(0, 25), (2, 25), (3, None), (10, None), (20, None)]) == [(0, "pending"), (2, "firing")]
    assert engine.firing()[0].value == 25


def test_acknowledge() -> None:
    engine = deep_rule()
    run(engine, [(0, 25), (2, 25)])
    alert = engine.firing()[0]
    seen = []
    engine.subscribe(seen.append)
    event = engine.acknowledge(alert.id, by="值班员 王", note="泵车已派", at=minutes(3))
    assert event.kind == "acknowledged" and seen == [event]
    assert alert.acknowledged and alert.acknowledged_by == "值班员 王" and alert.state is AlertState.FIRING
    run(engine, [(4, 10), (6, 10)])
    assert engine.history[-1].acknowledged and engine.history[-1].state is AlertState.RESOLVED
    with pytest.raises(TwinError, match="only open alerts"):
        engine.acknowledge(alert.id)
    with pytest.raises(TwinError, match="no alert 'nope'"):
        engine.acknowledge("nope")


def test_subscribers_get_every_transition_and_a_bad_one_does_not_break_others() -> None:
    engine = deep_rule(**{"for": 0})
    got: list[str] = []

    def broken(event):
        raise RuntimeError("subscriber bug")

    engine.subscribe(broken)
    unsubscribe = engine.subscribe(lambda e: got.append(e.kind))
    run(engine, [(0, 30), (1, 5), (3, 5)])
    assert got == ["pending", "firing", "resolved"]
    unsubscribe()
    run(engine, [(4, 30)])
    assert got == ["pending", "firing", "resolved"]
    assert [e.kind for e in engine.events] == ["pending", "firing", "resolved", "pending", "firing"]


def test_readings_from_the_future_are_ignored_and_counted() -> None:
    engine = deep_rule(**{"for": 0})
    events = engine.evaluate(snapshot({"FP1": 40}, minutes(0), times={"FP1": minutes(30)}), minutes(0))
    assert events == [] and engine.future_readings == 1


def test_each_feature_has_its_own_alert() -> None:
    engine = deep_rule(**{"for": 0})
    events = engine.evaluate(snapshot({"A": 25, "B": 5, "C": 21}, T0), T0)
    assert sorted(e.alert["key"] for e in events if e.kind == "firing") == ["A", "C"]


def test_below_rule() -> None:
    engine = AlertEngine([parse_rule({"id": "low", "kind": "threshold", "layer": "flood", "below": 5, "clear": 8})])
    assert run(engine, [(0, 6), (1, 4), (2, 7), (3, 9)]) == [(1, "pending"), (1, "firing"), (3, "resolved")]


def test_stale_layer_alert() -> None:
    engine = AlertEngine([parse_rule({"id": "feed", "kind": "stale", "layer": "flood", "max_age": "5m"})])
    fresh = snapshot({"A": 1}, T0)
    assert engine.evaluate(fresh, minutes(4)) == []
    events = engine.evaluate(fresh, minutes(6))
    assert [e.kind for e in events] == ["pending", "firing"]
    assert engine.firing()[0].value == pytest.approx(360)
    assert [e.kind for e in engine.evaluate(snapshot({"A": 1}, minutes(7)), minutes(7))] == ["resolved"]
    # a layer that never delivered (its source is down) is stale too
    assert [e.kind for e in engine.evaluate({}, minutes(8))] == ["pending", "firing"]


def test_stale_per_feature_alert_for_a_sensor_that_stopped_reporting() -> None:
    engine = AlertEngine([parse_rule({"id": "silent", "kind": "stale", "layer": "flood", "max_age": "10m", "per_feature": True})])
    snap = snapshot({"A": 3, "B": 3}, minutes(30), times={"A": minutes(29), "B": minutes(12)})
    events = engine.evaluate(snap, minutes(30))
    assert [(e.kind, e.alert["key"]) for e in events] == [("pending", "B"), ("firing", "B")]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"id": "r", "kind": "threshold", "layer": "x"}, "exactly one of 'above' or 'below'"),
        ({"id": "r", "kind": "threshold", "layer": "x", "above": 20, "clear": 25}, "must not be above"),
        ({"id": "r", "kind": "threshold", "layer": "x", "above": 20, "for": "soon"}, "not a duration"),
        ({"id": "r", "kind": "flood", "layer": "x"}, "does not match any of the expected tags"),
        ({"id": "r", "kind": "stale", "layer": "x", "max_age": "5m", "extra": 1}, "Extra inputs"),
    ],
)
def test_bad_rules_are_rejected(rule, message) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_rule(rule)


def test_duplicate_rule_ids() -> None:
    rule = parse_rule({"id": "r", "kind": "stale", "layer": "x", "max_age": 60})
    with pytest.raises(TwinError, match="duplicate alert rule ids: r"):
        AlertEngine([rule, rule])
