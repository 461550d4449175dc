"""Block layers (H3 cells) as the datasets a browser-side view holds: one per part of the layer's cells.

A block layer's mesh goes to a browser once; each tick then goes out as a few bytes per cell
and part (:func:`twin.mesh.cell_blocks.tick_payload`). New cells that extend the mesh a browser
holds (the same cells first, the new ones after them) become one more part: a dataset of only
the new cells' points and triangles, so a browser downloads only those. After
:data:`MAX_PARTS` parts the layer is sent again as one.

A part's dataset for the browsers never changes after it is made (a browser draws ticks from
the tick payloads, and trame-vtk sends an array again when it changes); the server draws and
picks from its own copy of the points, colours and triangles, which :meth:`BlockPart.write` brings
up to a tick only when the server itself renders or picks. The server's copy leaves out the
triangles of hidden cells (a browser hides them in its shader), so its images do not show them
and its picks cannot hit them; :meth:`BlockPart.part_triangle` maps its triangles back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor

from twin.mesh.cell_blocks import CellBlocks, CellState, shown_points

__all__ = ["COLOR_ARRAY", "MAX_PARTS", "BlockPart", "appended_triangles", "extends", "new_part", "tail_blocks"]

COLOR_ARRAY = "twin_rgba"
MAX_PARTS = 8
"""Parts a block layer may have; new cells beyond that send the whole layer again as one part."""


@dataclass(eq=False)
class BlockPart:
    """Cells ``first_cell`` .. ``first_cell + blocks.n_cells`` of a block layer, drawn by ``actor`` from ``polydata`` (what the
    browsers hold) or, in the server's own renders and picks, from ``server`` (its own points and colours, and only the shown
    cells' triangles); points in local metres, one RGBA per point in :data:`COLOR_ARRAY`. Its triangles are the layer mesh's from
    ``first_triangle`` on. ``server_triangles``: the part's triangle behind each triangle of ``server`` (None: all, in order)."""

    actor: vtkActor
    polydata: vtkPolyData
    server: vtkPolyData
    blocks: CellBlocks
    first_cell: int
    first_triangle: int
    server_triangles: NDArray[np.int64] | None = None
    _server_hidden: NDArray[np.bool_] | None = field(default=None, repr=False)

    def cells_of(self, state: CellState) -> CellState:
        """This part's rows of the layer's ``state`` (views, not copies)."""
        rows = slice(self.first_cell, self.first_cell + self.blocks.n_cells)
        return CellState(heights=state.heights[rows], hidden=state.hidden[rows], colors=state.colors[rows])

    def write(self, state: CellState) -> None:
        """Raise and colour the server's copy of this part to the layer's ``state`` (all cells); hidden cells stay on the
        ground and lose their triangles there (the triangle array is rebuilt only when the hidden cells change)."""
        cells = self.cells_of(state)
        hidden = np.asarray(cells.hidden, bool)
        _raise(self.server, self.blocks, CellState(heights=np.where(hidden, 0.0, cells.heights), hidden=hidden, colors=cells.colors))
        if self._server_hidden is None or not np.array_equal(hidden, self._server_hidden):
            self._show_cells(hidden)

    def part_triangle(self, server_triangle: int) -> int:
        """The part's triangle (0-based, in ``polydata``) drawn as ``server``'s triangle ``server_triangle``; -1 if none."""
        if self.server_triangles is None:
            return server_triangle
        return int(self.server_triangles[server_triangle]) if 0 <= server_triangle < len(self.server_triangles) else -1

    @cached_property
    def _polygons(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """The part's polygons as (offsets (n + 1,), connectivity, cell of each polygon (n,))."""
        polys = self.polydata.GetPolys()
        offsets = vtk_to_numpy(polys.GetOffsetsArray()).astype(np.int64)
        connectivity = vtk_to_numpy(polys.GetConnectivityArray()).astype(np.int64)
        return offsets, connectivity, self.blocks.point_cell[connectivity[offsets[:-1]]]

    def _show_cells(self, hidden: NDArray[np.bool_]) -> None:
        """Give ``server`` the triangles of the cells not ``hidden`` (n_cells,) only, and remember which they are."""
        self._server_hidden = hidden.copy()
        if not hidden.any():
            self.server.SetPolys(self.polydata.GetPolys())
            self.server_triangles = None
            return
        offsets, connectivity, poly_cell = self._polygons
        keep = np.flatnonzero(~hidden[poly_cell])
        sizes = offsets[keep + 1] - offsets[keep]
        kept_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        take = np.repeat(offsets[keep] - kept_offsets[:-1], sizes) + np.arange(kept_offsets[-1], dtype=np.int64)
        cells = vtkCellArray()
        cells.SetData(numpy_to_vtkIdTypeArray(kept_offsets, deep=True), numpy_to_vtkIdTypeArray(connectivity[take], deep=True))
        self.server.SetPolys(cells)
        self.server_triangles = keep


def _raise(polydata: vtkPolyData, blocks: CellBlocks, state: CellState) -> None:
    """Points and colours of ``polydata`` (one part) raised and coloured to ``state`` (its cells), marked modified."""
    points, colors = polydata.GetPoints().GetData(), polydata.GetPointData().GetArray(COLOR_ARRAY)
    shown_points(blocks, state, vtk_to_numpy(points))
    vtk_to_numpy(colors)[:] = state.colors[blocks.point_cell]
    points.Modified()
    colors.Modified()


def _own_arrays(polydata: vtkPolyData, n_points: int) -> None:
    """Give ``polydata`` points and a colour array of its own (n_points each)."""
    points = vtkPoints()
    points.SetData(numpy_to_vtk(np.zeros((n_points, 3), np.float32), deep=True))
    polydata.SetPoints(points)
    polydata.GetCellData().RemoveArray(COLOR_ARRAY)
    colors = numpy_to_vtk(np.zeros((n_points, 4), np.uint8), deep=True)
    colors.SetName(COLOR_ARRAY)
    polydata.GetPointData().AddArray(colors)


def new_part(actor: vtkActor, polydata: vtkPolyData, blocks: CellBlocks, state: CellState, *, first_cell: int = 0, first_triangle: int = 0) -> BlockPart:
    """A part drawn by ``actor`` from ``polydata`` (its cells set; points and colours are made here, raised to ``state``,
    the layer's state of all cells, in both the browsers' dataset and the server's copy); the actor's mapper draws the
    point colours as they are."""
    server = vtkPolyData()
    for dataset in (polydata, server):
        if dataset is server:
            server.ShallowCopy(polydata)
        _own_arrays(dataset, len(blocks.template))
    mapper = actor.GetMapper()
    mapper.SetInputData(polydata)
    mapper.SetLookupTable(None)
    mapper.SetScalarModeToUsePointFieldData()
    mapper.SelectColorArray(COLOR_ARRAY)
    mapper.SetColorModeToDirectScalars()
    mapper.ScalarVisibilityOn()
    actor.SetTexture(None)
    part = BlockPart(actor=actor, polydata=polydata, server=server, blocks=blocks, first_cell=first_cell, first_triangle=first_triangle)
    _raise(polydata, part.blocks, part.cells_of(state))
    part.write(state)
    return part


def extends(old: CellBlocks, new: CellBlocks) -> bool:
    """Whether ``new`` is ``old`` with more cells after it (the same counts, top offsets, points and base first)."""
    n, m = old.n_cells, len(old.template)
    return (new.n_cells > n and new.base_z == old.base_z and np.array_equal(new.counts[:n], old.counts)
            and np.array_equal(new.top_from[:n], old.top_from) and np.array_equal(new.template[:m], old.template))


def tail_blocks(blocks: CellBlocks, first_cell: int) -> CellBlocks:
    """The layout of ``blocks``' cells from ``first_cell`` on, as a mesh of their own."""
    first_point = int(np.sum(blocks.counts[:first_cell]))
    return CellBlocks(counts=blocks.counts[first_cell:], top_from=blocks.top_from[first_cell:], template=blocks.template[first_point:],
                      base_z=blocks.base_z)


def appended_triangles(mesh: vtkPolyData, first_point: int, first_triangle: int) -> vtkCellArray | None:
    """``mesh``'s triangles from the ``first_triangle``-th on, with point ids counted from ``first_point``; None unless
    ``mesh`` is triangles only, those before use only points before ``first_point`` and those after only points from it."""
    polys = mesh.GetPolys()
    if mesh.GetNumberOfVerts() or mesh.GetNumberOfLines() or mesh.GetNumberOfStrips() or polys.IsHomogeneous() != 3:
        return None
    triangles: NDArray[np.int64] = vtk_to_numpy(polys.GetConnectivityArray()).reshape(-1, 3)
    before, after = triangles[:first_triangle], triangles[first_triangle:]
    if len(triangles) <= first_triangle or (len(before) and before.max() >= first_point) or after.min() < first_point:
        return None
    cells = vtkCellArray()
    cells.SetData(numpy_to_vtkIdTypeArray(np.arange(0, 3 * len(after) + 1, 3, dtype=np.int64), deep=True),
                  numpy_to_vtkIdTypeArray(np.ascontiguousarray(after.ravel() - first_point, dtype=np.int64), deep=True))
    return cells
