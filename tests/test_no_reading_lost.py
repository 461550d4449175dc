"""No reading lost: readings that reach the one-map service late still reach the layer.

Found in `twin demo`: the flood layer asked each poll for ``(last poll, now]``, so a reading
stamped before the last poll but written to the server after it was never fetched (40 of 120
readings in 150 s), while the badge said "data 0 s old". These tests run the demo's feeder
against a real pygeoapi on 127.0.0.1 with realistic lateness (2 s to a minute after the time
stamp) and poll through the production ``ogcapi_readings`` source on a simulated clock (5 s
steps), then compare what the layer holds with what the server holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import requests

import twin
from twin.demo.onemap import READINGS, OneMapDemo

STEP = dt.timedelta(seconds=5)
MINUTES = 8


@pytest.fixture(scope="module")
def onemap() -> Iterator[OneMapDemo]:
    with OneMapDemo(n_buildings=50, feed_seconds=36_000, lateness=(2.0, 60.0)) as server:  # fed by hand, on a simulated clock
        yield server


def server_readings(onemap: OneMapDemo) -> set[tuple[str, pd.Timestamp]]:
    """Every reading the server holds, asked for directly (not through twin)."""
    doc = requests.get(f"{onemap.url}collections/{READINGS}/items", params={"f": "json", "limit": 10_000}, timeout=30).json()
    return {(f["properties"]["sensor_id"], pd.Timestamp(f["properties"]["time"])) for f in doc["features"]}


def layer_readings(layer: Any) -> set[tuple[str, pd.Timestamp]]:
    data = layer.buffer.data
    return set(zip(data["sensor_id"], pd.to_datetime(data["time"], utc=True)))


def flood_scene(url: str, **source: Any) -> twin.Scene:
    spec = {"type": "ogcapi_readings", "url": url, "collection": READINGS, "limit": 10_000, "time_property": "time",
            "value_property": "value", "sensor_property": "sensor_id", "poll_interval": "5s", **source}
    return twin.Scene.from_dict({"version": 1, "name": "late readings", "frame": {"center": [121.49, 31.23]},
                                 "layers": [{"id": "flood", "type": "flood_points", "source": spec, "history": "1h"}]})


def run_feed(onemap: OneMapDemo, scene: twin.Scene, start: dt.datetime, minutes: int = MINUTES) -> dt.datetime:
    """Feed and poll in lock-step for ``minutes`` of simulated time; returns the last moment."""
    now = start
    for _ in range(int(dt.timedelta(minutes=minutes) / STEP)):
        now += STEP
        onemap.feed(now)
        scene.tick(now)
    return now


def test_every_reading_the_server_holds_reaches_the_layer(onemap: OneMapDemo) -> None:
    start = onemap.fed_until
    assert start is not None
    scene = flood_scene(onemap.url)
    now = run_feed(onemap, scene, start)
    layer = scene["flood"]
    held, served = layer_readings(layer), server_readings(onemap)
    assert len(served) > 500  # 40 gauges, one reading a minute, 15 min before the start + MINUTES
    assert held == served and len(layer.buffer) == len(served)
    newest = max(t for _, t in served)
    assert layer.health.newest_reading == newest.to_pydatetime()
    assert layer.health.data_age(now) == now - newest.to_pydatetime()  # the newest reading's age, not the last poll's
    assert layer.snapshot(now).age(now) == now - newest.to_pydatetime()
    assert dt.timedelta(seconds=2) < layer.health.data_age(now) < dt.timedelta(minutes=2)
    assert layer.health.late == 0 and not layer.health.dropped  # the default lookback (5 min) covers a minute of lateness
    assert layer.health.last_report is not None and layer.health.last_report.refetched > 0  # polls overlap on purpose


def test_a_lookback_shorter_than_the_lateness_is_caught_by_the_sweep_and_counted(onemap: OneMapDemo) -> None:
    start = onemap.fed_until
    assert start is not None
    scene = flood_scene(onemap.url, lookback="10s", sweep="2m")
    now = run_feed(onemap, scene, start)
    layer = scene["flood"]
    scene.tick(now + dt.timedelta(minutes=2))  # the feed has stopped; the next sweep finds what arrived late
    assert layer_readings(layer) == server_readings(onemap)
    assert layer.health.late > 0  # ...and the operator is told the lookback is too short


def test_polls_without_overlap_miss_late_readings(onemap: OneMapDemo) -> None:
    """The fault as it was: no lookback, no sweep. Shows the feeder's lateness is real."""
    start = onemap.fed_until
    assert start is not None
    scene = flood_scene(onemap.url, lookback="0s", sweep="0s")
    run_feed(onemap, scene, start, minutes=4)
    missed = server_readings(onemap) - layer_readings(scene["flood"])
    assert len(missed) > 20


def test_poll_interval_is_honoured(onemap: OneMapDemo) -> None:
    scene = flood_scene(onemap.url, poll_interval="30s")
    layer = scene["flood"]
    start = onemap.fed_until
    assert start is not None
    polls = []
    now = start
    for _ in range(24):  # two minutes in 5 s ticks
        now += STEP
        scene.tick(now)
        polls.append(layer.health.last_poll)
    assert len(set(polls)) == 4  # at 0 s, 30 s, 60 s, 90 s


def test_the_badge_shows_the_age_of_the_newest_reading(onemap: OneMapDemo) -> None:
    from twin.app.live import fmt_age, layer_live_info

    start = onemap.fed_until
    assert start is not None
    scene = flood_scene(onemap.url)
    now = run_feed(onemap, scene, start, minutes=1)
    layer = scene["flood"]
    age = now - layer.health.newest_reading
    info = layer_live_info(layer, now)
    assert info["age"] == f"data {fmt_age(age)} old" and age > dt.timedelta(seconds=2)
    # the feed stops: polls still succeed, but the data grows old and the badge says so
    later = now + dt.timedelta(minutes=12)
    scene.tick(later)
    info = layer_live_info(layer, later)
    assert layer.health.error is None and layer.health.last_success == later
    newest = layer.health.newest_reading
    assert layer.health.data_age(later) == later - newest > dt.timedelta(minutes=12)
    assert info["stale"] and info["age"] == f"data {fmt_age(later - newest)} old" and info["age"] != "data 0 s old"
    assert info["tip"].startswith(f"newest reading {newest.astimezone(dt.timezone(dt.timedelta(hours=8))):%H:%M:%S} +08:00: no new data for")
