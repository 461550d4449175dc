"""Checks shared by the exporters: output paths. (The burnt-in clock is :func:`twin.clock.fmt_datetime`.)"""

from __future__ import annotations

from pathlib import Path

from twin.errors import ExportError

__all__ = ["output_path"]


def output_path(path: str | Path, suffixes: tuple[str, ...], what: str) -> Path:
    """``path`` as a Path, checked before any work: one of ``suffixes`` and an existing folder; else :class:`ExportError`."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise ExportError(f"output {path} must be a {' or '.join(suffixes)} file ({what})")
    if not path.parent.is_dir():
        raise ExportError(f"output folder {path.parent} does not exist (writing {path.name})")
    return path
