"""Checks and helpers shared by the exporters: output paths, the burnt-in clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from twin.errors import ExportError

__all__ = ["CLOCK_ZONE", "clock_text", "output_path"]

CLOCK_ZONE = dt.timezone(dt.timedelta(hours=8), "+08:00")
"""The zone clocks are shown in (Shanghai time, as in the browser app)."""


def clock_text(when: dt.datetime | None) -> str:
    """``YYYY-MM-DD HH:MM:SS +08:00`` for a tz-aware time (empty for None).

    >>> clock_text(dt.datetime(2026, 7, 1, 12, 15, tzinfo=dt.timezone.utc))
    '2026-07-01 20:15:00 +08:00'
    """
    return "" if when is None else when.astimezone(CLOCK_ZONE).strftime("%Y-%m-%d %H:%M:%S +08:00")


def output_path(path: str | Path, suffixes: tuple[str, ...], what: str) -> Path:
    """``path`` as a Path, checked before any work: one of ``suffixes`` and an existing folder; else :class:`ExportError`."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise ExportError(f"output {path} must be a {' or '.join(suffixes)} file ({what})")
    if not path.parent.is_dir():
        raise ExportError(f"output folder {path.parent} does not exist (writing {path.name})")
    return path
