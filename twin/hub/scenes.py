"""The scenes a hub offers: the ``.yaml`` files of one folder (or one scene file), with their names and titles.

Only the top level of each file is read and checked (no data is loaded), so listing stays quick; a file
that fails the check is listed with its one-line error and cannot be opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from twin.errors import HubError, SceneFileError
from twin.scene.schema import validate_doc
from twin.scene.yamlfile import load_yaml, read_scene_text

__all__ = ["SceneEntry", "find_scene", "list_scenes"]


@dataclass(frozen=True)
class SceneEntry:
    """One scene file on offer. ``key``: its file name without ``.yaml`` (the address ``/start/<key>`` opens it).

    ``name`` and ``title`` come from the file (``name``, ``settings.title``); ``error`` is the one-line
    problem of a file that cannot be opened (then ``name`` is the file name), else None.
    """

    path: Path
    key: str
    name: str
    title: str | None = None
    error: str | None = None


def _entry(path: Path) -> SceneEntry:
    """The listing of one scene file; a file failing the top-level check gets its error instead of a name."""
    try:
        data, lines = load_yaml(read_scene_text(path), path)
        doc = validate_doc(data, file=str(path), lines=lines)
    except SceneFileError as exc:
        return SceneEntry(path=path, key=path.stem, name=path.name, error=str(exc))
    return SceneEntry(path=path, key=path.stem, name=doc.name, title=doc.settings.title)


def _paths(where: Path) -> list[Path]:
    """The scene files of folder ``where`` (``*.yaml``, sorted by name), or ``[where]`` for a file; HubError if none."""
    if where.is_file():
        return [where]
    if not where.is_dir():
        raise HubError(f"{where}: no such folder of scenes (give a folder of .yaml scene files, or one scene file)")
    paths = sorted(p for p in where.glob("*.yaml") if p.is_file())
    if not paths:
        raise HubError(f"{where}: no .yaml scene file in this folder")
    return paths


def list_scenes(where: Path) -> list[SceneEntry]:
    """The scenes of folder ``where`` (its ``*.yaml`` files, sorted by file name), or of one scene file ``where``.

    A file that cannot be opened is listed with its error. Raises HubError naming ``where`` if it does
    not exist or holds no ``.yaml`` file.
    """
    return [_entry(path) for path in _paths(where)]


def find_scene(where: Path, key: str) -> SceneEntry | None:
    """Scene ``key`` (file name without ``.yaml``) of ``where`` as it is on disk now, or None if there is no such file.

    The entry's ``error`` says why a file cannot be opened. Raises HubError as :func:`list_scenes`.
    """
    path = next((p for p in _paths(where) if p.stem == key), None)
    return None if path is None else _entry(path)
