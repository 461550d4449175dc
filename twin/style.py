"""Colours, colormaps and legends, computed in the model as plain arrays.

A style change recomputes an RGBA array and a :class:`Legend`; geometry is never touched.

>>> to_rgba8("#ff0000")
(255, 0, 0, 255)
>>> colors, legend = categorical_colors(["a", "b", "a"], palette="tab10", title="kind")
>>> colors.shape, [e.label for e in legend.entries]
((3, 4), ['a', 'b'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_rgba
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, model_validator

from twin.errors import LayerDataError

__all__ = [
    "Legend",
    "LegendEntry",
    "ValueRange",
    "Where",
    "attribute_colors",
    "categorical_colors",
    "continuous_colors",
    "rows_where",
    "to_rgba8",
    "validate_color",
    "validate_colormap",
]

RGBA8 = tuple[int, int, int, int]


def to_rgba8(color: str | Sequence[float]) -> RGBA8:
    """A colour name, ``#rrggbb[aa]`` or an RGB(A) tuple in 0–1, as 8-bit RGBA."""
    try:
        r, g, b, a = to_rgba(color)  # type: ignore[arg-type]
    except ValueError as exc:
        raise LayerDataError(f"invalid colour {color!r}: use a name like 'steelblue' or '#rrggbb'") from exc
    return (round(r * 255), round(g * 255), round(b * 255), round(a * 255))


def validate_color(value: str) -> str:
    """Pydantic-friendly check that ``value`` is a colour; returns it unchanged."""
    try:
        to_rgba(value)
    except ValueError as exc:
        raise ValueError(f"invalid colour {value!r}: use a name like 'steelblue' or '#rrggbb'") from exc
    return value


def validate_colormap(value: str) -> str:
    """Pydantic-friendly check that ``value`` names a matplotlib colormap."""
    if value not in colormaps:
        raise ValueError(f"unknown colormap {value!r}; e.g. viridis, magma, YlOrRd, tab10")
    return value


@dataclass(frozen=True)
class LegendEntry:
    label: str
    color: RGBA8


@dataclass(frozen=True)
class Legend:
    """What a view shows beside a layer: labelled swatches, or a colour bar with a range."""

    title: str
    entries: tuple[LegendEntry, ...] = ()
    colormap: str | None = None
    vmin: float | None = None
    vmax: float | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def is_continuous(self) -> bool:
        return self.colormap is not None


def categorical_colors(
    values: ArrayLike,
    *,
    palette: str = "tab10",
    mapping: Mapping[str, str] | None = None,
    title: str = "",
    missing: str = "#9e9e9e",
) -> tuple[NDArray[np.uint8], Legend]:
    """One RGBA row per value from a qualitative palette (or an explicit value → colour mapping)."""
    series = pd.Series(np.asarray(values, dtype=object))
    labels = series.where(series.notna(), None)
    keys = [k for k in pd.unique(labels.dropna().astype(str))]
    keys.sort()
    cmap = colormaps[palette]
    n_colors = getattr(cmap, "N", 256)
    lut: dict[str, RGBA8] = {}
    for i, key in enumerate(keys):
        if mapping and key in mapping:
            lut[key] = to_rgba8(mapping[key])
        else:
            lut[key] = to_rgba8(cmap((i % n_colors) / max(n_colors - 1, 1)) if n_colors > 32 else cmap(i % n_colors))
    missing_rgba = to_rgba8(missing)
    out = np.empty((len(series), 4), dtype=np.uint8)
    codes = labels.astype(str).where(labels.notna(), None)
    for key, rgba in lut.items():
        out[(codes == key).to_numpy()] = rgba
    out[labels.isna().to_numpy()] = missing_rgba
    entries = tuple(LegendEntry(k, lut[k]) for k in keys)
    if labels.isna().any():
        entries += (LegendEntry("(no value)", missing_rgba),)
    return out, Legend(title=title, entries=entries)


