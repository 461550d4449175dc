"""The versioned scene-file schema (version 1) and its validation into located errors.

A scene file::

    version: 1
    name: Demo district
    frame: {crs: auto, center: [121.48, 31.23]}
    cameras:
      overview: {target: [121.48, 31.23], heading: 20, pitch: 50, range: 6000}
    camera: overview
    layers:
      - id: roads
        type: vector
        source: {type: file, path: roads.geojson}
        color: "#cccccc"
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from twin.errors import CRSError, SceneFileError, SourceCheckError, TwinError, unknown_name
from twin.geo.crs import parse_crs
from twin.params import Id, ParamError, dotted_path, problems_of
from twin.registry import Locator
from twin.scene.camera import CameraPreset
from twin.scene.yamlfile import KeyPath, line_of
from twin.style import Where, validate_color

__all__ = ["SCHEMA_VERSION", "FrameSpec", "LayerCommon", "SceneDoc", "SceneSettings", "locate_error", "locator", "raise_located"]

SCHEMA_VERSION = 1
_LANG = re.compile(r"^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")


class FrameSpec(BaseModel):
    """The scene's metric frame: ``auto`` (transverse Mercator at the centre) or a projected CRS."""

    model_config = ConfigDict(extra="forbid")

    crs: str = Field("auto", description="'auto' or a projected CRS (EPSG:32651, EPSG:4549, a PROJ string)")
    center: tuple[float, float] | None = Field(None, description="lon, lat of the local origin (default: centre of the data)")

    @field_validator("crs")
    @classmethod
    def _crs(cls, value: str) -> str:
        if value.strip().lower() != "auto":
            try:
                geo = parse_crs(value)
            except CRSError as exc:
                raise ValueError(str(exc)) from None
            if geo.offset is not None or geo.proj.is_geographic:
                raise ValueError(f"{value!r} is not a projected CRS: a scene renders in metres (use 'auto' or e.g. EPSG:32651)")
        return value

    @field_validator("center")
    @classmethod
    def _center(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not (-180 <= value[0] <= 180 and -85 <= value[1] <= 85):
            raise ValueError(f"center {list(value)} is not a lon, lat pair")
        return value


class SceneSettings(BaseModel):
    """Small view settings shared by every view of the scene."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    background: str = Field("#0d1526", description="background colour (bottom of the gradient)")
    background_top: str | None = Field("#24324d", description="top colour of a gradient background; none for flat")
    show_legend: bool = Field(True, description="draw the legends of visible layers")
    title: str | None = Field(None, description="text shown in the corner of rendered images")

    _colors = field_validator("background", "background_top")(
        classmethod(lambda cls, v: v if v is None else validate_color(v))
    )


class LayerCommon(BaseModel):
    """Keys every layer entry has; the rest are the layer type's own parameters."""

    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="stable id, unique in the scene")
    type: str = Field(description="layer type (see `twin layers`)")
    title: str | dict[str, str] | None = Field(None, description="name shown in legends and the layer list; or one per language: {zh_CN: ..., en: ...}")
    visible: bool = True
    opacity: float = Field(1.0, ge=0.0, le=1.0)
    where: Where | None = Field(None, description="draw only features that match: {column: [values]} or {column: {min, max}} (restyles, no new mesh)")
    source: dict[str, Any] | None = Field(None, description="where the data comes from: {type: ..., ...}")


    @field_validator("title")
    @classmethod
    def _titles(cls, value: str | dict[str, str] | None) -> str | dict[str, str] | None:
        if isinstance(value, dict):
            if not value:
                raise ValueError("a title per language needs at least one language, e.g. {zh_CN: 上海各区, en: Shanghai districts}")
            for lang, text in value.items():
                if not _LANG.match(lang):
                    raise ValueError(f"{lang!r} is not a language tag like zh_CN or en")
                if not text.strip():
                    raise ValueError(f"the {lang} title is empty")
        return value


COMMON_KEYS = frozenset(LayerCommon.model_fields)


