"""VTK set-up shared by every view: headless rendering, CJK fonts, steady memory for servers.

Importing this module before any VTK rendering class makes VTK render offscreen through EGL
when there is no X display (servers, CI, the hall's render node). A process that serves for days
calls :func:`steady_rasterizer` before its first frame.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from functools import lru_cache
from pathlib import Path

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import vtkmodules.vtkInteractionStyle
import vtkmodules.vtkRenderingContextOpenGL2
import vtkmodules.vtkRenderingFreeType
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL backend)

__all__ = ["RASTERIZER_THREADS", "cjk_font_file", "steady_rasterizer"]

_FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Medium.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)


@lru_cache(maxsize=1)
def cjk_font_file() -> str | None:
    """A font file with Chinese glyphs (``TWIN_FONT`` overrides), or None if none is installed."""
    override = os.environ.get("TWIN_FONT")
    if override and Path(override).is_file():
        return override
    for candidate in _FONT_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return None


RASTERIZER_THREADS = "LP_NUM_THREADS"
"""Mesa llvmpipe's variable: threads that rasterize (its default: one per core; 0: the thread that renders)."""


def steady_rasterizer(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Have Mesa's llvmpipe (OpenGL on the CPU, where there is no GPU) rasterize in the rendering thread, so the memory it
    holds between frames does not follow what the last frame showed; for processes that serve for days (``twin serve``).

    With rasterizer threads, llvmpipe keeps the last frame's binned triangles after the frame: the demo district's
    30,000 towers, all in view at its overview, held 36 MiB more of the C heap (glibc, in use after ``malloc_trim``) than a
    street view, so a wall's resident memory rose and fell by its tour and its alerts' places
    (``benchmarks/bench_wall.py``); in the rendering thread it is the same for every view (``tests/test_wall_memory.py``).
    A frame took no longer on the 2-core machine that measured it. Sets :data:`RASTERIZER_THREADS` to ``0`` in ``environ``
    unless it is set there already (a render node with many cores may set it to rasterize 4K frames in parallel, at that
    memory cost); a GPU's driver ignores it. Must run before the process's first OpenGL context (Mesa reads it once).
    Returns whether it set the variable.

    >>> env = {}
    >>> steady_rasterizer(env), env
    (True, {'LP_NUM_THREADS': '0'})
    >>> steady_rasterizer({"LP_NUM_THREADS": "8"})
    False
    """
    if RASTERIZER_THREADS in environ:
        return False
    environ[RASTERIZER_THREADS] = "0"
    return True
