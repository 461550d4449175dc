"""Run ``twin`` (its command line) with a probe that samples what a served wall holds, every few seconds.

``benchmarks/bench_wall.py --probe`` serves through this: ``python benchmarks/wall_probe.py serve SCENE ...``. Every
``$TWIN_WALL_PROBE_SECONDS`` (default 5) one JSON line is appended to ``$TWIN_WALL_PROBE`` with cheap sizes of the
known holders (no tracemalloc): glibc's heap (``mallinfo2``: in use, free, in mmapped blocks), SQLite's memory, each
live layer's readings buffer (rows, room in bytes, dropped rows remembered), the H3 layers' cells and mesh parts, the
alert engine's open alerts, history and event log, the page bridge's queue, the render window's size and the threads,
the server loop's tasks and the sends waiting for wslink's one-at-a-time lock (each holds its packed message).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import runpy
import sys
import threading
import time
from pathlib import Path
from typing import Any


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def heap() -> dict[str, float]:
    """glibc's heap now (MiB): in use in the arenas, free in them, in mmapped blocks (count)."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return {"heap_used": info.uordblks / 2**20, "heap_free": info.fordblks / 2**20, "mmapped": info.hblkhd / 2**20, "mmaps": info.hblks}


def sqlite_mib() -> float:
    """Memory SQLite holds (all connections; MiB)."""
    lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return lib.sqlite3_memory_used() / 2**20


def nbytes(*arrays: Any) -> int:
    return sum(int(getattr(a, "nbytes", 0)) for a in arrays)


def layer_sizes(layer: Any) -> dict[str, Any]:
    """A readings layer's buffer and (H3) cells: rows, bytes of room, remembered drops."""
    buf = layer.buffer
    got: dict[str, Any] = {"rows": len(buf), "room_mib": round(sum(a.nbytes for a in buf._store.values()) / 2**20, 2), "seen_drops": len(buf._seen_drops)}
    if hasattr(layer, "cells"):
        parts = layer._parts[1] if layer._parts else None
        got.update(cells=len(layer.cells), span_mib=round(nbytes(*layer._span) / 2**20, 2),
                   parts_mib=round(nbytes(*parts._arrays()) / 2**20, 2) if parts else 0.0)
    return got


def sample(app: Any) -> dict[str, Any]:
    """One sample of the served app ``app`` (a TwinApp)."""
    session = app.session
    engine = session.engine
    with session.lock:
        layers = {layer.id: layer_sizes(layer) for layer in session.scene.layers if hasattr(layer, "buffer")}
        alerts = {"open": len(engine._open), "history": len(engine.history), "events": len(engine.events)}
    rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return {"mono": time.monotonic(), "scene": session.now.isoformat() if session.now else "", "rss": round(rss, 1),
            **{k: round(v, 1) for k, v in heap().items()}, "sqlite": round(sqlite_mib(), 2), "layers": layers, "alerts": alerts,
            "pending": len(app.bridge._pending), "window": list(app.view_panel.view.window.GetSize()), "threads": threading.active_count(),
            "py_blocks": sys.getallocatedblocks(), **loop_backlog(app)}


def loop_backlog(app: Any) -> dict[str, int]:
    """The server loop's tasks, and the messages waiting for wslink's send lock (each holds a packed frame or state update)."""
    import asyncio

    from wslink.protocol import WslinkHandler

    loop = app.bridge.loop
    tasks = len(asyncio.all_tasks(loop)) if loop is not None else 0
    objects = gc.get_objects()
    waiting = sum(len(o.attachment_atomic._waiters or ()) for o in objects if isinstance(o, WslinkHandler))
    try:
        from twin.app.image_sends import NewestImages
    except ImportError:  # a twin before it
        return {"tasks": tasks, "send_waiting": waiting}
    images = [o for o in objects if isinstance(o, NewestImages)]
    return {"tasks": tasks, "send_waiting": waiting, "images_replaced": sum(o.replaced for o in images)}


def find_app() -> Any:
    """The TwinApp this process serves (None before it is made)."""
    from twin.app.server import TwinApp

    return next((o for o in gc.get_objects() if isinstance(o, TwinApp)), None)


def probe(out: Path, period: float) -> None:
    """Append a sample to ``out`` every ``period`` seconds, once the app exists."""
    app = None
    while True:
        time.sleep(period)
        try:
            app = app or find_app()
            if app is not None:
                with out.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(sample(app)) + "\n")
        except Exception as exc:  # noqa: BLE001 - a probe never stops the server
            with out.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"mono": time.monotonic(), "error": repr(exc)}) + "\n")


if __name__ == "__main__":
    threading.Thread(target=probe, args=(Path(os.environ["TWIN_WALL_PROBE"]), float(os.environ.get("TWIN_WALL_PROBE_SECONDS", "5"))), daemon=True).start()
    sys.argv = ["twin", *sys.argv[1:]]
    runpy.run_module("twin.cli", run_name="__main__")
