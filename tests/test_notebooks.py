"""The notebooks run top to bottom in a real Jupyter kernel (nbclient), headless, as CI runs them,
and show what the analyst came for: the printed facts, the pictures, and scene files that read back the same.

Cells are found by their tag (cell metadata ``tags``), so wording can change without breaking the checks.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import h3
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from PIL import Image

import twin
import twin.plugins
from twin.app.notebook import interactive_frontend, png_bytes, show
from twin.errors import TwinError, TwinWarning

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TESTED = {"quickstart.ipynb", "district_scene.ipynb", "crowd_day.ipynb", "flood_briefing.ipynb"}
DEMO_BOUNDS = (121.40, 31.17, 121.56, 31.29)
"""West, south, east, north around the demo district (Huangpu)."""


def execute(name: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Run ``notebooks/<name>`` in a fresh kernel (cwd notebooks/, static pictures, files written to ``out``)."""
    monkeypatch.setenv("TWIN_NOTEBOOK_OUT", str(out))
    monkeypatch.setenv("TWIN_NOTEBOOK_STATIC", "1")
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(book, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return book


def cell(book: nbformat.NotebookNode, tag: str) -> nbformat.NotebookNode:
    (found,) = [c for c in book.cells if tag in c.metadata.get("tags", [])]
    assert not [o for o in found.outputs if o.output_type == "error"]
    return found


def text(book: nbformat.NotebookNode, tag: str) -> str:
    """What the cell printed (stdout) and its plain-text result."""
    parts = [o.text for o in cell(book, tag).outputs if o.output_type == "stream" and o.name == "stdout"]
    parts += [o.data["text/plain"] for o in cell(book, tag).outputs if "text/plain" in o.get("data", {})]
    return "\n".join(parts)


def pngs(book: nbformat.NotebookNode, tag: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(o.data["image/png"]))) for o in cell(book, tag).outputs if "image/png" in o.get("data", {})]


def assert_picture(image: Image.Image, size: tuple[int, int]) -> None:
    """A picture of ``size`` pixels that shows something (not one flat colour)."""
    assert image.size == size
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50


def assert_round_trip(saved: Path, tmp_path: Path) -> twin.Scene:
    """The scene file a notebook saved reads back, and writes again to the same text."""
    again = twin.Scene.from_file(saved)
    assert again.to_file(tmp_path / "again.yaml").read_text(encoding="utf-8").split("\n", 1)[1] == saved.read_text(encoding="utf-8").split("\n", 1)[1]
    return again


def test_every_notebook_is_checked() -> None:
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == TESTED


def test_quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> None:
    book = execute("quickstart.ipynb", tmp_path, monkeypatch)
    assert Image.open(tmp_path / "notebook.png").size == (1280, 720)
    fired = text(book, "alerts")
    assert fired.startswith("[(") and "道路积水" in fired, "the simulated rain raised no alert"
    assert int(re.search(r"(\d+) cells", text(book, "taxi"))[1]) > 50  # taxi fixes binned into cells


def test_district_scene_from_geodataframes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> None:
    book = execute("district_scene.ipynb", tmp_path, monkeypatch)
    assert text(book, "buildings").startswith("buildings: 3076, heights 3-84 m")  # the real Suzhou footprints
    assert "tallest: 84 m, 84 m, 75 m" in text(book, "tallest")
    (quick,) = pngs(book, "quicklook")
    assert_picture(quick, (960, 540))  # _repr_png_
    (shown,) = pngs(book, "show")
    assert_picture(shown, (960, 540))  # scene.show() without a front end: the static picture
    assert "same scene after reload: True, buildings read back: 3076" in text(book, "roundtrip")
    again = assert_round_trip(tmp_path / "suzhou.yaml", tmp_path)
    assert [layer.id for layer in again.layers] == ["buildings", "tallest"]
    assert (tmp_path / "suzhou_data" / "buildings.geojson").exists()
    assert sorted(again["tallest"].data()["height"].round().astype(int), reverse=True) == [84, 84, 75, 72, 72]


def test_crowd_day_busiest_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = execute("crowd_day.ipynb", tmp_path, monkeypatch)
    replay = re.search(r"cells: (\d+), pings: (\d+), peak: 2 h until (\d\d):00", text(book, "replay"))
    assert replay, text(book, "replay")
    assert int(replay[1]) > 30 and int(replay[2]) > 0
    assert 18 <= int(replay[3]) <= 22, "the evening surge on the pedestrian street is the day's peak"
    rows = [line.split() for line in text(book, "busiest").splitlines()[1:]]
    assert len(rows) == 10
    counts = [int(count) for _, count in rows]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    for cell_id, _ in rows:  # real resolution-8 cells over the demo district
        assert h3.is_valid_cell(cell_id) and h3.get_resolution(cell_id) == 8
        lat, lon = h3.cell_to_latlng(cell_id)
        assert DEMO_BOUNDS[0] < lon < DEMO_BOUNDS[2] and DEMO_BOUNDS[1] < lat < DEMO_BOUNDS[3]
    (chart,) = pngs(book, "chart")
    assert chart.size[0] > 600
    (shown,) = pngs(book, "show")
    assert_picture(shown, (960, 540))
    assert "same scene after reload: True" in text(book, "roundtrip")
    again = assert_round_trip(tmp_path / "crowd_day.yaml", tmp_path)
    assert again["crowd"].to_dict()["source"] == {"type": "crowd_sim", "pings_per_minute": 300}


