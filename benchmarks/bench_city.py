"""Benchmark: a city of 1M buildings in the served (remote) view — tiled HLOD vs the first round's LOD vs full detail, same run.

The city is the demo district (``twin.demo``, 30,000 buildings) tiled on a grid until it holds
``--buildings`` buildings (default 1,000,000; the demo scene's own figure, 30,000, comes first
unless ``--no-demo``), drawn like the demo's buildings layer in one :class:`~twin.render.view.SceneView`
at 1920x1080 on this machine's renderer (CPU: llvmpipe).

Three ways of drawing it, each measured on the same view in the same process:

- ``hlod``: ``SceneView.lod = LodSettings()`` (what ``twin serve`` uses in the remote view):
  tiles, frustum culling, a level per tile by screen-space error, triangle budgets;
- ``first``: ``LodSettings.first_round(...)``: one ~200k-triangle proxy while moving, full detail when still;
- ``full``: ``lod = None``: full detail in every frame (the baseline).

Frames go the way trame's remote view makes them (``vtkWebApplication.StillRenderToString``:
render, read back, JPEG on the encoder threads); a drag is the browser's mouse through
``HandleInteractionEvent`` with the window at half size (the view's ``interactive_ratio=0.5``)
and JPEG quality 60; still frames are full size, quality 92. For each way it prints:

- still frame ms (median of ``--repeats``; wall clock and process CPU seconds, which a loaded machine
  does not inflate) of the whole city (``overview``) and of one district (``district``: the camera 6x closer);
- orbit frames per second and ms per frame, moving and still JPEG kB;
- still-frame pixels against full detail: share within 8 levels (max over RGB) and mean absolute difference;
- tiles drawn per level (``-1`` culled), the screen error the frame allowed, triangles drawn.

``city_figure(n)`` returns the figures as a dict.

    python benchmarks/bench_city.py                          # demo (30k) and 1M buildings; ~15 min on 2 loaded cores
    python benchmarks/bench_city.py --buildings 200000 --no-demo --only hlod first
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import statistics
import time
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingUI import vtkGenericRenderWindowInteractor
from vtkmodules.vtkWebCore import vtkWebApplication, vtkWebInteractionEvent

import twin
from twin.demo.district import cached_district
from twin.plugins import layer_types
from twin.render.lod import LodSettings, choose_view_mode
from twin.render.view import SceneView

SIZE = (1920, 1080)
TRIANGLE_BUDGET = 2_000_000  # twin serve's default (twin/app/server.py)
STILL_QUALITY, MOVING_QUALITY, MOVING_RATIO = 92, 60, 0.5  # the remote view's settings (twin/app/view_panel.py)
WAYS = ("hlod", "first", "full")
CAMERAS = ("overview", "district")


def city_buildings(n_buildings: int) -> gpd.GeoDataFrame:
    """``n_buildings`` footprints (EPSG:4326): the 30k demo district repeated on a square grid, 2 % apart."""
    district = cached_district().buildings
    copies = -(-n_buildings // len(district))
    cols = int(np.ceil(np.sqrt(copies)))
    xmin, ymin, xmax, ymax = district.total_bounds
    step = np.array([(xmax - xmin) * 1.02, (ymax - ymin) * 1.02])
    geoms = np.asarray(district.geometry.values, dtype=object)
    tiles = []
    for i in range(copies):
        row, col = divmod(i, cols)
        offset = (np.array([col, row]) - (cols - 1) / 2) * step
        tiles.append(district.drop(columns="geometry").assign(geometry=shapely.transform(geoms, lambda xy, o=offset: xy + o)))
    return gpd.GeoDataFrame(pd.concat(tiles, ignore_index=True).iloc[:n_buildings], geometry="geometry", crs=district.crs)


def city_scene(n_buildings: int) -> twin.Scene:
    """A scene with the city's buildings styled like the demo's buildings layer."""
    scene = twin.Scene(f"city of {n_buildings:,}", center=(121.48, 31.23), settings={"show_legend": False})
    buildings = layer_types().get("buildings")("buildings", data=city_buildings(n_buildings), color_by="height", colormap="bone", clim=[0, 200])
    scene.add(buildings)
    return scene


def lod_for(way: str, features: int) -> LodSettings | None:
    """The view's level-of-detail settings for one way of drawing (see the module docstring)."""
    return {"hlod": LodSettings(), "first": LodSettings.first_round(features), "full": None}[way]


