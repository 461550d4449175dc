"""`pip install .` gives a working twin: a wheel built from a clean copy of the sources,
installed into a fresh virtual environment, runs ``twin demo --render`` from outside the repository.

How the fresh environment gets twin's dependencies (numpy, VTK, geopandas, ...: ~2 GB) without
downloading or copying them: the test venv already holds them. The new venv is created *without*
system site packages, the wheel is installed into it with ``--no-deps``, and a ``.pth`` file in
it names one extra folder of symbolic links to the test venv's installed files -- only those of
the distributions that twin's wheel metadata requires, followed recursively (the ``demo`` extra's
are linked in later, as ``pip install 'twin[demo]'`` would add them). So the installed twin sees
exactly its declared dependencies: a module twin imports but does not declare, a file left out
of the wheel or a missing entry point fails here, while the test venv's editable twin (its finder
and ``.pth`` files), the example plugin and the test tools stay invisible (a ``.pth`` line only
adds a folder to ``sys.path``; ``.pth`` files inside that folder are not run). Installing from
the package index instead (``--find-links``, the pip cache) would need the network or a warm
cache and copy ~2 GB; ``--system-site-packages`` would see the editable twin.

The new venv also gets a copy of the suite's compiled kernels (numba's cache, which ``make setup``'s
``twin warmup`` filled beside the sources), as ``twin warmup`` would leave it: numba keys each entry to a
hash of its source file, so only kernels of byte-identical sources load, and anything else compiles as
on a new machine. Compiling them again for the new install cost ~40 s on 2 cores and shows nothing about
packaging (tests/test_warmup.py shows that warmup covers a first render; the bounds-checked fuzz in
tests/test_kernel_fuzz.py and ``make setup`` compile the kernels from nothing).

Measured on 2 cores: wheel ~1 s, venv and install ~1 s; the install story ~30 s, two thirds of it
the demo through the one-map server (pygeoapi started, the district written to it and read back).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from imaging import hue_share
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SITE_PACKAGES = sorted({Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")})
# what a fresh clone does not have: build output, caches, environments
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "out", ".gl", ".whl")
MISSING_EXTRA = "twin: error: twin demo needs pygeoapi (the local one-map server), which is not installed: pip install 'twin[demo]', or run twin demo --offline"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """twin's wheel, built (``pip wheel --no-deps``) from a copy of the sources without build leftovers."""
    root = tmp_path_factory.mktemp("wheel")
    sources = root / "src"
    shutil.copytree(REPO, sources, ignore=NOT_SOURCES, symlinks=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", ".", "-w", str(root / "dist")],
                   cwd=sources, check=True, capture_output=True, timeout=300)
    (path,) = (root / "dist").glob("twin-*.whl")
    return path


def _installed() -> dict[str, importlib.metadata.Distribution]:
    """The distributions installed in this (the test) environment's site-packages, by canonical name."""
    return {canonicalize_name(dist.metadata["Name"]): dist for dist in importlib.metadata.distributions(path=[str(p) for p in SITE_PACKAGES])}


def _closure(requirements: Iterable[str], extras: set[str]) -> set[str]:
    """Canonical names of the distributions ``requirements`` need (requested ``extras`` included), recursively."""
    installed = _installed()
    needed: set[str] = set()
    todo = [(Requirement(text), extras) for text in requirements]
    while todo:
        req, wanted = todo.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": extra}) for extra in wanted | {""}):
            continue
        name = canonicalize_name(req.name)
        if name in needed:
            continue
        assert name in installed, f"{req} is needed but not installed in the test environment"
        needed.add(name)
        todo += [(Requirement(text), set(req.extras)) for text in installed[name].requires or ()]
    return needed


def _link_dependencies(folder: Path, names: set[str]) -> None:
    """Add to ``folder`` links to the top-level files and folders of the installed distributions ``names``."""
    installed = _installed()
    folder.mkdir(exist_ok=True)
    for name in sorted(names):
        dist = installed[name]
        assert dist.files is not None, f"{name} lists no files (no RECORD): cannot expose it"
        site = Path(str(dist.locate_file("")))
        for top in {file.parts[0] for file in dist.files if file.parts[0] != ".."}:
            link = folder / top
            if not link.exists() and (site / top).exists():
                link.symlink_to(site / top)


@dataclass
class Installation:
    """A fresh venv with twin's wheel installed; its dependencies are links in ``deps`` (named by a ``.pth`` file)."""

    venv: Path
    deps: Path
    requirements: list[str]

    def add_extras(self, *extras: str) -> None:
        """What ``pip install 'twin[extras]'`` adds: the distributions the extras need."""
        _link_dependencies(self.deps, _closure(self.requirements, set(extras)))


def _copy_compiled_kernels(site: Path) -> None:
    """Copy this checkout's numba cache of twin's kernels (``twin/**/__pycache__/*.nbi|*.nbc``) beside twin's sources in ``site``."""
    for cached in REPO.glob("twin/**/__pycache__/*.nb[ic]"):
        target = site / cached.relative_to(REPO)
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(cached, target)


