"""Editing a scene's alert rules keeps what operators did: acknowledgements, history and subscribers."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

import twin
from twin.alerts import AlertEngine, AlertEvent, AlertState, parse_rule
from twin.errors import TwinError
from twin.live import LiveSnapshot

T0 = dt.datetime(2026, 7, 1, 18, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def snapshot(values: dict[str, float], at: dt.datetime, layer: str = "flood") -> dict[str, LiveSnapshot]:
    table = pd.DataFrame({"value": list(values.values()), "lon": 121.48, "lat": 31.23, "time": at}, index=list(values))
    return {layer: LiveSnapshot(layer, table, at)}


DEEP = {"id": "deep", "kind": "threshold", "layer": "flood", "above": 20, "severity": "warning"}
WET = {"id": "wet", "kind": "threshold", "layer": "flood", "above": 10}


def rules(*specs: dict) -> list:
    return [parse_rule(spec) for spec in specs]


def test_edit_keeps_acks_history_and_subscribers_and_cancels_removed_rules() -> None:
    engine = AlertEngine(rules(DEEP, WET))
    seen: list[tuple[str, str]] = []
    engine.subscribe(lambda event: seen.append((event.alert["rule_id"], event.kind)))
    engine.evaluate(snapshot({"FP1": 25.0, "FP2": 12.0}, minutes(0)), minutes(0))
    engine.evaluate(snapshot({"FP1": 25.0, "FP2": 5.0}, minutes(1)), minutes(1))  # FP2 drains: "wet" resolves into the history
    deep = next(a for a in engine.active() if a.rule_id == "deep")
    engine.acknowledge(deep.id, by="duty officer", note="pump 3 sent", at=minutes(2))
    engine.evaluate(snapshot({"FP1": 25.0, "FP2": 15.0}, minutes(3)), minutes(3))  # FP2 wet again; FP1 has been wet all along
    resolved_before = [a.id for a in engine.history]
    seen.clear()

    events = engine.set_rules(rules({**DEEP, "above": 30, "clear": 28, "severity": "critical", "title": "深积水"}), at=minutes(4))

    assert [(e.kind, e.alert["rule_id"], e.alert["key"]) for e in events] == [("cancelled", "wet", "FP1"), ("cancelled", "wet", "FP2")]
    assert seen == [("wet", "cancelled")] * 2  # the subscriber stays subscribed
    assert isinstance(engine.rules, tuple) and [r.id for r in engine.rules] == ["deep"]
    kept = engine.get(deep.id)
    assert kept is deep and kept.is_open and kept.state is AlertState.FIRING
    assert (kept.acknowledged, kept.acknowledged_by, kept.note, kept.acknowledged_at) == (True, "duty officer", "pump 3 sent", minutes(2))
    assert (kept.severity, kept.title) == ("critical", "深积水")
    assert [a.id for a in engine.history][: len(resolved_before)] == resolved_before
    cancelled = engine.history[-1]
    assert (cancelled.rule_id, cancelled.state, cancelled.resolved_at) == ("wet", AlertState.CANCELLED, minutes(4))

    # the new threshold judges the kept alert at the next evaluation: 25 is below clear = 28
    engine.evaluate(snapshot({"FP1": 25.0}, minutes(5)), minutes(5))
    assert seen[-1] == ("deep", "resolved")
    assert engine.history[-1] is deep and deep.acknowledged and not engine.active()


def test_edited_threshold_rejudges_a_pending_alert() -> None:
    engine = AlertEngine(rules({**DEEP, "for": "10m"}))
    engine.evaluate(snapshot({"FP1": 25.0}, minutes(0)), minutes(0))
    assert engine.active()[0].state is AlertState.PENDING
    engine.set_rules(rules({**DEEP, "above": 40, "for": "10m"}), at=minutes(1))
    assert engine.active()[0].state is AlertState.PENDING  # still open until the data is judged again
    events = engine.evaluate(snapshot({"FP1": 25.0}, minutes(2)), minutes(2))
    assert [e.kind for e in events] == ["cancelled"] and not engine.active()


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (DEEP, {**DEEP, "layer": "rain"}),  # the rule now watches another layer
        (DEEP, {**DEEP, "field": "level"}),  # ... or another value of the layer
        ({"id": "feed", "kind": "stale", "layer": "flood", "max_age": "5m"}, {"id": "feed", "kind": "stale", "layer": "flood", "max_age": "5m", "per_feature": True}),
        ({"id": "feed", "kind": "stale", "layer": "flood", "max_age": "5m", "per_feature": True}, {"id": "feed", "kind": "threshold", "layer": "flood", "above": 20}),
    ],
    ids=["layer", "field", "per-feature", "kind"],
)
def test_a_rule_id_reused_for_another_target_cancels_its_alerts(before: dict, after: dict) -> None:
    engine = AlertEngine(rules(before))
    old = dt.datetime(2026, 7, 1, 9, 0, tzinfo=dt.timezone.utc)
    table = pd.DataFrame({"value": [25.0], "level": [25.0], "time": [old]}, index=["FP1"])
    engine.evaluate({"flood": LiveSnapshot("flood", table, old)}, minutes(0))
    assert len(engine.active()) == 1
    events = engine.set_rules(rules(after), at=minutes(1))
    assert [e.kind for e in events] == ["cancelled"] and not engine.active()


def test_duplicate_ids_in_an_edit_are_refused_and_the_old_rules_stay() -> None:
    engine = AlertEngine(rules(DEEP))
    engine.evaluate(snapshot({"FP1": 25.0}, minutes(0)), minutes(0))
    with pytest.raises(TwinError, match="^duplicate alert rule ids: deep$"):
        engine.set_rules(rules(DEEP, {**DEEP, "above": 30}))
    assert [r.id for r in engine.rules] == ["deep"] and len(engine.active()) == 1
    with pytest.raises(TwinError, match=r"^rule change time 2026-07-01T18:00:00 needs a time zone, e.g. \+08:00$"):
        engine.set_rules([], at=dt.datetime(2026, 7, 1, 18))
    assert len(engine.active()) == 1


def test_scene_keeps_its_engine_when_the_rules_change() -> None:
    scene = twin.Scene("hall")
    scene.alerts = rules(DEEP)
    engine = scene.alert_engine
    events: list[AlertEvent] = []
    engine.subscribe(events.append)
    engine.evaluate(snapshot({"FP1": 25.0}, minutes(0)), minutes(0))
    alert_id = engine.active()[0].id
    engine.acknowledge(alert_id, by="op")

    scene.alerts = rules({**DEEP, "above": 22}, WET)  # e.g. the scene file was edited and reloaded

    assert scene.alert_engine is engine and [r.id for r in engine.rules] == ["deep", "wet"]
    assert engine.get(alert_id).acknowledged
    scene.alert_engine.evaluate(snapshot({"FP1": 25.0}, minutes(1)), minutes(1))
    assert [e.kind for e in events][-2:] == ["pending", "firing"] and events[-1].alert["rule_id"] == "wet"
    with pytest.raises(TwinError, match="^scene.alert_engine takes an AlertEngine, got dict$"):
        scene.alert_engine = {}  # type: ignore[assignment]
