"""``scene.show()`` in Jupyter: the twin app inline and interactive, or a PNG where nothing can interact.

Why trame's own Jupyter support (and not an anywidget): the browser app is already a trame app
(:class:`~twin.app.server.TwinApp`: layer list, cameras, legends, alerts, picking, time bar), so
the notebook shows that same app, drawn by the same VTK code, in an ``<iframe>`` served from the
kernel. trame builds the iframe address for a local kernel (JupyterLab, VS Code notebooks), for
JupyterHub and Colab, and for ``jupyter-server-proxy`` / ``trame-jupyter-extension`` set-ups
(``TRAME_IFRAME_BUILDER``). An anywidget would need a second, JavaScript viewer of our scenes
(vtk.js geometry, labels, legends) kept in step with the VTK one: more code, drawn differently.

How it shows: :func:`show` first displays a static PNG (so a saved notebook, nbconvert and
GitHub always have a picture), then starts the app's server as a task on the kernel's event loop
and, once it listens, replaces that PNG by the live view (IPython display ids). It stays with the
PNG when no front end can interact: outside a Jupyter kernel (plain IPython, scripts), with no
running event loop, or with ``TWIN_NOTEBOOK_STATIC=1`` (set it when executing notebooks with
nbclient / ``jupyter nbconvert --execute``, as CI does).
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from twin.errors import TwinError
from twin.scene.model import Scene

__all__ = ["STATIC_ENV", "interactive_frontend", "png_bytes", "show"]

log = logging.getLogger(__name__)

STATIC_ENV = "TWIN_NOTEBOOK_STATIC"
"""Environment variable: ``1`` (or ``true``/``yes``) makes :func:`show` display only the static PNG."""

_APPS: list[Any] = []
"""The apps :func:`show` started, kept alive as long as the kernel (their servers run on its loop)."""


def png_bytes(scene: Scene, size: tuple[int, int] = (960, 540), *, camera: str | None = None) -> bytes:
    """The scene rendered offscreen as PNG bytes, ``size`` = (width, height) pixels.

    Raises :class:`~twin.errors.TwinError` (one line) when the scene cannot be drawn.

    >>> import twin, geopandas as gpd, shapely
    >>> scene = twin.Scene("one point", center=(121.48, 31.23))
    >>> _ = scene.add_data("p", gpd.GeoDataFrame(geometry=[shapely.Point(121.48, 31.23)], crs="EPSG:4326"), point_size=12)
    >>> png_bytes(scene, (64, 48))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    with tempfile.TemporaryDirectory(prefix="twin-show-") as tmp:
        return scene.screenshot(Path(tmp) / "scene.png", size=size, camera=camera).read_bytes()


def interactive_frontend() -> bool:
    """True inside a Jupyter kernel with a running event loop, unless ``TWIN_NOTEBOOK_STATIC`` is set.

    >>> interactive_frontend()  # doctests run outside any kernel
    False
    """
    if os.environ.get(STATIC_ENV, "").strip().lower() in ("1", "true", "yes"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:  # plain IPython or a script: no comm front end
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def show(scene: Scene, *, size: tuple[int, int] = (960, 540), camera: str | None = None, static: bool | None = None) -> None:
    """Display ``scene`` in the notebook cell: a PNG of ``size`` pixels, then the interactive app in its place.

    ``camera``: a preset of ``scene.cameras`` for the picture and the view (default: the scene's).
    ``static``: True for the PNG only, False to require the interactive view (TwinError outside a
    kernel), None to decide with :func:`interactive_frontend`. Needs IPython (``pip install twin[notebook]``).
    Raises :class:`~twin.errors.TwinError` (one line) when the scene cannot be drawn.
    """
    try:
        from IPython.display import Image, display
    except ImportError:
        raise TwinError("scene.show() needs IPython: pip install 'twin[notebook]' (or use scene.screenshot(path))") from None
    live = interactive_frontend() if static is None else not static
    if live and not interactive_frontend():
        raise TwinError("scene.show(static=False) needs a Jupyter kernel with a front end (JupyterLab, VS Code); unset TWIN_NOTEBOOK_STATIC")
    handle = display(Image(data=png_bytes(scene, size, camera=camera), format="png", width=size[0], height=size[1]), display_id=live or None)
    if live and handle is not None:
        _serve_inline(scene, size, camera, handle)


def _serve_inline(scene: Scene, size: tuple[int, int], camera: str | None, handle: Any) -> None:
    """Start a :class:`TwinApp` for ``scene`` on the kernel's loop; put its view in ``handle`` once it listens."""
    from IPython.display import HTML

    from twin.app.server import TwinApp
    from twin.app.trame_args import hidden_argv

    if camera is not None:
        scene.camera = camera
    app = TwinApp(scene, size=size)
    app.ui.iframe_style = f"border: none; width: 100%; height: {size[1]}px;"
    _APPS.append(app)
    with hidden_argv():
        app.server.start(exec_mode="task", port=0, host="127.0.0.1", open_browser=False, show_connection_info=False, disable_logging=True, timeout=0)

    def swap(ready: asyncio.Future[Any]) -> None:
        if ready.cancelled() or ready.exception() is not None:
            log.warning("scene %r: the interactive view did not start (%s); the picture stays", scene.name, ready.exception())
            return
        attributes = app.ui.iframe_builder(app.ui)  # trame's address for this Jupyter set-up
        handle.update(HTML("<iframe " + " ".join(f'{key}="{html.escape(str(value))}"' for key, value in attributes.items()) + "></iframe>"))

    app.server.ready.add_done_callback(swap)
