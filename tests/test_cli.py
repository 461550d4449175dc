"""The `twin` command: one clear line per error, --help everywhere, render/validate/layers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TWIN = [sys.executable, "-m", "twin.cli"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TWIN, *args], capture_output=True, text=True, timeout=180, cwd=cwd)


@pytest.mark.parametrize("command", [[], ["render"], ["validate"], ["layers"], ["serve"], ["demo"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_validate_ok(districts_scene: Path) -> None:
    result = run("validate", str(districts_scene))
    assert result.returncode == 0, result.stderr
    assert "ok (2 layers, 2 cameras)" in result.stdout


def test_validate_misspelt_key_one_line_with_file_line_key(districts_scene: Path) -> None:
    text = districts_scene.read_text(encoding="utf-8").replace("line_width: 3", "line_wdth: 3")
    districts_scene.write_text(text, encoding="utf-8")
    result = run("validate", str(districts_scene))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"twin: error: {districts_scene}:20: layers[1].line_wdth: unknown key 'line_wdth'")
    assert "did you mean 'line_width'" in lines[0]
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(districts_scene: Path) -> None:
    districts_scene.write_text("version: 3\n", encoding="utf-8")
    result = run("--debug", "validate", str(districts_scene))
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_layers_lists_types_with_parameters() -> None:
    result = run("layers")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in ("Layer types", "vector:", "color_by (", "Source types", "file:", "path (str, default required)", "demo:", "dataset ("):
        assert expected in out, expected


def test_render_writes_png_of_the_size_showing_the_scene(districts_scene: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.png"
    result = run("render", str(districts_scene), "-o", str(out), "--size", "640x360")
    assert result.returncode == 0, result.stderr
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (360, 640, 3)
    colours = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colours) > 50  # districts in many colours, not a blank image
    # the yellow bus line and the white outlines are drawn
    yellow = (image[:, :, 0] > 200) & (image[:, :, 1] > 200) & (image[:, :, 2] < 80)
    assert yellow.sum() > 20


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace("bund_busline_71.geojson", "no_such_file.geojson"), "no_such_file.geojson"),
        (lambda t: t.replace("camera: top", "camera: nowhere"), "unknown camera 'nowhere'"),
    ],
)
def test_render_errors_are_one_clear_line(districts_scene: Path, tmp_path: Path, mutate, message: str) -> None:
    districts_scene.write_text(mutate(districts_scene.read_text(encoding="utf-8")), encoding="utf-8")
    out = tmp_path / "x.png"
    result = run("render", str(districts_scene), "-o", str(out), "--size", "320x200")
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_render_bad_size_and_output(districts_scene: Path, tmp_path: Path) -> None:
    result = run("render", str(districts_scene), "-o", str(tmp_path / "x.png"), "--size", "big")
    assert result.returncode != 0 and "WIDTHxHEIGHT" in result.stderr
    result = run("render", str(districts_scene), "-o", str(tmp_path / "missing" / "x.png"))
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_render_named_camera_differs(districts_scene: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert run("render", str(districts_scene), "-o", str(a), "--size", "320x200").returncode == 0
    assert run("render", str(districts_scene), "-o", str(b), "--size", "320x200", "--camera", "bund").returncode == 0
    assert np.abs(np.asarray(Image.open(a), dtype=int) - np.asarray(Image.open(b), dtype=int)).mean() > 5
