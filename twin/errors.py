"""Errors twin raises for bad input. Each names the input and what is wrong with it.

The CLI prints ``str(error)`` as one line; a traceback appears only with ``--debug``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path


class TwinError(Exception):
    """Base class of every error twin reports to a user."""


class CRSError(TwinError, ValueError):
    """A coordinate reference system that is unknown or unusable here."""


class SceneFileError(TwinError, ValueError):
    """A scene file that cannot be read or fails validation.

    Carries the file, the 1-based line and the dotted key path of the problem.
    """

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None, key: str | None = None):
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.file or "<scene>"
        if self.line is not None:
            where += f":{self.line}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class PluginError(TwinError, LookupError):
    """An unknown plugin type, or a plugin that fails to load."""


class SourceError(TwinError, RuntimeError):
    """A data source that cannot deliver: missing file, unreadable data, server failure.

    ``status`` is the HTTP status when a server answered with an error, else None.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LayerDataError(TwinError, ValueError):
    """Data a layer cannot draw (wrong geometry type, missing column, ...)."""


class MissingDependencyError(TwinError, ImportError):
    """An optional dependency a feature needs is not installed; the message names the pip extra that brings it."""


class ExportError(TwinError, RuntimeError):
    """A recording or export that cannot be made: bad size or frame rate, unknown tour, bad replay times, unwritable output."""


class TwinWarning(UserWarning):
    """Input that was repaired, skipped or replaced by a fallback (the message counts it and names rows)."""


WARNED = {"twin_warned": True}
"""``extra=`` for a log record whose message is also issued as a :class:`TwinWarning`: the command
line shows the warning and drops the log record (one line, not two); servers keep both."""


class SourceCheckError(SourceError):
    """A source parameter that fails a check made without reading data (``Source.check``), e.g. a missing file.

    ``key`` names the parameter (``"path"``) so scene validation can point at its line.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class StateStoreError(TwinError, RuntimeError):
    """A state file (the alert store) that cannot be opened or written, or was written by a newer twin; the message names the file."""


class AccessError(TwinError, ValueError):
    """Serving settings that would let the wrong people in: a non-loopback address without a token, a bad token file or origin."""


class HubError(TwinError, RuntimeError):
    """``twin hub`` cannot serve: a missing or empty scene folder, or a session's app that would not start (the message names the scene file)."""


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """`` (did you mean 'color'?)`` for the one of ``known`` closest to ``name``, or ``""`` when none is close.

    Close means a :func:`difflib.get_close_matches` ratio of at least 0.6. Every "did you mean"
    in twin's messages comes from here.

    >>> did_you_mean("colour", ["color", "opacity"]), did_you_mean("xyz", ["color"])
    (" (did you mean 'color'?)", '')
    """
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name(what: str, name: object, known: Sequence[str], *, listed: str, none: str = "none") -> str:
    """The message for a name that is not one of ``known``: what it is, a suggestion, and the choices.

    >>> unknown_name("key", "colour", ["color", "opacity"], listed="known keys")
    "unknown key 'colour' (did you mean 'color'?); known keys: color, opacity"
    >>> unknown_name("camera", "top", [], listed="cameras", none="none defined")
    "unknown camera 'top'; cameras: none defined"
    """
    return f"unknown {what} {name!r}{did_you_mean(name, known)}; {listed}: {', '.join(known) or none}"


class AggregateError(TwinError, ValueError):
    """A readings dataset that cannot be aggregated, or an aggregate file that cannot be read (``twin.aggregate``);
    the message names the folder or file (and column, partition or scheduler) and what is wrong."""
