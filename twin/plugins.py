"""Plugin registry for layer types (``twin.layers``) and source types (``twin.sources``), and the
factories that build layers and sources from scene-file specs.

Plugins are found through entry points, listed without being imported, and loaded on first
use. ``register_layer`` / ``register_source`` add one in-process (notebooks, tests). Built-in
types register through the same entry points as third-party ones: the core never imports a
plugin by name. :func:`build_layer` and :func:`build_source` are the one way a spec becomes a
layer or a source (scene files, ``Layer(source={...})``, a layer's nested ``stations:``).

>>> from twin.source import Source
>>> class Echo(Source):
...     '''A source returning nothing.'''
...     def read(self, bbox=None):
...         raise NotImplementedError
>>> register_source(Echo, "echo") is Echo
True
>>> "echo" in source_types().names()
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from twin.errors import PluginError, unknown_name
from twin.registry import (
    SOURCE_GROUP,
    Locator,
    Registry,
    at_key,
    bind_base_dir,
    build_source,
    create,
    nested_source_specs,
    register_source,
    source_types,
    within,
)

if TYPE_CHECKING:
    from twin.layer import Layer
    from twin.source import Source

__all__ = [
    "LAYER_GROUP",
    "SOURCE_GROUP",
    "Locator",
    "Registry",
    "build_layer",
    "build_source",
    "layer_types",
    "register_layer",
    "register_source",
    "source_types",
]

LAYER_GROUP = "twin.layers"


def _layer_base() -> type:
    from twin.layer import Layer

    return Layer


_LAYERS: Registry[Layer] = Registry(LAYER_GROUP, "layer", _layer_base)


def layer_types() -> Registry[Layer]:
    """The registry of layer types."""
    return _LAYERS


LayerT = TypeVar("LayerT", bound="Layer")


def register_layer(cls: type[LayerT], name: str | None = None) -> type[LayerT]:
    """Register a layer type in-process; usable as a decorator."""
    return _LAYERS.register(cls, name)  # type: ignore[return-value]


def build_layer(
    type_name: str,
    layer_id: str,
    *,
    source: Source | Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    where: Locator | None = None,
    base_dir: Path | None = None,
) -> Layer:
    """The layer a scene file's layer entry describes: type, id, source spec and the other keys in ``params``
    (``title``, ``visible``, ``opacity`` and the type's own parameters).

    The source, and every parameter that is itself a source spec (a flood layer's ``stations:``),
    are built by :func:`build_source`; ``base_dir`` (the scene file's folder) resolves their
    relative paths. Raises :class:`PluginError` (unknown ``type``, a plugin failing on its
    parameters), :class:`~twin.params.ParamError` and the other :class:`~twin.errors.TwinError`
    that :func:`build_source` and the layer raise; with ``where``, each is passed with its key
    path in the entry (``("type",)``, ``("source", ...)``, ``("stations", ...)`` or ``()``).
    """
    params = dict(params or {})
    with at_key(where, ("type",)):
        cls = _LAYERS.get(type_name)
    built = None if source is None else build_source(source, where=within(where, ("source",)), base_dir=base_dir)
    for key, spec in nested_source_specs(params):
        build_source(spec, where=within(where, (key,))).close()  # located errors now; the layer builds its own
    with at_key(where, ()):
        layer = create("layer", type_name, lambda: cls(layer_id, source=built, **params))
    if base_dir is not None:
        for nested in layer.nested_sources():
            bind_base_dir(nested, base_dir)
    return layer


RENDERER_GROUP = "twin.renderers"
_RENDERERS: dict[str, Callable[..., object]] = {}


def register_renderer(name: str, render: Callable[..., object]) -> None:
    """Register a function ``render(scene, path, *, size, camera) -> Path`` that writes an image."""
    _RENDERERS[name] = render


def renderer(name: str = "vtk") -> Callable[..., object]:
    """The image renderer called by ``Scene.screenshot`` (entry-point group ``twin.renderers``).

    Going through the registry keeps the scene model free of any import of rendering code.
    """
    return _entry_point(RENDERER_GROUP, "renderer", name, _RENDERERS)


DISPLAY_GROUP = "twin.displays"
_DISPLAYS: dict[str, Callable[..., object]] = {}


def notebook_display(name: str = "jupyter") -> Callable[..., object]:
    """The function ``show(scene, *, size, camera, static)`` called by ``Scene.show`` (entry-point group ``twin.displays``).

    >>> notebook_display().__module__
    'twin.app.notebook'
    """
    return _entry_point(DISPLAY_GROUP, "notebook display", name, _DISPLAYS)


def _entry_point(group: str, kind: str, name: str, cache: dict[str, Callable[..., object]]) -> Callable[..., object]:
    """The object entry point ``name`` of ``group`` names (loaded once); PluginError with a "did you mean" if none."""
    if name not in cache:
        found = {ep.name: ep for ep in entry_points(group=group)}
        if name not in found:
            raise PluginError(unknown_name(kind, name, sorted(found), listed="installed"))
        cache[name] = found[name].load()
    return cache[name]
