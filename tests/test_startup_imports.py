"""What ``twin serve`` imports before the page's first picture is answered (issue 12: start-up ≤ 3 s to pixels).

Every module imported before the first picture is CPU time on the way to it. numba (its compiler
and ~0.25 s of import), the H3 kernels and twin.aggregate serve live H3 layers and mesh building,
neither of which the first picture of a scene whose meshes were kept needs: they must be imported
when first used. Read from ``python -X importtime`` (one line per import, in order, on stderr) up to
the server's log line saying the first picture was answered.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from servers import free_port, tail, wait_listening

from twin.app.geometry_cache import build_geometry
from twin.scene.model import Scene

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "scenes" / "demo.yaml"
NOT_BEFORE_THE_FIRST_PICTURE = ("numba", "twin.h3.cells", "twin.aggregate", "twin.mesh.extrude", "twin.mesh.earcut")
"""Modules only live H3 layers or mesh building need (a scene whose meshes were kept draws without them)."""
ANSWERED = re.compile(r"twin: INFO: twin\.app\.first_picture: first picture \d+x\d+ answered")


def _imports_before_the_first_picture(scene: Path, log: Path) -> list[str]:
    """Modules ``twin serve scene`` imported (in order) until its first picture was answered."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "twin.cli", "--debug", "serve", str(scene), "--port", str(port), "--no-browser"],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_listening(port, timeout=120, process=proc, log=log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/twin/first-picture.jpg?w=640&h=360", timeout=120) as response:
            assert response.status == 200 and response.headers["Content-Type"] == "image/jpeg", tail(log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    answered = next((i for i, line in enumerate(lines) if ANSWERED.search(line)), None)
    assert answered is not None, f"no 'first picture ... answered' line in the server's log:\n{tail(log)}"
    return [m[1] for line in lines[:answered] if (m := re.match(r"import time:\s+\d+ \|\s+\d+ \|\s*(\S+)", line))]


def test_serving_a_scene_with_kept_meshes_imports_no_numba_h3_or_mesh_kernels_before_the_first_picture(tmp_path: Path) -> None:
    scene = Scene.from_file(DEMO)
    for layer in scene.layers:  # keep the static layers' meshes, as the run before would have (same $TWIN_CACHE_DIR)
        build_geometry(layer, scene.frame)
    imported = _imports_before_the_first_picture(DEMO, tmp_path / "serve.log")
    assert "twin.app.first_picture" in imported and "vtkmodules.vtkRenderingCore" in imported  # the log is read as meant
    early = [name for name in imported if any(name == heavy or name.startswith(heavy + ".") for heavy in NOT_BEFORE_THE_FIRST_PICTURE)]
    assert early == [], f"imported before the first picture: {early}"


def test_the_same_check_sees_numba_when_a_scene_needs_a_mesh_built_before_the_first_picture(tmp_path: Path, shared_data: Path) -> None:
    """Real buildings no run before has meshed (a default height drawn at random keys a new mesh): extruding them needs numba, and the check sees it."""
    scene = tmp_path / "suzhou.yaml"
    scene.write_text(
        "version: 1\nname: Suzhou\nframe: {crs: auto}\nlayers:\n"
        f"  - {{id: buildings, type: buildings, source: {{type: file, path: '{(shared_data / 'suzhou_buildings.geojson').as_posix()}'}}, "
        f"default_height: {random.uniform(5, 50):.6f}}}\n",
        encoding="utf-8",
    )
    imported = _imports_before_the_first_picture(scene, tmp_path / "serve.log")
    assert "twin.mesh.extrude" in imported and "numba" in imported
