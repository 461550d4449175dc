"""ReadingsBuffer under overlapping polls: what it holds equals a plain dictionary model.

Polls overlap on purpose (so late arrivals are not missed), so the buffer sees the same
readings many times, late ones out of order, revised values and repeats within a batch. Its
contents and counts are checked against a reference written the obvious way.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.readings import ReadingsBuffer

NOW = dt.datetime(2026, 7, 1, 12, tzinfo=dt.timezone.utc)
SENSORS = ["a", "b", "c", None]  # None: an anonymous reading (a device ping)

reading = st.tuples(
    st.sampled_from(SENSORS),
    st.integers(0, 40),  # seconds before NOW... kept small so identities collide often
    st.sampled_from([1.0, 2.0, 3.0]),
    st.sampled_from([121.40, 121.50]),
)


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sensor_id": [s for s, *_ in rows],
            "lon": [lon for *_, lon in rows],
            "lat": [31.2] * len(rows),
            "time": [NOW - dt.timedelta(seconds=sec) for _, sec, *_ in rows],
            "value": [v for _, _, v, _ in rows],
        }
    )


def split(rows: list[tuple]) -> tuple[pd.DataFrame, pd.DataFrame]:
    named = [r for r in rows if r[0] is not None]
    anonymous = [r for r in rows if r[0] is None]
    return frame(named), frame(anonymous).drop(columns="sensor_id")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(reading, max_size=12), min_size=1, max_size=6))
def test_overlapping_batches_hold_each_reading_once(batches: list[list[tuple]]) -> None:
    named_buffer = ReadingsBuffer(dt.timedelta(hours=1))
    anon_buffer = ReadingsBuffer(dt.timedelta(hours=1))
    model: dict[tuple[str, int], tuple[float, float]] = {}  # (sensor, second) -> (value, lon): the last write wins
    anon_model: list[tuple[int, float, float]] = []
    accepted = refetched = revised = duplicates = 0
    seen_duplicates: set[tuple] = set()
    for batch in batches:
        named, anonymous = split(batch)
        report = named_buffer.ingest(named, NOW)
        accepted, refetched, revised = accepted + report.accepted, refetched + report.refetched, revised + report.revised
        duplicates += report.dropped.get("duplicate", 0)
        last: dict[tuple[str, int], tuple[float, float]] = {}
        for s, sec, v, lon in (r for r in batch if r[0] is not None):
            key = (s, sec)
            if key in last:
                seen_duplicates.add((s, sec, *last[key]))
            last[key] = (v, lon)
        model.update(last)
        # anonymous: a reading equal in time, place and value to one held is that reading again
        held = {(sec, v, lon) for sec, v, lon in anon_model}
        anon_buffer.ingest(anonymous, NOW)
        anon_model += [(sec, v, lon) for _, sec, v, lon in batch if _ is None and (sec, v, lon) not in held]
    data = named_buffer.data
    got = {(s, int((pd.Timestamp(NOW) - t).total_seconds())): (v, lon) for s, t, v, lon in zip(data["sensor_id"], data["time"], data["value"], data["lon"])}
    assert got == model
    assert len(data) == len(model) == accepted  # each identity accepted once, revisions replace
    assert (np.diff(named_buffer.column("t")) >= 0).all()
    assert duplicates == len(seen_duplicates)  # repeats within a batch: counted once, however often polls show them
    anon = anon_buffer.data
    got_anon = sorted((int((pd.Timestamp(NOW) - t).total_seconds()), v, lon) for t, v, lon in zip(anon["time"], anon["value"], anon["lon"]))
    assert got_anon == sorted(anon_model)


def test_a_bad_row_seen_by_every_overlapping_poll_is_counted_once() -> None:
    buffer = ReadingsBuffer(dt.timedelta(hours=1))
    bad = frame([("a", 10, 1.0, 121.4)]).assign(lat=[95.0])
    good = frame([("b", 10, 1.0, 121.4)])
    for _ in range(5):
        buffer.ingest(pd.concat([bad, good], ignore_index=True), NOW)
    assert dict(buffer.dropped) == {"bad_coordinates": 1}
    assert len(buffer) == 1


def test_a_revised_value_replaces_the_held_one() -> None:
    buffer = ReadingsBuffer(dt.timedelta(hours=1))
    buffer.ingest(frame([("a", 30, 1.0, 121.4), ("a", 20, 2.0, 121.4)]), NOW)
    report = buffer.ingest(frame([("a", 30, 9.0, 121.4), ("a", 20, 2.0, 121.4), ("a", 10, 3.0, 121.4)]), NOW)
    assert (report.accepted, report.refetched, report.revised) == (1, 1, 1)
    assert buffer.data["value"].tolist() == [9.0, 2.0, 3.0]


def test_late_is_counted_for_new_readings_before_the_given_moment() -> None:
    buffer = ReadingsBuffer(dt.timedelta(hours=1))
    buffer.ingest(frame([("a", 5, 1.0, 121.4)]), NOW)
    report = buffer.ingest(frame([("a", 5, 1.0, 121.4), ("b", 50, 1.0, 121.4), ("b", 2, 1.0, 121.4)]), NOW, late_before=NOW - dt.timedelta(seconds=30))
    assert (report.accepted, report.late, report.refetched) == (2, 1, 1)
    assert buffer.newest() == pd.Timestamp(NOW - dt.timedelta(seconds=2))
    assert buffer.newest(NOW - dt.timedelta(seconds=4)) == pd.Timestamp(NOW - dt.timedelta(seconds=5))
    assert buffer.newest(NOW - dt.timedelta(seconds=55)) is None
