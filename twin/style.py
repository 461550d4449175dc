"""Colours, colormaps and legends, computed in the model as plain arrays.

A style change recomputes an RGBA array and a :class:`Legend`; geometry is never touched.

>>> to_rgba8("#ff0000")
(255, 0, 0, 255)
>>> colors, legend = categorical_colors(["a", "b", "a"], palette="tab10", title="kind")
>>> colors.shape, [e.label for e in legend.entries]
((3, 4), ['a', 'b'])
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_rgba
from numpy.typing import ArrayLike, NDArray
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer, field_validator, model_validator

from twin.errors import LayerDataError

__all__ = [
    "NO_VALUE",
    "Category",
    "CategorySpec",
    "Legend",
    "LegendEntry",
    "LocalText",
    "Text",
    "ValueRange",
    "Where",
    "attribute_colors",
    "categorical_colors",
    "continuous_colors",
    "rows_where",
    "text_in",
    "to_rgba8",
    "validate_color",
    "validate_colormap",
]

RGBA8 = tuple[int, int, int, int]

Text = str | dict[str, str]
"""Text for people: one string, or one per language (``{"zh_CN": "主干道", "en": "Primary"}``, the first is the default)."""
NO_VALUE = "(no value)"
"""The legend label of rows without a value: a message of the app's catalogue, shown in the page's language."""
_LANG = re.compile(r"^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")


def check_text(value: Text) -> Text:
    """Pydantic-friendly check of a :data:`Text`: no empty text, language tags like ``zh_CN`` or ``en``; returns it unchanged."""
    texts = value if isinstance(value, dict) else {"": value}
    if not texts:
        raise ValueError("a text per language needs at least one language, e.g. {zh_CN: 主干道, en: Primary}")
    for lang, text in texts.items():
        if lang and not _LANG.match(lang):
            raise ValueError(f"{lang!r} is not a language tag like zh_CN or en")
        if not text.strip():
            raise ValueError(f"the {lang + ' ' if lang else ''}text is empty")
    return value


def _text_form(value: object) -> object:
    """Before pydantic's own checks: anything but a string or a mapping of strings gets one clear message, not one per form."""
    if isinstance(value, str) or (isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        return value
    raise ValueError(f"expected a text, or one per language like {{zh_CN: 主干道, en: Primary}}; got {value!r}")


LocalText = Annotated[Text, BeforeValidator(_text_form), AfterValidator(check_text)]
"""A :data:`Text` validated by pydantic (scene-file keys such as a category's or a level's ``label``)."""


def text_in(text: Text, lang: str | None = None) -> str:
    """``text`` in ``lang``: the exact language, else one of the same base language (``zh`` for ``zh_TW``), else the first.

    >>> text_in({"zh_CN": "主干道", "en": "Primary"}, "en_GB"), text_in({"zh_CN": "主干道", "en": "Primary"}), text_in("kind", "en")
    ('Primary', '主干道', 'kind')
    """
    if isinstance(text, str):
        return text
    if lang in text:
        return text[lang]
    base = (lang or "").replace("-", "_").split("_")[0].lower()
    return next((t for code, t in text.items() if base and code.replace("-", "_").split("_")[0].lower() == base), next(iter(text.values()), ""))


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
    """A swatch and its label: ``label`` in the default language, ``labels`` per language when the scene gives several,
    or, with ``msgid``, a message of the app's catalogue (:data:`NO_VALUE`) that the app shows in the page's language."""

    label: str
    color: RGBA8
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    msgid: bool = False

    @classmethod
    def of(cls, text: Text, color: RGBA8) -> LegendEntry:
        """An entry labelled by a scene :data:`Text` (one string, or one per language)."""
        return cls(text_in(text), color, dict(text) if isinstance(text, dict) else {})


class Category(BaseModel):
    """How one value of a categorical ``color_by`` is drawn: its colour and, optionally, its legend label (per language)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    color: str
    label: LocalText | None = None

    _color = field_validator("color")(classmethod(lambda cls, v: validate_color(v)))


def _category_form(value: object) -> object:
    """A plain colour (``primary: "#e0b44c"``, the older form) is a category with no label of its own."""
    return {"color": value} if isinstance(value, str) else value


def _category_dump(category: Category) -> str | dict[str, object]:
    """The scene-file form: the plain colour when there is no label (files keep the form they were written in)."""
    return category.color if category.label is None else category.model_dump(mode="json", exclude_none=True)


CategorySpec = Annotated[Category, BeforeValidator(_category_form), PlainSerializer(_category_dump)]
"""A category in a scene file: ``"#e0b44c"`` or ``{color: "#e0b44c", label: {zh_CN: 主干道, en: Primary}}``."""


@dataclass(frozen=True)
class Legend:
    """What a view shows beside a layer: labelled swatches, or a colour bar with a range.

    ``title`` is in the default language; ``titles`` holds it per language when the layer words it in several
    (``{"zh_CN": "积水深度", "en": "Water depth"}``), which the app shows in the page's language.
    """

    title: str
    entries: tuple[LegendEntry, ...] = ()
    colormap: str | None = None
    vmin: float | None = None
    vmax: float | None = None
    notes: tuple[str, ...] = field(default=())
    titles: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def is_continuous(self) -> bool:
        return self.colormap is not None


def categorical_colors(
    values: ArrayLike,
    *,
    palette: str = "tab10",
    mapping: Mapping[str, str | Category] | None = None,
    title: str = "",
    missing: str = "#9e9e9e",
) -> tuple[NDArray[np.uint8], Legend]:
    """One RGBA row per value from a qualitative palette (or an explicit value → colour or :class:`Category` mapping).

    The legend labels each value by its category's ``label`` (per language) when given, else by the value; rows
    without a value get ``missing`` and the entry :data:`NO_VALUE` (a catalogue message).
    """
    series = pd.Series(np.asarray(values, dtype=object))
    labels = series.where(series.notna(), None)
    keys = [k for k in pd.unique(labels.dropna().astype(str))]
    keys.sort()
    cmap = colormaps[palette]
    n_colors = getattr(cmap, "N", 256)
    lut: dict[str, RGBA8] = {}
    mapping = {k: v if isinstance(v, Category) else Category(color=v) for k, v in (mapping or {}).items()}
    for i, key in enumerate(keys):
        if key in mapping:
            lut[key] = to_rgba8(mapping[key].color)
        else:
            lut[key] = to_rgba8(cmap((i % n_colors) / max(n_colors - 1, 1)) if n_colors > 32 else cmap(i % n_colors))
    missing_rgba = to_rgba8(missing)
    out = np.empty((len(series), 4), dtype=np.uint8)
    codes = labels.astype(str).where(labels.notna(), None)
    for key, rgba in lut.items():
        out[(codes == key).to_numpy()] = rgba
    out[labels.isna().to_numpy()] = missing_rgba
    entries = tuple(LegendEntry.of(_label(mapping.get(k), k), lut[k]) for k in keys)
    if labels.isna().any():
        entries += (LegendEntry(NO_VALUE, missing_rgba, msgid=True),)
    return out, Legend(title=title, entries=entries)


def _label(category: Category | None, value: str) -> Text:
    """A category's legend label: its own (per language) when the scene gives one, else the value."""
    return category.label if category is not None and category.label is not None else value


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
    categories: Mapping[str, str | Category] | None = None,
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
