"""A scene as one self-contained HTML file: the 3D view in vtk.js with the data embedded, legends and layer toggles.

The page opens from disk with no server and no network: the vtk.js viewer is trame-vtk's standalone
``OfflineLocalView`` page (shipped in its wheel), the scene is serialised with trame-vtk's own
serialisers (as its local view sends it to the browser), and a Content-Security-Policy forbids the
page any request. It is a snapshot at the scene time: live updates, alerts and replay are left out,
and the page says so.
"""

from __future__ import annotations

import html
import io
import json
import logging
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from trame_vtk.modules.vtk.serializers import SynchronizationContext, extract_array_hash, initialize_serializers, serialize
from trame_vtk.modules.vtk.serializers.utils import reference_id
from trame_vtk.tools.vtksz2html import HTML_VIEWER_PATH, data_to_base64

from twin.clock import fmt_datetime
from twin.errors import ExportError
from twin.export.common import output_path
from twin.render.view import SceneView
from twin.scene.model import Scene
from twin.style import Legend

__all__ = ["LEFT_OUT", "export_html"]

LEFT_OUT = "live updates, alerts and replay are not included (open the scene with twin serve for those)"
"""What the page says it leaves out."""

# no request of any kind: everything the page needs is inline
_CSP = "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; worker-src blob:; connect-src data: blob:"


def export_html(scene: Scene, path: str | Path, *, size: tuple[int, int] = (1280, 720)) -> Path:
    """Write ``scene`` to the standalone HTML file ``path`` (see :meth:`twin.Scene.to_html`); returns the path.

    ``size`` is the view the camera is framed for (the page fills the browser window). Raises
    :class:`ExportError` for a bad output path or a scene with nothing to draw; a layer that fails
    to draw raises its own error.
    """
    path = output_path(path, (".html", ".htm"), "a standalone web page")
    scene.tick(scene.time)
    shown = {layer.id: layer.visible for layer in scene.layers}
    for layer in scene.layers:
        layer.visible = True  # every layer goes into the page; the toggles start as the scene shows them
    view = SceneView(scene, size=size, strict=True)
    view.direct_colors = True  # vtk.js shows per-cell RGBA, not lookup tables over field data
    try:
        view.sync()
        empty = set(view.empty_layers())
        drawn = [layer.id for layer in scene.layers if layer.id not in empty]
        if not drawn:
            raise ExportError(f"scene {scene.name!r} has nothing to draw: " + ("no layers" if not scene.layers else "every layer is empty"))
        view.render()
        state = _serialize(view)
        panel = _panel(scene, drawn, shown)
    finally:
        for layer in scene.layers:
            layer.visible = shown.get(layer.id, layer.visible)
        view.close()
    actors = _actor_count(state)
    if actors != len(drawn):
        raise ExportError(f"exporting scene {scene.name!r}: {actors} actors serialised for {len(drawn)} layers ({', '.join(drawn)})")
    path.write_text(_page(scene, state, panel), encoding="utf-8")
    return path


@contextmanager
def _quiet_serializers() -> Iterator[None]:
    """trame-vtk logs a warning per overlay actor it has no serialiser for (legend text): those are drawn as HTML here."""
    logger = logging.getLogger("trame_vtk")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _serialize(view: SceneView) -> dict[str, Any]:
    """The render window as trame-vtk's local view sends it: {"scene": description, "hashes": {hash: array entry}}."""
    initialize_serializers()
    context = SynchronizationContext()
    with _quiet_serializers():
        scene = serialize(None, view.window, reference_id(view.window), context, 1)
    hashes = {}
    for entry in extract_array_hash(scene):
        hashes[entry["hash"]] = dict(**entry, content=context.get_cached_data_array(entry["hash"], False))
    return {"hashes": hashes, "scene": scene}


