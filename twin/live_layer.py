"""Base for layers fed by readings: polling with a health record, history, scene time.

A poll that fails keeps the last good data; the health record (last success, last error,
data age) drives the app's stale badge and stale-source alerts.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pydantic import Field, field_validator

from twin.alerts.rules import parse_duration
from twin.errors import LayerDataError
from twin.layer import Layer, LayerParams
from twin.live import LiveSnapshot
from twin.readings import ReadingsBuffer
from twin.source import ReadingsSource

__all__ = ["ReadingsLayer", "ReadingsParams", "ReadingsPoll"]

log = logging.getLogger(__name__)


class ReadingsParams(LayerParams):
    history: dt.timedelta = Field(dt.timedelta(hours=24), description="how much history to keep for replay, e.g. 6h")
    stale_after: dt.timedelta = Field(dt.timedelta(minutes=10), description="a sensor silent for longer is shown as stale (no data), not 0")

    _durations = field_validator("history", "stale_after", mode="before")(classmethod(lambda cls, v: parse_duration(v)))


@dataclass(frozen=True)
class ReadingsPoll:
    """One poll's result, fetched but not yet applied: the readings frame, or the error the source raised."""

    now: dt.datetime
    sweeping: bool
    late_before: dt.datetime | None
    frame: pd.DataFrame | None = None
    error: BaseException | None = None


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
        self._swept_at: dt.datetime | None = None

    def refresh(self, now: dt.datetime) -> None:
        """Poll the source (when its ``poll_interval`` is due) up to ``now``; on failure keep what we have.

        Polls overlap by the source's ``lookback`` and re-read the whole history every
        ``sweep`` (see :class:`~twin.source.ReadingsSourceParams`), so a reading that reaches
        the service after its time stamp still reaches the layer; readings already held are
        not added twice. The health record gets the newest reading's time (the layer's data
        age), the poll times and the drop counts by reason.

        The same as :meth:`fetch` (source I/O, may wait on the network) then :meth:`apply`
        (changes the layer): a caller that must not wait while holding the layer runs them apart.
        """
        poll = self.fetch(now)
        if poll is not None:
            self.apply(poll)

    def fetch(self, now: dt.datetime) -> ReadingsPoll | None:
        """Read the source for a poll due at ``now`` (None when not due); touches nothing but ``health.last_poll``."""
        source = self.source
        if not isinstance(source, ReadingsSource):
            return None
        health = self.health
        interval = getattr(source.params, "poll_interval", None)
        if interval and health.last_poll is not None and dt.timedelta(0) <= now - health.last_poll < interval:
            return None
        history_start = now - self.params.history
        first = self._pulled_until is None
        sweep = source.sweep
        sweeping = first or bool(sweep) and (self._swept_at is None or now - self._swept_at >= sweep)
        late_before = None if first else self._pulled_until - source.lookback  # type: ignore[operator]
        start = history_start if sweeping else max(history_start, late_before)  # type: ignore[type-var]
        if not (source.lookback or sweep):  # "late" means found by a sweep past the overlap: a source that cannot be late counts none
            late_before = None
        health.last_poll = now
        try:
            return ReadingsPoll(now, sweeping, late_before, frame=source.readings(start, now))
        except Exception as exc:  # noqa: BLE001  (the wall keeps showing the last good data)
            return ReadingsPoll(now, sweeping, late_before, error=exc)

    def apply(self, poll: ReadingsPoll) -> None:
        """Add a fetched poll's readings to the buffer and record the poll in the health record."""
        assert isinstance(self.source, ReadingsSource)
        source, health, now = self.source, self.health, poll.now
        try:
            if poll.error is not None:
                raise poll.error
            report = self.buffer.ingest(poll.frame, now, late_before=poll.late_before)
        except Exception as exc:  # noqa: BLE001  (the wall keeps showing the last good data)
            where = source.describe()
            health.last_error = now
            health.error = str(exc) if str(exc).startswith(where) else f"{where}: {exc}"
            log.warning("layer %s: poll failed: %s", self.id, health.error)
            return
        if poll.sweeping:
            self._swept_at = now
        self._pulled_until = now
        health.last_success = now
        health.error = None
        health.last_report = report
        health.dropped.update(report.dropped)
        health.late += report.late
        health.revised += report.revised
        newest = self.buffer.newest()
        health.newest_reading = None if newest is None else newest.to_pydatetime()
        if report.total_dropped:
            log.info("layer %s: dropped %s", self.id, dict(report.dropped))
        if report.late:
            log.warning(
                "layer %s: %d reading(s) reached %s more than lookback=%s after their time; raise lookback",
                self.id, report.late, source.describe(), source.lookback,
            )

    def newest_reading(self, at: dt.datetime | None = None) -> dt.datetime | None:
        """Time of the newest reading held (at or before ``at`` when given): what data age is measured from."""
        newest = self.buffer.newest(at)
        return None if newest is None else newest.to_pydatetime()

    def set_time(self, now: dt.datetime) -> None:
        if now.tzinfo is None:
            raise LayerDataError(f"layer {self.id!r}: scene time must be timezone-aware")
        self.now = now
        self.invalidate()

    def snapshot(self, now: dt.datetime) -> LiveSnapshot:  # pragma: no cover - each layer defines its own
        raise NotImplementedError
