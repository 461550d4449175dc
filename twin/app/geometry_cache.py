"""Built layer geometry kept between runs, so a restart draws the same static layers without meshing them again.

A layer's mesh is a function of its source's features, its parameters, the scene's frame and
the code that builds it. It is kept (VTK legacy binary, under ``$TWIN_CACHE_DIR/geometry``) only
when the source can say when its features change (:meth:`twin.source.Source.data_key`: a file's
path, size and time; the demo generator's version and seed), keyed by a digest of all four (the
code as the bytes of the layer's module, ``twin/layer.py`` and the ``twin.mesh`` and ``twin.geo``
packages). Sources of servers give no key, so their layers are always built from fresh data.
Warnings the build gave (e.g. footprints left out) are kept with the mesh and given again when it
is used. Features are still read and screened on every start (styles, picking and skip counts use
them); only the meshing is skipped. At most :data:`KEEP` meshes and :data:`KEEP_BYTES` bytes are kept,
the least recently used go first; a kept file that cannot be read is built anew.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import tempfile
import threading
import warnings
from functools import cache
from pathlib import Path

import pyvista as pv
from vtkmodules.vtkIOLegacy import vtkPolyDataReader

import twin
from twin.errors import TwinWarning
from twin.geo.frame import Frame
from twin.layer import Layer
from twin.paths import cache_dir

__all__ = ["KEEP", "KEEP_BYTES", "build_geometry", "geometry_key"]

log = logging.getLogger(__name__)

KEEP, KEEP_BYTES = 32, 2 << 30
"""Most meshes, and most bytes of them, kept in the cache folder (the most recently used one is always kept)."""
_FORMAT = 1
_CODE = ("layer.py", "mesh", "geo")
"""The parts of the twin package whose code builds meshes (besides the layer's own module)."""
_capture = threading.Lock()
"""One build records its warnings at a time (``warnings.catch_warnings`` swaps process-wide state)."""


@cache
def _code_digest(module_file: str) -> str:
    """Digest of the code that builds a mesh: ``module_file`` (the layer's plugin module) and :data:`_CODE`."""
    root = Path(twin.__file__).parent
    files = [Path(module_file)]
    for part in _CODE:
        files.extend(sorted((root / part).rglob("*.py")) if (root / part).is_dir() else [root / part])
    digest = hashlib.sha256(f"{twin.__version__} {pv.__version__} {_FORMAT}".encode())
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def geometry_key(layer: Layer, frame: Frame) -> str | None:
    """The cache key of ``layer``'s mesh in ``frame`` (hex digest), or None when its features may change unseen."""
    sources = [layer.source, *layer.nested_sources()]
    data_keys = [source.data_key() if source is not None else None for source in sources]
    if None in data_keys or not layer.visual_uses_data:
        return None
    text = json.dumps({"type": layer.type_name, "params": layer.params.model_dump(mode="json"), "sources": data_keys,
                       "frame": [frame.crs.to_wkt(), list(frame.origin)], "code": _code_digest(inspect.getfile(type(layer)))})
    return hashlib.sha256(text.encode()).hexdigest()


def build_geometry(layer: Layer, frame: Frame, folder: Path | None = None) -> bool:
    """Give ``layer`` its mesh for ``frame`` from the cache in ``folder`` (default ``$TWIN_CACHE_DIR/geometry``), else build and keep it.

    Returns True if the mesh came from the cache. Raises what :meth:`Layer.data` and the layer's
    ``build_geometry`` raise (nothing is kept then); a cache that cannot be read or written is logged, never raised.
    """
    key = geometry_key(layer, frame)
    if key is None:
        return False
    folder = folder or cache_dir("geometry")
    data = layer.data()
    kept = _load(folder, key)
    if kept is not None:
        mesh, messages = kept
        layer.use_geometry(frame, mesh)
        for message in messages:
            warnings.warn(message, TwinWarning, stacklevel=2)
        return True
    with _capture, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mesh = layer.build_geometry(frame, data)
    for warning in caught:  # given on as they came (other threads' too), this layer's kept with the mesh
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    layer.use_geometry(frame, mesh)
    own = f"layer {layer.id!r}"
    _store(folder, key, mesh, [str(w.message) for w in caught if issubclass(w.category, TwinWarning) and own in str(w.message)])
    return False


def _load(folder: Path, key: str) -> tuple[pv.PolyData, list[str]] | None:
    path = folder / f"{key}.vtk"
    if not path.is_file():
        return None
    try:
        mesh = _read_mesh(path)
        messages = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))["warnings"]
        os.utime(path)  # recently used
    except Exception as exc:  # noqa: BLE001 - a broken cache file is built anew
        log.warning("geometry cache %s cannot be read (%s); building the layer anew", path, exc)
        return None
    return (mesh, messages) if isinstance(mesh, pv.PolyData) else None


def _read_mesh(path: Path) -> pv.PolyData:
    """A kept mesh with all its arrays (VTK legacy binary, as :func:`_store` writes it); VTK's own reader, which
    ``pv.read`` picks only after listing every installed package's entry points (~0.05 s on the way to the first picture)."""
    reader = vtkPolyDataReader()
    reader.SetFileName(str(path))
    for read_all in (reader.ReadAllScalarsOn, reader.ReadAllColorScalarsOn, reader.ReadAllNormalsOn, reader.ReadAllTCoordsOn,
                     reader.ReadAllVectorsOn, reader.ReadAllFieldsOn, reader.ReadAllTensorsOn):
        read_all()
    reader.Update()
    if reader.GetErrorCode():
        raise OSError(f"VTK could not read it (error {reader.GetErrorCode()})")
    return pv.wrap(reader.GetOutput())


def _store(folder: Path, key: str, mesh: pv.PolyData, messages: list[str]) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{key}.json").write_text(json.dumps({"warnings": messages}), encoding="utf-8")
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".vtk", dir=folder)
        os.close(fd)
        mesh.save(tmp, binary=True)
        os.replace(tmp, folder / f"{key}.vtk")  # readers only ever see a whole file
        _prune(folder)
    except OSError as exc:
        log.warning("geometry cache %s cannot be written: %s", folder, exc)


def _prune(folder: Path) -> None:
    """Keep the most recently used meshes, at most :data:`KEEP` of them and :data:`KEEP_BYTES` bytes (the newest always)."""
    meshes = sorted(((p.stat().st_mtime, p.stat().st_size, p) for p in folder.glob("*.vtk")), reverse=True)
    total = 0
    for rank, (_, size, path) in enumerate(meshes):
        total += size
        if rank and (rank >= KEEP or total > KEEP_BYTES):
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
