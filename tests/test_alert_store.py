"""A restarted hall server shows the alerts that were open and acknowledged before; memory and the store stay bounded."""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

import twin
from twin.alerts import AlertEngine, AlertState, parse_rule
from twin.alerts.store import AlertStore, default_state_dir
from twin.errors import StateStoreError, TwinError, TwinWarning
from twin.live import LiveSnapshot

T0 = dt.datetime(2026, 7, 1, 18, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
DEEP = {"id": "deep", "kind": "threshold", "layer": "flood", "above": 20, "clear": 18, "clear_for": "5m"}
FEED = {"id": "feed", "kind": "stale", "layer": "rain", "max_age": "10m"}


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def snapshot(values: dict[str, float], at: dt.datetime, layer: str = "flood") -> dict[str, LiveSnapshot]:
    table = pd.DataFrame({"value": list(values.values()), "lon": 121.48, "lat": 31.23, "time": at, "name": [f"{k} 积水点" for k in values]}, index=list(values))
    return {layer: LiveSnapshot(layer, table, at)}


def state(engine: AlertEngine) -> tuple[list[tuple], list[tuple]]:
    """Every field of the open alerts and of the history (clearing_since too), in order."""
    def full(alert):
        return tuple(sorted(alert.to_dict().items())) + (alert.clearing_since,)
    return [full(a) for a in engine.active()], [full(a) for a in engine.history]


def stored_ids(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT id FROM alerts")}


def test_restart_shows_open_acknowledged_alerts_and_history(tmp_path: Path) -> None:
    path = tmp_path / "state" / "alerts.sqlite"  # the folder is created
    rules = [parse_rule(DEEP), parse_rule(FEED)]
    first = AlertEngine(rules, store=path)
    first.evaluate(snapshot({"FP1": 25.0, "FP2": 22.0, "FP3": 30.0}, minutes(0)), minutes(0))
    first.evaluate(snapshot({"FP1": 28.0, "FP2": 10.0, "FP3": 10.0}, minutes(6)), minutes(6))  # FP2, FP3 start clearing
    first.evaluate(snapshot({"FP1": 26.0, "FP2": 10.0, "FP3": 10.0}, minutes(11)), minutes(11))  # ... and resolve; FP1 only changes value
    first.evaluate(snapshot({"FP1": 15.0, "FP3": 26.0}, minutes(12)), minutes(12))  # FP1 starts clearing; FP3 floods again
    fp1 = next(a for a in first.active() if a.key == "FP1")
    first.acknowledge(fp1.id, by="值班员", note="泵车已派", at=minutes(13))
    before = state(first)
    ids_before = {a.id for a in first.active()} | {a.id for a in first.history}
    first.close()
    assert len(before[0]) == 3 and len(before[1]) == 2  # FP1, FP3 (again) and the feed open; FP2, FP3 resolved

    scene = twin.Scene("hall")
    scene.alerts = rules
    scene.alert_engine = second = AlertEngine(scene.alerts, store=path)  # a new process reading the same file
    assert state(second) == before
    restored = scene.alert_engine.get(fp1.id)
    assert (restored.acknowledged, restored.acknowledged_by, restored.note, restored.acknowledged_at) == (True, "值班员", "泵车已派", minutes(13))
    assert (restored.value, restored.peak) == (15.0, 28.0) and restored.clearing_since == minutes(12) and restored.acknowledged_at.utcoffset() == dt.timedelta(hours=8)

    # FP1 keeps clearing since before the restart: resolved 5 minutes after minute 12; FP2 floods again with a new id
    events = second.evaluate(snapshot({"FP1": 15.0, "FP2": 24.0, "FP3": 26.0}, minutes(17)), minutes(17))
    assert [(e.kind, e.alert["key"]) for e in events if e.alert["rule_id"] == "deep"] == [("resolved", "FP1"), ("pending", "FP2"), ("firing", "FP2")]
    new_id = next(e.alert["id"] for e in events if e.kind == "pending")
    assert new_id not in ids_before and new_id == "deep:FP2:6"  # serial 5 was the feed's alert, 1-4 the earlier ones
    second.close()
    third = AlertEngine(rules, store=path)
    assert state(third) == state(second)
    assert stored_ids(path) == {a.id for a in third.active()} | {a.id for a in third.history}
    third.close()


def test_restart_with_a_rule_removed_cancels_its_open_alerts(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite"
    first = AlertEngine([parse_rule(DEEP), parse_rule(FEED)], store=path)
    first.evaluate(snapshot({"FP1": 25.0}, minutes(0)), minutes(0))
    feed_id = next(a.id for a in first.active() if a.rule_id == "feed")
    first.close()
    second = AlertEngine([parse_rule(DEEP)], store=path)  # the scene file lost its "feed" rule meanwhile
    assert [a.rule_id for a in second.active()] == ["deep"]
    assert second.get(feed_id).state is AlertState.CANCELLED and [e.kind for e in second.events] == ["cancelled"]
    second.close()
    third = AlertEngine([parse_rule(DEEP)], store=path)
    assert third.get(feed_id).state is AlertState.CANCELLED and [a.rule_id for a in third.active()] == ["deep"]
    third.close()


def flood_and_drain(engine: AlertEngine, gauges: int, start: float, cycles: int) -> float:
    """Every gauge floods and drains ``cycles`` times, one minute apart; returns the last minute."""
    minute = start
    for _ in range(cycles):
        for depth in (25.0, 5.0):
            minute += 1
            engine.evaluate(snapshot({f"FP{i}": depth for i in range(gauges)}, minutes(minute)), minutes(minute))
    return minute


def test_history_capped_by_count_in_memory_and_in_the_store(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite"
    rule = parse_rule({"id": "deep", "kind": "threshold", "layer": "flood", "above": 20})
    engine = AlertEngine([rule], history_limit=30, store=path)
    flood_and_drain(engine, gauges=10, start=0, cycles=20)  # 200 alerts
    assert len(engine.history) == 30 and len(engine.events) == 30 and len(engine._by_id) == 30 and not engine._open
    assert stored_ids(path) == {a.id for a in engine.history}
    engine.close()
    smaller = AlertEngine([rule], history_limit=5, store=path)  # a lower limit applies to what is loaded
    assert [a.id for a in smaller.history] == [a.id for a in engine.history][-5:]
    smaller.close()
    assert len(stored_ids(path)) == 5


def test_history_capped_by_age(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite"
    engine = AlertEngine([parse_rule({"id": "deep", "kind": "threshold", "layer": "flood", "above": 20})], history_max_age=dt.timedelta(hours=1), store=path)
    last = flood_and_drain(engine, gauges=3, start=0, cycles=90)  # 3 hours
    assert min(a.resolved_at for a in engine.history) == minutes(last - 60)  # closed an hour ago at most
    assert len(engine.history) == 3 * 31 and all(e.at >= minutes(last) - dt.timedelta(hours=1) for e in engine.events)
    with pytest.raises(TwinError, match="^no alert 'deep:FP0:1'$"):
        engine.get("deep:FP0:1")
    assert stored_ids(path) == {a.id for a in engine.history}
    engine.close()


def test_bad_limits_are_refused() -> None:
    with pytest.raises(TwinError, match="^alert history_limit must be at least 1, got 0$"):
        AlertEngine([], history_limit=0)
    with pytest.raises(TwinError, match="^alert history_max_age must be positive, got -1 day, 23:00:00$"):
        AlertEngine([], history_max_age=dt.timedelta(hours=-1))


def corrupt_with_garbage(path: Path) -> None:
    path.write_bytes(b"this is not SQLite, someone copied a log file here\n" * 100)


def corrupt_with_foreign_database(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE photos (name TEXT)")
    connection.close()


def corrupt_a_row(path: Path) -> None:
    engine = AlertEngine([parse_rule(DEEP)], store=path)
    engine.evaluate(snapshot({"FP1": 25.0}, minutes(0)), minutes(0))
    engine.close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alerts SET data = '{\"id\": 3'")
    connection.close()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [(corrupt_with_garbage, "file is not a database"), (corrupt_with_foreign_database, r"not an alert store \(tables: photos\)"), (corrupt_a_row, "Expecting")],
    ids=["garbage", "foreign-database", "broken-row"],
)
def test_a_corrupt_store_is_moved_aside_and_a_new_one_started(tmp_path: Path, damage, reason: str) -> None:
    path = tmp_path / "alerts.sqlite"
    damage(path)
    original = path.read_bytes()
    with pytest.warns(TwinWarning, match=rf"^alert store {path} is corrupt \({reason}.*\): moved it to alerts\.sqlite\.corrupt-\d{{8}}T\d+Z and started an empty one$"):
        engine = AlertEngine([parse_rule(DEEP)], store=path)
    aside = list(tmp_path.glob("alerts.sqlite.corrupt-*"))
    assert [p.read_bytes() for p in aside if not p.name.endswith(("-wal", "-shm"))] == [original]  # kept for a person to look at
    assert not engine.active() and not engine.history
    engine.evaluate(snapshot({"FP1": 25.0}, minutes(0)), minutes(0))
    engine.close()
    again = AlertEngine([parse_rule(DEEP)], store=path)
    assert [a.key for a in again.active()] == ["FP1"]
    again.close()


def test_a_store_from_a_newer_twin_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 7")
    connection.close()
    original = path.read_bytes()
    with pytest.raises(StateStoreError) as info:
        AlertEngine([parse_rule(DEEP)], store=path)
    assert str(info.value) == f"alert store {path} was written by a newer twin (schema 7; this one reads 1): upgrade twin or choose another state folder"
    assert path.read_bytes() == original and list(tmp_path.iterdir()) == [path]


def test_a_folder_in_place_of_the_store_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "alerts.sqlite").mkdir()
    with pytest.raises(StateStoreError, match=rf"^cannot open alert store {tmp_path / 'alerts.sqlite'}: it is a folder$"):
        AlertEngine([], store=tmp_path / "alerts.sqlite")


def test_a_failed_write_is_logged_counted_and_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "alerts.sqlite"
    engine = AlertEngine([parse_rule(DEEP)], store=path)
    real_save = AlertStore.save

    def disk_full(self: AlertStore, *args, **kwargs) -> None:
        raise StateStoreError(f"cannot write alert store {self.path}: database or disk is full")

    monkeypatch.setattr(AlertStore, "save", disk_full)
    events = engine.evaluate(snapshot({"FP1": 25.0}, minutes(0)), minutes(0))
    assert [e.kind for e in events] == ["pending", "firing"]  # alerting goes on
    assert engine.store_write_failures == 1
    assert f"cannot write alert store {path}: database or disk is full; alerts stay in memory" in caplog.text
    monkeypatch.setattr(AlertStore, "save", real_save)
    engine.evaluate(snapshot({"FP1": 25.0, "FP2": 30.0}, minutes(1)), minutes(1))
    assert engine.store_write_failures == 0
    engine.close()
    assert stored_ids(path) == {a.id for a in engine.active()} and len(engine.active()) == 2


def test_two_threads_evaluating_keep_the_store_consistent(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite"
    rules = [parse_rule({"id": f"deep_{layer}", "kind": "threshold", "layer": layer, "above": 20}) for layer in ("north", "south")]
    engine = AlertEngine(rules, history_limit=50, store=path)
    errors: list[BaseException] = []

    def work(layer: str) -> None:
        try:
            for step in range(120):
                depth = 25.0 if step % 2 == 0 else 5.0
                engine.evaluate(snapshot({f"{layer}{i}": depth for i in range(5)}, minutes(step), layer), minutes(step))
                if step % 10 == 0:  # this thread's alerts, open right after a flooding step
                    for alert in (a for a in engine.active() if a.layer_id == layer):
                        engine.acknowledge(alert.id, by=layer)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(layer,)) for layer in ("north", "south")]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: races show up in every run
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == [] and engine.store_write_failures == 0
    assert engine._serial == 2 * 60 * 5
    in_memory = state(engine)
    engine.close()
    reopened = AlertEngine(rules, history_limit=50, store=path)
    assert state(reopened) == in_memory and len(in_memory[1]) == 50
    assert stored_ids(path) == {a.id for a in reopened.history}
    reopened.close()


def test_default_state_dir_is_per_scene_under_the_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_CACHE_DIR", str(tmp_path))
    hall = default_state_dir("浦东 flood/hall")
    assert hall.parent == tmp_path / "state" and hall.name.startswith("浦东-flood-hall-")
    assert default_state_dir("浦东 flood hall") != hall  # same slug, other scene: another folder
    assert default_state_dir("..").name.startswith("scene-")  # never a path outside the state folder
    engine = AlertEngine([], store=hall / "alerts.sqlite")
    engine.close()
    assert (hall / "alerts.sqlite").is_file()
