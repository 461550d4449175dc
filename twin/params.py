"""Parameter schemas for plugins: pydantic models that forbid unknown keys.

A plugin declares ``class Params(PluginParams)``; scene validation, ``twin layers`` and the
Python API all read the same model.

>>> class P(PluginParams):
...     color: str = "#ffffff"
>>> validate_params(P, {"color": "red"}, where="layer 'x'").color
'red'
>>> try:
...     validate_params(P, {"colour": "red"}, where="layer 'x'")
... except ParamError as e:
...     print(e.problems[0])
(('colour',), "unknown key 'colour' (did you mean 'color'?); known keys: color")
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, SerializationInfo, SerializerFunctionWrapHandler, ValidationError, model_serializer
from pydantic_core import PydanticCustomError

from twin.errors import TwinError, unknown_name

__all__ = ["ID_PATTERN", "ID_RULE", "Id", "ParamError", "PluginParams", "describe_params", "dotted_path", "is_id", "problems_of", "validate_params"]

ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
"""The one pattern of every id a scene names things by: layer ids, alert rule ids, camera preset names.

Matched whole (:func:`re.fullmatch`): ``"roads\\n"`` is not an id."""
ID_RULE = "use letters, digits, '_', '-' or '.' (not '-' or '.' first)"
"""What :data:`ID_PATTERN` allows, in the words of the error messages."""


def is_id(value: object) -> bool:
    """True when ``value`` is a string matching :data:`ID_PATTERN` whole.

    >>> is_id("bus_71.a-b"), is_id("-x"), is_id("a b"), is_id("roads\\n"), is_id(7)
    (True, False, False, False, False)
    """
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def _check_id(value: str) -> str:
    if not is_id(value):
        raise PydanticCustomError("invalid_id", f"not a valid id: {ID_RULE}")
    return value


Id = Annotated[str, AfterValidator(_check_id)]
"""A pydantic field type for ids (:data:`ID_PATTERN`); a bad one reads ``not a valid id: use letters, ...``."""


class PluginParams(BaseModel):
    """Base of every plugin's parameter model: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @model_serializer(mode="wrap")
    def _durations_as_scene_text(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        """In JSON / scene-file form, durations are written as ``5m``, ``2d`` (what scene files read), not ISO ``PT5M``."""
        data = handler(self)
        if info.mode_is_json() and isinstance(data, dict):
            from twin.alerts.rules import format_duration

            for key in data:
                value = getattr(self, key, None)
                if isinstance(value, dt.timedelta):
                    data[key] = format_duration(value)
        return data


P = TypeVar("P", bound=BaseModel)


class ParamError(TwinError, ValueError):
    """Invalid parameters; ``problems`` holds (key path, message) pairs."""

    def __init__(self, where: str, problems: list[tuple[tuple[str | int, ...], str]]):
        self.where = where
        self.problems = problems
        text = "; ".join(f"{dotted_path(loc) or '(top)'}: {msg}" for loc, msg in problems)
        super().__init__(f"{where}: {text}")


def dotted_path(loc: tuple[str | int, ...]) -> str:
    """``("layers", 1, "color")`` → ``"layers[1].color"``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation like ``Model | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _known_keys(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """Field names of the (possibly nested) model that owns ``loc``'s last key."""
    annotation: Any = model
    for part in loc[:-1]:
        current = _model_in(annotation) if get_origin(annotation) not in (dict, list, tuple) else None
        if current is not None and isinstance(part, str) and part in current.model_fields:
            annotation = current.model_fields[part].annotation
        elif get_origin(annotation) in (dict, list, tuple) or get_origin(annotation) is not None:
            args = get_args(annotation)
            container = next((a for a in (annotation, *args) if get_origin(a) in (dict, list)), None)
            if container is None:
                return []
            annotation = get_args(container)[-1]
        else:
            return []
    final = _model_in(annotation)
    return sorted(final.model_fields) if final is not None else []


def validate_params(model: type[P], data: Mapping[str, Any], *, where: str) -> P:
    """Validate ``data`` against ``model``; raise :class:`ParamError` with clear, located messages."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ParamError(where, problems_of(model, exc)) from None


def problems_of(model: type[BaseModel], exc: ValidationError) -> list[tuple[tuple[str | int, ...], str]]:
    """Turn a pydantic error into (key path, message) pairs, with suggestions for misspelt keys."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p and p.endswith("]")))
        if err["type"] == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            problems.append((loc, unknown_name("key", key, _known_keys(model, loc), listed="known keys")))
        elif err["type"] == "missing":
            problems.append((loc, "required key is missing"))
        else:
            value = err.get("input")
            shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
            problems.append((loc, f"{err['msg']} (got {shown})"))
    return problems


def describe_params(model: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """(name, type, default, description) for each parameter, for ``twin layers``."""
    rows = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        type_name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
        rows.append((name, type_name, default, field.description or ""))
    return rows
