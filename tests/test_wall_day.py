"""A compressed day on the wall: it starts at a chosen time of day, and a page slower than the server builds no backlog.

``TWIN_CLOCK_START`` starts the live clock at a given moment, so benchmark runs (``benchmarks/bench_wall.py``) simulate
the same day slice whenever they are started. The remote view's images wait for a slow page one per view, the newest
(:mod:`twin.app.image_sends`): the wall's server held ~100 MB of frames waiting to be sent during busy hours.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

import pytest

from twin.app.image_sends import IMAGE_TOPIC, NewestImages
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


class _Handler:
    """What NewestImages needs of a wslink handler: browsers, and sends that wait until the test lets them go."""

    def __init__(self) -> None:
        self.connections = {"page": object(), "gone": object()}
        self.authentified_client_ids = {"page"}
        self.pub_manager = self
        self.protocols = [self]
        self.publishCount = 0
        self.network_monitor = self
        self.sent: list[tuple[str, Any, str]] = []
        self.others: list[tuple[str, Any]] = []
        self.gate = asyncio.Event()
        self.in_flight = 0

    def isClientAuthenticated(self, client: str) -> bool:
        return client in self.authentified_client_ids

    def on_enter(self) -> None:
        self.in_flight += 1

    def on_exit(self) -> None:
        self.in_flight -= 1

    async def sendWrappedMessage(self, rpcid: str, data: Any, client_id: str) -> None:
        await self.gate.wait()
        self.sent.append((rpcid, data, client_id))

    def publish(self, topic: str, data: Any, client_id: str | None = None, skip_last_active_client: bool = False) -> None:
        self.others.append((topic, data))


def test_a_slow_page_keeps_one_image_per_view_waiting_and_gets_the_newest() -> None:
    """200 frames of a flight rendered while the page reads none: one is being sent, one waits; the last is sent."""

    async def flight() -> tuple[_Handler, NewestImages]:
        handler = _Handler()
        publish = NewestImages(handler.publish)
        publish("trame.state.topic", {"clock": "08:00"})
        for frame in range(200):
            publish(IMAGE_TOPIC, {"id": "1", "image": b"x" * 1000, "frame": frame})
            publish(IMAGE_TOPIC, {"id": "2", "image": b"y", "frame": frame}) if frame % 50 == 0 else None
            await asyncio.sleep(0)
        assert publish.waiting <= 2  # one per view, however many frames came
        handler.gate.set()
        for _ in range(10):
            await asyncio.sleep(0)
        return handler, publish

    handler, publish = asyncio.run(flight())
    frames = [(data["id"], data["frame"]) for _, data, _ in handler.sent]
    assert frames[0][1] < 5 and set(frames[1:]) == {("1", 199), ("2", 150)}  # an early frame (sent once the loop runs), then each view's newest
    assert len(frames) == 3 and publish.replaced == 200 + 4 - 3  # 204 published, 3 sent
    assert {client for _, _, client in handler.sent} == {"page"}  # only authenticated browsers
    assert handler.others == [("trame.state.topic", {"clock": "08:00"})] and handler.in_flight == 0 and publish.waiting == 0


def test_a_send_that_fails_is_logged_and_the_next_image_still_goes(caplog: pytest.LogCaptureFixture) -> None:
    async def flaky() -> _Handler:
        handler = _Handler()
        handler.gate.set()
        real = handler.sendWrappedMessage

        async def send(rpcid: str, data: Any, client_id: str) -> None:
            if data["frame"] == 0:
                raise ConnectionResetError("browser gone")
            await real(rpcid, data, client_id)

        handler.sendWrappedMessage = send  # type: ignore[method-assign]
        publish = NewestImages(handler.publish)
        publish(IMAGE_TOPIC, {"id": "1", "frame": 0})
        await asyncio.sleep(0.01)
        publish(IMAGE_TOPIC, {"id": "1", "frame": 1})
        await asyncio.sleep(0.01)
        return handler

    with caplog.at_level(logging.INFO, logger="twin.app.image_sends"):
        handler = asyncio.run(flaky())
    assert [data["frame"] for _, data, _ in handler.sent] == [1] and handler.in_flight == 0
    assert "image to browser page not sent: browser gone" in caplog.text