def continuous_colors(
    values: ArrayLike,
    *,
    colormap: str = "viridis",
    clim: tuple[float, float] | None = None,
    title: str = "",
    missing: str = "#9e9e9e",
) -> tuple[NDArray[np.uint8], Legend]:
    """One RGBA row per value through a colormap; NaN gets ``missing``. ``clim`` defaults to the data's 2–98 %."""
    data = pd.to_numeric(pd.Series(np.asarray(values)), errors="coerce").to_numpy(dtype=np.float64)
    finite = np.isfinite(data)
    if clim is None:
        if finite.any():
            lo, hi = np.percentile(data[finite], [2, 98])
        else:
            lo, hi = 0.0, 1.0
    else:
        lo, hi = clim
    span = hi - lo if hi > lo else 1.0
    scaled = np.clip((np.where(finite, data, lo) - lo) / span, 0.0, 1.0)
    out = (np.asarray(colormaps[colormap](scaled)) * 255).round().astype(np.uint8)
    out[~finite] = to_rgba8(missing)
    return out, Legend(title=title, colormap=colormap, vmin=float(lo), vmax=float(hi))


def attribute_colors(
    data: pd.DataFrame,
    column: str | None,
    *,
    color: str,
    colormap: str = "viridis",
    clim: tuple[float, float] | None = None,
    palette: str = "tab10",
    categories: Mapping[str, str] | None = None,
    where: str = "layer",
) -> tuple[NDArray[np.uint8], Legend | None]:
    """One RGBA row per data row: ``color`` everywhere, or by ``column`` — numbers through
    ``colormap`` (unless ``categories`` is given), anything else through ``palette``."""
    if column is None:
        return np.tile(np.asarray(to_rgba8(color), dtype=np.uint8), (len(data), 1)), None
    if column not in data.columns:
        names = ", ".join(str(c) for c in data.columns if c != getattr(data, "geometry", pd.Series(name=None)).name)
        raise LayerDataError(f"{where}: no attribute {column!r} to colour by; attributes: {names}")
    values = data[column]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values) and categories is None:
        return continuous_colors(values.to_numpy(), colormap=colormap, clim=clim, title=column)
    return categorical_colors(values.to_numpy(), palette=palette, mapping=categories, title=column)


class ValueRange(BaseModel):
    """An inclusive numeric range of a filter (``{min: 30}``, ``{min: 0, max: 50}``); either end may be open."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ValueRange:
        if self.min is None and self.max is None:
            raise ValueError("a range needs min, max or both")
        if any(v is not None and not np.isfinite(v) for v in (self.min, self.max)):
            raise ValueError(f"range ends must be finite numbers, got min {self.min}, max {self.max}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"range min {self.min:g} is above max {self.max:g}")
        return self


Where = dict[str, list[str | int | float | bool] | ValueRange]
"""A filter on attributes: ``{column: [values]}`` (one of these values) or ``{column: {min, max}}`` (a numeric range); all must hold."""


def rows_where(data: pd.DataFrame, where: Where | None, *, layer: str) -> NDArray[np.bool_]:
    """Per data row: True where every rule of ``where`` holds (all True for None).

    Values match by equality, or by their text (``[3]`` matches ``"3"``); a range compares the
    column as numbers (text that is no number and NaN never match). Raises :class:`LayerDataError`
    naming ``layer`` and the column for an unknown column, or a range on a column without numbers.
    """
    keep = np.ones(len(data), dtype=bool)
    for column, rule in (where or {}).items():
        if column not in data.columns:
            names = ", ".join(str(c) for c in data.columns if c != "geometry")
            raise LayerDataError(f"layer {layer!r}: filter on unknown attribute {column!r}; attributes: {names}")
        values = data[column]
        if isinstance(rule, ValueRange):
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64) if not pd.api.types.is_bool_dtype(values) else np.full(len(values), np.nan)
            if len(values) and not np.isfinite(numbers).any() and values.notna().any():
                raise LayerDataError(f"layer {layer!r}: filter range on attribute {column!r}, which holds no numbers: filter it by values instead")
            with np.errstate(invalid="ignore"):
                if rule.min is not None:
                    keep &= numbers >= rule.min
                if rule.max is not None:
                    keep &= numbers <= rule.max
        else:
            keep &= (values.isin(rule) | values.astype(str).isin([str(v) for v in rule])).to_numpy()
    return keep
