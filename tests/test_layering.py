"""The import contracts in pyproject.toml: the layers, no import circles, and the model never
importing rendering or the web app.

Runs import-linter with those contracts on a copy of this tree, and on copies with a violating
import or a circle planted, which it must catch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


LAYERS = "Layers: app, render, session, scene, plugins, layers, sources, basics"
NO_CIRCLES = "No import circles between the modules or packages of a package"
MODEL = "The model never imports rendering, the web app or the CLI"


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(  # this interpreter: the script's own line may name another checkout's
        [sys.executable, str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        check=False, cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )


def kept(result: subprocess.CompletedProcess[str]) -> dict[str, bool]:
    """Each contract's name -> kept, from lint-imports' summary lines."""
    states = {}
    for line in result.stdout.splitlines():
        for name in (LAYERS, NO_CIRCLES, MODEL):
            if line.startswith(name + " "):
                states[name] = line[len(name):].split()[0] == "KEPT"
    return states


def plant(root: Path, module: str, line: str) -> None:
    target = root / module
    target.write_text(target.read_text(encoding="utf-8") + "\n" + line, encoding="utf-8")


def copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(REPO / "twin", root / "twin", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "layers", root / "twin_layers", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_tree_keeps_the_contract(tmp_path: Path) -> None:
    result = lint(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert kept(result) == {LAYERS: True, NO_CIRCLES: True, MODEL: True}


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("twin/geo/crs.py", "import twin.render.view\n"),
        ("twin/scene/model.py", "from twin.app import server\n"),
        ("twin_layers/vector.py", "import trame\n"),
    ],
)
def test_a_violating_import_fails(tmp_path: Path, module: str, line: str) -> None:
    root = copy_tree(tmp_path)
    plant(root, module, line)
    result = lint(root)
    assert result.returncode != 0
    assert kept(result)[MODEL] is False


@pytest.mark.parametrize(
    ("module", "line", "message"),
    [
        # a basic module reaching up to sources
        ("twin/mesh/prisms.py", "import twin.source\n", "twin.mesh is not allowed to import twin.source"),
        # a plugin reaching up to the scene, through a function-level import
        ("twin_layers/vector.py", "def _scene():\n    from twin.scene import model\n", "twin_layers is not allowed to import twin.scene"),
        # the layer model reaching up to the plugin registry it is registered in
        ("twin/live_layer.py", "from twin.plugins import layer_types\n", "twin.live_layer is not allowed to import twin.plugins"),
    ],
)
def test_an_import_against_the_layers_fails(tmp_path: Path, module: str, line: str, message: str) -> None:
    root = copy_tree(tmp_path)
    plant(root, module, line)
    result = lint(root)
    assert result.returncode != 0
    assert kept(result) == {LAYERS: False, NO_CIRCLES: True, MODEL: True}, result.stdout
    assert message in result.stdout


@pytest.mark.parametrize(
    ("plants", "message"),
    [
        # two basics of one row, which the layers let import each other: only the circle contract sees it
        ([("twin/style.py", "import twin.geo.crs\n"), ("twin/geo/crs.py", "import twin.style\n")], "No cycles are allowed in twin."),
        # modules of one package, the back edge only for type checkers (twin.app.panels <-> server was one)
        ([("twin/scene/camera.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from twin.scene.model import Scene\n")],
         "No cycles are allowed in twin.scene."),
        # plugin modules
        ([("twin_layers/ogcapi.py", "def _wfs():\n    import twin_layers.wfs\n")], "No cycles are allowed in twin_layers."),
    ],
)
def test_an_import_circle_fails(tmp_path: Path, plants: list[tuple[str, str]], message: str) -> None:
    root = copy_tree(tmp_path)
    for module, line in plants:
        plant(root, module, line)
    result = lint(root)
    assert result.returncode != 0
    assert kept(result) == {LAYERS: True, NO_CIRCLES: False, MODEL: True}, result.stdout
    assert message in result.stdout


def test_no_unused_imports_or_undefined_names() -> None:
    """pyflakes-level checks (ruff's F rules) over the whole tree: dead imports, undefined names."""
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--select", "F", "--no-cache", "twin", "layers", "tests", "benchmarks", "examples"],
                            check=False, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
