"""Where the alert engine keeps its open alerts and history across restarts: one SQLite file.

A restarted hall server shows the alerts that were open (and acknowledged) before, the closed
ones still in the history, and gives new alerts ids that never repeat an old one. The file is
written through :mod:`sqlite3` (standard library) in WAL mode, every change in one transaction.
The usual place is ``<state folder>/alerts.sqlite``; :func:`default_state_dir` names a state
folder per scene under the cache folder (``$TWIN_CACHE_DIR``, else ``~/.cache/twin``).

What happens with a file that cannot be used:

- a **corrupt** file (not SQLite, damaged pages, not an alert store, rows that do not decode)
  is moved aside to ``<file>.corrupt-<UTC time>`` (kept for a person to look at) and a new,
  empty store is started, with a :class:`~twin.errors.TwinWarning` naming both files: an
  unattended wall keeps alerting;
- a file written by a **newer** twin (a higher schema version) is left untouched and
  :class:`~twin.errors.StateStoreError` says so in one line naming the file: upgrade twin or
  pick another state folder;
- a file that cannot be **opened** at all (a folder in its place, no permission) raises
  :class:`~twin.errors.StateStoreError` naming the file.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as folder:
...     store = AlertStore(pathlib.Path(folder) / "alerts.sqlite")
...     store.save([StoredAlert("deep:FP1:1", True, {"id": "deep:FP1:1"})], removed=[], serial=1)
...     store.close()
...     again = AlertStore(pathlib.Path(folder) / "alerts.sqlite")
...     serial, rows = again.load(lambda record: record.data["id"])
...     again.close()
>>> serial, rows
(1, ['deep:FP1:1'])
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sqlite3
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from twin.errors import StateStoreError, TwinWarning
from twin.paths import cache_dir

__all__ = ["SCHEMA_VERSION", "AlertStore", "StoredAlert", "default_state_dir"]

SCHEMA_VERSION = 1
"""The store layout this twin writes (SQLite ``user_version``); files with a higher one are refused."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    open INTEGER NOT NULL,
    closed_seq INTEGER,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_closed_seq ON alerts (closed_seq);
