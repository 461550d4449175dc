"""Where twin keeps files between runs: one cache folder for the demo data, tiles and state.

``$TWIN_CACHE_DIR`` if set, else ``~/.cache/twin`` (``~`` expanded). Folders are created by
their users when first written, not here.

>>> import os
>>> os.environ["TWIN_CACHE_DIR"] = "/tmp/twin-cache"
>>> str(cache_dir()), str(cache_dir("tiles"))
('/tmp/twin-cache', '/tmp/twin-cache/tiles')
>>> del os.environ["TWIN_CACHE_DIR"]
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    """The cache folder (``$TWIN_CACHE_DIR`` or ``~/.cache/twin``), or a folder below it."""
    env = os.environ.get("TWIN_CACHE_DIR")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "twin"
    return root.joinpath(*parts)
