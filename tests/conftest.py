"""Shared fixtures: the real sample data beside the checkout, and small scene files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

sys.path.insert(0, str(Path(__file__).resolve().parent))  # test helpers (imaging)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real Suzhou buildings, Shanghai districts, taxi fixes, ...)."""
    if not (SHARED_DATA / "SOURCES.md").exists():
        pytest.fail(f"sample data folder {SHARED_DATA} is missing: clone the project with shared/ beside it")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep generated demo data in one per-run cache, never in the user's home."""
    monkeypatch.setenv("TWIN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "twin-cache"))


@pytest.fixture()
def districts_scene(tmp_path: Path, shared_data: Path) -> Path:
    """A two-layer scene over real data: Shanghai districts (GCJ-02) and bus route 71 (WGS84)."""
    path = tmp_path / "districts.yaml"
    path.write_text(
        f"""version: 1
name: Shanghai districts
frame: {{crs: auto}}
cameras:
  top: {{target: [121.45, 31.2], heading: 0, pitch: 90, range: 150000}}
  bund: {{target: [121.47, 31.23], heading: 30, pitch: 45, range: 20000}}
camera: top
layers:
  - id: districts
    type: vector
    title: 区
    source: {{type: file, path: {shared_data / 'shanghai_districts_gcj02.geojson'}, crs: GCJ02}}
    color_by: name
    palette: tab20
    outline_color: white
  - id: bus71
    type: vector
    source: {{type: file, path: {shared_data / 'bund_busline_71.geojson'}}}
    color: yellow
    line_width: 3
    elevation: 10
""",
        encoding="utf-8",
    )
    return path
