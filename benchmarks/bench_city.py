"""Benchmark: a city of 1M buildings in the served (remote) view — level of detail vs full detail, same run.

The city is the demo district (``twin.demo``, 30,000 buildings) tiled on a grid until it holds
``--buildings`` buildings (default 1,000,000; the demo scene's own figure, 30,000, comes first
unless ``--no-demo``), drawn like the demo's buildings layer in one :class:`~twin.render.view.SceneView`
at 1920x1080 on this machine's renderer (CPU: llvmpipe), camera framing the whole city.

For each size it prints, with LOD (``SceneView.lod = LodSettings()``, what ``twin serve`` uses in
the remote view) against the baseline (``lod = None``: today's full detail in every frame), in the
same process on the same window:

- time to read + extrude + upload, to build the proxy, and the first frame;
- still frame (render + JPEG q92): LOD and baseline draw the same pixels (max difference printed);
- a camera orbit driven like the browser's drag (``vtkWebApplication.HandleInteractionEvent``, the
  path trame's remote view takes): ms per frame (render + JPEG q60) and frames per second, ratio;
- the view the app would choose (``choose_view_mode``: local/remote and the limit that decided).

``city_figure(n)`` returns these figures as a dict (``bench_app.py`` imports it).

    python benchmarks/bench_city.py                  # demo (30k) and 1M buildings; a few minutes
    python benchmarks/bench_city.py --buildings 200000 --no-demo
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import time
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from PIL import Image
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
STILL_QUALITY, MOVING_QUALITY = 92, 60  # the remote view's JPEG qualities (twin/app/view_panel.py)


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


def _jpeg(pixels: np.ndarray, quality: int) -> int:
    """Bytes of ``pixels`` as a JPEG of ``quality`` (what the remote view sends)."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=quality)
    return out.tell()


def _frame(view: SceneView, quality: int) -> tuple[float, int]:
    """(seconds, JPEG bytes) of one frame: render, read back, encode."""
    t = time.perf_counter()
    pixels = view.image()
    size = _jpeg(pixels, quality)
    return time.perf_counter() - t, size


def _mouse(app: vtkWebApplication, view: SceneView, action: str, x: float, y: float) -> None:
    """One browser mouse event (normalised x, y) through the web application, as trame's remote view sends it."""
    event = vtkWebInteractionEvent()
    event.SetButtons(vtkWebInteractionEvent.LEFT_BUTTON if action != "up" else 0)
    event.SetX(x)
    event.SetY(y)
    app.HandleInteractionEvent(view.window, event)


def orbit(view: SceneView, frames: int) -> dict[str, Any]:
    """Drag across the view for ``frames`` moves (one frame each), then release; ms per frame, fps, proxied layers, still frame after."""
    app = vtkWebApplication()
    camera = view.renderer.GetActiveCamera()
    saved = (camera.GetPosition(), camera.GetFocalPoint(), camera.GetViewUp())
    _mouse(app, view, "down", 0.5, 0.5)
    times, sizes, proxied = [], [], set()
    start = time.perf_counter()
    for k in range(1, frames + 1):
        _mouse(app, view, "move", 0.5 + 0.3 * np.sin(k / 4), 0.5 + 0.05 * np.cos(k / 4))
        seconds, size = _frame(view, MOVING_QUALITY)
        times.append(seconds)
        sizes.append(size)
        proxied.update(view.proxied)
    elapsed = time.perf_counter() - start
    _mouse(app, view, "up", 0.5, 0.5)
    camera.SetPosition(*saved[0])
    camera.SetFocalPoint(*saved[1])
    camera.SetViewUp(*saved[2])
    return {"frame_ms": statistics.median(times) * 1000, "fps": frames / elapsed, "moving_kb": statistics.median(sizes) / 1000, "proxied": sorted(proxied)}


