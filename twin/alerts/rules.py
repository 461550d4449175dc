"""Alert rules, as they appear in a scene file's ``alerts:`` list.

>>> rule = parse_rule({"id": "deep", "kind": "threshold", "layer": "flood", "above": 20, "clear": 18, "for": "2m"})
>>> rule.above, rule.clear_value, rule.for_.total_seconds()
(20.0, 18.0, 120.0)
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from twin.style import LocalText, text_in

__all__ = ["MAX_DURATION", "Rule", "StaleRule", "ThresholdRule", "format_duration", "parse_duration", "parse_rule"]

_NUMBER = r"\d+(?:[.,]\d+)?"
_SHORT = re.compile(
    rf"^\s*(?P<sign>[-+])?\s*(?:(?P<bare>{_NUMBER})|(?=\d)(?:(?P<d>{_NUMBER})\s*d\s*)?(?:(?P<h>{_NUMBER})\s*h\s*)?"
    rf"(?:(?P<min>{_NUMBER})\s*m(?:in)?(?!s)\s*)?(?:(?P<s>{_NUMBER})\s*s\s*)?(?:(?P<ms>{_NUMBER})\s*ms\s*)?)\s*$"
)
_ISO = re.compile(
    rf"^\s*(?P<sign>[-+])?P(?:(?P<y>{_NUMBER})Y)?(?:(?P<mo>{_NUMBER})M)?(?:(?P<w>{_NUMBER})W)?(?:(?P<d>{_NUMBER})D)?"
    rf"(?:T(?=\d)(?:(?P<h>{_NUMBER})H)?(?:(?P<min>{_NUMBER})M)?(?:(?P<s>{_NUMBER})S)?)?\s*$",
    re.IGNORECASE,
)
_UNIT_US = {"y": 365 * 86_400_000_000, "bare": 1_000_000, "ms": 1_000, "s": 1_000_000, "min": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000, "w": 604_800_000_000}
_WRITE_UNITS = (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000), ("ms", 1_000))
MAX_DURATION = dt.timedelta(days=3653)
"""The longest duration a scene file may give (10 years): longer ones are typing mistakes or hostile input."""


def parse_duration(value: Any) -> dt.timedelta:
    """A duration from a scene file or the Python API, as a timedelta (microsecond precision).

    Accepts a timedelta, a number of seconds, short text (``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"``,
    ``"250ms"``; a bare number is seconds) or ISO 8601 (``"PT5M"``, ``"P2D"``, ``"PT1H30M"``, ``"P1W"``;
    a year ``Y`` is 365 days, as pydantic writes them). Raises ValueError (pydantic reports it with
    the key) for other text, booleans, NaN, infinities, negative durations, months (no fixed
    length) and durations over 10 years.

    >>> parse_duration("1h30m") == parse_duration("PT1H30M") == parse_duration(5400) == dt.timedelta(minutes=90)
    True
    """
    if isinstance(value, dt.timedelta):
        micros = _total_micros(value)
    elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{value!r} is not a duration: use e.g. 30s, 5m, 2h")  # noqa: TRY004 (pydantic reports ValueError only)
    elif isinstance(value, str):
        micros = _parse_text(value)
    elif not math.isfinite(value):
        raise ValueError(f"duration {value!r} is not a finite number of seconds")
    else:
        micros = _micros(Decimal(repr(value)) if isinstance(value, float) else Decimal(value), _UNIT_US["s"])
    if micros < 0:
        raise ValueError(f"duration {value!r} is negative")
    if micros > _total_micros(MAX_DURATION):
        raise ValueError(f"duration {value!r} is longer than 10 years")
    return dt.timedelta(microseconds=micros)


def _parse_text(text: str) -> int:
    """Signed microseconds of a short (``1h30m``) or ISO 8601 (``PT1H30M``) duration; ValueError if neither."""
    match = _SHORT.match(text) or _ISO.match(text)
    if match is None or not any(v for k, v in match.groupdict().items() if k != "sign"):
        raise ValueError(f"{text!r} is not a duration: use e.g. 30s, 5m, 2h, 1h30m or ISO 8601 (PT5M)")
    parts = {k: v for k, v in match.groupdict().items() if v and k != "sign"}
    if "mo" in parts:
        raise ValueError(f"{text!r}: months have no fixed length; give the duration in days, e.g. P30D")
    micros = sum(_micros(_decimal(number), _UNIT_US[unit]) for unit, number in parts.items())
    return -micros if match.group("sign") == "-" else micros


def _decimal(number: str) -> Decimal:
    return Decimal(number.replace(",", "."))


def _micros(amount: Decimal, unit_us: int) -> int:
    """``amount`` units of ``unit_us`` microseconds, rounded to a microsecond (exact integers: no overflow)."""
    return int((amount * unit_us).to_integral_value(ROUND_HALF_EVEN))


def _total_micros(value: dt.timedelta) -> int:
    return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds


def format_duration(value: dt.timedelta) -> str:
    """The shortest text :func:`parse_duration` reads back to exactly ``value``: ``5m``, ``2d``, ``90s``, ``1d1s``, ``1.5ms``.

    >>> format_duration(dt.timedelta(minutes=90)), format_duration(dt.timedelta(days=1, seconds=1)), format_duration(dt.timedelta(0))
    ('90m', '1d1s', '0s')
    """
    micros = _total_micros(value)
    sign, micros = ("-", -micros) if micros < 0 else ("", micros)
    if micros == 0:
        return "0s"
    candidates = [f"{micros // unit}{name}" for name, unit in _WRITE_UNITS if micros % unit == 0]
    parts, rest = [], micros
    for name, unit in _WRITE_UNITS[:-1]:
        if rest >= unit:
            parts.append(f"{rest // unit}{name}")
            rest %= unit
    if rest:
        parts.append(f"{Decimal(rest) / 1000}ms")  # the sub-second rest, exact to the microsecond
    candidates += ["".join(parts), f"{Decimal(micros) / 1_000_000}s"]
    return sign + min(candidates, key=len)


Severity = Literal["info", "warning", "critical"]


class _RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", description="stable rule id")
    layer: str = Field(description="id of the live layer the rule watches")
    severity: Severity = "warning"
    title: LocalText | None = Field(None, description="short text shown with the alert, or one per language: {zh_CN: 道路积水, en: Road flooded}")

    def __hash__(self) -> int:  # a title per language is a dict: hash the rule by its text form
        return hash(self.model_dump_json())

    @property
    def shown_title(self) -> str:
        """The title in the default (first) language, or the rule's id without one: what an :class:`~twin.alerts.Alert` records."""
        return text_in(self.title) if self.title is not None else self.id

    def title_in(self, lang: str) -> str:
        """The title in ``lang`` (``zh_CN``, ``en``; the nearest language given, else the first), or the rule's id without one."""
        return text_in(self.title, lang) if self.title is not None else self.id


