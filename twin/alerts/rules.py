"""Alert rules, as they appear in a scene file's ``alerts:`` list.

>>> rule = parse_rule({"id": "deep", "kind": "threshold", "layer": "flood", "above": 20, "clear": 18, "for": "2m"})
>>> rule.above, rule.clear_value, rule.for_.total_seconds()
(20.0, 18.0, 120.0)
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

__all__ = ["Rule", "StaleRule", "ThresholdRule", "parse_duration", "parse_rule"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_SECONDS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> dt.timedelta:
    """``"90s"``, ``"5m"``, ``"1h"``, a number of seconds, or a timedelta."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration: use e.g. 30s, 5m, 2h")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"duration {value!r} is negative")
    return dt.timedelta(seconds=seconds)


Severity = Literal["info", "warning", "critical"]


class _RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", description="stable rule id")
    layer: str = Field(description="id of the live layer the rule watches")
    severity: Severity = "warning"
    title: str | None = Field(None, description="short text shown with the alert")


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


Rule = Annotated[Union[ThresholdRule, StaleRule], Field(discriminator="kind")]
_RULE = TypeAdapter(Rule)


def parse_rule(data: dict[str, Any]) -> ThresholdRule | StaleRule:
    """Validate one rule mapping (raises pydantic's ValidationError)."""
    return _RULE.validate_python(data)
