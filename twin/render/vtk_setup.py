"""VTK set-up shared by every view: headless rendering and CJK fonts.

Importing this module before any VTK rendering class makes VTK render offscreen through EGL
when there is no X display (servers, CI, the hall's render node).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import vtkmodules.vtkInteractionStyle
import vtkmodules.vtkRenderingContextOpenGL2
import vtkmodules.vtkRenderingFreeType
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL backend)

__all__ = ["cjk_font_file"]

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
