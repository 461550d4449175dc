"""Saved views (twin.scene.views): the session names the camera, visible layers and time; they are written to the
scene file's ``views:``, read back equal, reopened by name or by URL parameters; bad ones give one located line."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from browsing import chromium, differ, twin_serve, wait_for_view
from hypothesis import given, settings
from hypothesis import strategies as st

import twin
from twin.errors import SceneFileError
from twin.geo.frame import Frame
from twin.scene.views import SavedView, ViewError, view_from_pose, view_from_query, view_query
from twin.session import CameraPose, Session

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def _scene(tmp_path: Path) -> twin.Scene:
    scene = twin.Scene("views", center=(121.48, 31.23))
    for name, x in (("west", 121.47), ("east", 121.49)):
        scene.add_data(name, gpd.GeoDataFrame({"name": [name]}, geometry=[shapely.Point(x, 31.23)], crs="EPSG:4326"))
    scene.to_file(tmp_path / "views.yaml")
    return twin.Scene.from_file(tmp_path / "views.yaml")


def test_a_saved_view_is_written_to_the_scene_file_and_reopens(tmp_path: Path) -> None:
    scene = _scene(tmp_path)
    session = Session(scene)
    session.set_layer("east", visible=False)
    x, y, z = (float(v) for v in scene.frame.lonlat_to_local([121.48], [31.20], 1500.0)[0])
    pose = CameraPose((x, y, z), (0.0, 0.0, 0.0))
    saved = session.save_view("bund", pose)
    assert saved.layers == ("west",) and saved.time is None
    assert math.isclose(saved.camera.heading, 0.0, abs_tol=1e-3)  # looking north, from the south
    text = (tmp_path / "views.yaml").read_text(encoding="utf-8")
    assert text.startswith("# twin scene file") and "views:\n  bund:\n    camera:" in text and "layers: [west]" in text
    again = twin.Scene.from_file(tmp_path / "views.yaml")
    assert again.views == scene.views and again.to_dict()["views"] == scene.to_dict()["views"]
    other = Session(again)
    assert again["east"].visible  # the file keeps the layer's own visibility; the view hides it
    got = other.apply_view("bund")
    assert not again["east"].visible and again["west"].visible
    assert math.dist(got.position, pose.position) < 0.5 and math.dist(got.focal_point, pose.focal_point) < 0.5


def test_a_replayed_time_is_saved_and_shown_again(tmp_path: Path) -> None:
    scene = _scene(tmp_path)
    session = Session(scene)
    t = dt.datetime(2026, 7, 1, 15, 0, tzinfo=SHANGHAI)
    view = SavedView(camera={"target": [121.48, 31.23], "range": 900}, time=t)
    times = []
    session.time_changed.connect(times.append)
    session.apply_view(view)
    assert scene.time == t and times[-1].shown == t


def test_a_view_url_carries_camera_layers_and_time() -> None:
    frame = Frame.auto(121.48, 31.23)
    view = view_from_query({"cam": "121.49,31.24,1500,30,45", "layers": "a", "t": "2026-07-01T15:00:00 08:00"}, ["a", "b"])
    assert view is not None and view.layers == ("a",) and view.time == dt.datetime(2026, 7, 1, 15, tzinfo=SHANGHAI)
    assert (view.camera.target, view.camera.range, view.camera.heading, view.camera.pitch) == ((121.49, 31.24), 1500.0, 30.0, 45.0)
    assert view_query(view) == "cam=121.49,31.24,1500,30,45&layers=a&t=2026-07-01T15:00:00%2B08:00"
    position, focal, _ = view.camera.resolve(frame)
    back = view_from_pose(position, focal, frame=frame, layers=["a"], time=None)
    assert math.isclose(back.camera.range, 1500, rel_tol=1e-6) and math.isclose(back.camera.heading, 30, abs_tol=1e-6)
    assert view_from_query({}, ["a"]) is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"view": "bnd"}, "URL parameter view: unknown view 'bnd' (did you mean 'bund'?); saved views: bund"),
        ({"cam": "121.49,31.24"}, "URL parameter cam='121.49,31.24': give lon,lat,range[,heading[,pitch]] as numbers, e.g. cam=121.49,31.24,1500,30,45"),
        ({"cam": "121.49,north,800"}, "URL parameter cam='121.49,north,800': give lon,lat,range[,heading[,pitch]] as numbers"),
        ({"cam": "321,31,800"}, "URL parameter cam='321,31,800': 321, 31 is not a lon, lat pair"),
        ({"cam": "121.49,31.24,800,0,120"}, "URL parameter cam='121.49,31.24,800,0,120': pitch input should be less than or equal to 90"),
        ({"cam": "121.49,31.24,800", "layers": "a,ghost"}, "URL parameter layers: unknown layer 'ghost'; layers: a, b"),
        ({"cam": "121.49,31.24,800", "t": "yesterday"}, "URL parameter t='yesterday' is not an ISO 8601 time"),
        ({"cam": "121.49,31.24,800", "t": "2026-07-01T15:00:00"}, "URL parameter t='2026-07-01T15:00:00' needs a time zone, e.g. +08:00"),
    ],
)
def test_a_bad_view_url_names_the_parameter(query: dict[str, str], message: str) -> None:
    saved = {"bund": SavedView(camera={"target": [121.49, 31.24], "range": 800})}
    with pytest.raises(ViewError) as caught:
        view_from_query(query, ["a", "b"], saved)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "offset", "key", "message"),
    [  # offset: the line of the problem below "  v:" (0: that line)
        ("    camera: {target: [121.48, 31.23], range: 900}\n    layers: [west, ghost]\n", 2, "views.v.layers[1]", "unknown layer 'ghost'"),
        ("    camera: {target: [121.48, 31.23], range: -5}\n", 1, "views.v.camera.range", "greater than 0"),
        ("    camera: {target: [121.48, 31.23]}\n    time: 2026-07-01T15:00:00\n", 2, "views.v.time", "needs a time zone"),
        ("    layers: [west]\n", 0, "views.v.camera", "required"),
    ],
)
def test_a_bad_view_in_a_scene_file_names_its_line(tmp_path: Path, entry: str, offset: int, key: str, message: str) -> None:
    _scene(tmp_path)
    text = (tmp_path / "views.yaml").read_text(encoding="utf-8") + "views:\n  v:\n" + entry
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    v_line = text.splitlines().index("  v:") + 1
    with pytest.raises(SceneFileError) as caught:
        twin.Scene.from_file(tmp_path / "bad.yaml")
    assert (caught.value.line, caught.value.key) == (v_line + offset, key) and message in str(caught.value)


def test_an_unknown_saved_view_and_a_bad_name_are_one_line(tmp_path: Path) -> None:
    session = Session(_scene(tmp_path))
    with pytest.raises(ViewError, match=r"^unknown view 'bund'; saved views: none saved$"):
        session.apply_view("bund")
    with pytest.raises(ViewError, match=r"^view name 'my view' is invalid"):
        session.save_view("my view", CameraPose((0.0, -10.0, 10.0), (0.0, 0.0, 0.0)))
    with pytest.raises(ViewError, match=r"^view 'v': no camera to save yet"):
        session.save_view("v")


def test_removing_a_layer_drops_it_from_saved_views(tmp_path: Path) -> None:
    scene = _scene(tmp_path)
    scene.views["v"] = SavedView(camera={"target": [121.48, 31.23]}, layers=("west", "east"))
    scene.remove("east")
    assert scene.views["v"].layers == ("west",)
    twin.Scene.from_dict(scene.to_dict())  # still a valid scene


@settings(max_examples=150, deadline=None)
@given(heading=st.floats(0, 359.9), pitch=st.floats(1, 89), distance=st.floats(50, 50_000),
       lon=st.floats(121.3, 121.7), lat=st.floats(31.0, 31.4))
def test_a_camera_saved_from_a_pose_resolves_to_the_same_pose(heading: float, pitch: float, distance: float, lon: float, lat: float) -> None:
    frame = Frame.auto(121.48, 31.23)
    preset = SavedView(camera={"target": [lon, lat], "heading": heading, "pitch": pitch, "range": distance}).camera
    position, focal, _ = preset.resolve(frame)
    again = view_from_pose(position, focal, frame=frame, layers=None, time=None).camera.resolve(frame)
    assert math.dist(again[0], position) < 1e-3 * distance + 0.01 and math.dist(again[1], focal) < 0.01


# -- in the browser: save a view, change what is shown, reopen the view from its URL ---------------------------------------
def _high_risk(pixels: np.ndarray) -> bool:
    """The view shows the crowd's cells at level 高风险 (#ff3b30, more than 30 pixels): the live layer is drawn."""
    return int((np.abs(pixels - np.array([255, 59, 48])).max(axis=2) <= 20).sum()) > 30


