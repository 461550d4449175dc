"""The live Session (model side: no trame, no VTK): scene, live clock, replay, alerts, camera, typed events."""

from twin.session.camera import CameraChange, CameraPose, fly_to
from twin.session.events import Focus, HealthChange, LayerChange, Selection, TimeChange
from twin.session.session import Session, resolve_tick_seconds

__all__ = ["CameraChange", "CameraPose", "Focus", "HealthChange", "LayerChange", "Selection", "Session", "TimeChange", "fly_to", "resolve_tick_seconds"]
