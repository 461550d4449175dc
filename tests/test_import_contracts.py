"""Issue 11: no import circles, every model module under the contracts, one factory for sources and
layers, one "did you mean", one id pattern.

The import-linter contracts themselves are exercised in test_layering.py; here the module graph
(grimp) is checked for circles that import-linter's sibling check cannot see (a package and its
own module), and the single helpers are checked by what users see.
"""

from __future__ import annotations

import graphlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grimp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from importlinter.api import read_configuration
from pydantic import ValidationError

import twin
from twin.alerts.rules import parse_rule
from twin.errors import PluginError, SceneFileError, TwinError
from twin.params import ID_PATTERN
from twin.plugins import build_source, layer_types, register_source, renderer, source_types
from twin.scene.schema import LayerCommon, SceneDoc
from twin.source import Source

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = read_configuration(str(REPO / "pyproject.toml"))["contracts_options"]
UI = {"twin.app", "twin.render", "twin.export", "twin.cli", "twin.hub"}
"""The modules above the model: rendering, exports, the web app, the command line."""


# -- circles -------------------------------------------------------------------------------
def import_circle(packages: tuple[str, ...] = ("twin", "twin_layers")) -> list[str] | None:
    """One circle of module imports in ``packages`` (function-level and type-checking imports count),
    or None. Imports the no-circles contract ignores (a known circle being removed) are left out."""
    graph = grimp.build_graph(*packages, cache_dir=None)
    ignored = {tuple(part.strip() for part in rule.split("->")) for rule in contract("no-circles").get("ignore_imports", [])}
    edges = {module: graph.find_modules_directly_imported_by(module) - {b for a, b in ignored if a == module} for module in graph.modules}
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def contract(contract_id: str) -> dict[str, Any]:
    return next(c for c in CONTRACTS if c.get("id") == contract_id)


def circle_in_copy(tmp_path: Path, plants: list[tuple[str, str]]) -> list[str] | None:
    """:func:`import_circle` on a copy of the tree with ``plants`` (module file, appended code)."""
    root = tmp_path / "tree"
    shutil.copytree(REPO / "twin", root / "twin", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "layers", root / "twin_layers", ignore=shutil.ignore_patterns("__pycache__"))
    for module, code in plants:
        target = root / module
        target.write_text(target.read_text(encoding="utf-8") + "\n" + code, encoding="utf-8")
    code = f"import json, sys; sys.path.insert(0, {str(REPO / 'tests')!r}); from test_import_contracts import import_circle; print(json.dumps(import_circle()))"
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_no_module_imports_itself_in_a_circle() -> None:
    assert import_circle() is None


@pytest.mark.parametrize(
    ("plants", "circle"),
    [
        # a module importing its own package's __init__, which imports it: import-linter's sibling check cannot see this one
        ([("twin/h3/cells.py", "def _again():\n    from twin.h3 import cell_centers\n")], {"twin.h3", "twin.h3.cells"}),
        # the layer <-> plugin registry circle this issue broke, planted again
        ([("twin/layer.py", "def _types():\n    from twin.plugins import layer_types\n")], {"twin.layer", "twin.plugins"}),
    ],
)
def test_a_planted_circle_is_found(tmp_path: Path, plants: list[tuple[str, str]], circle: set[str]) -> None:
    found = circle_in_copy(tmp_path, plants)
    assert found is not None and set(found) == circle


# -- every model module under the contracts ----------------------------------------------------
def top_level_modules() -> set[str]:
    graph = grimp.build_graph("twin", cache_dir=None)
    return graph.find_children("twin")


def test_every_model_module_is_under_the_model_contract() -> None:
    listed = set(contract("model")["source_modules"])
    missing = sorted(top_level_modules() - UI - listed)
    assert not missing, f"add {', '.join(missing)} to source_modules of the 'model' contract in pyproject.toml"
    assert "twin_layers" in listed


def test_every_module_has_a_layer() -> None:
    named = {part.strip().strip("()") for row in contract("layers")["layers"] for part in row.replace("|", ":").split(":")}
    missing = sorted((top_level_modules() | {"twin_layers"}) - named)
    assert not missing, f"add {', '.join(missing)} to a row of the 'layers' contract in pyproject.toml"


# -- one did-you-mean ----------------------------------------------------------------------
def test_one_did_you_mean_helper() -> None:
    graph = grimp.build_graph("twin", "twin_layers", include_external_packages=True, cache_dir=None)
    assert graph.find_modules_that_directly_import("difflib") == {"twin.errors"}


SCENE = """\
version: 1
name: t
frame: {center: [121.48, 31.23]}
cameras:
  overview: {target: [121.48, 31.23]}
camera: overview
layers:
  - id: flood
    type: flood_points
    source: {type: flood_sim}
alerts:
  - {id: deep, kind: threshold, layer: flood, above: 20}
"""


def scene_error(tmp_path: Path, text: str) -> SceneFileError:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SceneFileError) as info:
        twin.Scene.from_file(path)
    return info.value


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("camera: overview", "camera: overveiw", 6, "unknown camera 'overveiw' (did you mean 'overview'?); cameras: overview"),
        ("layer: flood, above", "layer: flod, above", 12, "alert rule 'deep' watches unknown layer 'flod' (did you mean 'flood'?); layers: flood"),
    ],
)
def test_unknown_names_suggest_the_close_one(tmp_path: Path, old: str, new: str, line: int, message: str) -> None:
    err = scene_error(tmp_path, SCENE.replace(old, new))
    assert (err.line, err.message) == (line, message)


