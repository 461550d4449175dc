"""Safe, bounded YAML loading for scene files, remembering the line of every key for located errors.

The loader is PyYAML's safe loader with two changes:

* plain scalars are typed as in YAML 1.2 (core schema): only ``true``/``false`` are booleans, so
  ``yes``, ``no``, ``on``, ``off``, ``y``, ``n`` stay text (OpenStreetMap's ``building=yes``, the
  country code ``no``), and ``1:30`` or ``0755`` stay text or decimal instead of base 60 / octal;
* hostile or damaged input fails fast with one located :class:`~twin.errors.SceneFileError`:
  files over :data:`MAX_SCENE_BYTES`, aliases that expand to more than :data:`MAX_ALIAS_NODES`
  nodes (an "alias bomb", counted while composing, before anything is built), recursive aliases,
  nesting deeper than :data:`MAX_DEPTH`, control characters, and values no constructor accepts.

:func:`dump_yaml` quotes every text that a YAML 1.1 or 1.2 reader would type as something else,
so written files mean the same to any reader.

>>> data, lines = load_yaml("a:\\n  b: 1\\n  c: [yes, on, true]\\n", "x.yaml")
>>> data, lines[("a", "b")]
({'a': {'b': 1, 'c': ['yes', 'on', True]}}, 2)
>>> print(dump_yaml({"filter": ["yes", "no", "1e3"]}), end="")
filter: ['yes', 'no', '1e3']
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import yaml
from yaml.reader import ReaderError

from twin.errors import SceneFileError
from twin.params import dotted_path

__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "MAX_SCENE_BYTES", "KeyPath", "dump_yaml", "line_of", "load_yaml", "read_scene_text"]

KeyPath = tuple[str | int, ...]

MAX_SCENE_BYTES = 10 * 1024 * 1024
"""Largest scene file read (10 MiB): scene files name their data, they do not hold it."""
MAX_ALIAS_NODES = 100_000
"""Most nodes that aliases (``*name``) may add to a document when expanded."""
MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences."""

_BOOL, _INT, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_12 = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_BOOL_12 = re.compile(r"^(?:true|false)$", re.IGNORECASE)


class SceneLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 core scalars and limits on aliases and depth (one instance per text)."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, text: str, file: str | Path | None = None) -> None:
        super().__init__(text)
        self.file = file
        self._sizes: dict[int, int] = {}
        self._expanded = 0
        self._path: list[str | int] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """Compose as PyYAML does, counting what aliases expand to and rejecting recursive aliases."""
        self._path.append(index.value if isinstance(index, yaml.ScalarNode) else index if isinstance(index, int) else None)
        try:
            if len(self._path) > MAX_DEPTH:
                self._fail(f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                node = super().compose_node(parent, index)
                if id(node) not in self._sizes:
                    self._fail(f"alias *{event.anchor} refers to the node that contains it (a recursive alias)", event.start_mark)
                self._expanded += self._sizes[id(node)]
                if self._expanded > MAX_ALIAS_NODES:
                    self._fail(f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes (an alias bomb?)", event.start_mark)
                return node
            node = super().compose_node(parent, index)
            self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in _children(node))
            return node
        finally:
            self._path.pop()

    def fetch_flow_collection_start(self, TokenClass: type[yaml.Token]) -> None:
        """Scan ``[`` or ``{``, refusing deep flow nesting early: PyYAML's scanner is quadratic in that depth."""
        if self.flow_level >= MAX_DEPTH:
            self._fail(f"nested more than {MAX_DEPTH} levels deep", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Construct as PyYAML does; a value no constructor accepts (``!!int x``, ``2026-13-45``) is a located error."""
        try:
            return super().construct_object(node, deep)
        except SceneFileError:
            raise
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            self._fail(f"cannot read value {_shorten(node)}: {_one_line(exc)}", node.start_mark)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """YAML 1.2 integers: decimal, ``0o`` octal, ``0x`` hexadecimal."""
        value = str(self.construct_scalar(node)).replace("_", "")
        base = {"0o": 8, "0x": 16}.get(value[:2].lower(), 10)
        return int(value[2:] if base != 10 else value, base)

    def _fail(self, message: str, mark: yaml.Mark) -> NoReturn:
        path = dotted_path(tuple(p for p in self._path if p is not None))
        path = path if len(path) <= 80 else path[:77] + "..."
        raise SceneFileError(f"{message} (column {mark.column + 1})", file=self.file, line=mark.line + 1, key=path or None)


SceneLoader.add_implicit_resolver(_BOOL, _BOOL_12, list("tTfF"))
SceneLoader.add_implicit_resolver(_INT, _INT_12, list("-+0123456789"))
SceneLoader.add_implicit_resolver(_FLOAT, _FLOAT_12, list("-+0123456789."))
SceneLoader.add_constructor(_INT, SceneLoader.construct_yaml_int)


class SceneDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that also quotes text a YAML 1.2 reader would type (``1e3``), and writes tz-aware datetimes."""


SceneDumper.add_implicit_resolver(_BOOL, _BOOL_12, list("tTfF"))
SceneDumper.add_implicit_resolver(_INT, _INT_12, list("-+0123456789"))
SceneDumper.add_implicit_resolver(_FLOAT, _FLOAT_12, list("-+0123456789."))
SceneDumper.add_representer(dt.datetime, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:timestamp", value.isoformat()))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _shorten(node: yaml.Node) -> str:
    text = repr(node.value) if isinstance(node, yaml.ScalarNode) else type(node).__name__.replace("Node", "").lower()
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def read_scene_text(path: Path) -> str:
    """The text of a scene file (UTF-8, at most :data:`MAX_SCENE_BYTES`); errors name the file."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_SCENE_BYTES + 1)
    except FileNotFoundError:
        raise SceneFileError("scene file not found", file=path) from None
    except OSError as exc:
        raise SceneFileError(f"cannot read scene file: {exc.strerror or exc}", file=path) from None
    if len(raw) > MAX_SCENE_BYTES:
        raise SceneFileError(f"scene file is larger than {MAX_SCENE_BYTES // 2**20} MiB: a scene file names its data files, it does not hold the data", file=path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SceneFileError(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at column {column}", file=path, line=line) from None


def load_yaml(text: str, file: str | Path | None = None) -> tuple[Any, dict[KeyPath, int]]:
    """Parse scene YAML with :class:`SceneLoader`; return the data and a map key path → 1-based line.

    Raises :class:`SceneFileError` (file, line, key where known) for invalid, hostile or oversized YAML.
    """
    if len(text) > MAX_SCENE_BYTES:
        raise SceneFileError(f"scene text is larger than {MAX_SCENE_BYTES // 2**20} MiB", file=file)
    try:
        loader = SceneLoader(text, file)
    except ReaderError as exc:
        raise _character_error(exc, text, file) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise SceneFileError(f"invalid YAML: {_one_line(exc.problem or exc.context or exc)}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise SceneFileError(f"invalid YAML: {_one_line(exc)}", file=file, line=loader.line + 1) from None
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {(): node.start_mark.line + 1}
    _walk(node, (), lines, file)
    return data, lines


def _character_error(exc: ReaderError, text: str, file: str | Path | None) -> SceneFileError:
    """A character YAML does not allow (control characters, U+FFFE, ...), located by line and column."""
    position = min(exc.position, len(text))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    character = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
    return SceneFileError(
        f"character U+{character:04X} at column {column} is not allowed in YAML (a control character?): delete it, or write it as an escape in double quotes",
        file=file, line=line,
    )


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], file: str | Path | None) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
            if key in seen:
                raise SceneFileError(f"duplicate key {key!r}", file=file, line=key_node.start_mark.line + 1, key=dotted_path(path + (key,)))
            seen.add(key)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _walk(item, path + (i,), lines, file)


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one (a missing key's parent)."""
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


def dump_yaml(data: Any) -> str:
    """YAML text for scene data: block style, keys in the given order, unicode kept, ambiguous text quoted."""
    return yaml.dump(data, Dumper=SceneDumper, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)
