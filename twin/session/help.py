"""Help within reach of an alert, and how far back the live layers' history goes: model queries, no view.

>>> import twin
>>> resource_layer_ids(twin.Scene(center=(121.48, 31.23)), None)
[]
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable, Sequence

import geopandas as gpd
import pandas as pd

from twin.alerts.engine import Alert
from twin.alerts.nearby import reach_features, resources_within
from twin.errors import TwinError
from twin.live import LiveLayer
from twin.readings import ReadingsBuffer
from twin.scene.model import Scene
from twin.session.events import Focus

__all__ = ["focus_of", "oldest_reading", "replay_start", "resource_layer_ids"]

log = logging.getLogger(__name__)


def resource_layer_ids(scene: Scene, names: Iterable[str] | None) -> list[str]:
    """Ids of the layers named (by id or title) in ``names``, plus a layer with id ``resources``; unknown names are logged."""
    ids: list[str] = []
    for name in names or ():
        match = next((layer.id for layer in scene.layers if name in (layer.id, layer.title)), None)
        if match is None:
            log.warning("resource layer %r is not in scene %r", name, scene.name)
        elif match not in ids:
            ids.append(match)
    if "resources" not in ids and any(layer.id == "resources" for layer in scene.layers):
        ids.append("resources")
    return ids


def _resource_data(scene: Scene, layer_ids: Sequence[str]) -> dict[str, gpd.GeoDataFrame]:
    """The features of each resource layer that can be read (the others are logged and skipped)."""
    data = {}
    for layer_id in layer_ids:
        try:
            data[layer_id] = scene[layer_id].data()
        except (KeyError, TwinError) as exc:
            log.warning("resource layer %s: %s", layer_id, exc)
    return data


def focus_of(scene: Scene, alert: Alert, layer_ids: Sequence[str], radius_m: float) -> Focus:
    """The :class:`Focus` on ``alert``: its location and the resources of ``layer_ids`` within ``radius_m`` metres."""
    lon, lat = alert.lon, alert.lat
    name = alert.name or alert.key
    if lon is None or lat is None or not (math.isfinite(lon) and math.isfinite(lat)):
        return Focus(alert.id, name, None, None, radius_m, tuple(layer_ids))
    if not layer_ids:
        return Focus(alert.id, name, lon, lat, radius_m, ())
    data = _resource_data(scene, layer_ids)
    found = resources_within(lon, lat, data, radius_m=radius_m) if data else pd.DataFrame(columns=["layer", "feature", "distance_m", "lon", "lat"])
    return Focus(alert.id, name, lon, lat, radius_m, tuple(layer_ids), found, reach_features(lon, lat, found, radius_m=radius_m))


def oldest_reading(scene: Scene) -> dt.datetime | None:
    """Time (UTC, whole seconds, floored) of the oldest reading any live layer keeps; None while none keeps any.

    Read from each live layer's readings buffer (``layer.buffer``); a live layer without one keeps no history to replay.
    """
    oldest = [int(times[0]) for layer in scene.layers if isinstance(layer, LiveLayer)
              and isinstance(buffer := getattr(layer, "buffer", None), ReadingsBuffer) and len(times := buffer.column("t"))]
    return dt.datetime.fromtimestamp(min(oldest) // 1_000_000_000, dt.timezone.utc) if oldest else None


def replay_start(scene: Scene, now: dt.datetime) -> dt.datetime:
    """Where replay can start (it ends at ``now``): the oldest reading kept across the live layers; ``now`` while none holds one."""
    oldest = oldest_reading(scene)
    return now if oldest is None else min(oldest, now)
