"""Saved views in the page: name the current camera, visible layers and time (kept in the scene file's ``views:``),
open one from the list, and open the view a URL asks for (``/?view=bund`` or ``/?cam=lon,lat,range,heading,pitch&layers=a,b&t=ISO``).

The page reads its own URL once loaded (``window.location.search``) and asks the server to apply it.
State: ``twin_views`` (names), ``twin_view_name`` (the name typed), ``twin_view_link`` (the query reopening the last
view saved or opened; with ``&token=`` when the page was opened with a token, so that the link opens for whoever it is
sent to — the token is never written to the scene file), ``twin_view_error`` (one line).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode

from trame.app import TrameComponent
from trame.decorators import controller, trigger
from trame.widgets import client, html
from trame.widgets import vuetify3 as v3

from twin.app.access import current_token
from twin.app.client_camera import CAMERA_SCRIPT, CLIENT_CAMERA, follow_client
from twin.app.i18n import tr, tr_expr
from twin.app.view_panel import ViewPanel
from twin.errors import TwinError
from twin.scene.views import SavedView, view_from_query, view_query
from twin.session import CameraPose, Session

__all__ = ["SavedViews"]

log = logging.getLogger(__name__)


def _link(query: dict[str, str] | str) -> str:
    """``?query`` reopening a view, with the page's token (:func:`current_token`) when it was opened with one."""
    text = query if isinstance(query, str) else urlencode(query, safe=",:")
    token = current_token()
    return "?" + text + ("&" + urlencode({"token": token}) if token else "")


class SavedViews(TrameComponent):
    """Save the view under a name, reopen saved views and view URLs."""

    def __init__(self, server: Any, session: Session, view_panel: ViewPanel) -> None:
        super().__init__(server)
        self.session, self.view_panel = session, view_panel
        self.state.update({"twin_views": list(session.scene.views), "twin_view_name": "", "twin_view_link": "", "twin_view_error": "",
                           "twin_view_open": ""})

    @controller.set("twin_save_view")
    @trigger("twin_save_view")
    def save(self, name: str, camera: dict[str, Any] | None = None) -> None:
        """Save what the view shows as ``name`` (written to the scene file when the scene has one); ``camera``: the browser's
        camera in the local view (see :mod:`twin.app.client_camera`), which the server's camera takes first."""
        try:
            with self.session.lock:
                if follow_client(self.view_panel.view, camera) is not None:
                    self.session.camera_moved(self.view_panel.pose())
            saved = self.session.save_view(str(name or "").strip(), self.view_panel.pose())
        except TwinError as exc:
            self._error(exc)
            return
        self.state.update({"twin_views": list(self.session.scene.views), "twin_view_error": "", "twin_view_open": str(name).strip(),
                           "twin_view_link": _link({"view": str(name).strip()}), "twin_view_url": _link(view_query(saved))})

    @controller.set("twin_open_view")
    @trigger("twin_open_view")
    def open(self, name: str) -> None:
        """Show the saved view ``name``."""
        if name:
            self._apply(name, link=_link({"view": name}))

    @controller.set("twin_open_url")
    @trigger("twin_open_url")
    def open_url(self, search: str) -> None:
        """Show the view the page's URL query asks for (nothing when it asks for none)."""
        query = dict(parse_qsl((search or "").lstrip("?"), keep_blank_values=True))
        try:
            view = view_from_query(query, [layer.id for layer in self.session.scene.layers], self.session.scene.views)
        except TwinError as exc:
            self._error(exc)
            return
        if view is not None:
            self._apply(view, link=_link({k: v for k, v in query.items() if k != "token"}))

    def _apply(self, view: SavedView | str, *, link: str) -> None:
        try:
            pose = self.session.apply_view(view)
        except TwinError as exc:
            self._error(exc)
            return
        self._move_camera(pose, self.session.scene.views[view] if isinstance(view, str) else view)
        self.state.update({"twin_view_error": "", "twin_view_link": link})

    def _move_camera(self, pose: CameraPose, view: SavedView) -> None:
        """Put the view's VTK camera at ``pose`` and send it to the page."""
        camera = self.view_panel.view.renderer.GetActiveCamera()
        camera.SetPosition(*pose.position)
        camera.SetFocalPoint(*pose.focal_point)
        camera.SetViewUp(*pose.up)
        camera.SetViewAngle(view.camera.view_angle)
        camera.OrthogonalizeViewUp()
        self.view_panel.view.renderer.ResetCameraClippingRange()
        self.session.camera_moved(pose)
        self.view_panel.update_view(camera=True)

    def _error(self, exc: TwinError) -> None:
        log.warning("view: %s", exc)
        self.state.twin_view_error = str(exc)

    def ui(self) -> None:
        """A toolbar menu: the name field and Save, the saved views, the link of the current one; and the URL read on load."""
        client.Script(CAMERA_SCRIPT)
        client.ClientTriggers(mounted="window.location.search && trigger('twin_open_url', [window.location.search])")
        with v3.VMenu(close_on_content_click=False, location="bottom end"):
            with v3.Template(v_slot_activator="{ props }"), v3.VBtn(icon=True, density="comfortable", id="twin-views-open", v_bind="props",
                                                                    title=(tr_expr("Saved views"),)):
                v3.VIcon("mdi-bookmark-outline")
            with v3.VCard(classes="pa-3 twin-views", id="twin-views", min_width=280):
                html.Div(tr("Saved views"), classes="text-overline text-medium-emphasis")
                with html.Div(classes="d-flex align-center"):
                    html.Input(classes="twin-text twin-view-name flex-grow-1", placeholder=(tr_expr("name, e.g. bund"),), raw_attrs=['v-model="twin_view_name"'])
                    v3.VBtn(tr("Save view"), id="twin-view-save", size="small", color="primary", variant="tonal", classes="ml-2",
                            click=f"trigger('twin_save_view', [twin_view_name, {CLIENT_CAMERA}])")
                with html.Label(v_if="twin_views.length", classes="twin-control mt-2"):
                    html.Span(tr("Open"), classes="twin-control-label")
                    with html.Select(classes="twin-select twin-view-list", raw_attrs=[
                        ':value="twin_view_open"', "@change=\"twin_view_open = $event.target.value; trigger('twin_open_view', [$event.target.value])\"",
                    ]):
                        html.Option("—", value="")
                        html.Option("{{ v }}", v_for="v in twin_views", key="v", raw_attrs=[':value="v"'])
                with html.Div(v_if="twin_view_link", classes="text-caption mt-2"):
                    html.Span(tr("Link"), classes="text-medium-emphasis mr-1")
                    html.A("{{ twin_view_link }}", raw_attrs=[':href="twin_view_link"'], classes="twin-view-link")
                html.Div("{{ twin_view_error }}", v_if="twin_view_error", classes="text-caption text-error mt-1 twin-view-error")
