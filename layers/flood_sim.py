"""Simulated rain: water depth (cm) at the demo district's flood points, as a readings source.

Deterministic in time (replay and tests see the same values): storms repeat every ``cycle``,
rain lasting ``storm``; each point floods with its own peak and lag, hidden-danger points
deepest. A few sensors go silent mid-storm, as real gauges do, to exercise stale handling.

Scene file::

    source: {type: flood_sim, cycle: 30m, storm: 20m}
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from twin.alerts.rules import parse_duration
from twin.demo.district import cached_district
from twin.source import ReadingsSource, SourceParams

__all__ = ["FloodSimSource"]

_EPOCH = pd.Timestamp("2026-01-01T00:00:00Z")


class FloodSimParams(SourceParams):
    seed: int = Field(0, description="demo district seed (which flood points)")
    cycle: dt.timedelta = Field(dt.timedelta(minutes=30), description="a storm starts every cycle")
    storm: dt.timedelta = Field(dt.timedelta(minutes=20), description="how long each storm's rain lasts")
    interval: dt.timedelta = Field(dt.timedelta(seconds=60), description="time between a sensor's readings")
    silent_fraction: float = Field(0.1, ge=0, le=1, description="share of sensors that go silent mid-storm")

    _durations = field_validator("cycle", "storm", "interval", mode="before")(classmethod(lambda cls, v: parse_duration(v)))


class FloodSimSource(ReadingsSource):
    """Simulated water-depth readings at the demo flood points."""

    type_name = "flood_sim"
    default_lookback = dt.timedelta(0)  # readings computed from the clock never arrive late
    default_sweep = dt.timedelta(0)
    Params = FloodSimParams
    params: FloodSimParams

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._station_table: pd.DataFrame | None = None

    def describe(self) -> str:
        return "simulated flood readings"

    def _stations(self) -> pd.DataFrame:
        if self._station_table is None:
            self._station_table = self._make_stations()
        return self._station_table

    def _make_stations(self) -> pd.DataFrame:
        points = cached_district(seed=self.params.seed, n_buildings=30_000).flood_points
        rng = np.random.default_rng(self.params.seed + 4242)
        n = len(points)
        hidden = points["hidden_danger"].to_numpy(dtype=bool)
        peak = np.where(hidden, rng.uniform(18, 45, n), rng.uniform(2, 26, n))
        lag = rng.uniform(0.0, 0.3, n)
        silent = rng.random(n) < self.params.silent_fraction
        return pd.DataFrame(
            {"sensor_id": points["id"].astype(str), "lon": points.geometry.x, "lat": points.geometry.y, "peak": peak, "lag": lag, "silent": silent, "phase": rng.random(n)}
        )

    def readings(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        stations = self._stations()
        step = pd.Timedelta(self.params.interval)
        start_ts, end_ts = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
        first = _EPOCH + ((start_ts - _EPOCH) // step + 1) * step
        times = pd.date_range(first, end_ts, freq=step)
        if len(times) == 0:
            return pd.DataFrame(columns=["sensor_id", "lon", "lat", "time", "value"])
        cycle = self.params.cycle.total_seconds()
        storm = self.params.storm.total_seconds()
        seconds = (times - _EPOCH).total_seconds().to_numpy()
        phase = (seconds % cycle) / storm  # 0..1 while it rains
        # water rises with the rain and drains over a further half storm
        u = (phase[None, :] - stations["lag"].to_numpy()[:, None]) / 1.5
        shape = np.where((u > 0) & (u < 1), np.sin(np.pi * np.clip(u, 0, 1)) ** 1.5, 0.0)
        ripple = 0.6 * np.sin(seconds[None, :] / 47.0 + stations["phase"].to_numpy()[:, None] * 6.28)
        depth = np.clip(stations["peak"].to_numpy()[:, None] * shape + np.where(shape > 0, ripple, 0.0), 0.0, None)
        reporting = ~(stations["silent"].to_numpy()[:, None] & (phase[None, :] > 0.4) & (phase[None, :] < 1.2))
        ids = np.repeat(stations["sensor_id"].to_numpy(), len(times))
        frame = pd.DataFrame(
            {
                "sensor_id": ids,
                "lon": np.repeat(stations["lon"].to_numpy(), len(times)),
                "lat": np.repeat(stations["lat"].to_numpy(), len(times)),
                "time": np.tile(times, len(stations)),
                "value": np.round(depth, 1).ravel(),
            }
        )
        return frame[reporting.ravel()].reset_index(drop=True)
