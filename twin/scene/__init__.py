"""Scene model and versioned YAML scene files."""

from twin.scene.camera import CameraPreset
from twin.scene.model import Scene
from twin.scene.schema import SCHEMA_VERSION, SceneSettings

__all__ = ["SCHEMA_VERSION", "CameraPreset", "Scene", "SceneSettings"]
