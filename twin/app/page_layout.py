"""The page's frame: a Vuetify app bar, the layer drawer on the left and the main area.

trame-vuetify's ``SinglePageWithDrawerLayout`` less its footer: that footer (hidden on our page) lists the
installed trame packages by reading the metadata of every installed distribution, ~0.1 s of CPU each
time the page is composed, on the way to the first picture.
"""

from __future__ import annotations

from typing import Any

from trame.ui.vuetify3 import VAppLayout
from trame.widgets import vuetify3 as v3

from twin.app.kiosk_overlays import OFF_WALL

__all__ = ["PageLayout"]


class PageLayout(VAppLayout):
    """``<v-app>`` with ``toolbar`` (holding ``icon`` that opens and closes the drawer, and ``title``), ``content`` and ``drawer``.

    ``drawer_width``: the drawer's width in CSS pixels; ``vuetify_config``: Vuetify's settings (theme, defaults).
    """

    def __init__(self, server: Any, *, drawer_width: int, vuetify_config: dict[str, Any]) -> None:
        super().__init__(server, template_name="main", vuetify_config=vuetify_config)
        with self:
            with v3.VAppBar(v_if=OFF_WALL) as toolbar:  # a wall page builds neither bar nor drawer (kiosk_overlays.OFF_WALL)
                self.toolbar = toolbar
                self.icon = v3.VAppBarNavIcon(click="main_drawer = !main_drawer")
                self.title = v3.VToolbarTitle()
            self.content = v3.VMain()
            self.drawer = v3.VNavigationDrawer(v_if=OFF_WALL, disable_resize_watcher=True, disable_route_watcher=True, permanent=True, location="left",
                                               v_model=("main_drawer", True), width=drawer_width)
