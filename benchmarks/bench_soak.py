"""Soak: the demo scene through a Session for many simulated hours of 5 s ticks; memory must level off.

Every simulated hour prints the process RSS and the sizes of what grows with time: the alert
engine (open alerts, id map, history, events) and each live layer's readings buffer (rows
held, bytes reserved, sensors known) and H3 cells. At the end, the growth of RSS and of each
structure from the end of the first simulated hour, and whether RSS grew under 5 %.

Usage: .venv/bin/python benchmarks/bench_soak.py [--hours 72] [--tick 5] [--history-limit N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import time
from importlib import resources

from twin.alerts.engine import AlertEngine
from twin.readings import ReadingsBuffer
from twin.scene.model import Scene
from twin.session import Session

T0 = dt.datetime(2026, 7, 1, 0, 0, tzinfo=dt.timezone.utc)
LIMIT = 0.05


def rss_mib() -> float:
    """Resident set size of this process now (MiB), from /proc."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def sizes(session: Session) -> dict[str, int]:
    """The engine's and the live layers' structures that could grow without bound."""
    engine = session.engine
    out = {"open": len(engine.active()), "ids": len(engine._by_id), "history": len(engine.history), "events": len(engine.events)}
    for layer in session.live_layers():
        buffer = getattr(layer, "buffer", None)
        if isinstance(buffer, ReadingsBuffer):
            out[f"{layer.id}.rows"] = len(buffer)
            out[f"{layer.id}.KiB"] = sum(a.nbytes for a in buffer._store.values()) // 1024
            out[f"{layer.id}.sensors"] = len(buffer._sensor_index)
        if hasattr(layer, "cells"):
            out[f"{layer.id}.cells"] = len(layer.cells)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=72.0, help="simulated hours (default 72)")
    parser.add_argument("--tick", type=float, default=5.0, help="simulated seconds between ticks (default 5)")
    parser.add_argument("--history-limit", type=int, default=None,
                        help="closed alerts (and events) the engine keeps (default: the engine's, 10,000); a small one shows the cap holding")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the per-poll notes of simulated sources would drown the table
    path = resources.files("twin.demo.scenes").joinpath("demo.yaml")
    with resources.as_file(path) as scene_file:
        scene = Scene.from_file(scene_file)
        if args.history_limit is not None:
            scene.alert_engine = AlertEngine(scene.alerts, history_limit=args.history_limit)
        session = Session(scene, tick_seconds=args.tick)
    per_hour = round(3600 / args.tick)
    total = round(args.hours * per_hour)
    started = time.perf_counter()
    first: tuple[float, dict[str, int]] | None = None
    hourly: list[float] = []
    print(f"{'hour':>5} {'wall s':>7} {'RSS MiB':>8}  sizes")
    for i in range(1, total + 1):
        session.tick(T0 + dt.timedelta(seconds=i * args.tick))
        if i % per_hour == 0 or i == total:
            rss, now = rss_mib(), sizes(session)
            hourly.append(rss)
            print(f"{i / per_hour:5.1f} {time.perf_counter() - started:7.0f} {rss:8.1f}  {now}", flush=True)
            if first is None:
                first = (rss, now)
    assert first is not None
    rss, last = rss_mib(), sizes(session)
    growth = (rss - first[0]) / first[0]
    grown = {k: f"{first[1][k]} -> {v}" for k, v in last.items() if v > first[1].get(k, 0) * (1 + LIMIT)}
    peak = max(hourly[1:], default=rss)
    peak_growth = (peak - first[0]) / first[0]
    same_hour = [f"{hourly[h]:.1f}" for h in range(0, len(hourly), 24)]  # the same time of day, day after day
    print(f"RSS after hour 1: {first[0]:.1f} MiB, at the end: {rss:.1f} MiB ({growth:+.1%}), highest after hour 1: {peak:.1f} MiB "
          f"({peak_growth:+.1%}); at hour 1 of each day: {', '.join(same_hour)} MiB; structures grown over 5 %: {grown or 'none'}")
    # "stays under 5 %": judged on the highest RSS after the first hour, not only the last
    print("PASS" if peak_growth < LIMIT else "FAIL", f"(limit {LIMIT:.0%} growth after the first simulated hour, at every hour)")
    session.close()


if __name__ == "__main__":
    main()
