"""Saved views: a named camera, the layers shown and the time shown, kept in the scene file's ``views:``.

A planner names what they look at; the name reopens it (``/?view=bund`` in the app), and so does
a URL that carries the view itself (``/?cam=lon,lat,range,heading,pitch&layers=a,b&t=ISO``)::

    views:
      bund:
        camera: {target: [121.49, 31.24, 0], heading: 30, pitch: 45, range: 1500}
        layers: [districts, bus71]
        time: 2026-07-01T15:00:00+08:00

``layers`` lists the layers shown (the others are hidden; left out: visibility stays as it is);
``time`` is the scene time shown (left out: live).

>>> from twin.geo.frame import Frame
>>> frame = Frame.auto(121.48, 31.23)
>>> view = view_from_query({"cam": "121.49,31.24,1500,30,45", "layers": "districts"}, ["districts", "bus71"])
>>> view.camera.range, view.layers
(1500.0, ('districts',))
>>> round(view_from_pose(*view.camera.resolve(frame)[:2], frame=frame, layers=None, time=None).camera.heading, 6)
30.0
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from twin.errors import SceneFileError, TwinError, unknown_name
from twin.geo.frame import Frame
from twin.params import Id, dotted_path, problems_of
from twin.scene.camera import CameraPreset, Vec3
from twin.scene.yamlfile import KeyPath, line_of

__all__ = ["SavedView", "ViewError", "validate_views", "view_from_pose", "view_from_query", "view_query"]


class ViewError(TwinError, ValueError):
    """A saved view or view URL that cannot be shown: unknown name, layer or camera numbers, a time without a zone."""


class SavedView(BaseModel):
    """What a saved view shows: ``camera`` (a preset in lon/lat), ``layers`` (the ids shown; None: as they are), ``time`` (None: live)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    camera: CameraPreset = Field(description="where the camera is: {target: [lon, lat, h], heading, pitch, range} or position + focal_point")
    layers: tuple[Id, ...] | None = Field(None, description="ids of the layers shown (the others are hidden); left out: as they are")
    time: dt.datetime | None = Field(None, description="scene time shown (ISO 8601 with a zone); left out: live")

    @field_validator("time")
    @classmethod
    def _zoned(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"time {value.isoformat()} needs a time zone, e.g. +08:00")
        return value

    def to_dict(self) -> dict[str, Any]:
        """Scene-file form (defaults left out)."""
        out: dict[str, Any] = {"camera": self.camera.model_dump(mode="json", exclude_defaults=True)}
        if self.layers is not None:
            out["layers"] = list(self.layers)
        if self.time is not None:
            out["time"] = self.time.isoformat()
        return out


def validate_views(views: Mapping[str, Any], layer_ids: Sequence[str], *, file: str | None, lines: dict[KeyPath, int]) -> dict[str, SavedView]:
    """The ``views:`` of a scene file; raises :class:`SceneFileError` with the file, line and key of the first problem."""
    out: dict[str, SavedView] = {}
    for name, entry in views.items():
        path: KeyPath = ("views", name)
        try:
            view = SavedView.model_validate(entry)
        except ValidationError as exc:
            loc, message = problems_of(SavedView, exc)[0]
            raise SceneFileError(message, file=file, line=line_of(lines, path + tuple(loc)), key=dotted_path(path + tuple(loc))) from None
        for index, layer_id in enumerate(view.layers or ()):
            if layer_id not in layer_ids:
                key = path + ("layers", index)
                raise SceneFileError(unknown_name("layer", layer_id, list(layer_ids), listed="layers"), file=file, line=line_of(lines, key), key=dotted_path(key))
        out[name] = view
    return out


