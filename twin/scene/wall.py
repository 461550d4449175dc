"""The ``wall:`` section of a scene file: what the command-hall wall (``twin serve --kiosk``) shows unattended.

In a scene file::

    wall:
      tour: patrol            # a tour of `tours:` cycled all day (none: the scene's camera)
      interrupt_on: firing    # which alerts interrupt it: firing (any), a severity (and worse), or alert rule ids
      resume_after: 2m        # how long an alert's banner stays before the tour (or the next alert) goes on
      flight: 4s              # the eased flight to an alert (back to the tour: the stop's own flight)
      range: 800              # metres from the alert's location the camera looks from

``interrupt_on`` is one entry or a list; a severity (``info``, ``warning``, ``critical``) takes
that severity and worse ones; ``[]`` never interrupts. The model running it is
:class:`twin.session.hall.Hall`.

>>> spec = WallSpec.model_validate({"tour": "patrol", "interrupt_on": "warning", "resume_after": "30s"})
>>> spec.interrupts("critical", "deep"), spec.interrupts("info", "deep"), spec.to_dict()
(True, False, {'tour': 'patrol', 'interrupt_on': 'warning', 'resume_after': '30s'})
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from twin.alerts.rules import format_duration, parse_duration
from twin.errors import SceneFileError, TwinError, unknown_name
from twin.params import Id, dotted_path, problems_of
from twin.scene.schema import raise_located
from twin.scene.yamlfile import KeyPath, line_of

__all__ = ["ANY_FIRING", "SEVERITIES", "WallSpec", "parse_wall", "validate_wall"]

ANY_FIRING = "firing"
"""The ``interrupt_on`` entry taking every firing alert."""
SEVERITIES = ("critical", "warning", "info")
"""Alert severities, most severe first (a severity in ``interrupt_on`` takes it and the ones before it)."""

_DEFAULTS = {"interrupt_on": ANY_FIRING, "resume_after": dt.timedelta(minutes=2), "flight": dt.timedelta(seconds=4), "range": 800.0}


class WallSpec(BaseModel):
    """The wall's tour and how alerts interrupt it (see the module docstring for the scene-file form)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tour: Id | None = Field(None, description="name of a tour in `tours:` the wall cycles through; none: the scene's camera")
    interrupt_on: tuple[str, ...] = Field((ANY_FIRING,), description="alerts that interrupt the tour: firing, a severity (and worse) or alert rule ids")
    resume_after: dt.timedelta = Field(_DEFAULTS["resume_after"], description="how long an alert's banner stays before the tour resumes (e.g. 2m)")
    flight: dt.timedelta = Field(_DEFAULTS["flight"], description="how long the eased flight to an alert takes (e.g. 4s)")
    range: float = Field(_DEFAULTS["range"], gt=0.0, description="distance in metres from which the camera looks at an alert")

    _durations = field_validator("resume_after", "flight", mode="before")(classmethod(lambda cls, v: parse_duration(v)))

    @field_validator("interrupt_on", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list):
            return tuple(value)
        return value

    @field_validator("resume_after", "flight")
    @classmethod
    def _positive(cls, value: dt.timedelta) -> dt.timedelta:
        if value <= dt.timedelta(0):
            raise ValueError("must be longer than 0s: the wall flies to an alert and shows it before moving on")
        return value

    def unknown_entry(self, rule_ids: Sequence[str]) -> tuple[int, str] | None:
        """(index, message) of the first ``interrupt_on`` entry that is neither ``firing``, a severity nor a rule id of ``rule_ids``."""
        known = [ANY_FIRING, *SEVERITIES, *rule_ids]
        for index, entry in enumerate(self.interrupt_on):
            if entry not in known:
                return index, unknown_name("interrupt_on entry", entry, known, listed="known entries (firing, a severity, an alert rule id)")
        return None

    def interrupts(self, severity: str, rule_id: str) -> bool:
        """Whether a firing alert of ``severity`` from rule ``rule_id`` interrupts the tour."""
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)
        for entry in self.interrupt_on:
            if entry in (ANY_FIRING, rule_id) or (entry in SEVERITIES and rank <= SEVERITIES.index(entry)):
                return True
        return False

    def to_dict(self) -> dict[str, Any]:
        """Scene-file form: durations as ``2m``, defaults left out, one ``interrupt_on`` entry as text."""
        out: dict[str, Any] = {}
        if self.tour is not None:
            out["tour"] = self.tour
        if self.interrupt_on != (ANY_FIRING,):
            out["interrupt_on"] = self.interrupt_on[0] if len(self.interrupt_on) == 1 else list(self.interrupt_on)
        for key in ("resume_after", "flight", "range"):
            value = getattr(self, key)
            if value != _DEFAULTS[key]:
                out[key] = format_duration(value) if isinstance(value, dt.timedelta) else value
        return out


def parse_wall(wall: WallSpec | Mapping[str, Any], tours: Sequence[str], rule_ids: Sequence[str] | None) -> WallSpec:
    """A wall spec from Python data, checked against the scene's ``tours`` and alert ``rule_ids`` (None: rules not known yet,
    any other ``interrupt_on`` entry is taken as a rule id).

    Raises :class:`TwinError` (one line naming the ``wall`` key) when it is invalid.
    """
    if not isinstance(wall, WallSpec):
        if not isinstance(wall, Mapping):
            raise TwinError(f"wall is a mapping of keys (tour, interrupt_on, resume_after, flight, range), got {type(wall).__name__}")
        try:
            wall = WallSpec.model_validate(dict(wall))
        except ValidationError as exc:
            loc, message = problems_of(WallSpec, exc)[0]
            raise TwinError(f"wall.{dotted_path(loc)}: {message}") from None
    problem = _cross_check(wall, tours, rule_ids)
    if problem is not None:
        raise TwinError(f"wall.{dotted_path(problem[0])}: {problem[1]}")
    return wall


def _cross_check(wall: WallSpec, tours: Sequence[str], rule_ids: Sequence[str] | None) -> tuple[KeyPath, str] | None:
    """(key path below ``wall``, message) of a tour or ``interrupt_on`` entry the scene does not have, else None."""
    if wall.tour is not None and wall.tour not in tours:
        return ("tour",), unknown_name("tour", wall.tour, list(tours), listed="tours", none="none defined")
    entry = None if rule_ids is None else wall.unknown_entry(rule_ids)
    if entry is not None:
        return ("interrupt_on", entry[0]), entry[1]
    return None


def validate_wall(data: Any, tours: Sequence[str], rule_ids: Sequence[str], *, file: str | None, lines: dict[KeyPath, int]) -> WallSpec | None:
    """The ``wall:`` of a scene file (None when absent); the first problem raises a :class:`SceneFileError` with its file, line and key."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise SceneFileError(f"wall is a mapping of keys (tour, interrupt_on, resume_after, flight, range), got {type(data).__name__}",
                             file=file, line=line_of(lines, ("wall",)), key="wall")
    try:
        wall = WallSpec.model_validate(data)
    except ValidationError as exc:
        raise_located(problems_of(WallSpec, exc), file=file, lines=lines, prefix=("wall",))
    problem = _cross_check(wall, tours, rule_ids)
    if problem is not None:
        path: KeyPath = ("wall", *problem[0])
        if path[1] == "interrupt_on" and isinstance(data.get("interrupt_on"), str):
            path = path[:2]  # a single entry written as text has no index
        raise SceneFileError(problem[1], file=file, line=line_of(lines, path), key=dotted_path(path))
    return wall