def test_a_saved_view_reopens_from_its_url(tmp_path: Path, shared_data: Path) -> None:
    from test_explorer_controls import write_controls_scene

    scene_file = write_controls_scene(tmp_path, shared_data)
    text = scene_file.read_text(encoding="utf-8").replace("camera: bund\n", "  city: {target: [121.45, 31.2], heading: 0, pitch: 90, range: 90000}\ncamera: bund\n")
    scene_file.write_text(text, encoding="utf-8")

    with twin_serve(scene_file, tmp_path / "serve.log") as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 800}, locale="en-US")
        page.goto(url)
        page.wait_for_selector("#twin-views-open", timeout=30_000)
        # settled pictures (two agreeing shots: never a moving frame or a JPEG whose WebP still is on its way), each compared later
        saved = wait_for_view(page, _high_risk, what="the districts and the crowd's cells")
        page.locator('.twin-layer[data-layer-id="districts"] .twin-layer-switch input').click()  # hide the districts
        without = wait_for_view(page, lambda px: differ(px, saved, 30) > 0.3, what="the view without the districts")
        page.locator("#twin-views-open").click()
        page.locator(".twin-view-name").fill("bund_crowd")
        page.locator("#twin-view-save").click()
        page.locator(".twin-view-link").wait_for(timeout=10_000)
        assert page.locator(".twin-view-link").inner_text() == "?view=bund_crowd"
        on_file = twin.Scene.from_file(scene_file).views["bund_crowd"]
        assert on_file.layers == ("crowd",) and on_file.time is None and math.isclose(on_file.camera.range, 9000, rel_tol=1e-3)
        page.keyboard.press("Escape")
        page.locator('.twin-layer[data-layer-id="districts"] .twin-layer-switch input').click()  # districts back
        page.locator(".twin-camera .v-field__input").click()
        page.locator(".v-overlay .v-list-item", has_text="city").click()  # far away: the view looks different
        elsewhere = wait_for_view(page, lambda px: differ(px, without, 30) > 0.3, what="the city camera's view")
        page.close()

        again = browser.new_page(viewport={"width": 1400, "height": 800}, locale="en-US")
        again.goto(url + "?view=bund_crowd")
        reopened = wait_for_view(again, lambda px: differ(px, without, 30) < 0.03, what="the saved view again")
        assert not again.locator('.twin-layer[data-layer-id="districts"] .twin-layer-switch input').is_checked()
        assert _high_risk(reopened) and differ(reopened, elsewhere, 30) > 0.3
        again.goto(url + "?view=nowhere")
        again.locator("#twin-views-open").click()
        assert again.locator(".twin-view-error").inner_text() == "URL parameter view: unknown view 'nowhere'; saved views: bund_crowd"
        again.close()