def _actor_count(state: dict[str, Any]) -> int:
    """Actors in the first renderer of a serialised window (one per drawn layer, in the scene's order)."""
    renderers = [dep for dep in state["scene"].get("dependencies", []) if "Renderer" in dep.get("type", "")]
    if not renderers:
        return 0
    return sum(1 for dep in renderers[0].get("dependencies", []) if dep.get("type", "").endswith("Actor"))


def _panel(scene: Scene, drawn: list[str], shown: dict[str, bool]) -> dict[str, Any]:
    """What the HTML panel shows: title, clock, what is left out, and each drawn layer's toggle and legend."""
    layers = []
    for layer in scene.layers:
        if layer.id not in drawn:
            continue
        legend = layer.visual(scene.frame).style.legend if scene.settings.show_legend else None
        layers.append({"id": layer.id, "title": layer.title, "visible": shown[layer.id], "legend": _legend(legend)})
    return {
        "title": scene.settings.title or scene.name,
        "time": fmt_datetime(scene.time),
        "left_out": LEFT_OUT,
        "layers": layers,
    }


def _legend(legend: Legend | None) -> dict[str, Any] | None:
    """A legend as data for the page: swatches, or a colour bar as CSS gradient stops with its range."""
    if legend is None:
        return None
    if legend.is_continuous:
        cmap = colormaps[legend.colormap or "viridis"]
        stops = [_hex(cmap(i / 8)[:3]) for i in range(9)]
        return {"title": legend.title, "gradient": stops, "vmin": legend.vmin, "vmax": legend.vmax}
    entries = [{"label": entry.label, "color": "#{:02x}{:02x}{:02x}".format(*entry.color[:3])} for entry in legend.entries[:24]]
    return {"title": legend.title, "entries": entries, "more": max(len(legend.entries) - len(entries), 0)}


def _hex(rgb: tuple[float, ...]) -> str:
    return "#" + "".join(f"{round(min(max(c, 0.0), 1.0) * 255):02x}" for c in rgb[:3])


def _zip(state: dict[str, Any]) -> bytes:
    """The scene as the .vtksz zip the OfflineLocalView page reads (one ``index.json``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.json", json.dumps(state), compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _page(scene: Scene, state: dict[str, Any], panel: dict[str, Any]) -> str:
    """trame-vtk's standalone viewer page with the CSP, the title, the panel and the embedded scene."""
    viewer = HTML_VIEWER_PATH.read_text(encoding="utf-8")
    head = f'<meta http-equiv="Content-Security-Policy" content="{_CSP}" />\n    <title>{html.escape(panel["title"])}</title>'
    viewer = viewer.replace('<meta charset="utf-8" />', '<meta charset="utf-8" />\n    ' + head, 1)
    viewer = viewer.replace("<title>VTK.js | Example - OfflineLocalView</title>", "", 1)
    data = json.dumps(panel, ensure_ascii=False).replace("</", "<\\/")
    addition = (
        f"<style>{_STYLE}</style>\n<div id=\"twin-view\"></div>\n<aside id=\"twin-panel\"></aside>\n"
        f"<script type=\"application/json\" id=\"twin-data\">{data}</script>\n"
        f"<script>\nconst TWIN_SCENE = \"{data_to_base64(_zip(state))}\";\n{_SCRIPT}</script>\n"
    )
    if "</body>" not in viewer:
        raise ExportError(f"the vtk.js viewer page {HTML_VIEWER_PATH} has no </body>: is trame-vtk installed whole?")
    return viewer.replace("</body>", addition + "</body>", 1)


_STYLE = """
#twin-view { position: absolute; inset: 0; }
#twin-panel { position: absolute; top: 12px; left: 12px; max-width: 320px; max-height: calc(100% - 24px); overflow: auto; z-index: 10;
  background: rgba(10, 15, 28, 0.82); color: #eef; font: 13px/1.4 "Noto Sans CJK SC", "Microsoft YaHei", sans-serif;
  border-radius: 8px; padding: 10px 12px; }
#twin-panel h1 { font-size: 16px; margin: 0 0 2px; }
#twin-panel .time { color: #9fc3ff; margin-bottom: 6px; }
#twin-panel .note { color: #bbb; font-size: 11px; margin-top: 8px; }
#twin-panel label { display: block; font-weight: bold; margin-top: 6px; cursor: pointer; }
#twin-panel .legend { margin-left: 22px; }
#twin-panel .swatch { display: inline-block; width: 11px; height: 11px; margin-right: 6px; vertical-align: -1px; }
#twin-panel .bar { height: 10px; width: 200px; }
#twin-panel .range { display: flex; justify-content: space-between; width: 200px; font-size: 11px; }
"""

