"""Screenshot download: the view as a PNG, at the size it has in the page or at a chosen size up to 3840×2160.

The server renders the scene offscreen with the view's camera (in the local view, the browser's) at the asked size and hands the PNG to the page,
which saves it (``utils.download``). State: ``twin_shot_size`` (the chosen size), ``twin_shot_error``.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

from PIL import Image
from trame.app import TrameComponent
from trame.decorators import controller, trigger
from trame.widgets import html
from trame.widgets import vuetify3 as v3

from twin.app.client_camera import CLIENT_CAMERA, follow_client
from twin.app.i18n import tr, tr_expr
from twin.errors import ExportError, TwinError
from twin.render.view import SceneView
from twin.session import Session

__all__ = ["MAX_SIZE", "SIZES", "Screenshot", "screenshot_png", "screenshot_size"]

log = logging.getLogger(__name__)

MAX_SIZE = (3840, 2160)
MIN_SIDE = 16
SIZES = ("view", "1280x720", "1920x1080", "2560x1440", "3840x2160")
"""The sizes offered: the view's own, then common screen sizes up to 4K UHD."""
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[x×]\s*(\d{1,5})\s*$")


def screenshot_size(choice: str, view_width: object = None, view_height: object = None) -> tuple[int, int]:
    """(width, height) pixels for a size choice: ``"view"`` (the view's size in the page) or ``"WxH"``.

    Raises :class:`ExportError` (one line naming the size) for text that is no size, or a side below 16 or above
    3840×2160 (the largest PNG the app renders).
    """
    if choice == "view":
        try:
            width, height = round(float(view_width)), round(float(view_height))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ExportError(f"screenshot: the view's size {view_width!r}×{view_height!r} is not known") from None
    else:
        match = _SIZE.match(str(choice))
        if match is None:
            raise ExportError(f"screenshot size {choice!r}: give width x height in pixels, e.g. 1920x1080, or 'view'")
        width, height = int(match.group(1)), int(match.group(2))
    if not (MIN_SIDE <= width <= MAX_SIZE[0] and MIN_SIDE <= height <= MAX_SIZE[1]):
        raise ExportError(f"screenshot size {width}x{height}: each side from {MIN_SIDE} up to {MAX_SIZE[0]}x{MAX_SIZE[1]} pixels")
    return width, height


def screenshot_png(view: SceneView, width: int, height: int) -> bytes:
    """The view's scene from its current camera as PNG bytes of ``width`` × ``height``; the view keeps its own size."""
    saved = view.window.GetSize()
    try:
        view.resize(width, height)
        pixels = view.image()
    finally:
        view.resize(*saved)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


class Screenshot(TrameComponent):
    """A toolbar menu: choose a size, download the view as PNG."""

    def __init__(self, server: Any, session: Session, view: SceneView) -> None:
        super().__init__(server)
        self.session, self.view = session, view
        self.state.twin_shot_size = "view"
        self.state.twin_shot_error = ""

    @controller.set("twin_screenshot")
    @trigger("twin_screenshot")
    def png(self, choice: str, view_width: object = None, view_height: object = None, camera: dict[str, Any] | None = None) -> Any:
        """The PNG for the page to save (a wslink attachment), or None with ``twin_shot_error`` set; ``camera``: the browser's
        camera in the local view (see :mod:`twin.app.client_camera`), which the picture is taken from."""
        try:
            width, height = screenshot_size(choice, view_width, view_height)
            with self.session.lock:
                follow_client(self.view, camera)
                data = screenshot_png(self.view, width, height)
        except TwinError as exc:
            log.warning("%s", exc)
            self.state.twin_shot_error = str(exc)
            return None
        self.state.twin_shot_error = ""
        protocol = self.server.protocol
        return protocol.addAttachment(data) if protocol is not None else data

    def ui(self) -> None:
        """The camera button opening the size choice and the download button."""
        with v3.VMenu(close_on_content_click=False, location="bottom end"):
            with v3.Template(v_slot_activator="{ props }"), v3.VBtn(icon=True, density="comfortable", id="twin-shot-open", v_bind="props",
                                                                    title=(tr_expr("Screenshot"),)):
                v3.VIcon("mdi-camera")
            with v3.VCard(classes="pa-3 twin-shot", id="twin-shot", min_width=240):
                with html.Label(classes="twin-control"):
                    html.Span(tr("Size"), classes="twin-control-label")
                    with html.Select(classes="twin-select twin-shot-size", raw_attrs=['v-model="twin_shot_size"']):
                        html.Option(tr("as the view"), value="view")
                        for size in SIZES[1:]:
                            html.Option(size.replace("x", " × "), value=size)
                name = "(twin_scene_name || 'scene').replace(/[\\\\/:*?<>|\\s\\x22]+/g, '_') + '.png'"  # a file name: no path or shell characters
                grab = "trigger('twin_screenshot', [twin_shot_size, window.document.getElementById('twin-view').clientWidth, " \
                       f"window.document.getElementById('twin-view').clientHeight, {CLIENT_CAMERA}])"
                v3.VBtn(tr("Download PNG"), id="twin-shot-download", color="primary", variant="tonal", block=True, classes="mt-2",
                        prepend_icon="mdi-download", click=f"{grab}.then(png => png && utils.download({name}, png, 'image/png'))")
                html.Div("{{ twin_shot_error }}", v_if="twin_shot_error", classes="text-caption text-error mt-1 twin-shot-error")
