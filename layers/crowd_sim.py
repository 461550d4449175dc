"""Simulated crowd: anonymous device pings over the demo district, as a readings source.

Each ping is one reading of value 1 (count them per H3 cell). Density follows the buildings
(people are where floor space is), scaled by a daily rhythm (quiet at night, peaks at lunch
and in the evening), plus an evening surge along the pedestrian street (南京路步行街) that
peaks around 20:00 Shanghai time — the situation the command hall watches on holidays.
Deterministic per minute, so replay and tests see the same crowd.

Scene file::

    source: {type: crowd_sim, pings_per_minute: 20000}
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import shapely
from pydantic import Field

from twin.demo.district import cached_district
from twin.source import ReadingsSource, SourceParams

__all__ = ["CrowdSimSource", "daily_rhythm"]

_SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def daily_rhythm(hour: np.ndarray) -> np.ndarray:
    """Relative activity by local hour (0-24): ~0.15 at 4:00, peaks near 12:30 and 19:30."""
    return 0.15 + 0.6 * np.exp(-((hour - 12.5) / 2.5) ** 2) + 0.85 * np.exp(-((hour - 19.5) / 2.2) ** 2) + 0.3 * np.exp(-((hour - 8.5) / 1.2) ** 2)


def surge(hour: np.ndarray) -> np.ndarray:
    """Extra crowd on the pedestrian street, relative to its base: up to 6x around 20:00."""
    return 6.0 * np.exp(-((hour - 20.0) / 1.3) ** 2)


class CrowdSimParams(SourceParams):
    seed: int = Field(0, description="demo district seed")
    pings_per_minute: int = Field(20_000, ge=1, le=2_000_000, description="pings per minute at the daily peak (without the surge)")
    street_share: float = Field(0.04, ge=0, le=1, description="share of base pings on the pedestrian street")


class CrowdSimSource(ReadingsSource):
    """Simulated device pings (value 1 each) with a daily rhythm and a pedestrian-street surge."""

    type_name = "crowd_sim"
    default_lookback = dt.timedelta(0)  # readings computed from the clock never arrive late
    default_sweep = dt.timedelta(0)
    Params = CrowdSimParams
    params: CrowdSimParams

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._places: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def describe(self) -> str:
        return "simulated crowd pings"

    def _sites(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Building centroids with floor-space weights, and points along the pedestrian street."""
        if self._places is None:
            district = cached_district(seed=self.params.seed, n_buildings=30_000)
            buildings = district.buildings
            centres = shapely.centroid(buildings.geometry.to_numpy())
            weight = shapely.area(buildings.to_crs(buildings.estimate_utm_crs()).geometry.to_numpy()) * buildings["floors"].to_numpy()
            xy = np.column_stack([shapely.get_x(centres), shapely.get_y(centres)])
            street = district.roads[district.roads["kind"] == "pedestrian"].geometry.union_all()
            along = shapely.line_interpolate_point(street, np.linspace(0, 1, 400), normalized=True) if not street.is_empty else shapely.points(xy[:1])
            street_xy = np.column_stack([shapely.get_x(along), shapely.get_y(along)])
            self._places = (xy, weight / weight.sum(), street_xy)
        return self._places

    def readings(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        xy, weight, street_xy = self._sites()
        first = pd.Timestamp(start).tz_convert("UTC").floor("min") + pd.Timedelta(minutes=1)
        minutes = pd.date_range(first, pd.Timestamp(end).tz_convert("UTC"), freq="min")
        frames = []
        cdf = np.cumsum(weight)
        for minute in minutes:
            local = minute.tz_convert(_SHANGHAI)
            hour = local.hour + local.minute / 60.0
            rng = np.random.default_rng([self.params.seed, int(minute.value // 60_000_000_000)])
            base = int(self.params.pings_per_minute * daily_rhythm(np.array(hour)) / 1.45)
            on_street = int(base * self.params.street_share * (1.0 + surge(np.array(hour))))
            picks = np.searchsorted(cdf, rng.random(base) * cdf[-1])
            spots = np.concatenate([xy[np.minimum(picks, len(xy) - 1)], street_xy[rng.integers(0, len(street_xy), on_street)]])
            jitter = rng.normal(0.0, [0.0004, 0.00035], size=spots.shape)  # ~40 m
            seconds = rng.integers(0, 60, len(spots))
            frames.append(
                pd.DataFrame(
                    {"lon": spots[:, 0] + jitter[:, 0], "lat": spots[:, 1] + jitter[:, 1],
                     "time": minute - pd.Timedelta(seconds=60) + pd.to_timedelta(seconds + 1, unit="s"), "value": 1.0}
                )
            )
        if not frames:
            return pd.DataFrame(columns=["lon", "lat", "time", "value"])
        return pd.concat(frames, ignore_index=True)  # anonymous pings: no sensor_id