@pytest.fixture()
def installed(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Installation:
    """``pip install twin`` (no extras) into a fresh venv, with the suite's compiled kernels as ``twin warmup`` leaves them."""
    root = tmp_path_factory.mktemp("install")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    installation = Installation(venv, root / "deps", re.findall(r"^Requires-Dist: (.+)$", metadata, flags=re.MULTILINE))
    installation.add_extras()
    purelib = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True, timeout=60).stdout.strip())
    (purelib / "twin-test-dependencies.pth").write_text(f"{installation.deps}\n", encoding="utf-8")
    _copy_compiled_kernels(purelib)
    return installation


def twin(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed ``twin`` command, run in ``cwd`` (outside the repository) without a display."""
    return subprocess.run([str(venv / "bin" / "twin"), *args], check=False, capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "DISPLAY": ""})


def assert_demo_image(path: Path) -> None:
    """A rendered demo district: full HD, a city of many colours with the river, not a blank frame."""
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == (1080, 1920, 3)
    assert len(np.unique(image[::4, ::4].reshape(-1, 3), axis=0)) > 2000
    assert hue_share(image, 205, width=12, min_saturation=0.5) > 0.03  # the river


def test_wheel_holds_every_module_and_data_file_of_the_sources(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    sources = {f"{'twin_layers' if path.parts[0] == 'layers' else 'twin'}/{path.relative_to(path.parts[0]).as_posix()}"
               for folder in ("twin", "layers") for path in (p.relative_to(REPO) for p in (REPO / folder).rglob("*"))
               if (REPO / path).is_file() and "__pycache__" not in path.parts}
    assert "twin/demo/scenes/demo.yaml" in sources and "twin/py.typed" in sources and "twin_layers/py.typed" in sources
    assert sorted(sources - names) == []  # nothing the installed package needs is left behind
    assert not [n for n in names if n.startswith(("tests/", "scenes/", "examples/", "twin_plugin_example"))]
    assert 'Requires-Dist: pygeoapi>=0.21; extra == "demo"' in metadata
    assert 'Requires-Dist: twin[demo]; extra == "test"' in metadata  # the test set-up installs the demo's needs too
    assert "twin = twin.cli:main" in entry_points


def test_pip_install_then_twin_demo_from_outside_the_repository(installed: Installation, tmp_path: Path) -> None:
    """A new user's path: ``pip install twin``; ``twin demo`` names the extra; ``pip install 'twin[demo]'``; ``twin demo`` works.

    One test, one venv: the steps follow each other as on the user's machine (the extra is added to the same install).
    """
    venv = installed.venv
    where = subprocess.run([venv / "bin" / "python", "-c", "import twin, twin_layers; print(twin.__file__); print(twin_layers.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path, check=True).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where  # the installed copy, not the checkout

    listed = twin(venv, "layers", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for name in ("vector", "buildings", "flood_points", "h3", "basemap", "demo", "flood_sim", "crowd_sim", "ogcapi", "sensorthings", "wmts"):
        assert f"  {name}: " in listed.stdout, name
    assert "failed to load" not in listed.stdout and "example" not in listed.stdout

    scene_file = twin(venv, "demo", "--scene-file", cwd=tmp_path).stdout.strip()
    assert Path(scene_file).is_relative_to(venv) and Path(scene_file).name == "demo.yaml"
    validated = twin(venv, "validate", scene_file, cwd=tmp_path)
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.strip() == f"{scene_file}: ok (8 layers, 3 cameras)"

    refused = twin(venv, "demo", "--render", str(tmp_path / "x.png"), cwd=tmp_path)  # no pygeoapi without the extra
    assert (refused.returncode, refused.stdout, refused.stderr.splitlines()) == (1, "", [MISSING_EXTRA])
    assert not (tmp_path / "x.png").exists()

    offline = twin(venv, "demo", "--offline", "--render", str(tmp_path / "offline.png"), cwd=tmp_path)
    assert offline.returncode == 0, offline.stderr
    assert_demo_image(tmp_path / "offline.png")

    installed.add_extras("demo")
    shown = twin(venv, "demo", "--render", str(tmp_path / "x.png"), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "one-map server at http://127.0.0.1:" in shown.stdout and "one-map server stopped" in shown.stdout
    assert_demo_image(tmp_path / "x.png")


def test_starting_the_one_map_server_without_pygeoapi_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python API (a notebook) gets the same message as the command line, and leaves no working folder behind."""
    import importlib.util

    from twin.demo.onemap import OneMapDemo
    from twin.errors import MissingDependencyError

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pygeoapi" else find_spec(name, *a))
    onemap = OneMapDemo(n_buildings=10)
    with pytest.raises(MissingDependencyError) as raised:
        onemap.start()
    assert f"twin: error: {raised.value}" == MISSING_EXTRA
    assert not onemap._workdir.exists()
