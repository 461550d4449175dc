"""Base for layers fed by readings: polling with a health record, history, scene time.

A poll that fails keeps the last good data; the health record (last success, last error,
data age) drives the app's stale badge and stale-source alerts.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pydantic import Field, field_validator

from twin.alerts.rules import parse_duration
from twin.errors import LayerDataError
from twin.layer import Layer, LayerParams
from twin.live import LiveSnapshot
from twin.readings import ReadingsBuffer
from twin.source import ReadingsSource

__all__ = ["ReadingsLayer", "ReadingsParams"]

log = logging.getLogger(__name__)


class ReadingsParams(LayerParams):
    history: dt.timedelta = Field(dt.timedelta(hours=24), description="how much history to keep for replay, e.g. 6h")
    stale_after: dt.timedelta = Field(dt.timedelta(minutes=10), description="a sensor silent for longer is shown as stale (no data), not 0")

    _durations = field_validator("history", "stale_after", mode="before")(classmethod(lambda cls, v: parse_duration(v)))


class ReadingsLayer(Layer):
    """A layer whose ``source`` is a :class:`~twin.source.ReadingsSource`."""

    Params = ReadingsParams
    params: ReadingsParams
    min_value: float | None = None

    def __init__(self, id: str, **kwargs: Any) -> None:
        super().__init__(id, **kwargs)
        if self.source is not None and not isinstance(self.source, ReadingsSource):
            raise LayerDataError(f"layer {id!r} needs a source of readings; {self.source.describe()} gives features")
        self.buffer = ReadingsBuffer(self.params.history, min_value=self.min_value)
        self.now: dt.datetime | None = None
        self._pulled_until: dt.datetime | None = None

    def refresh(self, now: dt.datetime) -> None:
        """Fetch readings newer than the last poll, up to ``now``; on failure keep what we have."""
        if not isinstance(self.source, ReadingsSource):
            return
        start = self._pulled_until or (now - self.params.history)
        try:
            frame = self.source.readings(start, now)
            report = self.buffer.ingest(frame, now)
        except Exception as exc:  # noqa: BLE001  (the wall keeps showing the last good data)
            where = self.source.describe()
            self.health.last_error = now
            self.health.error = str(exc) if str(exc).startswith(where) else f"{where}: {exc}"
            log.warning("layer %s: poll failed: %s", self.id, self.health.error)
            return
        self._pulled_until = now
        self.health.last_success = now
        self.health.error = None
        self.health.last_report = report
        if report.total_dropped:
            log.info("layer %s: dropped %s", self.id, report.dropped)

    def set_time(self, now: dt.datetime) -> None:
        if now.tzinfo is None:
            raise LayerDataError(f"layer {self.id!r}: scene time must be timezone-aware")
        self.now = now
        self.invalidate()

    def snapshot(self, now: dt.datetime) -> LiveSnapshot:  # pragma: no cover - each layer defines its own
        raise NotImplementedError