class Served:
    """One view as trame's remote view serves it: a web application making JPEG frames, the browser's mouse through VTK's interactor."""

    def __init__(self, view: SceneView) -> None:
        self.view = view
        self.app = vtkWebApplication()
        interactor = vtkGenericRenderWindowInteractor()  # the app's set-up (twin/app/view_panel.py)
        interactor.SetRenderWindow(view.window)
        interactor.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        self.interactor = interactor

    def frame(self, quality: int) -> tuple[float, float, int]:
        """(wall s, CPU s, JPEG bytes) of one frame: render, read back and encode (waiting for the encoder)."""
        wall, cpu = time.perf_counter(), time.process_time()
        self.app.InvalidateCache(self.view.window)
        image = self.app.StillRenderToString(self.view.window, 0, quality)
        while self.app.GetHasImagesBeingProcessed(self.view.window):  # the flag and the new image come with the next call
            time.sleep(0.001)
            image = self.app.StillRenderToString(self.view.window, self.app.GetLastStillRenderToMTime(), quality) or image
        return time.perf_counter() - wall, time.process_time() - cpu, len(base64.b64decode(image)) if image else 0

    def mouse(self, action: str, x: float, y: float) -> None:
        """One browser mouse event (normalised x, y), as trame's remote view sends it."""
        event = vtkWebInteractionEvent()
        event.SetButtons(vtkWebInteractionEvent.LEFT_BUTTON if action != "up" else 0)
        event.SetX(x)
        event.SetY(y)
        self.app.HandleInteractionEvent(self.view.window, event)

    def orbit(self, frames: int) -> dict[str, Any]:
        """Drag across the view for ``frames`` moves (one frame each, half size), then release; the camera is put back after."""
        camera = self.view.renderer.GetActiveCamera()
        saved = (camera.GetPosition(), camera.GetFocalPoint(), camera.GetViewUp())
        self.view.window.SetSize(int(SIZE[0] * MOVING_RATIO), int(SIZE[1] * MOVING_RATIO))
        self.mouse("down", 0.5, 0.5)
        walls, cpus, sizes, tris = [], [], [], []
        start = time.perf_counter()
        for k in range(1, frames + 1):
            self.mouse("move", 0.5 + 0.3 * np.sin(k / 4), 0.5 + 0.05 * np.cos(k / 4))
            wall, cpu, size = self.frame(MOVING_QUALITY)
            walls.append(wall)
            cpus.append(cpu)
            sizes.append(size)
            tris.append(sum(f.triangles for f in self.view.lod_frames.values()) if self.view.lod_frames else self.view.triangle_count())
        elapsed = time.perf_counter() - start
        self.mouse("up", 0.5, 0.5)
        self.view.window.SetSize(*SIZE)
        camera.SetPosition(*saved[0])
        camera.SetFocalPoint(*saved[1])
        camera.SetViewUp(*saved[2])
        return {"fps": frames / elapsed, "frame_ms": statistics.median(walls) * 1000, "frame_cpu_ms": statistics.median(cpus) * 1000,
                "moving_kb": statistics.median(sizes) / 1000, "triangles": int(statistics.median(tris))}