def test_an_unknown_renderer_suggests_the_close_one() -> None:
    with pytest.raises(PluginError, match=r"^unknown renderer 'vtkk' \(did you mean 'vtk'\?\); installed: "):
        renderer("vtkk")


# -- one factory ---------------------------------------------------------------------------
class Grumpy(Source):
    """A third-party source whose own code fails on a parameter it dislikes."""

    def __init__(self, **params: Any) -> None:
        raise KeyError(params.get("colour", "colour"))

    def read(self, bbox: Any = None) -> Any:
        raise NotImplementedError


@pytest.fixture()
def grumpy() -> Iterator[None]:
    register_source(Grumpy, "grumpy")
    yield
    source_types().unregister("grumpy")


def python_error(spec: Any) -> TwinError:
    with pytest.raises(TwinError) as info:
        layer_types().get("vector")("roads", source=spec)
    return info.value


@pytest.mark.parametrize(
    ("spec", "yaml", "key", "message"),
    [
        ({"type": "fiel", "path": "r.geojson"}, "{type: fiel, path: r.geojson}", "layers[0].source.type", "unknown source type 'fiel' (did you mean 'file'?); known types: "),
        ({"path": "r.geojson"}, "{path: r.geojson}", "layers[0].source.type", "source needs a 'type'; known types: "),
        ({"type": "grumpy"}, "{type: grumpy}", "layers[0].source", "source type 'grumpy' rejected its parameters: KeyError: 'colour'"),
    ],
)
@pytest.mark.usefixtures("grumpy")
def test_a_bad_source_spec_reads_the_same_from_python_and_from_a_scene_file(tmp_path: Path, spec: Any, yaml: str, key: str, message: str) -> None:
    err = scene_error(tmp_path, f"version: 1\nlayers:\n  - id: roads\n    type: vector\n    source: {yaml}\n")
    assert (err.line, err.key) == (5, key)
    assert err.message.startswith(message)
    assert str(python_error(spec)) == err.message


def test_a_source_spec_that_is_not_a_mapping_is_one_line() -> None:
    err = python_error("roads.geojson")
    assert isinstance(err, PluginError)
    assert str(err) == "a source is a {type: ..., ...} mapping or a Source, got str 'roads.geojson'"


def test_a_nested_source_spec_is_built_and_located_by_the_same_factory(tmp_path: Path) -> None:
    text = SCENE.replace("    source: {type: flood_sim}\n", "    source: {type: flood_sim}\n    stations: {type: file, pth: gauges.geojson}\n")
    err = scene_error(tmp_path, text)
    assert (err.line, err.key) == (11, "layers[0].stations.path")
    assert err.message == "required key is missing (and 1 more)"


def test_build_source_resolves_relative_paths_against_the_scene_folder(tmp_path: Path) -> None:
    source = build_source({"type": "file", "path": "roads.geojson"}, base_dir=tmp_path)
    assert Path(source.to_dict()["path"]) == Path("roads.geojson")  # the scene file keeps what was written
    with pytest.raises(TwinError, match=r"file 'roads.geojson' not found \(looked in "):
        source.check()


# -- one id pattern ------------------------------------------------------------------------
def accepts(make: Any) -> bool:
    try:
        make()
    except (TwinError, ValidationError):
        return False
    return True


def id_verdicts(text: str) -> dict[str, bool]:
    """Whether each place a scene names something by id accepts ``text``."""
    target = {"target": [121.48, 31.23]}
    return {
        "layer": accepts(lambda: layer_types().get("vector")(text)),
        "scene file layer": accepts(lambda: LayerCommon.model_validate({"id": text, "type": "vector"})),
        "scene file camera": accepts(lambda: SceneDoc.model_validate({"cameras": {text: target}})),
        "scene camera": accepts(lambda: twin.Scene(cameras={text: target})),
        "alert rule": accepts(lambda: parse_rule({"id": text, "kind": "threshold", "layer": "x", "above": 1})),
    }


@pytest.mark.parametrize("good", ["roads", "bus_71", "a.b-c", "_x", "0", "Layer.2-b"])
def test_ids_that_every_place_accepts(good: str) -> None:
    assert set(id_verdicts(good).values()) == {True}


@pytest.mark.parametrize("bad", ["", "-x", ".x", "a b", "roads\n", "a/b", "区", "é", "a\tb"])
def test_ids_that_every_place_rejects(bad: str) -> None:
    assert set(id_verdicts(bad).values()) == {False}


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZ9_.-/ \n\t区é:"), max_size=6))
def test_every_place_agrees_on_ids(text: str) -> None:
    verdicts = id_verdicts(text)
    assert set(verdicts.values()) == {ID_PATTERN.fullmatch(text) is not None}, verdicts


def test_a_bad_camera_name_in_a_scene_file_is_located(tmp_path: Path) -> None:
    err = scene_error(tmp_path, SCENE.replace("  overview: {target", "  Bund view: {target"))
    assert (err.line, err.key) == (5, "cameras.Bund view")
    assert err.message == "not a valid id: use letters, digits, '_', '-' or '.' (not '-' or '.' first) (got 'Bund view')"
