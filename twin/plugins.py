"""Plugin registry for layer types (``twin.layers``) and source types (``twin.sources``).

Plugins are found through entry points, listed without being imported, and loaded on first
use. ``register_layer`` / ``register_source`` add one in-process (notebooks, tests). Built-in
types register through the same entry points as third-party ones: the core never imports a
plugin by name.

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

import difflib
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Generic, TypeVar

from twin.errors import PluginError

if TYPE_CHECKING:
    from twin.layer import Layer
    from twin.source import Source

__all__ = [
    "LAYER_GROUP",
    "SOURCE_GROUP",
    "Registry",
    "layer_types",
    "register_layer",
    "register_source",
    "source_types",
]

LAYER_GROUP = "twin.layers"
SOURCE_GROUP = "twin.sources"

T = TypeVar("T")


class Registry(Generic[T]):
    """Named plugin classes of one kind: explicit registrations plus one entry-point group."""

    def __init__(self, group: str, kind: str, base: Callable[[], type]) -> None:
        self.group = group
        self.kind = kind
        self._base = base
        self._registered: dict[str, type[T]] = {}
        self._entry_points: dict[str, EntryPoint] | None = None

    def _discovered(self) -> dict[str, EntryPoint]:
        if self._entry_points is None:
            self._entry_points = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._entry_points

    def register(self, cls: type[T], name: str | None = None) -> type[T]:
        """Register ``cls`` under ``name`` (default: its ``type_name``); replaces an earlier one."""
        base = self._base()
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"cannot register {cls!r} as a {self.kind} type: it is not a subclass of {base.__name__}")
        key = name or getattr(cls, "type_name", None)
        if not key:
            raise PluginError(f"{self.kind} plugin {cls.__name__} needs a name (pass name= or set type_name)")
        cls.type_name = key  # type: ignore[attr-defined]  (scene files name it so)
        self._registered[key] = cls
        return cls

    def unregister(self, name: str) -> None:
        """Remove an in-process registration (entry points stay discoverable)."""
        self._registered.pop(name, None)

    def names(self) -> list[str]:
        """All known type names, sorted, without importing any plugin."""
        return sorted(set(self._registered) | set(self._discovered()))

    def get(self, name: str) -> type[T]:
        """The plugin class for ``name``, loading its entry point on first use."""
        if name in self._registered:
            return self._registered[name]
        ep = self._discovered().get(name)
        if ep is None:
            raise PluginError(self.unknown_message(name))
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not take the app down with a traceback
            raise PluginError(f"{self.kind} type {name!r} failed to load from {ep.value}: {exc}") from exc
        base = self._base()
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"{self.kind} type {name!r} ({ep.value}) is not a subclass of {base.__name__}")
        cls.type_name = name
        self._registered[name] = cls
        return cls

    def unknown_message(self, name: object) -> str:
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown {self.kind} type {name!r}{hint}; known types: {', '.join(known) or 'none installed'}"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._registered or name in self._discovered())


def _layer_base() -> type:
    from twin.layer import Layer

    return Layer


def _source_base() -> type:
    from twin.source import Source

    return Source


_LAYERS: Registry[Layer] = Registry(LAYER_GROUP, "layer", _layer_base)
_SOURCES: Registry[Source] = Registry(SOURCE_GROUP, "source", _source_base)


def layer_types() -> Registry[Layer]:
    """The registry of layer types."""
    return _LAYERS


def source_types() -> Registry[Source]:
    """The registry of source types."""
    return _SOURCES


LayerT = TypeVar("LayerT", bound="Layer")
SourceT = TypeVar("SourceT", bound="Source")


def register_layer(cls: type[LayerT], name: str | None = None) -> type[LayerT]:
    """Register a layer type in-process; usable as a decorator."""
    return _LAYERS.register(cls, name)  # type: ignore[return-value]


def register_source(cls: type[SourceT], name: str | None = None) -> type[SourceT]:
    """Register a source type in-process; usable as a decorator."""
    return _SOURCES.register(cls, name)  # type: ignore[return-value]


RENDERER_GROUP = "twin.renderers"
_RENDERERS: dict[str, Callable[..., object]] = {}


def register_renderer(name: str, render: Callable[..., object]) -> None:
    """Register a function ``render(scene, path, *, size, camera) -> Path`` that writes an image."""
    _RENDERERS[name] = render


def renderer(name: str = "vtk") -> Callable[..., object]:
    """The image renderer called by ``Scene.screenshot`` (entry-point group ``twin.renderers``).

    Going through the registry keeps the scene model free of any import of rendering code.
    """
    if name not in _RENDERERS:
        found = {ep.name: ep for ep in entry_points(group=RENDERER_GROUP)}
        if name not in found:
            raise PluginError(f"unknown renderer {name!r}; installed: {', '.join(sorted(found)) or 'none'}")
        _RENDERERS[name] = found[name].load()
    return _RENDERERS[name]