class SceneDoc(BaseModel):
    """The top level of a scene file."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(SCHEMA_VERSION, description="scene schema version")
    name: str = "Untitled scene"
    frame: FrameSpec = FrameSpec()
    time: dt.datetime | None = Field(None, description="scene time (ISO 8601); drives live layers and replay")
    settings: SceneSettings = SceneSettings()
    cameras: dict[Id, CameraPreset] = {}
    camera: str | None = Field(None, description="name of the camera preset used by default")
    layers: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = Field([], description="alert rules over live layers (see twin.alerts)")
    tours: dict[Id, Any] = Field({}, description="camera tours: {name: [stops]} (see twin.scene.tour)")
    views: dict[Id, Any] = Field({}, description="saved views: {name: {camera, layers, time}} (see twin.scene.views)")
    wall: Any = Field(None, description="the command-hall wall: its tour and alert interrupts (see twin.scene.wall)")

    @field_validator("version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"unsupported scene schema version {value}; this twin reads version {SCHEMA_VERSION}")
        return value


def raise_located(
    problems: list[tuple[KeyPath, str]], *, file: str | None, lines: dict[KeyPath, int], prefix: KeyPath = ()
) -> None:
    """Raise the first problem as a :class:`SceneFileError` with its file, line and key."""
    loc, message = problems[0]
    path = prefix + tuple(loc)
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    raise SceneFileError(message + more, file=file, line=line_of(lines, path), key=dotted_path(path) or None)


def validate_doc(data: Any, *, file: str | None, lines: dict[KeyPath, int]) -> SceneDoc:
    """Validate the top level of a scene file."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SceneFileError(f"a scene file must be a mapping of keys, got {type(data).__name__}", file=file, line=1)
    try:
        doc = SceneDoc.model_validate(data)
    except ValidationError as exc:
        raise_located(problems_of(SceneDoc, exc), file=file, lines=lines)
    if doc.camera is not None and doc.camera not in doc.cameras:
        message = unknown_name("camera", doc.camera, list(doc.cameras), listed="cameras", none="none defined")
        raise SceneFileError(message, file=file, line=line_of(lines, ("camera",)), key="camera")
    return doc


def validate_layer_entry(entry: Any, index: int, *, file: str | None, lines: dict[KeyPath, int]) -> tuple[LayerCommon, dict[str, Any]]:
    """Split one layer entry into its common keys and the type's own parameters (validated later)."""
    prefix: KeyPath = ("layers", index)
    if not isinstance(entry, dict):
        raise SceneFileError(f"a layer must be a mapping, got {type(entry).__name__}", file=file, line=line_of(lines, prefix), key=f"layers[{index}]")
    common = {k: v for k, v in entry.items() if k in COMMON_KEYS}
    own = {k: v for k, v in entry.items() if k not in COMMON_KEYS}
    try:
        spec = LayerCommon.model_validate(common)
    except ValidationError as exc:
        raise_located(problems_of(LayerCommon, exc), file=file, lines=lines, prefix=prefix)
    return spec, own


def locate_error(exc: TwinError, path: KeyPath, *, file: str | None, lines: dict[KeyPath, int]) -> SceneFileError:
    """A plugin, parameter or source problem found at ``path`` of a scene file, as a located error.

    A :class:`ParamError` points at its first problem's key below ``path``, a
    :class:`SourceCheckError` at its parameter; any other error at ``path`` itself.
    """
    if isinstance(exc, ParamError):
        loc, message = exc.problems[0]
        full = path + tuple(loc)
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return SceneFileError(message + more, file=file, line=line_of(lines, full), key=dotted_path(full))
    if isinstance(exc, SourceCheckError):
        path = path + (exc.key,)
    return SceneFileError(str(exc), file=file, line=line_of(lines, path), key=dotted_path(path))


def locator(path: KeyPath, *, file: str | None, lines: dict[KeyPath, int]) -> Locator:
    """Where the spec at ``path`` of a scene file sits, for :func:`twin.plugins.build_layer` / ``build_source``."""
    return lambda key, exc: locate_error(exc, path + key, file=file, lines=lines)


def validate_alerts(doc: SceneDoc, layer_ids: set[str], *, file: str | None, lines: dict[KeyPath, int]) -> list[Any]:
    """Validate the ``alerts:`` rules; each must name a layer of the scene."""
    from twin.alerts.rules import parse_rule

    rules = []
    for index, entry in enumerate(doc.alerts):
        path: KeyPath = ("alerts", index)
        try:
            rule = parse_rule(entry)
        except ValidationError as exc:
            problems = [(tuple(p for p in loc if p not in ("threshold", "stale")), msg) for loc, msg in _rule_problems(exc)]
            raise_located(problems, file=file, lines=lines, prefix=path)
        if rule.layer not in layer_ids:
            raise SceneFileError(
                f"alert rule {rule.id!r} watches {unknown_name('layer', rule.layer, sorted(layer_ids), listed='layers')}",
                file=file, line=line_of(lines, path + ("layer",)), key=dotted_path(path + ("layer",)),
            )
        rules.append(rule)
    ids = [rule.id for rule in rules]
    for index, rule_id in enumerate(ids):
        if ids.index(rule_id) != index:
            raise SceneFileError(f"duplicate alert rule id {rule_id!r}", file=file, line=line_of(lines, ("alerts", index, "id")), key=f"alerts[{index}].id")
    return rules


def _rule_problems(exc: ValidationError) -> list[tuple[KeyPath, str]]:
    from twin.alerts.rules import StaleRule, ThresholdRule

    problems: list[tuple[KeyPath, str]] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        model = ThresholdRule if loc[:1] == ("threshold",) else StaleRule
        if err["type"] == "extra_forbidden":
            known = sorted(f.alias or name for name, f in model.model_fields.items())
            problems.append((loc, unknown_name("key", str(loc[-1]), known, listed="known keys")))
        elif err["type"] == "union_tag_invalid":
            problems.append((loc + ("kind",), "unknown rule kind; known kinds: threshold, stale"))
        else:
            problems.append((loc, err["msg"]))
    return problems
