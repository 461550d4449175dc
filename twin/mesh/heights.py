"""Building heights and floor counts as data sources write them: numbers, or text with a unit.

OpenStreetMap's ``height`` / ``min_height`` (https://wiki.openstreetmap.org/wiki/Key:height) are
metres by default and may carry a unit: ``"12"``, ``"12 m"``, ``"8.5 m"``, ``"40 ft"``, or feet
and inches as ``10'6"``; ``building:levels`` is a plain number of floors. Other one-map services
write the same values as text columns, sometimes with spaces or a decimal comma. The grammar:

- a length: a number, then optionally a unit: ``m``, ``meter(s)``, ``metre(s)`` (metres), ``ft``,
  ``foot``, ``feet`` or ``'`` (feet), case-insensitive, spaces anywhere around; or feet and
  inches ``10'6"`` / ``10' 6.5"`` / ``10ft 6in``;
- a count (floors): a number without a unit (``"3"``, ``"3.0"``);
- a number: optional sign, digits, optional decimal point or decimal comma (``"8,5"`` is 8.5, the
  European decimal comma that OSM data from many countries carries). A comma followed by exactly
  three digits (``"1,200"``) is ambiguous (a thousands separator in English) and not read.

Anything else (``"tall"``, ``"~12"``, ``"12-15"``, ``"nan"``, ``""``) is *unparsable*: NaN, and
flagged so the caller can count it and fall back as for a missing value. Numeric columns pass
through as float64 (text parsing runs once per distinct value, so a column of a million rows
with a few hundred distinct heights costs a few hundred regex matches).

>>> v = parse_length(np.array(["12 m", "8,5", " 15 ", "40 ft", "10'6\\"", "tall", None, 7], dtype=object))
>>> np.round(v.values, 4).tolist()
[12.0, 8.5, 15.0, 12.192, 3.2004, nan, nan, 7.0]
>>> v.unparsable.tolist()
[False, False, False, False, False, True, False, False]
>>> parse_count(np.array(["3", "3.0", "3 m"], dtype=object)).values.tolist()
[3.0, 3.0, nan]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["FOOT", "INCH", "Parsed", "parse_count", "parse_length"]

FOOT = 0.3048  # metres (international foot)
INCH = 0.0254

_NUM = r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)"
_LENGTH = re.compile(rf"\s*(?P<num>{_NUM})\s*(?P<unit>m|meters?|metres?|ft|foot|feet|')?\s*", re.IGNORECASE)
_FEET_INCHES = re.compile(rf"\s*(?P<ft>{_NUM})\s*(?:'|ft|foot|feet)\s*(?P<inch>{_NUM})\s*(?:\"|''|in|inch|inches)\s*", re.IGNORECASE)
_COUNT = re.compile(rf"\s*(?P<num>{_NUM})\s*")
_UNIT_METRES = {"": 1.0, "m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0, "ft": FOOT, "foot": FOOT, "feet": FOOT, "'": FOOT}


@dataclass(frozen=True)
class Parsed:
    """``values``: float64 per row (NaN where missing or unparsable); ``unparsable``: rows whose value
    was given (not null, not NaN) but is not a number in the grammar; ``examples``: a few of them."""

    values: NDArray[np.float64]
    unparsable: NDArray[np.bool_]
    examples: tuple[str, ...]


def _number(text: str) -> float:
    """A number matched by ``_NUM``; a decimal comma is read as a point, ``1,200`` is NaN (ambiguous)."""
    if "," in text:
        if re.fullmatch(r"[+-]?\d+,\d{3}", text):
            return float("nan")
        text = text.replace(",", ".")
    return float(text)


def _length_text(text: str) -> float:
    m = _FEET_INCHES.fullmatch(text)
    if m:
        return _number(m["ft"]) * FOOT + _number(m["inch"]) * INCH
    m = _LENGTH.fullmatch(text)
    if m is None:
        return float("nan")
    return _number(m["num"]) * _UNIT_METRES[(m["unit"] or "").lower()]


def _count_text(text: str) -> float:
    m = _COUNT.fullmatch(text)
    return _number(m["num"]) if m else float("nan")


def _parse(values: Any, text_parser: Any) -> Parsed:
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        out = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return Parsed(out, np.zeros(out.size, np.bool_), ())
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError:  # unhashable values (lists, dicts from nested JSON): read their text
        series = series.astype(str).where(~series.isna(), None)
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    parsed = np.full(len(uniques) + 1, np.nan)  # the last slot serves the NA code -1
    bad = np.zeros(len(uniques) + 1, np.bool_)
    for k, u in enumerate(uniques):
        if isinstance(u, (bool, np.bool_)):
            bad[k] = True
        elif isinstance(u, (int, float, np.integer, np.floating)):
            parsed[k] = float(u)
        elif isinstance(u, (str, bytes)):
            text = u.decode("utf-8", "replace") if isinstance(u, bytes) else u
            parsed[k] = text_parser(text)
            bad[k] = np.isnan(parsed[k])
        else:
            bad[k] = True
    examples = tuple(str(u) for k, u in enumerate(uniques) if bad[k])[:3]
    return Parsed(parsed[codes], bad[codes], examples)


def parse_length(values: Any) -> Parsed:
    """Lengths in metres from numbers or text with a unit (see the module docs; OSM Key:height)."""
    return _parse(values, _length_text)


def parse_count(values: Any) -> Parsed:
    """Counts (floors) from numbers or text holding a plain number (``"3"``, ``" 3.0 "``)."""
    return _parse(values, _count_text)
