"""Meshes made of per-cell point blocks, and the small per-cell arrays a live tick of them needs.

A layer such as the H3 layer draws each cell as a contiguous block of points: ``counts[i]``
points for cell ``i`` (blocks in cell order), of which the points from ``top_from[i]`` to the
end of the block rise with the cell's height (the last point of a block is its centre).
A tick changes only heights, hidden flags and colours per cell, so a browser-side renderer
that holds the mesh needs one height, one flag and one colour index per cell (not the
points and per-triangle colours again).

>>> import numpy as np
>>> blocks = CellBlocks(counts=np.array([3, 3], np.uint8), top_from=np.array([1, 1], np.uint8),
...                     template=np.zeros((6, 3), np.float32), base_z=2.0)
>>> state = CellState(heights=np.array([10.0, 0.0]), hidden=np.array([False, True]),
...                   colors=np.array([[255, 0, 0, 255], [0, 0, 255, 255]], np.uint8))
>>> payload = tick_payload(blocks, state)
>>> len(payload["heights"]), len(payload["color_index"]), payload["palette"]
(4, 2, [[255, 0, 0, 255], [0, 0, 255, 255]])
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from twin.errors import TwinError

__all__ = ["CellBlocks", "CellState", "blocks_payload", "palette_index", "shown_points", "tick_payload"]

HEIGHT_STEPS = 65535
"""Heights travel as uint16 steps of ``height_step`` metres (the tallest cell is step 65535)."""


@dataclass(frozen=True, eq=False)
class CellBlocks:
    """The static layout of a block mesh (changes only when cells are added or the shape changes).

    ``counts``: (n_cells,) points per cell; ``top_from``: (n_cells,) index within the block of the
    first point that rises; ``template``: (n_points, 3) float32 local metres, every cell shown,
    top points at ``base_z`` (metres above the ground).
    """

    counts: NDArray[np.integer]
    top_from: NDArray[np.integer]
    template: NDArray[np.float32]
    base_z: float

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.top_from) or int(np.sum(self.counts)) != len(self.template):
            raise TwinError(f"cell blocks: {len(self.counts)} counts, {len(self.top_from)} top offsets and "
                            f"{len(self.template)} points do not describe one mesh")

    @property
    def n_cells(self) -> int:
        return len(self.counts)

    @cached_property
    def point_cell(self) -> NDArray[np.int64]:
        """(n_points,) the cell of each point."""
        return np.repeat(np.arange(self.n_cells), self.counts)

    @cached_property
    def is_top(self) -> NDArray[np.bool_]:
        """(n_points,) True for points that rise with the cell's height."""
        start = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        return (np.arange(len(self.template)) - start[self.point_cell]) >= np.asarray(self.top_from, np.int64)[self.point_cell]


@dataclass(frozen=True, eq=False)
class CellState:
    """What a tick changes, per cell: ``heights`` (n_cells,) metres above ``base_z`` (finite, >= 0),
    ``hidden`` (n_cells,) bool, ``colors`` (n_cells, 4) RGBA uint8."""

    heights: NDArray[np.floating]
    hidden: NDArray[np.bool_]
    colors: NDArray[np.uint8]


def shown_points(blocks: CellBlocks, state: CellState, out: NDArray[np.float32]) -> None:
    """Write the template with each top point raised by its cell's height into ``out`` (n_points, 3).

    Hidden cells keep their full outline here (a viewer hides them); ``out`` is changed in place.
    """
    out[:] = blocks.template
    top = blocks.is_top
    out[top, 2] = blocks.base_z + np.asarray(state.heights, np.float32)[blocks.point_cell[top]]


def palette_index(colors: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], NDArray[np.uint16] | NDArray[np.uint8]]:
    """The distinct colours (k, 4, in order of first use) and each cell's row in them (uint8 when k <= 256, else uint16)."""
    packed = np.ascontiguousarray(colors, dtype=np.uint8).view(np.uint32).ravel()
    index, distinct = pd.factorize(packed, sort=False)  # a hash table: a few ms for 100k cells (np.unique sorts)
    distinct = np.ascontiguousarray(distinct, dtype=np.uint32)
    if len(distinct) > 65536:
        raise TwinError(f"cell colours: {len(distinct)} distinct colours, more than a tick can index (65536)")
    palette = distinct.view(np.uint8).reshape(-1, 4)
    return palette, index.astype(np.uint8 if len(distinct) <= 256 else np.uint16)


def blocks_payload(blocks: CellBlocks) -> dict[str, Any]:
    """The static layout for a browser: counts and top offsets as uint8 bytes (n_cells each)."""
    if len(blocks.counts) and (int(np.max(blocks.counts)) > 255 or int(np.max(blocks.top_from)) > 255):
        raise TwinError("cell blocks: a cell with more than 255 points cannot be sent as a block layout")
    return {"n_cells": blocks.n_cells, "n_points": len(blocks.template), "base_z": float(blocks.base_z),
            "counts": np.asarray(blocks.counts, np.uint8).tobytes(), "top_from": np.asarray(blocks.top_from, np.uint8).tobytes()}


def tick_payload(blocks: CellBlocks, state: CellState) -> dict[str, Any]:
    """One tick for a browser, ~3.1 bytes per cell: uint16 height steps, packed hidden bits, colour index + palette.

    Heights are sent as steps of ``height_step`` metres (the tallest / 65535; error < 1 cm below 650 m).
    """
    heights = np.nan_to_num(np.asarray(state.heights, np.float64), nan=0.0, posinf=0.0, neginf=0.0).clip(0.0)
    top = float(heights.max()) if len(heights) else 0.0
    step = top / HEIGHT_STEPS
    if not step > 0:  # no height, or heights so small that a step underflows to 0
        step = 1.0
    palette, index = palette_index(state.colors)
    return {
        "n_cells": blocks.n_cells,
        "height_step": step,
        "heights": np.rint(heights / step).astype("<u2").tobytes(),
        "hidden": np.packbits(np.asarray(state.hidden, bool), bitorder="little").tobytes(),
        "palette": palette.tolist(),
        "color_index": index.astype(index.dtype.newbyteorder("<")).tobytes(),
        "index_bytes": index.dtype.itemsize,
    }
