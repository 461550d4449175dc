"""The synthetic demo district as a source (generated deterministically, cached on disk).

Scene file::

    source: {type: demo, dataset: buildings}
"""

from __future__ import annotations

from typing import Literal

import geopandas as gpd
from pydantic import Field

from twin.demo.district import GENERATOR_VERSION, cached_district
from twin.source import BBox, Source, SourceParams

__all__ = ["DemoSource"]

Dataset = Literal["boundary", "river", "roads", "buildings", "flood_points", "sensor_sites", "resources"]


class DemoSourceParams(SourceParams):
    dataset: Dataset = Field(description="which part of the demo district")
    seed: int = Field(0, description="generator seed; the same seed always gives the same district")
    n_buildings: int = Field(30_000, ge=0, le=2_000_000, description="number of buildings to generate")


class DemoSource(Source):
    """One dataset of the synthetic Huangpu-like demo district."""

    type_name = "demo"
    Params = DemoSourceParams
    params: DemoSourceParams

    def describe(self) -> str:
        return f"demo source {self.params.dataset!r}"

    def data_key(self) -> str:
        """The generator's version and arguments: the same ones always give the same district."""
        return f"demo generator v{GENERATOR_VERSION}: {self.params.model_dump_json()}"

    def read(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        district = cached_district(seed=self.params.seed, n_buildings=self.params.n_buildings)
        data: gpd.GeoDataFrame = getattr(district, self.params.dataset)
        if bbox is not None and not data.empty:
            data = data.cx[bbox[0] : bbox[2], bbox[1] : bbox[3]]
        return data
