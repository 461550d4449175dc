"""The first picture: a server render of the scene in the page before its JavaScript view exists.

The page (``index.html``, trame's own with :data:`SCRIPT` added) asks for
``twin/first-picture.jpg?w=WIDTH&h=HEIGHT`` (the view box's CSS pixels, as the page estimates
them before its layout exists) from a plain ``<img>`` as soon as it is parsed, so the picture does
not wait for the JavaScript bundle, the websocket or the 3D view. The server answers once the
scene's static layers are drawn (a long poll of at most :data:`WAIT_S` seconds; 204 No Content
when the scene could not be drawn in time) with a fresh render of the scene as it is then, at
:data:`SCALE` of that size and stretched by the page (the render window is left at the full size, so the 3D
view's first frame is not drawn twice); a page
opened later gets a fresh render at once. The picture sits under the 3D view inside the view box
(whatever the view draws covers it) and goes once the view shows its own first frame; the loading
card stays over it until the live layers are in.

Both routes are the app's own, behind the same access checks as the page (:mod:`twin.app.access`).
A bad size gets 400 with one line naming the parameter.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from twin.errors import TwinError
from twin.render.view import SceneView

__all__ = ["MAX_SIDE", "ROUTE", "WAIT_S", "FirstPicture", "picture_size"]

log = logging.getLogger(__name__)

ROUTE = "/twin/first-picture.jpg"
WAIT_S = 60.0
"""Seconds a request for the first picture waits for the static layers before it gets 204."""
GRACE_S = 2.0
"""Seconds :attr:`FirstPicture.settled` waits, once the static layers are drawn, for a page that has not asked yet."""
MIN_SIDE, MAX_SIDE = 16, 4096
"""Bounds of the picture's width and height (pixels)."""
JPEG_QUALITY = 30
"""JPEG quality (0-100) of the first picture (the remote view's still quality before its stills became WebP within a byte budget)."""
SCALE = 0.5
"""Share of the asked width and height the picture is rendered at, without edge smoothing (FXAA); the page stretches it over
the view box. A CPU renderer's time goes with the pixels (demo at 1280x720 on llvmpipe: 0.95 s of CPU, 0.4 s at this scale),
and the 3D view's own full-size frame replaces the picture about a second later."""


def picture_size(query: Any) -> tuple[int, int]:
    """``(w, h)`` from a request's query (pixels, each in MIN_SIDE..MAX_SIDE); raises HTTPBadRequest with one line naming the parameter."""
    size = []
    for key in ("w", "h"):
        value = query.get(key, "")
        try:
            side = int(value)
        except ValueError:
            raise web.HTTPBadRequest(text=f"twin: {ROUTE}: ?{key}={value!r} is not a whole number of pixels\n") from None
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise web.HTTPBadRequest(text=f"twin: {ROUTE}: ?{key}={side} is outside {MIN_SIDE}..{MAX_SIDE} pixels\n")
        size.append(side)
    return size[0], size[1]


@cache
def _index_html(www: str, right_px: int, kiosk: bool) -> str:
    """trame's ``index.html`` from the client folder ``www`` with the first picture's element and script added
    (``right_px``: width of the page's right drawer, which the script leaves out of the view box it estimates;
    ``kiosk``: pages are the wall unless they ask ``?kiosk=0``)."""
    page = (Path(www) / "index.html").read_text(encoding="utf-8")
    script = resources.files("twin.app").joinpath("static", "first_picture.js").read_text(encoding="utf-8")
    snippet = f'<div id="twin-first-picture" aria-hidden="true" data-right="{int(right_px)}" data-kiosk="{int(kiosk)}"><img alt=""></div>\n<script>{script}</script>\n'
    return page.replace("</body>", snippet + "</body>", 1)


class FirstPicture:
    """Serves the first picture of ``view`` (a :class:`~twin.render.view.SceneView`) on the server's routes.

    ``right_px``: width (CSS pixels) of the drawer the page opens on the right of the view box (the alerts list), 0 for none;
    ``kiosk``: pages are the command-hall wall (the view fills the page) unless they ask ``?kiosk=0``.

    Call :meth:`install` when the server binds (before wslink adds its static routes) and
    :meth:`ready` on the server's loop once the static layers are drawn. :attr:`settled` is set once
    the requests waiting then, or coming within :data:`GRACE_S` (a page still loading), were answered, or
    none came (the start-up polls live layers only then, so the first render does not share the CPU with them).
    """

    def __init__(self, view: SceneView, *, right_px: int = 0, kiosk: bool = False) -> None:
        self.view, self.right_px, self.kiosk = view, right_px, kiosk
        self.settled = threading.Event()
        self._ready = asyncio.Event()
        self._waiting = 0

    def install(self, web_app: Any) -> None:
        """Add the page and picture routes to wslink's aiohttp ``WebAppServer`` (a trame ``on_server_bind`` callback)."""
        www = web_app.config.get("static", {}).get("/") or _default_www()
        page = _index_html(str(www), self.right_px, self.kiosk)

        async def index(_request: web.Request) -> web.Response:
            return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})

        web_app.app.router.add_get("/index.html", index)
        web_app.app.router.add_get(ROUTE, self._picture)

    def ready(self) -> None:
        """On the loop: the static layers are drawn; waiting requests are answered now."""
        if self._ready.is_set():
            return
        self._ready.set()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no server running: nothing to wait for
            self.settled.set()
            return
        loop.call_later(GRACE_S, self._settle_unless_asked)

    def _settle_unless_asked(self) -> None:
        if not self._waiting:  # else the last answer settles it
            self.settled.set()

    async def _picture(self, request: web.Request) -> web.Response:
        size = picture_size(request.query)
        self._waiting += 1
        try:
            await asyncio.wait_for(self._ready.wait(), WAIT_S)
            body = self.render(size)
        except (TimeoutError, asyncio.TimeoutError):
            return web.Response(status=204, headers={"Cache-Control": "no-store"})
        finally:
            self._waiting -= 1
            if self._ready.is_set() and not self._waiting:
                self.settled.set()
        if body is None:
            return web.Response(status=204, headers={"Cache-Control": "no-store"})
        log.info("first picture %dx%d answered (%d bytes)", *size, len(body))
        return web.Response(body=body, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    def render(self, size: tuple[int, int]) -> bytes | None:
        """The scene as drawn now for ``size`` (width, height pixels) as JPEG bytes of :data:`SCALE` times that size (at least
        :data:`MIN_SIDE`; labels keep their share of the picture); None if it cannot be drawn. The window is left at ``size``."""
        from PIL import Image

        window, renderer = self.view.window, self.view.renderer
        dpi, fxaa = window.GetDPI(), renderer.GetUseFXAA()
        small = (max(MIN_SIDE, round(size[0] * SCALE)), max(MIN_SIDE, round(size[1] * SCALE)))
        self.view.resize(*small)
        window.SetDPI(max(1, round(dpi * small[0] / size[0])))  # text is sized in points: fewer dots per inch, same share of the picture
        renderer.SetUseFXAA(False)
        try:
            pixels = self.view.image()
        except TwinError as exc:
            log.warning("first picture: %s", exc)
            return None
        except Exception:  # the page goes on without it (the 3D view shows the scene)
            log.exception("first picture failed")
            return None
        finally:
            renderer.SetUseFXAA(fxaa)
            window.SetDPI(dpi)
            self.view.resize(*size)  # the 3D view's first frame, at its own size
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="JPEG", quality=JPEG_QUALITY)
        return out.getvalue()


def _default_www() -> str:
    from trame_client.module.vue3 import www

    return str(www)
