"""An unattended wall runs for months: the alert engine's memory must not grow with time."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from twin.alerts.engine import AlertEngine
from twin.alerts.rules import parse_rule
from twin.errors import TwinError
from twin.live import LiveSnapshot

T0 = dt.datetime(2026, 7, 1, tzinfo=dt.timezone.utc)


def snapshot(depths: dict[str, float], when: dt.datetime) -> dict[str, LiveSnapshot]:
    table = pd.DataFrame({"value": list(depths.values()), "lon": 121.48, "lat": 31.23, "time": when}, index=list(depths))
    return {"flood": LiveSnapshot("flood", table, when)}


def test_structures_stay_bounded_over_thousands_of_alerts() -> None:
    engine = AlertEngine([parse_rule({"id": "deep", "kind": "threshold", "layer": "flood", "above": 20})], history_limit=100)
    gauges = [f"FP{i:03d}" for i in range(20)]
    now = T0
    first_id = None
    for cycle in range(150):  # every gauge floods and drains: 3,000 alerts
        now += dt.timedelta(minutes=1)
        engine.evaluate(snapshot({g: 25.0 for g in gauges}, now), now)
        first_id = first_id or engine.active()[0].id
        now += dt.timedelta(minutes=1)
        engine.evaluate(snapshot({g: 5.0 for g in gauges}, now), now)
        if cycle == 0:
            sizes = (len(engine._by_id), len(engine._open), len(engine.history), len(engine.events))
    assert engine._serial == 3000
    assert len(engine._open) == 0 and len(engine.history) == 100 and len(engine.events) == 100
    assert len(engine._by_id) == 100  # what the history keeps, nothing more
    assert sizes[0] == 20
    latest = engine.history[-1]
    assert engine.get(latest.id) is latest
    with pytest.raises(TwinError, match="no alert"):
        engine.get(first_id)