class ThresholdRule(_RuleBase):
    """Fires when a feature's value stays at or above ``above`` (or at/below ``below``) for ``for``.

    It resolves once the value has been past ``clear`` (the hysteresis level, default the
    threshold itself) for ``clear_for``. Features whose latest value is missing are left as they
    are: no data is never read as "0".
    """

    kind: Literal["threshold"]
    field: str = Field("value", description="which value of the layer to compare")
    above: float | None = Field(None, description="fire when value >= above")
    below: float | None = Field(None, description="fire when value <= below")
    clear: float | None = Field(None, description="hysteresis: resolve only once past this level")
    for_: dt.timedelta = Field(dt.timedelta(0), alias="for", description="minimum time past the threshold before firing")
    clear_for: dt.timedelta = Field(dt.timedelta(0), description="minimum time past clear before resolving")

    _durations = field_validator("for_", "clear_for", mode="before")(classmethod(lambda cls, v: parse_duration(v)))

    @model_validator(mode="after")
    def _one_direction(self) -> ThresholdRule:
        if (self.above is None) == (self.below is None):
            raise ValueError("a threshold rule needs exactly one of 'above' or 'below'")
        if self.clear is not None:
            if self.above is not None and self.clear > self.above:
                raise ValueError(f"clear ({self.clear}) must not be above the threshold ({self.above})")
            if self.below is not None and self.clear < self.below:
                raise ValueError(f"clear ({self.clear}) must not be below the threshold ({self.below})")
        return self

    @property
    def clear_value(self) -> float:
        if self.clear is not None:
            return self.clear
        return float(self.above if self.above is not None else self.below)  # type: ignore[arg-type]

    def breached(self, value: float) -> bool:
        """Past the firing threshold."""
        return value >= self.above if self.above is not None else value <= self.below  # type: ignore[operator]

    def cleared(self, value: float) -> bool:
        """Back past the clearing level (strictly)."""
        return value < self.clear_value if self.above is not None else value > self.clear_value


class StaleRule(_RuleBase):
    """Fires when a layer's data (or, with ``per_feature``, one feature's) is older than ``max_age``."""

    kind: Literal["stale"]
    max_age: dt.timedelta = Field(description="age past which data counts as stale, e.g. 5m")
    per_feature: bool = Field(False, description="one alert per feature that stopped reporting")

    _age = field_validator("max_age", mode="before")(classmethod(lambda cls, v: parse_duration(v)))


Rule = Annotated[ThresholdRule | StaleRule, Field(discriminator="kind")]
_RULE = TypeAdapter(Rule)


def parse_rule(data: dict[str, Any]) -> ThresholdRule | StaleRule:
    """Validate one rule mapping (raises pydantic's ValidationError)."""
    return _RULE.validate_python(data)
