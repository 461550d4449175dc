"""Issue 15: a scene as one standalone HTML file that draws in headless Chromium with the network off."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from browsing import chromium
from imaging import hue_share
from PIL import Image

import twin
from twin.errors import ExportError
from twin.export.html import LEFT_OUT

VIEW = {"width": 800, "height": 600}


def shot(page: object) -> np.ndarray:
    """The viewer area right of the panel (the panel's swatches would count as scene colours)."""
    image = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))  # type: ignore[attr-defined]
    return image[:, 360:]


def test_the_page_draws_the_scene_offline_and_its_toggles_work(districts_scene: Path, tmp_path: Path) -> None:
    scene = twin.Scene.from_file(districts_scene)
    scene["bus71"].visible = False
    page_file = scene.to_html(tmp_path / "districts.html", size=(800, 600))
    assert scene["bus71"].visible is False, "the export leaves the scene as it was"
    requests: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport=VIEW, offline=True)
        context.route("**/*", lambda route: (requests.append(route.request.url), route.continue_() if route.request.url.startswith("file:") else route.abort()))
        page = context.new_page()
        page.goto(page_file.as_uri())
        page.wait_for_selector("body[data-twin-ready]", timeout=30_000)
        before = shot(page)
        assert page.title() == "Shanghai districts"
        panel = page.inner_text("#twin-panel")
        assert "区" in panel and "浦东新区" in panel and LEFT_OUT in panel
        assert page.is_checked('input[data-layer="districts"]') and not page.is_checked('input[data-layer="bus71"]')

        page.uncheck('input[data-layer="districts"]')
        page.wait_for_timeout(300)
        without = shot(page)
        page.check('input[data-layer="bus71"]')
        page.wait_for_timeout(300)
        with_bus = shot(page)
    assert requests == [page_file.as_uri()], "the page asks for nothing but itself"
    # Pudong's purple (tab20 #9467bd) and Baoshan's orange fill the view, and go with the districts' toggle
    assert hue_share(before, 271, 12) > 0.1 and hue_share(before, 28, 10) > 0.01
    assert hue_share(without, 271, 12) < 0.001 and hue_share(without, 28, 10) < 0.001
    # bus 71 starts hidden (as in the scene) and shows in yellow when ticked
    assert hue_share(without, 60, 10) < 0.0005 < hue_share(with_bus, 60, 10)


def test_text_from_the_scene_is_shown_as_text_not_markup(tmp_path: Path, shared_data: Path) -> None:
    """A title with HTML's special characters (and a script-closing tag) reaches the page as plain text."""
    path = tmp_path / "odd.yaml"
    title = "外滩 <b>&</script> \"brief\""
    path.write_text(
        f"version: 1\nname: odd\nsettings: {{title: '{title}'}}\nlayers:\n"
        f"  - {{id: bus, type: vector, title: '</script><i>71路</i>', color: yellow, source: {{type: file, path: {shared_data / 'bund_busline_71.geojson'}}}}}\n",
        encoding="utf-8",
    )
    page_file = twin.Scene.from_file(path).to_html(tmp_path / "odd.html", size=(400, 300))
    with chromium() as browser:
        page = browser.new_context(viewport={"width": 400, "height": 300}, offline=True).new_page()
        page.goto(page_file.as_uri())
        page.wait_for_selector("body[data-twin-ready]", timeout=30_000)
        assert page.title() == title
        assert page.inner_text("#twin-panel h1") == title
        assert page.inner_text("#twin-panel label").strip() == "</script><i>71路</i>"
        assert page.locator("#twin-panel b, #twin-panel i").count() == 0


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("districts.png", "must be a .html or .htm file (a standalone web page)"),
        ("missing/districts.html", "does not exist (writing districts.html)"),
    ],
)
def test_a_bad_output_path_is_one_line(districts_scene: Path, tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(ExportError, match=re.escape(message)):
        twin.Scene.from_file(districts_scene).to_html(tmp_path / name)


def test_a_scene_with_nothing_to_draw_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"^scene 'empty' has nothing to draw: no layers$"):
        twin.Scene("empty", center=(121.48, 31.23)).to_html(tmp_path / "empty.html")
