"""The demo district: generated data (:mod:`twin.demo.district`), a local one-map server
(:mod:`twin.demo.onemap`) and the demo scene file, shipped inside the package so that
``twin demo`` works from any installation (``twin/demo/scenes/demo.yaml``).

>>> with demo_scene() as path:
...     path.name
'demo.yaml'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from pathlib import Path

from twin.errors import TwinError

__all__ = ["demo_scene"]


@contextmanager
def demo_scene() -> Iterator[Path]:
    """The demo scene file shipped with twin, as a file on disk for the ``with`` block.

    Raises :class:`~twin.errors.TwinError` when this installation lacks it (a broken install).
    """
    resource = files(__name__) / "scenes" / "demo.yaml"
    if not resource.is_file():
        raise TwinError(f"demo scene {resource} is missing from this installation: reinstall twin")
    with as_file(resource) as path:
        yield path