def test_a_saved_view_link_keeps_the_pages_token_and_the_scene_file_never_holds_it(tmp_path: Path, shared_data: Path) -> None:
    """Opened with ?token=, the page's saved-view link carries it, so the link opens in a browser that has no token cookie."""
    from test_explorer_controls import write_controls_scene

    token = "view-link-token-0123456789"
    scene_file = write_controls_scene(tmp_path, shared_data)
    with twin_serve(scene_file, tmp_path / "serve.log", env={"TWIN_TOKEN": token}) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 700}, locale="en-US")
        page.goto(url + "?token=" + token)
        assert "token" not in page.url  # the server swapped it for a cookie
        page.wait_for_selector("#twin-views-open", timeout=30_000)
        page.locator("#twin-views-open").click()
        page.locator(".twin-view-name").fill("bund")
        page.locator("#twin-view-save").click()
        page.locator(".twin-view-link").wait_for(timeout=10_000)
        assert page.locator(".twin-view-link").inner_text() == f"?view=bund&token={token}"
        assert "bund" in twin.Scene.from_file(scene_file).views and token not in scene_file.read_text(encoding="utf-8")
        page.close()

        other = browser.new_page(viewport={"width": 1200, "height": 700}, locale="en-US")  # a new context: no cookie
        assert other.goto(url + "?view=bund").status == 401
        other.goto(url + f"?view=bund&token={token}")
        other.wait_for_selector("#twin-views-open", timeout=30_000)
        other.wait_for_function("() => window.trame && window.trame.state.get('twin_view_link')", timeout=20_000)
        assert other.evaluate("() => window.trame.state.get('twin_view_link')") == f"?view=bund&token={token}"
        assert other.evaluate("() => window.location.search") == "?view=bund"
        other.close()