def view_from_pose(position: Vec3, focal_point: Vec3, *, frame: Frame, layers: Iterable[str] | None, time: dt.datetime | None) -> SavedView:
    """A saved view of a camera at ``position`` looking at ``focal_point`` (the frame's local metres) as an orbit preset:
    target lon/lat/height, heading (degrees clockwise from north), pitch (degrees below the horizon, 0..90), range (m)."""
    dx, dy, dz = (f - p for p, f in zip(position, focal_point, strict=True))
    horizontal = math.hypot(dx, dy)
    distance = max(math.sqrt(horizontal * horizontal + dz * dz), 1e-3)
    lon, lat, height = (float(v[0]) for v in frame.local_to_lonlat([list(focal_point)]))
    heading = math.degrees(math.atan2(dx, dy)) % 360.0 if horizontal > 1e-6 * distance else 0.0
    pitch = min(max(math.degrees(math.atan2(-dz, horizontal)), 0.0), 90.0)
    camera = CameraPreset(target=(lon, lat, height), heading=round(heading, 6), pitch=round(pitch, 6), range=round(distance, 3))
    return SavedView(camera=camera, layers=None if layers is None else tuple(layers), time=time)


def view_query(view: SavedView) -> str:
    """The URL query that reopens ``view`` (``cam=lon,lat,range,heading,pitch[&layers=a,b][&t=ISO]``), for an orbit camera."""
    from urllib.parse import urlencode

    cam = view.camera
    if cam.target is None:
        raise ViewError("a view URL carries an orbit camera (target, heading, pitch, range), not position + focal point")
    params = {"cam": ",".join(f"{v:.6f}".rstrip("0").rstrip(".") for v in (cam.target[0], cam.target[1], cam.range, cam.heading, cam.pitch))}
    if view.layers is not None:
        params["layers"] = ",".join(view.layers)
    if view.time is not None:
        params["t"] = view.time.isoformat()
    return urlencode(params, safe=",:")


def view_from_query(query: Mapping[str, str], layer_ids: Sequence[str], saved: Mapping[str, SavedView] | None = None) -> SavedView | None:
    """The view a URL's query asks for: ``view=name`` (a saved view), or ``cam=lon,lat,range[,heading[,pitch]]`` with optional
    ``layers=a,b`` and ``t=ISO 8601 with a zone``; None when it asks for none. Raises :class:`ViewError` naming the parameter."""
    name = (query.get("view") or "").strip()
    if name:
        views = dict(saved or {})
        if name not in views:
            raise ViewError(f"URL parameter view: {unknown_name('view', name, list(views), listed='saved views', none='none saved')}")
        return views[name]
    if not (query.get("cam") or "").strip():
        return None
    camera = _camera(query["cam"])
    layers = None
    if query.get("layers") is not None:
        layers = tuple(part.strip() for part in query["layers"].split(",") if part.strip())
        for layer_id in layers:
            if layer_id not in layer_ids:
                raise ViewError(f"URL parameter layers: {unknown_name('layer', layer_id, list(layer_ids), listed='layers')}")
    return SavedView(camera=camera, layers=layers, time=_time(query.get("t")))


def _camera(text: str) -> CameraPreset:
    """``lon,lat,range[,heading[,pitch]]`` as an orbit preset; ViewError naming ``cam`` for anything else."""
    parts = [p.strip() for p in text.split(",")]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if not 3 <= len(numbers) <= 5 or not all(math.isfinite(v) for v in numbers):
        raise ViewError(f"URL parameter cam={text!r}: give lon,lat,range[,heading[,pitch]] as numbers, e.g. cam=121.49,31.24,1500,30,45")
    lon, lat, distance = numbers[:3]
    if not (-180 <= lon <= 180 and -85 <= lat <= 85):
        raise ViewError(f"URL parameter cam={text!r}: {lon:g}, {lat:g} is not a lon, lat pair")
    fields: dict[str, Any] = {"target": (lon, lat), "range": distance}
    fields.update(zip(("heading", "pitch"), numbers[3:]))
    try:
        return CameraPreset(**fields)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise ViewError(f"URL parameter cam={text!r}: {'.'.join(str(p) for p in error['loc'])} {error['msg'].lower()}") from None


def _time(text: str | None) -> dt.datetime | None:
    if text is None or not text.strip():
        return None
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+", 1) if "T" in text else text.strip())
    except ValueError:
        raise ViewError(f"URL parameter t={text!r} is not an ISO 8601 time, e.g. t=2026-07-01T15:00:00+08:00") from None
    if when.tzinfo is None:
        raise ViewError(f"URL parameter t={text!r} needs a time zone, e.g. +08:00")
    return when
