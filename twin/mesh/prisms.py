"""Regular prisms (gauges, columns) at points: one mesh, vectorised.

>>> import numpy as np
>>> mesh = regular_prisms(np.array([[0.0, 0.0], [100.0, 0.0]]), radius=5.0, heights=np.array([10.0, 20.0]), sides=8)
>>> mesh.n_cells, float(mesh.bounds[5])
(48, 20.0)
"""

from __future__ import annotations

import numpy as np
import pyvista as pv
from numpy.typing import NDArray

__all__ = ["regular_prisms"]


def regular_prisms(
    centers: NDArray[np.floating],
    *,
    radius: float,
    heights: NDArray[np.floating],
    base: NDArray[np.floating] | float = 0.0,
    sides: int = 8,
) -> pv.PolyData:
    """Closed-top prisms with ``sides`` walls around each (x, y) centre; cell data ``item`` = centre index.

    Each prism has ``sides`` roof triangles and ``2 * sides`` wall triangles (no floor).
    """
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    n = len(centers)
    heights = np.broadcast_to(np.asarray(heights, dtype=np.float64), (n,))
    bases = np.broadcast_to(np.asarray(base, dtype=np.float64), (n,))
    angles = np.linspace(0.0, 2 * np.pi, sides, endpoint=False) + np.pi / sides
    ring = np.column_stack([np.cos(angles), np.sin(angles)]) * radius  # (sides, 2), counter-clockwise
    # points per prism: sides bottom, sides top, 1 roof centre
    per = 2 * sides + 1
    pts = np.empty((n, per, 3), dtype=np.float32)
    pts[:, :sides, :2] = centers[:, None, :] + ring[None]
    pts[:, :sides, 2] = bases[:, None]
    pts[:, sides : 2 * sides, :2] = pts[:, :sides, :2]
    pts[:, sides : 2 * sides, 2] = (bases + heights)[:, None]
    pts[:, -1, :2] = centers
    pts[:, -1, 2] = bases + heights
    k = np.arange(sides)
    k1 = (k + 1) % sides
    roof = np.column_stack([np.full(sides, 2 * sides), sides + k, sides + k1])
    wall_a = np.column_stack([k, k1, sides + k1])
    wall_b = np.column_stack([k, sides + k1, sides + k])
    local = np.concatenate([roof, wall_a, wall_b])  # (3 * sides, 3), outward-facing (CCW seen from outside)
    offsets = (np.arange(n) * per)[:, None, None]
    tris = (local[None] + offsets).reshape(-1, 3)
    faces = np.column_stack([np.full(len(tris), 3, dtype=np.int64), tris]).ravel()
    mesh = pv.PolyData(pts.reshape(-1, 3), faces=faces if n else None)
    mesh.cell_data["item"] = np.repeat(np.arange(n, dtype=np.int32), 3 * sides)
    return mesh
