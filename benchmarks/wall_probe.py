"""Run ``twin`` (its command line) with a probe that samples what a served wall holds, every few seconds.

``benchmarks/bench_wall.py --probe`` serves through this: ``python benchmarks/wall_probe.py serve SCENE ...``. Every
``$TWIN_WALL_PROBE_SECONDS`` (default 5) one JSON line is appended to ``$TWIN_WALL_PROBE`` with cheap sizes of the
known holders (no tracemalloc): glibc's heap (``mallinfo2``: in use, free, in mmapped blocks), SQLite's memory, each
live layer's readings buffer (rows, room in bytes, dropped rows remembered), the H3 layers' cells and mesh parts, the
alert engine's open alerts, history and event log, the page bridge's queue, the render window's size and the threads,
the server loop's tasks and the sends waiting for wslink's one-at-a-time lock (each holds its packed message).

Who holds the large blocks: glibc's mmapped blocks by size (every block of 1 MiB or more has pages of its own under the
tuned heap; a 1920x1080 RGBA frame or texture is one of 7.91 MiB), found by walking the process's anonymous mappings for
glibc's chunk headers; the Python-reachable buffers of 1 MiB or more (bytes, bytearray, numpy arrays owning their data,
PIL images) with a short path of who refers to them; the render window's renderers (viewport, FXAA, order-independent
translucency) and the geometry their actors draw (VTK's own count of the datasets' memory); the images waiting in
:class:`~twin.app.image_sends.NewestImages`.
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


def _page_heads(start: int, end: int, chunk: int = 1 << 20) -> tuple[Any, Any] | None:
    """The first two 8-byte words of every 4 KiB page of ``[start, end)`` in this process, read through /proc/self/mem a
    MiB at a time: the main thread may unmap the range meanwhile (a freed block), which is an error here, not a
    segmentation fault (reading the pages in place crashed the wall's server at a simulated hour 17). None if unmapped."""
    import numpy as np

    prev, size = [], []
    with open("/proc/self/mem", "rb", buffering=0) as mem:
        for at in range(start, end, chunk):
            want = min(chunk, end - at)
            try:
                data = os.pread(mem.fileno(), want, at)
            except OSError:
                return None
            if len(data) < want:
                return None
            words = np.frombuffer(data, dtype=np.uint64)
            prev.append(words[0::512].copy())
            size.append(words[1::512].copy())
    return np.concatenate(prev), np.concatenate(size)


def mmapped_blocks() -> dict[str, int]:
    """glibc's mmapped blocks now by size (MiB, 2 decimals, as text) -> count, largest first. Every page of the anonymous
    writable mappings is looked at (numpy, ~50 ms a GiB) for a chunk header: previous size (alignment, under a page), size
    with glibc's IS_MMAPPED bit, a whole number of pages of at least 1 MiB that fits (the kernel merges neighbouring
    mappings, other libraries' too); the pages of a block found are skipped."""
    import numpy as np

    sizes: dict[str, int] = {}
    with open("/proc/self/maps", encoding="ascii") as maps:
        regions = [fields[0] for fields in map(str.split, maps) if len(fields) == 5 and fields[1] == "rw-p"]
    for region in regions:
        start, end = (int(x, 16) for x in region.split("-"))
        if end - start < 1 << 20:
            continue
        heads = _page_heads(start, end)
        if heads is None:  # unmapped meanwhile
            continue
        prev, size = heads
        length = (size & ~np.uint64(7)) + prev
        pages = np.flatnonzero((size & 2).astype(bool) & (prev < 4096) & (length >= 1 << 20) & (length % 4096 == 0))
        after = start
        for page in pages:
            at = start + int(page) * 4096
            if at < after or at + int(length[page]) > end:
                continue
            key = f"{(int(size[page]) & ~7) / 2**20 - 16 / 2**20:.2f}"
            sizes[key] = sizes.get(key, 0) + 1
            after = at + int(length[page])
    return dict(sorted(sizes.items(), key=lambda kv: -float(kv[0])))


def _buffer_bytes(obj: Any) -> int:
    """Bytes a buffer holds itself (bytes, bytearray, a numpy array owning its data or viewing bytes), else 0."""
    kind = type(obj)
    if kind is bytes or kind is bytearray:
        return len(obj)
    if kind.__name__ == "ndarray" and kind.__module__ == "numpy":
        return int(obj.nbytes) if obj.base is None or isinstance(obj.base, (bytes, bytearray)) else 0
    return 0


def holder(obj: Any, ignore: set[int], depth: int = 3) -> str:
    """A short path of who refers to ``obj``: each referrer up ``depth`` levels, objects before dicts before the rest (an
    object's attribute as ``Type.name``, a dict's key as ``dict['key']``); frames and the probe's own containers (ids in
    ``ignore``) left out."""
    path: list[str] = []
    seen = {id(obj), id(path), *ignore}
    for _ in range(depth):
        referrers = [r for r in gc.get_referrers(obj) if id(r) not in seen and not isinstance(r, type(sys._getframe()))]
        if not referrers:
            break
        ref = min(referrers, key=lambda r: 0 if hasattr(r, "__dict__") and not isinstance(r, type) else 1 if isinstance(r, dict) else 2)
        seen.add(id(ref))
        if isinstance(ref, dict):
            key = next((k for k, v in ref.items() if v is obj), "?")
            path.append(f"dict[{key!r}]")
        elif hasattr(ref, "__dict__") and not isinstance(ref, type):
            name = next((k for k, v in vars(ref).items() if v is obj), "?")
            path.append(f"{type(ref).__name__}.{name}")
        else:
            path.append(type(ref).__name__)
        obj = ref
    return " < ".join(path) or "(no referrer)"


def python_buffers(objects: list[Any], least: int = 1 << 20, most: int = 8) -> list[str]:
    """The ``most`` largest Python-reachable buffers of at least ``least`` bytes: 'type MiB < holders'. Buffers are not tracked
    by the garbage collector, so they are found among the referents of ``objects`` (``gc.get_objects()``) and in the untracked
    dicts and tuples among those (a dict holding only buffers is not tracked either); PIL images among ``objects`` count their
    pixels. Seconds for a million objects: :func:`sample` looks every ``$TWIN_WALL_PROBE_DEEP`` samples."""
    found: dict[int, tuple[int, Any, Any, str]] = {}  # id -> bytes, buffer, the tracked object holding it, the step from it
    for obj in objects:
        if str(type(obj).__module__).startswith("PIL.") and hasattr(obj, "getbands") and hasattr(obj, "size"):
            found[id(obj)] = (int(obj.size[0] * obj.size[1] * len(obj.getbands())), obj, None, "")
            continue
        for ref in gc.get_referents(obj):
            if (type(ref) is dict or type(ref) is tuple) and not gc.is_tracked(ref):  # holding only untracked things (buffers)
                owned = ref is getattr(obj, "__dict__", None)
                for key, value in ref.items() if type(ref) is dict else enumerate(ref):
                    size = _buffer_bytes(value)
                    if size >= least:
                        found[id(value)] = (size, value, obj, f"{type(obj).__name__}.{key}" if owned else f"{type(obj).__name__}[{key!r}]")
            elif id(ref) not in found:
                size = _buffer_bytes(ref)
                if size >= least:
                    found[id(ref)] = (size, ref, None, "")
    largest = sorted(found.values(), key=lambda entry: -entry[0])[:most]
    ignore = {id(objects), id(found), id(largest), *(id(entry) for entry in found.values())}
    return [f"{type(buffer).__name__} {size / 2**20:.2f} < " + (f"{step} < {holder(parent, ignore, 2)}" if parent is not None else holder(buffer, ignore))
            for size, buffer, parent, step in largest]


def window_state(window: Any) -> dict[str, Any]:
    """The render window's renderers (viewport, FXAA, order-independent translucency) and the MiB of the datasets their
    actors draw (VTK's ``GetActualMemorySize``)."""
    renderers, geometry_kib = [], 0
    collection = window.GetRenderers()
    collection.InitTraversal()
    for _ in range(collection.GetNumberOfItems()):
        renderer = collection.GetNextItem()
        renderers.append({"viewport": [round(v, 2) for v in renderer.GetViewport()], "fxaa": bool(renderer.GetUseFXAA()), "oit": bool(renderer.GetUseOIT())})
        actors = renderer.GetActors()
        actors.InitTraversal()
        for _ in range(actors.GetNumberOfItems()):
            mapper = actors.GetNextActor().GetMapper()
            data = mapper.GetInputDataObject(0, 0) if mapper is not None and mapper.GetNumberOfInputPorts() else None
            geometry_kib += data.GetActualMemorySize() if data is not None else 0
    return {"renderers": renderers, "geometry_mib": round(geometry_kib / 1024, 1)}


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


def sample(app: Any, deep: bool = False) -> dict[str, Any]:
    """One sample of the served app ``app`` (a TwinApp); ``deep``: with the Python buffers (:func:`python_buffers`)."""
    session = app.session
    engine = session.engine
    with session.lock:
        layers = {layer.id: layer_sizes(layer) for layer in session.scene.layers if hasattr(layer, "buffer")}
        alerts = {"open": len(engine._open), "history": len(engine.history), "events": len(engine.events)}
    rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    window = app.view_panel.view.window
    objects = gc.get_objects()
    return {"mono": time.monotonic(), "scene": session.now.isoformat() if session.now else "", "rss": round(rss, 1),
            **{k: round(v, 1) for k, v in heap().items()}, "sqlite": round(sqlite_mib(), 2), "layers": layers, "alerts": alerts,
            "pending": len(app.bridge._pending), "window": list(window.GetSize()), "threads": threading.active_count(),
            "py_blocks": sys.getallocatedblocks(), **loop_backlog(app, objects), "blocks": mmapped_blocks(),
            **({"py_buffers": python_buffers(objects)} if deep else {}),
            **window_state(window)}


def loop_backlog(app: Any, objects: list[Any]) -> dict[str, Any]:
    """The server loop's tasks, the messages waiting for wslink's send lock (each holds a packed frame or state update) and the
    images waiting in :class:`~twin.app.image_sends.NewestImages` (MiB), among ``objects`` (``gc.get_objects()``)."""
    import asyncio

    from wslink.protocol import WslinkHandler

    loop = app.bridge.loop
    tasks = len(asyncio.all_tasks(loop)) if loop is not None else 0
    waiting = sum(len(o.attachment_atomic._waiters or ()) for o in objects if isinstance(o, WslinkHandler))
    try:
        from twin.app.image_sends import NewestImages
    except ImportError:  # a twin before it
        return {"tasks": tasks, "send_waiting": waiting}
    images = [o for o in objects if isinstance(o, NewestImages)]
    waiting_mib = sum(len(d.get("image") or b"") for o in images for d in o._waiting.values()) / 2**20
    return {"tasks": tasks, "send_waiting": waiting, "images_replaced": sum(o.replaced for o in images), "images_waiting_mib": round(waiting_mib, 2)}


def find_app() -> Any:
    """The TwinApp this process serves (None before it is made)."""
    from twin.app.server import TwinApp

    return next((o for o in gc.get_objects() if isinstance(o, TwinApp)), None)


def probe(out: Path, period: float, deep_every: int) -> None:
    """Append a sample to ``out`` every ``period`` seconds once the app exists, every ``deep_every``-th with the Python buffers."""
    app, count = None, 0
    while True:
        time.sleep(period)
        try:
            app = app or find_app()
            if app is not None:
                count += 1
                with out.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(sample(app, deep=count % deep_every == 1 or deep_every == 1)) + "\n")
        except Exception as exc:  # noqa: BLE001 - a probe never stops the server
            with out.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"mono": time.monotonic(), "error": repr(exc)}) + "\n")


if __name__ == "__main__":
    threading.Thread(target=probe, args=(Path(os.environ["TWIN_WALL_PROBE"]), float(os.environ.get("TWIN_WALL_PROBE_SECONDS", "5")),
                                         int(os.environ.get("TWIN_WALL_PROBE_DEEP", "12"))), daemon=True).start()
    sys.argv = ["twin", *sys.argv[1:]]
    runpy.run_module("twin.cli", run_name="__main__")
