"""Safe YAML loading that remembers the line of every key, for located error messages.

>>> data, lines = load_yaml("a:\\n  b: 1\\n", "x.yaml")
>>> data, lines[("a", "b")]
({'a': {'b': 1}}, 2)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from twin.errors import SceneFileError
from twin.params import dotted_path

__all__ = ["KeyPath", "dump_yaml", "load_yaml", "line_of"]

KeyPath = tuple[str | int, ...]


def load_yaml(text: str, file: str | Path | None = None) -> tuple[Any, dict[KeyPath, int]]:
    """Parse YAML with the safe loader; return the data and a map key path → 1-based line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise SceneFileError(f"invalid YAML: {exc.problem or exc.context}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise SceneFileError(f"invalid YAML: {exc}", file=file) from None
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {(): node.start_mark.line + 1}
    _walk(node, (), lines, file)
    return data, lines


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], file: str | Path | None) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
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
    """YAML text for scene data: block style, keys in the given order, unicode kept."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)