"""
_UPSERT = """
INSERT INTO alerts (id, open, closed_seq, data) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET open = excluded.open, data = excluded.data, closed_seq = COALESCE(alerts.closed_seq, excluded.closed_seq)
"""
_TABLES = {"meta", "alerts"}

T = TypeVar("T")


@dataclass(frozen=True)
class StoredAlert:
    """One alert as stored: its id, whether it is open, and its fields as JSON-ready data."""

    id: str
    open: bool
    data: dict[str, Any]


class AlertStore:
    """One SQLite file holding an engine's open alerts, its history (in closing order) and its id serial.

    Not shared between processes: one engine per file. Calls are serialised by a lock, so
    threads may share a store. Raises :class:`~twin.errors.StateStoreError` (see the module
    docstring for corrupt files and files from a newer twin).
    """

    def __init__(self, path: str | Path, *, timeout_s: float = 5.0) -> None:
        """Open (or create, with its folders) the store at ``path``; ``timeout_s``: how long a write waits for a lock."""
        self.path = Path(path).expanduser()
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        connection = self._open()
        self._connection: sqlite3.Connection | None = connection
        self._next_seq: int = connection.execute("SELECT COALESCE(MAX(closed_seq), 0) + 1 FROM alerts").fetchone()[0]

    # -- opening -----------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        """A connection to a usable store: created, checked, or (corrupt) moved aside and started anew."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = self._connect()
        except (OSError, sqlite3.Error) as exc:
            raise StateStoreError(f"cannot open alert store {self.path}: {_reason(exc)}") from None
        try:
            self._prepare(connection)
        except sqlite3.DatabaseError as exc:
            connection.close()
            return self._start_fresh(_reason(exc))
        except StateStoreError:
            connection.close()
            raise
        return connection

    def _connect(self) -> sqlite3.Connection:
        if self.path.is_dir():
            raise StateStoreError(f"cannot open alert store {self.path}: it is a folder")
        connection = sqlite3.connect(self.path, timeout=self._timeout_s, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {int(self._timeout_s * 1000)}")
        return connection

    def _prepare(self, connection: sqlite3.Connection) -> None:
        """Check the file (raises sqlite3.DatabaseError when corrupt) and create the tables of a new one."""
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateStoreError(
                f"alert store {self.path} was written by a newer twin (schema {version}; this one reads {SCHEMA_VERSION}): upgrade twin or choose another state folder"
            )
        check = connection.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {check}")
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version == 0 and tables:
            raise sqlite3.DatabaseError(f"not an alert store (tables: {', '.join(sorted(tables))})")
        if version == SCHEMA_VERSION and not _TABLES <= tables:
            raise sqlite3.DatabaseError(f"tables missing: {', '.join(sorted(_TABLES - tables))}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        if version == 0:
            connection.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")

    def _start_fresh(self, reason: str) -> sqlite3.Connection:
        """Move a corrupt file (and its WAL side files) aside, warn, and open a new, empty store."""
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            for suffix in ("", "-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.replace(aside.with_name(aside.name + suffix))
            connection = self._connect()
            self._prepare(connection)
        except (OSError, sqlite3.Error) as exc:
            raise StateStoreError(f"alert store {self.path} is corrupt ({reason}) and cannot be replaced: {_reason(exc)}") from None
        warnings.warn(f"alert store {self.path} is corrupt ({reason}): moved it to {aside.name} and started an empty one", TwinWarning, stacklevel=4)
        return connection

    # -- reading and writing -----------------------------------------------------------------
    def load(self, decode: Callable[[StoredAlert], T]) -> tuple[int, list[T]]:
        """The id serial and every stored alert, open ones first, then the history oldest-closed first.

        ``decode`` turns a record into the caller's object; a record it cannot decode (it raises
        ValueError, KeyError or TypeError) makes the file corrupt: it is moved aside and an empty
        store started (with a warning), and ``(0, [])`` is returned.
        """
        with self._lock:
            connection = self._live()
            try:
                serial_row = connection.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()
                rows = connection.execute("SELECT id, open, data FROM alerts ORDER BY open DESC, closed_seq, rowid").fetchall()
                serial = int(serial_row[0]) if serial_row else 0
                return serial, [decode(StoredAlert(str(id_), bool(open_), json.loads(data))) for id_, open_, data in rows]
            except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as exc:
                connection.close()
                self._connection = self._start_fresh(_reason(exc))
                self._next_seq = 1
                return 0, []

    def save(self, changed: Iterable[StoredAlert], *, removed: Iterable[str], serial: int) -> None:
        """Write changed alerts (closed ones in closing order), delete ``removed`` ids, store ``serial``; one transaction.

        A closed alert keeps the place in the history it got when first written as closed.
        Raises :class:`~twin.errors.StateStoreError` naming the file when the write fails
        (nothing of it is then written).
        """
        with self._lock:
            connection = self._live()
            rows = []
            for record in changed:
                seq = None
                if not record.open:
                    seq, self._next_seq = self._next_seq, self._next_seq + 1
                rows.append((record.id, int(record.open), seq, json.dumps(record.data, ensure_ascii=False)))
            try:
                with _transaction(connection):
                    connection.executemany(_UPSERT, rows)
                    connection.executemany("DELETE FROM alerts WHERE id = ?", [(id_,) for id_ in removed])
                    connection.execute("INSERT INTO meta (key, value) VALUES ('serial', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(serial),))
            except sqlite3.Error as exc:
                raise StateStoreError(f"cannot write alert store {self.path}: {_reason(exc)}") from None

    def close(self) -> None:
        """Close the file (a checkpoint folds the WAL into it); later writes raise StateStoreError."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _live(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StateStoreError(f"alert store {self.path} is closed")
        return self._connection


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` when the block raises, on an autocommit connection."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def default_state_dir(scene_name: str) -> Path:
    """The state folder of a scene when the CLI names none: ``<cache folder>/state/<name>-<hash>``.

    The cache folder is ``$TWIN_CACHE_DIR``, else ``~/.cache/twin``. The folder name keeps the
    scene name's letters (any script), digits, ``.``, ``_`` and ``-`` (others become ``-``, at
    most 60), plus 8 hex digits of the name's SHA-256, so different names do not share a folder.
    The folder is not created here.

    >>> default_state_dir("浦东 flood/alerts").name
    '浦东-flood-alerts-c11fef8c'
    """
    slug = re.sub(r"[^\w.-]+", "-", scene_name).strip("-.")[:60] or "scene"
    digest = hashlib.sha256(scene_name.encode("utf-8")).hexdigest()[:8]
    return cache_dir("state", f"{slug}-{digest}")


def _reason(exc: BaseException) -> str:
    """The one-line text of an exception, its type when it has none."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
