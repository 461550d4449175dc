"""The notebooks run top to bottom, headless, as an analyst would run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_runs(notebook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> None:
    monkeypatch.chdir(NOTEBOOKS)
    monkeypatch.setenv("TWIN_NOTEBOOK_OUT", str(tmp_path))
    namespace: dict[str, object] = {}
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{notebook.name}", "exec"), namespace)  # noqa: S102
    image = Image.open(tmp_path / "notebook.png")
    assert image.size == (1280, 720)
    assert namespace["fired"], "the simulated rain raised no alert"
    assert len(namespace["cells"]) > 50  # taxi fixes binned into cells
