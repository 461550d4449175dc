"""twin: an open digital-twin 3D city viewer.

>>> import twin
>>> scene = twin.Scene()
>>> scene.layers
[]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Frame",
    "Scene",
    "extrude_footprints",
    "register_layer",
    "register_source",
]

if TYPE_CHECKING:
    from twin.geo.frame import Frame
    from twin.mesh.extrude import extrude_footprints
    from twin.plugins import register_layer, register_source
    from twin.scene.model import Scene

_LAZY = {
    "Frame": "twin.geo.frame",
    "Scene": "twin.scene.model",
    "extrude_footprints": "twin.mesh.extrude",
    "register_layer": "twin.plugins",
    "register_source": "twin.plugins",
}


def __getattr__(name: str) -> Any:
    """Import public names lazily so ``import twin`` stays fast (no VTK until needed)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'twin' has no attribute {name!r}")