def _agreement(frame: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(share of pixels within 8 levels in every channel, mean absolute difference) of two RGB frames."""
    diff = np.abs(frame.astype(np.int16) - reference)
    return float((diff.max(axis=2) <= 8).mean()), float(diff.mean())


def _levels(view: SceneView) -> str:
    """How the last frame drew the tiled layers: tiles per level (-1 culled), allowed error, triangles."""
    parts = []
    for frame in view.lod_frames.values():
        counts = np.bincount(frame.levels + 1)
        shown = " ".join(f"{level - 1}:{count}" for level, count in enumerate(counts) if count)
        parts.append(f"tiles per level {shown}; error {frame.allowed_px:.1f} px; {frame.triangles:,} triangles")
    return "; ".join(parts) or "full detail"


def _camera(view: SceneView, name: str) -> None:
    """The whole city framed (``overview``), or 6x closer on its centre (``district``)."""
    view.set_camera(None)
    if name == "district":
        view.renderer.GetActiveCamera().Zoom(6.0)


def measure_way(served: Served, way: str, features: int, *, repeats: int, orbit_frames: int, reference: dict[str, np.ndarray]) -> dict[str, Any]:
    """Still frames on each camera and an orbit for one way of drawing; pixels compared with ``reference`` (full detail) when given."""
    view = served.view
    wall = time.perf_counter()
    view.lod = lod_for(way, features)
    figures: dict[str, Any] = {"setup_s": time.perf_counter() - wall}
    for name in CAMERAS:
        _camera(view, name)
        pixels = view.image()  # also warms the tiles in view
        frames = [served.frame(STILL_QUALITY) for _ in range(repeats)]
        figures[name] = {"still_ms": statistics.median(f[0] for f in frames) * 1000, "still_cpu_ms": statistics.median(f[1] for f in frames) * 1000,
                         "still_kb": statistics.median(f[2] for f in frames) / 1000, "levels": _levels(view)}
        if way == "full":
            reference[name] = pixels
        elif name in reference:
            figures[name]["within8"], figures[name]["mean_diff"] = _agreement(pixels, reference[name])
    _camera(view, "overview")
    figures["orbit"] = served.orbit(orbit_frames)
    return figures


def city_figure(n_buildings: int, *, repeats: int = 3, orbit_frames: int = 8, ways: tuple[str, ...] = WAYS) -> dict[str, Any]:
    """Figures for a city of ``n_buildings`` at 1920x1080, each way of ``ways`` (``full`` first when asked: the pixel reference).

    Keys: ``buildings``, ``triangles``, ``geometry_mb``, ``mode``/``mode_reason`` (the app's view
    choice), ``make_s``, ``sync_s`` (read, extrude, upload), ``first_frame_s``, and per way a dict
    with ``setup_s`` (tiles/proxies built), per camera ``still_ms``, ``still_cpu_ms``, ``still_kb``,
    ``levels`` (and against full detail ``within8``, ``mean_diff``), and ``orbit`` (``fps``,
    ``frame_ms``, ``frame_cpu_ms``, ``moving_kb``, ``triangles``).
    """
    wall = time.perf_counter()
    scene = city_scene(n_buildings)
    made = time.perf_counter() - wall
    wall = time.perf_counter()
    view = SceneView(scene, size=SIZE, strict=True, show_title=False, show_legend=False)
    served = Served(view)
    try:
        view.sync()
        synced = time.perf_counter() - wall
        wall = time.perf_counter()
        view.image()
        first = time.perf_counter() - wall
        triangles = view.triangle_count()
        mode, reason = choose_view_mode(labelled=[], triangles=triangles, nbytes=view.geometry_bytes(), triangle_budget=TRIANGLE_BUDGET)
        figures: dict[str, Any] = {"buildings": n_buildings, "triangles": triangles, "geometry_mb": view.geometry_bytes() / 1e6, "mode": mode,
                                   "mode_reason": reason, "make_s": made, "sync_s": synced, "first_frame_s": first}
        reference: dict[str, np.ndarray] = {}
        for way in sorted(ways, key=lambda w: w != "full"):
            figures[way] = measure_way(served, way, n_buildings, repeats=repeats, orbit_frames=orbit_frames, reference=reference)
    finally:
        view.close()
    return figures


def report(f: dict[str, Any]) -> None:
    """Print one city's figures: each way against full detail (the baseline) and the first round."""
    label = f"[city {f['buildings']:,}]"
    print(f"{label} {f['triangles']:,} triangles, {f['geometry_mb']:.0f} MB geometry; view chosen: {f['mode']} ({f['mode_reason']})")
    print(f"{label} tiled {f['make_s']:.1f} s; read+extrude+upload {f['sync_s']:.1f} s; first frame {f['first_frame_s']:.2f} s")
    base = f.get("full")
    for way in (w for w in WAYS if w in f):
        g = f[way]
        print(f"{label} {way}: set-up {g['setup_s']:.1f} s")
        for name in CAMERAS:
            c = g[name]
            ratio = f" (speed-up over full {base[name]['still_ms'] / c['still_ms']:.1f}x)" if base and way != "full" else ""
            pixels = f"; pixels vs full: {c['within8']:.2%} within 8 levels, mean diff {c['mean_diff']:.2f}" if "within8" in c else ""
            print(f"{label} {way} {name} still frame {c['still_ms']:,.0f} ms (CPU {c['still_cpu_ms']:,.0f} ms), {c['still_kb']:.0f} kB{ratio}{pixels}; {c['levels']}")
        o = g["orbit"]
        ratio = f" (speed-up over full {o['fps'] / base['orbit']['fps']:.1f}x)" if base and way != "full" else ""
        print(f"{label} {way} orbit {o['fps']:.2f} fps{ratio}, {o['frame_ms']:,.0f} ms/frame (CPU {o['frame_cpu_ms']:,.0f} ms), "
              f"{o['moving_kb']:.0f} kB at {MOVING_RATIO:g}x size, {o['triangles']:,} triangles")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buildings", type=int, default=1_000_000, help="buildings in the city (default 1,000,000)")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo-size (30,000 buildings) figure")
    parser.add_argument("--repeats", type=int, default=3, help="still frames per median")
    parser.add_argument("--orbit-frames", type=int, default=8, help="frames in each orbit")
    parser.add_argument("--only", nargs="+", choices=WAYS, default=list(WAYS), help="ways of drawing to measure (default all)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {SIZE[0]}x{SIZE[1]}; wall-clock figures grow with the load, CPU ones do not")
    for n in ([] if args.no_demo else [30_000]) + [args.buildings]:
        report(city_figure(n, repeats=args.repeats, orbit_frames=args.orbit_frames, ways=tuple(args.only)))
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
