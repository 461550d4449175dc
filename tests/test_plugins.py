"""Plugin registry: entry-point discovery, lazy loading, in-process registration, clear errors."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

import twin
from twin.errors import PluginError
from twin.layer import Layer, LayerParams, LayerStyle
from twin.plugins import Registry, layer_types, register_layer, register_source, source_types
from twin.source import Source, SourceParams

REPO = Path(__file__).resolve().parents[1]


def test_builtins_come_from_entry_points() -> None:
    assert {"vector", "buildings"} <= set(layer_types().names())
    assert {"file", "demo"} <= set(source_types().names())
    assert layer_types().get("vector").__module__ == "twin_layers.vector"


def test_core_never_imports_builtin_plugins_by_name() -> None:
    pattern = re.compile(r"^\s*(import|from)\s+twin_layers", re.MULTILINE)
    offenders = [str(p) for p in (REPO / "twin").rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_listing_types_imports_no_plugin() -> None:
    code = "import sys; from twin.plugins import layer_types, source_types; names = layer_types().names() + source_types().names(); print(any(m.startswith('twin_layers') for m in sys.modules), len(names))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False" and int(out[1]) >= 4


class ConstantParams(SourceParams):
    lon: float = 121.48
    lat: float = 31.23


class ConstantSource(Source):
    """One point."""

    Params = ConstantParams

    def read(self, bbox=None) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame({"v": [1]}, geometry=[shapely.Point(self.params.lon, self.params.lat)], crs="EPSG:4326")


class DotParams(LayerParams):
    size: float = 3.0


class DotLayer(Layer):
    """Points as vertices."""

    Params = DotParams

    def build_geometry(self, frame, data):
        import pyvista as pv

        mesh = pv.PolyData(frame.lonlat_to_local(data.geometry.x, data.geometry.y))
        mesh.cell_data["feature_id"] = list(range(mesh.n_cells))
        return mesh

    def build_style(self, mesh, data):
        return LayerStyle(colors=None)


def test_register_in_process_and_use_from_a_scene_file(tmp_path: Path) -> None:
    register_layer(DotLayer, "dot")
    register_source(ConstantSource, "constant")
    try:
        path = tmp_path / "s.yaml"
        path.write_text("version: 1\nlayers:\n  - id: d\n    type: dot\n    size: 5\n    source: {type: constant, lon: 121.5}\n", encoding="utf-8")
        scene = twin.Scene.from_file(path)
        layer = scene["d"]
        assert isinstance(layer, DotLayer) and layer.params.size == 5
        assert layer.data().geometry.x.iloc[0] == 121.5
        assert scene.to_dict()["layers"][0] == {"id": "d", "type": "dot", "source": {"type": "constant", "lon": 121.5}, "size": 5.0}
        path.write_text("version: 1\nlayers:\n  - id: d\n    type: dot\n    sise: 5\n", encoding="utf-8")
        with pytest.raises(twin.errors.SceneFileError, match=r"s.yaml:5: layers\[0\].sise: unknown key 'sise' \(did you mean 'size'\?\)"):
            twin.Scene.from_file(path)
    finally:
        layer_types().unregister("dot")
        source_types().unregister("constant")


def test_registering_a_non_layer_is_refused() -> None:
    with pytest.raises(PluginError, match="not a subclass of Layer"):
        register_layer(ConstantSource, "oops")  # type: ignore[arg-type]


def test_unknown_and_broken_plugins_are_clear() -> None:
    registry: Registry[Layer] = Registry("twin.test.none", "layer", lambda: Layer)
    registry._entry_points = {
        "broken": EntryPoint("broken", "no_such_module_anywhere:Thing", "twin.test.none"),
        "wrong": EntryPoint("wrong", "twin.source:Source", "twin.test.none"),
    }
    with pytest.raises(PluginError, match="unknown layer type 'brokn' \\(did you mean 'broken'\\?\\); known types: broken, wrong"):
        registry.get("brokn")
    with pytest.raises(PluginError, match="failed to load from no_such_module_anywhere:Thing"):
        registry.get("broken")
    with pytest.raises(PluginError, match="not a subclass of Layer"):
        registry.get("wrong")