def test_in_the_local_view_a_saved_view_and_a_screenshot_take_the_browsers_camera(tmp_path: Path, shared_data: Path) -> None:
    """The vtk.js view turns in the browser alone: the saved view and the screenshot follow the browser's camera, and the
    view's URL reopens that camera in a new page."""
    import io

    from PIL import Image
    from test_explorer_controls import write_controls_scene

    def camera(page) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
        return page.evaluate("() => window.twinClientCamera()")  # type: ignore[no-any-return]

    def shot(page) -> np.ndarray:  # type: ignore[no-untyped-def]
        page.locator("#twin-shot-open").click()
        with page.expect_download() as download:
            page.locator("#twin-shot-download").click()
        page.keyboard.press("Escape")
        return np.asarray(Image.open(io.BytesIO(Path(download.value.path()).read_bytes())).convert("RGB"), dtype=np.int16)

    scene_file = write_controls_scene(tmp_path, shared_data)
    with twin_serve(scene_file, tmp_path / "serve.log", view="local") as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 700}, locale="en-US", accept_downloads=True)
        page.goto(url)
        page.wait_for_selector("#twin-view canvas", timeout=30_000)
        page.wait_for_function("() => window.twinClientCamera && window.twinClientCamera()", timeout=30_000)
        page.locator("#twin-first-picture").wait_for(state="detached", timeout=60_000)  # the browser's own view shows the scene
        wait_for_view(page, _high_risk, what="the browser's view of the crowd's cells")  # drawn, and still: its camera is the scene's
        before, first = camera(page), shot(page)
        box = page.locator("#twin-view").bounding_box()
        x, y = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5  # type: ignore[index]
        page.mouse.move(x, y)
        page.mouse.down()
        for step in range(1, 11):  # turn and tilt the camera a little (it stays above the ground)
            page.mouse.move(x + step * 10, y + step * 4)
        page.mouse.up()
        turned = camera(page)
        assert _dist(turned["position"], before["position"]) > 500  # the browser's camera moved (9 km away from the Bund)
        seen = wait_for_view(page, lambda _: True, what="the turned view")  # what the browser shows now (settled), overlays masked
        shown = (seen.max(axis=2) > 0)

        def unlike(png: np.ndarray) -> float:
            return float(((np.abs(png - seen).max(axis=2) > 40) & shown).sum() / shown.sum())

        assert unlike(shot(page)) < 0.5 * unlike(first)  # the screenshot is taken from the browser's turned camera, not the server's
        page.locator("#twin-views-open").click()
        page.locator(".twin-view-name").fill("turned")
        page.locator("#twin-view-save").click()
        page.locator(".twin-view-link").wait_for(timeout=10_000)
        page.close()

        saved = twin.Scene.from_file(scene_file).views["turned"].camera
        assert 0 < saved.pitch < 85  # saved tilted: the scene's camera looks straight down (pitch 90)
        again = browser.new_page(viewport={"width": 1200, "height": 700}, locale="en-US")
        again.goto(url + "?view=turned")
        again.wait_for_function("""t => { const c = window.twinClientCamera && window.twinClientCamera();
            return c && Math.hypot(...c.position.map((v, i) => v - t[i])) < 1; }""", arg=turned["position"], timeout=30_000)
        assert _dist(camera(again)["focal_point"], turned["focal_point"]) < 1  # the same camera (a view keeps no roll: its up is the orbit's)
        again.close()


def _dist(a: list[float], b: list[float]) -> float:
    return math.dist(a, b)
