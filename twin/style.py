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

from twin.errors import LayerDataError

__all__ = ["Legend", "LegendEntry", "attribute_colors", "categorical_colors", "continuous_colors", "to_rgba8", "validate_color", "validate_colormap"]

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
