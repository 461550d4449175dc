"""What a :class:`~twin.session.Session` tells its views: small frozen records, one per kind of change."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

import geopandas as gpd
import pandas as pd

__all__ = ["ChangeKind", "Focus", "HealthChange", "LayerChange", "Selection", "TimeChange"]

ChangeKind = Literal["data", "geometry", "style", "visibility"]


@dataclass(frozen=True)
class LayerChange:
    """A layer changed: ``kinds`` says what (new data, geometry, colours/opacity, visibility)."""

    layer_id: str
    kinds: frozenset[ChangeKind]


@dataclass(frozen=True)
class TimeChange:
    """The time shown (``shown``, tz-aware; None before any) and the live clock (``now``, the last tick's time).

    ``live``: the view follows the clock; False while replaying (ticks still poll and evaluate alerts at ``now``).
    """

    shown: dt.datetime | None
    now: dt.datetime
    live: bool


@dataclass(frozen=True)
class HealthChange:
    """Layers whose source health changed (error, newest reading, last success), and the last tick's error ("" if none)."""

    layer_ids: tuple[str, ...]
    tick_error: str


@dataclass(frozen=True)
class Focus:
    """A focused alert: where it is and the help within reach (``radius_m`` metres, great-circle).

    ``lon``/``lat`` are None when the alert has no finite location. ``resources``: one row per
    resource found, nearest first (columns ``layer``, ``feature``, ``distance_m``, ``lon``, ``lat``
    and ``name``/``kind`` where the layers have them). ``reach``: what a view highlights — the
    search circle and the resources (EPSG:4326, columns ``kind``, ``name``, ``distance_m``);
    None without resource layers or location.
    """

    alert_id: str
    name: str
    lon: float | None
    lat: float | None
    radius_m: float
    resource_layers: tuple[str, ...]
    resources: pd.DataFrame = field(default_factory=pd.DataFrame)
    reach: gpd.GeoDataFrame | None = None


@dataclass(frozen=True)
class Selection:
    """A picked feature: its layer, row, attributes and where it was picked (WGS84; None if unknown)."""

    layer_id: str
    feature: int
    attributes: dict[str, object]
    lon: float | None = None
    lat: float | None = None