def city_figure(n_buildings: int, *, repeats: int = 3, orbit_frames: int = 8) -> dict[str, Any]:
    """Figures for a city of ``n_buildings`` at 1920x1080: LOD vs baseline (full detail), measured on one view in this process.

    Keys: ``buildings``, ``triangles``, ``proxy_triangles``, ``geometry_mb``, ``mode``/``mode_reason``
    (the app's view choice), ``sync_s`` (read, extrude, upload), ``proxy_s``, ``first_frame_s``,
    ``still_ms``/``still_kb`` and ``still_ms_baseline``, ``still_max_diff`` (LOD vs baseline still
    pixels, 0 = identical), ``orbit`` and ``orbit_baseline`` (see :func:`orbit`), ``fps_ratio``.
    """
    t = time.perf_counter()
    scene = city_scene(n_buildings)
    made = time.perf_counter() - t
    t = time.perf_counter()
    view = SceneView(scene, size=SIZE, strict=True, show_title=False, show_legend=False)
    interactor = vtkGenericRenderWindowInteractor()  # the app's set-up (twin/app/view_panel.py)
    interactor.SetRenderWindow(view.window)
    interactor.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
    try:
        view.sync()
        synced = time.perf_counter() - t
        t = time.perf_counter()
        view.image()
        first = time.perf_counter() - t
        triangles = view.triangle_count()
        mode, reason = choose_view_mode(labelled=[], triangles=triangles, nbytes=view.geometry_bytes(), triangle_budget=TRIANGLE_BUDGET)
        figures: dict[str, Any] = {"buildings": n_buildings, "triangles": triangles, "geometry_mb": view.geometry_bytes() / 1e6, "mode": mode,
                                   "mode_reason": reason, "make_s": made, "sync_s": synced, "first_frame_s": first}
        base_still = [_frame(view, STILL_QUALITY) for _ in range(repeats)]
        base_pixels = view.image()
        figures["orbit_baseline"] = orbit(view, orbit_frames)
        t = time.perf_counter()
        view.lod = LodSettings()
        figures["proxy_s"] = time.perf_counter() - t
        figures["proxy_triangles"] = sum(d.proxy.GetMapper().GetInput().GetNumberOfCells() for d in view._drawn.values() if d.proxy is not None)
        figures["orbit"] = orbit(view, orbit_frames)
        still = [_frame(view, STILL_QUALITY) for _ in range(repeats)]
        figures["still_max_diff"] = int(np.abs(view.image().astype(np.int16) - base_pixels).max())
        figures.update(still_ms=statistics.median(s for s, _ in still) * 1000, still_kb=statistics.median(b for _, b in still) / 1000,
                       still_ms_baseline=statistics.median(s for s, _ in base_still) * 1000,
                       fps_ratio=figures["orbit"]["fps"] / figures["orbit_baseline"]["fps"])
    finally:
        view.close()
    return figures


def report(f: dict[str, Any]) -> None:
    """Print one city's figures, each with its baseline and ratio."""
    label = f"[city {f['buildings']:,}]"
    lod, base = f["orbit"], f["orbit_baseline"]
    print(f"{label} {f['triangles']:,} triangles, {f['geometry_mb']:.0f} MB geometry; view chosen: {f['mode']} ({f['mode_reason']})")
    print(f"{label} tiled {f['make_s']:.1f} s; read+extrude+upload {f['sync_s']:.1f} s; first frame {f['first_frame_s']:.2f} s; "
          f"proxy ({f['proxy_triangles']:,} triangles) built in {f['proxy_s']:.2f} s")
    print(f"{label} still frame {f['still_ms']:.0f} ms, {f['still_kb']:.0f} kB (baseline {f['still_ms_baseline']:.0f} ms, "
          f"{f['still_ms'] / f['still_ms_baseline']:.2f}x); max pixel difference from baseline: {f['still_max_diff']}")
    print(f"{label} orbit frame {lod['frame_ms']:.0f} ms, {lod['fps']:.2f} fps, {lod['moving_kb']:.0f} kB, proxies {lod['proxied'] or 'none'} "
          f"(baseline {base['frame_ms']:.0f} ms, {base['fps']:.2f} fps; fps ratio {f['fps_ratio']:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buildings", type=int, default=1_000_000, help="buildings in the city (default 1,000,000)")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo-size (30,000 buildings) figure")
    parser.add_argument("--repeats", type=int, default=3, help="still frames per median")
    parser.add_argument("--orbit-frames", type=int, default=8, help="frames in each orbit")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {SIZE[0]}x{SIZE[1]}; baseline = full detail in every frame (lod None)")
    for n in ([] if args.no_demo else [30_000]) + [args.buildings]:
        report(city_figure(n, repeats=args.repeats, orbit_frames=args.orbit_frames))
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
