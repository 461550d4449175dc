"""The model side (geo, scene, sources, layers) never imports rendering or the web app.

Runs import-linter with the contract in pyproject.toml on this tree, and on a copy of the tree
with one violating import planted, which it must catch.
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


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )


def copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(REPO / "twin", root / "twin", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "layers", root / "twin_layers", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_tree_keeps_the_contract(tmp_path: Path) -> None:
    result = lint(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


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
    target = root / module
    target.write_text(target.read_text(encoding="utf-8") + "\n" + line, encoding="utf-8")
    result = lint(root)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_no_unused_imports_or_undefined_names() -> None:
    """pyflakes-level checks (ruff's F rules) over the whole tree: dead imports, undefined names."""
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--select", "F", "--no-cache", "twin", "layers", "tests", "benchmarks", "examples"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
