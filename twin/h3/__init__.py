"""H3 hexagonal cells for the model: points to cell ids, cell boundaries and centres, vectorised with numba.

Results are identical to the h3 library (h3-py 4.x, H3 C 4.5): see :mod:`twin.h3.cells`.

>>> from twin.h3 import points_to_cells, cells_to_boundaries
>>> cells = points_to_cells([121.4737], [31.2304], 9)
>>> cells_to_boundaries(cells)[1].tolist()
[6]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twin.h3.cells import (
        MAX_BOUNDARY_VERTS,
        cell_centers,
        cells_to_boundaries,
        points_to_cells,
        points_to_cells_reference,
    )

__all__ = [
    "MAX_BOUNDARY_VERTS",
    "cell_centers",
    "cells_to_boundaries",
    "points_to_cells",
    "points_to_cells_reference",
]


def __getattr__(name: str) -> Any:
    """Load :mod:`twin.h3.cells` (numba, tables) on first use, so importing a layer that uses cells does not."""
    if name in __all__:
        from twin.h3 import cells

        return getattr(cells, name)
    raise AttributeError(f"module 'twin.h3' has no attribute {name!r}")
