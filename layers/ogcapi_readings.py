"""Readings from an OGC API – Features collection with a time property (live sensor layers).

Each poll asks for ``datetime=START/END`` and keeps features with ``time <= END`` (servers
differ on whether interval ends are inclusive, and some ignore ``datetime``). Features older
than ``START`` that a server returns anyway are kept too: the layer recognises readings it
already holds, and one it does not hold arrived late and must not be lost. The layer polls
with overlapping windows (``lookback``, default 3 poll intervals and at least 5 minutes) and
re-reads its whole history every ``sweep``, so readings written to the service after their
time stamp still arrive. A reading is identified by (sensor, time); with no
``sensor_property`` each feature is its own sensor, named by its feature id.

Scene file::

    source:
      type: ogcapi_readings
      url: http://127.0.0.1:5000/
      collection: flood_readings
      time_property: time
      value_property: value
      sensor_property: sensor_id
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field
from twin_layers.ogcapi import OgcApiFeaturesSource, OgcApiParams, iso_z

from twin.errors import SourceError
from twin.source import ReadingsSource, ReadingsSourceParams

__all__ = ["OgcApiReadingsSource"]


class OgcApiReadingsParams(OgcApiParams, ReadingsSourceParams):
    time_property: str = Field("time", description="attribute with each reading's time")  # type: ignore[assignment]
    value_property: str = Field("value", description="attribute with the reading's value")
    sensor_property: str | None = Field(None, description="attribute with the sensor id (default: one per feature, named by its feature id)")


class OgcApiReadingsSource(ReadingsSource):
    """Time-stamped readings from an OGC API – Features collection."""

    type_name = "ogcapi_readings"
    Params = OgcApiReadingsParams
    params: OgcApiReadingsParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._features = OgcApiFeaturesSource(**self.params.model_dump(include=set(OgcApiParams.model_fields), exclude_defaults=True))

    def close(self) -> None:
        self._features.close()

    def describe(self) -> str:
        return f"readings of OGC API collection {self.params.collection!r} at {self.params.url}"

    def readings(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        lo, hi = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
        self._features.params.datetime = f"{iso_z(lo)}/{iso_z(hi)}"
        frame = self._features.read()
        p = self.params
        missing = [c for c in (p.time_property, p.value_property, p.sensor_property) if c and c not in frame.columns and len(frame)]
        if missing:
            raise SourceError(f"{self.describe()}: features have no {', '.join(map(repr, missing))}; attributes: {', '.join(map(str, frame.columns))}")
        if frame.empty:
            return pd.DataFrame(columns=["sensor_id", "lon", "lat", "time", "value"])
        times = pd.to_datetime(frame[p.time_property], utc=True, errors="coerce", format="mixed")
        out = pd.DataFrame(
            {
                "sensor_id": frame[p.sensor_property].astype(str).to_numpy() if p.sensor_property else _feature_ids(frame),
                "lon": frame.geometry.x.to_numpy(),
                "lat": frame.geometry.y.to_numpy(),
                "time": times.to_numpy(),
                "value": pd.to_numeric(frame[p.value_property], errors="coerce").to_numpy(),
            }
        )
        out["time"] = pd.to_datetime(out["time"], utc=True)
        keep = out["time"].isna() | (out["time"] <= hi)  # later ones come with the next poll
        return out[keep.to_numpy()].reset_index(drop=True)


def _feature_ids(frame: pd.DataFrame) -> np.ndarray:
    """Each feature's id (the ``id`` column OGC API sources keep, else its row), as text."""
    ids = frame["id"] if "id" in frame.columns else pd.Series(frame.index)
    return ids.astype(str).to_numpy()
