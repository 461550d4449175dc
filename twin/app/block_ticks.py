"""Live ticks of block layers (H3 cells) for the local (vtk.js) view, through the trame state.

:class:`SceneView` keeps, per block layer and part (dataset), its static layout and its latest
tick (a few bytes per cell); this puts new ones into the state keys ``twin_block_layouts`` /
``twin_block_ticks``, keyed by the id trame-vtk gives each part's dataset in the browser, where
static/block_ticks.js draws them: with WebGL2, as one texel per cell that the vertex shader reads
(vtk.js's buffers stay as they are); otherwise, or with ``?twin_ticks=cpu`` in the page's URL, by
rewriting the vtk.js points and colours. New cells after those a browser holds are a new part
(a scene change that sends only their geometry, see :mod:`twin.render.block_parts`); other new
meshes send the whole layer again (trame-vtk ``update()``), then ticks resume."""

from __future__ import annotations

from importlib import resources
from typing import Any

from trame_vtk.modules.vtk.serializers import reference_id

from twin.render.view import SceneView

__all__ = ["SCRIPT", "BlockTicks"]

SCRIPT = resources.files("twin.app").joinpath("static", "block_ticks.js")
"""The page script that applies the ticks."""


class BlockTicks:
    """Sends each new block layout and tick of one view once."""

    def __init__(self, view: SceneView) -> None:
        self.view = view
        self._sent_layouts: dict[str, int] = {}
        self._sent_ticks: dict[str, int] = {}

    def publish(self, state: Any, stamp: float) -> None:
        """New layouts and ticks into ``state``; ``stamp``: when the tick began (s since the epoch, sent as ms)."""
        layouts, ticks, sent = {}, {}, {}
        for layer_id, parts in self.view.block_ticks.items():
            for actor, layout, tick in zip(self.view.block_actors(layer_id), self.view.block_layouts[layer_id], parts):
                dataset = f"{reference_id(actor.GetMapper())}-dataset"  # the id trame-vtk gives the mapper's input
                layouts[dataset] = layout
                ticks[dataset] = {**tick, "stamp": stamp * 1000.0}
                sent[dataset] = id(tick)
        if {k: id(v) for k, v in layouts.items()} != self._sent_layouts:
            self._sent_layouts = {k: id(v) for k, v in layouts.items()}
            state.twin_block_layouts = layouts
        if sent != self._sent_ticks:
            self._sent_ticks = sent
            state.twin_block_ticks = ticks
