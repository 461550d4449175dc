"""Plugin registries, and the one factory that builds a source from a spec.

This module sits below the layer model (``twin.layer`` builds a layer's source from a
``{"type": ..., **params}`` spec through :func:`build_source`); :mod:`twin.plugins` sits above
it, holds the layer registry and builds layers. Import the public names from :mod:`twin.plugins`.

>>> from twin.errors import PluginError
>>> try:
...     build_source({"type": "fiel", "path": "roads.geojson"})
... except PluginError as e:
...     print(str(e).split(";")[0])
unknown source type 'fiel' (did you mean 'file'?)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from twin.errors import PluginError, TwinError, unknown_name
from twin.source import Source

__all__ = [
    "SOURCE_GROUP",
    "KeyPath",
    "Locator",
    "Registry",
    "at_key",
    "bind_base_dir",
    "build_source",
    "create",
    "nested_source_specs",
    "register_source",
    "source_types",
    "within",
]

SOURCE_GROUP = "twin.sources"

T = TypeVar("T")

KeyPath = tuple[str | int, ...]
"""A key path inside a spec, e.g. ``("source", "type")``."""

Locator = Callable[[KeyPath, TwinError], TwinError]
"""Turns an error at a key path of a spec into the error a user sees: a scene file adds its file, line and key."""


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
        """The plugin class for ``name``, loading its entry point on first use; :class:`PluginError` if there is none."""
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

    def from_spec(self, type_name: object) -> type[T]:
        """The plugin class a spec's ``type`` value names; :class:`PluginError` when it is missing or unknown."""
        if type_name is None:
            raise PluginError(f"{self.kind} needs a 'type'; known types: {', '.join(self.names()) or 'none installed'}")
        return self.get(str(type_name))

    def unknown_message(self, name: object) -> str:
        """``unknown source type 'fiel' (did you mean 'file'?); known types: ...``."""
        return unknown_name(f"{self.kind} type", name, self.names(), listed="known types", none="none installed")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._registered or name in self._discovered())


_SOURCES: Registry[Source] = Registry(SOURCE_GROUP, "source", lambda: Source)

SourceT = TypeVar("SourceT", bound=Source)


def source_types() -> Registry[Source]:
    """The registry of source types."""
    return _SOURCES


def register_source(cls: type[SourceT], name: str | None = None) -> type[SourceT]:
    """Register a source type in-process; usable as a decorator."""
    return _SOURCES.register(cls, name)  # type: ignore[return-value]


@contextmanager
def at_key(where: Locator | None, key: KeyPath) -> Iterator[None]:
    """A :class:`TwinError` raised inside is at ``key`` of the spec: ``where`` turns it into the error raised instead.

    Without ``where`` the error passes unchanged (the Python API names no file).
    """
    try:
        yield
    except TwinError as exc:
        if where is None:
            raise
        raise where(key, exc) from None


def within(where: Locator | None, key: KeyPath) -> Locator | None:
    """The locator of the spec found at ``key`` inside the spec ``where`` locates (e.g. a layer's ``source``)."""
    if where is None:
        return None
    return lambda inner, exc: where(key + inner, exc)


def create(kind: str, name: str, make: Callable[[], T]) -> T:
    """``make()``, which creates a plugin of ``kind`` type ``name``: an error of the plugin's own (not a
    :class:`TwinError`) on its parameters becomes one :class:`PluginError` line naming the plugin type
    (the original is its cause)."""
    try:
        return make()
    except TwinError:
        raise
    except Exception as exc:  # third-party plugin code: one clear line, never a traceback
        raise PluginError(f"{kind} type {name!r} rejected its parameters: {type(exc).__name__}: {exc}") from exc


def build_source(spec: Source | Mapping[str, Any], *, where: Locator | None = None, base_dir: Path | None = None) -> Source:
    """The source a spec describes: a :class:`Source` as it is, or ``{"type": name, **params}`` built by that plugin.

    ``base_dir`` (a scene file's folder) resolves the source's relative paths. Raises
    :class:`PluginError` for a spec that is not a mapping, a missing or unknown ``type`` or a plugin
    failing on its parameters, :class:`~twin.params.ParamError` for parameters its ``Params`` reject,
    and the :class:`SourceError` (or other :class:`TwinError`) the plugin raises. With ``where``, each
    is passed with its key path in the spec (``("type",)``, or ``()`` for the spec as a whole) and
    what ``where`` returns is raised.
    """
    if isinstance(spec, Source):
        source = spec
    else:
        with at_key(where, ()):
            if not isinstance(spec, Mapping):
                raise PluginError(f"a source is a {{type: ..., ...}} mapping or a Source, got {type(spec).__name__} {spec!r}")
        params = dict(spec)
        type_name = params.pop("type", None)
        with at_key(where, ("type",)):
            cls = _SOURCES.from_spec(type_name)
        with at_key(where, ()):
            source = create("source", str(type_name), lambda: cls(**params))
    if base_dir is not None:
        bind_base_dir(source, base_dir)
    return source


def nested_source_specs(params: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(parameter, spec) for each layer parameter that is a source spec: a mapping whose ``type`` is a source type."""
    names = set(_SOURCES.names())
    return [(key, dict(value)) for key, value in params.items() if isinstance(value, Mapping) and str(value.get("type")) in names]


def bind_base_dir(source: Source, base_dir: Path) -> None:
    """Resolve the source's relative paths against ``base_dir`` (sources with files have ``bind_base_dir``)."""
    bind = getattr(source, "bind_base_dir", None)
    if callable(bind):
        bind(base_dir)