def test_flood_briefing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = execute("flood_briefing.ipynb", tmp_path, monkeypatch)
    alerts = text(book, "alerts")
    fired = int(re.search(r"alerts fired: (\d+)", alerts)[1])
    per_title = {line.rsplit(None, 1)[0].strip(): int(line.rsplit(None, 1)[1]) for line in alerts.splitlines()[2:]}
    assert fired > 0 and sum(per_title.values()) == fired
    assert per_title["道路积水 ≥ 20 cm"] > 0
    help_line = re.search(r"first flooded road: (.+) at (\d\d:\d\d), ([\d.]+) cm; help within 1.5 km: (\d+)", text(book, "help"))
    assert help_line and float(help_line[3]) >= 20 and int(help_line[4]) > 0
    assert "13:00" <= help_line[2] <= "18:00"
    assert_picture(Image.open(tmp_path / "flood_briefing.png"), (1280, 720))
    (shown,) = pngs(book, "picture")
    assert shown.size == (1280, 720)
    assert text(book, "mp4").startswith("video: flood_briefing.mp4, ")
    from imageio_ffmpeg import count_frames_and_secs, read_frames

    n_frames, _ = count_frames_and_secs(str(tmp_path / "flood_briefing.mp4"))
    assert n_frames == 24  # 6 s at 4 fps
    reader = read_frames(str(tmp_path / "flood_briefing.mp4"))
    meta = next(reader)
    assert tuple(meta["size"]) == (640, 360)
    frames = [np.frombuffer(f, np.uint8).reshape(360, 640, 3).astype(int) for f in reader]
    changed = max(int((np.abs(frame - frames[0]).max(axis=2) > 40).sum()) for frame in frames)
    assert changed > 300, changed  # the gauges rose (and the burnt-in clock ran) during the afternoon's rain
    assert "same scene after reload: True" in text(book, "roundtrip")
    again = assert_round_trip(tmp_path / "flood_briefing.yaml", tmp_path)
    assert "briefing" in again.cameras and again["resources"].visible
    assert len(again["reach"].data()) == 1 + int(help_line[4])  # the circle and each resource found


# -- Scene.show() and _repr_png_ outside a notebook ---------------------------------------------------------------


def one_point_scene() -> twin.Scene:
    import geopandas as gpd

    scene = twin.Scene("one point", center=(121.48, 31.23))
    scene.add_data("p", gpd.GeoDataFrame(geometry=gpd.points_from_xy([121.48], [31.23]), crs="EPSG:4326"), point_size=12)
    return scene


def test_outside_a_kernel_there_is_no_interactive_front_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWIN_NOTEBOOK_STATIC", raising=False)
    assert not interactive_frontend()
    with pytest.raises(TwinError, match=r"^scene.show\(static=False\) needs a Jupyter kernel with a front end"):
        one_point_scene().show(static=False)


def test_static_show_is_the_picture(capsys: pytest.CaptureFixture[str]) -> None:
    one_point_scene().show(size=(320, 200), static=True)
    assert "<IPython.core.display.Image object>" in capsys.readouterr().out  # plain Python: IPython prints the repr
    assert Image.open(io.BytesIO(png_bytes(one_point_scene(), (320, 200)))).size == (320, 200)


def unloadable_scene(tmp_path: Path) -> twin.Scene:
    scene = twin.Scene("gone")
    scene.add(twin.plugins.layer_types().get("vector")("gone", source={"type": "file", "path": str(tmp_path / "gone.geojson")}))
    return scene


@pytest.mark.parametrize(
    ("make", "reason"),
    [(lambda _: twin.Scene("empty", center=(121.48, 31.23)), "has nothing to draw: no layers"), (unloadable_scene, "gone.geojson")],
    ids=["no layers", "missing file"],
)
def test_a_scene_that_cannot_be_pictured_falls_back_to_text(make: object, reason: str, tmp_path: Path) -> None:
    scene = make(tmp_path)  # type: ignore[operator]
    with pytest.warns(TwinWarning, match=f"^scene '{scene.name}' cannot be pictured: .*{re.escape(reason)}"):
        assert scene._repr_png_() is None


def test_in_memory_data_is_saved_beside_the_scene_file(tmp_path: Path) -> None:
    import geopandas as gpd
    import shapely

    scene = twin.Scene("mixed", center=(121.48, 31.23))
    zones = gpd.GeoDataFrame({"name": ["东", "西"], "level": [2, 5]}, geometry=[shapely.box(121.47, 31.22, 121.48, 31.23), shapely.box(121.48, 31.22, 121.49, 31.23)], crs="EPSG:3857")
    zones = zones.set_crs("EPSG:4326", allow_override=True).to_crs("EPSG:3857")  # any CRS: saved as lon/lat
    scene.add_data("zones", zones, color_by="level")
    saved = scene.to_file(tmp_path / "mixed.yaml")
    assert "source: {type: file, path: mixed_data/zones.geojson}" in saved.read_text(encoding="utf-8")
    again = twin.Scene.from_file(saved)
    assert again.to_dict() == scene.to_dict()
    data = again["zones"].data()
    assert data["name"].tolist() == ["东", "西"] and data["level"].tolist() == [2, 5]
    assert np.allclose(data.total_bounds, (121.47, 31.22, 121.49, 31.23))


def test_saving_in_memory_data_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    scene = one_point_scene()
    with pytest.raises(TwinError, match=r"^cannot save layer 'p''s data to .*nowhere/x_data/p.geojson: "):
        scene.to_file(tmp_path / "nowhere" / "x.yaml")


def test_show_is_reached_through_the_display_registry() -> None:
    from twin.plugins import notebook_display

    assert notebook_display() is show
