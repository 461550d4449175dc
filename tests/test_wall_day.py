"""A compressed day on the wall: it starts at a chosen time of day, and what it holds does not swing with the time of day.

``TWIN_CLOCK_START`` starts the live clock at a given moment, so benchmark runs (``benchmarks/bench_wall.py``) simulate
the same day slice whenever they are started.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from twin.errors import TwinError
from twin.scene.model import Scene
from twin.session.session import Session, clock_start, live_clock

MIDNIGHT = dt.datetime(2026, 7, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def test_the_clock_starts_at_the_given_moment_and_runs_at_the_given_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_CLOCK_START", "2026-07-01T00:00+08:00")
    monkeypatch.setenv("TWIN_CLOCK_SPEED", "3600")
    clock = live_clock()
    first = clock()
    assert dt.timedelta(0) <= first - MIDNIGHT < dt.timedelta(seconds=3600)  # 1 s of a busy machine at most
    assert first.tzinfo == dt.timezone.utc
    time.sleep(0.05)
    assert dt.timedelta(seconds=150) < clock() - first < dt.timedelta(seconds=3600)
    session = Session(Scene(center=(121.48, 31.23)), tick_seconds=1)  # a served scene's session takes its clock from the environment
    assert dt.timedelta(0) <= session.clock() - MIDNIGHT < dt.timedelta(hours=1)


def test_a_real_time_clock_from_a_start_runs_at_real_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWIN_CLOCK_SPEED", raising=False)
    monkeypatch.setenv("TWIN_CLOCK_START", "2026-07-01T05:40:00+08:00")
    clock = live_clock()
    assert dt.timedelta(0) <= clock() - MIDNIGHT.replace(hour=5, minute=40) < dt.timedelta(seconds=5)
    monkeypatch.delenv("TWIN_CLOCK_START")
    assert abs((live_clock()() - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 1


@pytest.mark.parametrize(("text", "message"), [
    ("midnight", "TWIN_CLOCK_START='midnight' is not an ISO time with a UTC offset, e.g. 2026-07-01T00:00+08:00"),
    ("2026-07-01T00:00", "TWIN_CLOCK_START='2026-07-01T00:00' is not an ISO time with a UTC offset, e.g. 2026-07-01T00:00+08:00"),
    ("2026-13-01T00:00+08:00", "TWIN_CLOCK_START='2026-13-01T00:00+08:00' is not an ISO time with a UTC offset, e.g. 2026-07-01T00:00+08:00"),
])
def test_a_start_that_is_not_an_aware_iso_time_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch, text: str, message: str) -> None:
    monkeypatch.setenv("TWIN_CLOCK_START", text)
    with pytest.raises(TwinError) as caught:
        live_clock()
    assert str(caught.value) == message


def test_an_explicit_start_needs_an_offset() -> None:
    assert clock_start("2026-07-01T00:00:00+08:00") == dt.datetime(2026, 6, 30, 16, tzinfo=dt.timezone.utc)
    assert clock_start("2026-07-01T00:00:00Z") == dt.datetime(2026, 7, 1, tzinfo=dt.timezone.utc)
    with pytest.raises(TwinError, match=r"^clock start 2026-07-01T00:00:00 needs a UTC offset"):
        live_clock(144.0, dt.datetime(2026, 7, 1))