# Builds the panel from #twin-data, loads the embedded scene into vtk.js, then wires the toggles to the
# actors (one per drawn layer, in the panel's order). body[data-twin-ready] is set once the scene is drawn.
_SCRIPT = """
function twinText(tag, text, cls) { const e = document.createElement(tag); e.textContent = text; if (cls) e.className = cls; return e; }
function twinLegend(legend) {
  const box = document.createElement("div"); box.className = "legend";
  if (legend.title) box.appendChild(twinText("div", legend.title));
  if (legend.gradient) {
    const bar = document.createElement("div"); bar.className = "bar";
    bar.style.background = "linear-gradient(to right, " + legend.gradient.join(", ") + ")"; box.appendChild(bar);
    const range = document.createElement("div"); range.className = "range";
    range.appendChild(twinText("span", String(legend.vmin ?? ""))); range.appendChild(twinText("span", String(legend.vmax ?? ""))); box.appendChild(range);
  }
  for (const entry of legend.entries || []) {
    const row = document.createElement("div"); const swatch = twinText("span", "", "swatch");
    swatch.style.background = entry.color; row.appendChild(swatch); row.appendChild(document.createTextNode(entry.label)); box.appendChild(row);
  }
  if (legend.more) box.appendChild(twinText("div", "... " + legend.more + " more"));
  return box;
}
function twinPanel(data) {
  const panel = document.getElementById("twin-panel");
  panel.appendChild(twinText("h1", data.title));
  if (data.time) panel.appendChild(twinText("div", data.time, "time"));
  for (const layer of data.layers) {
    const label = document.createElement("label"); const box = document.createElement("input");
    box.type = "checkbox"; box.checked = layer.visible; box.dataset.layer = layer.id;
    label.appendChild(box); label.appendChild(document.createTextNode(" " + layer.title)); panel.appendChild(label);
    if (layer.legend) { const legend = twinLegend(layer.legend); legend.dataset.legendOf = layer.id; legend.hidden = !layer.visible; panel.appendChild(legend); }
  }
  panel.appendChild(twinText("div", "Snapshot at the scene time: " + data.left_out + ". Drag to turn, scroll to zoom.", "note"));
}
function twinActors() {
  const rw = window.global && window.global.renderWindow;
  if (!rw) return null;
  const withActors = rw.getRenderers().filter((r) => r.getActors().length > 0);
  return withActors.length ? withActors[0].getActors() : null;
}
function twinWire(data) {
  const actors = twinActors();
  if (!actors || actors.length < data.layers.length) { setTimeout(() => twinWire(data), 50); return; }
  const rw = window.global.renderWindow;
  data.layers.forEach((layer, i) => {
    actors[i].setVisibility(layer.visible);
    const box = document.querySelector('input[data-layer="' + layer.id + '"]');
    box.addEventListener("change", () => {
      actors[i].setVisibility(box.checked);
      const legend = document.querySelector('[data-legend-of="' + layer.id + '"]'); if (legend) legend.hidden = !box.checked;
      rw.render();
    });
  });
  rw.render();
  requestAnimationFrame(() => { document.body.dataset.twinReady = "1"; });
}
function loadDataSet() {
  if (window.twinLoaded) return;
  window.twinLoaded = true;
  const data = JSON.parse(document.getElementById("twin-data").textContent);
  twinPanel(data);
  OfflineLocalView.load(document.getElementById("twin-view"), { base64Str: TWIN_SCENE });
  twinWire(data);
}
"""
