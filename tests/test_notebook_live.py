"""``scene.show()`` in a real Jupyter kernel: the PNG first, then the live app's iframe, which answers.

A kernel (ipykernel, started with jupyter_client as JupyterLab and VS Code start theirs) runs
``scene.show()``; the test reads the kernel's display messages as a front end does: a PNG
``display_data``, then an ``update_display_data`` for the same display id holding an
``<iframe>``, whose address serves the twin app from the kernel.
"""

from __future__ import annotations

import queue
import re
import time

import pytest
import requests
from jupyter_client.manager import start_new_kernel

CODE = """
import geopandas as gpd, shapely, twin
scene = twin.Scene("live cell", center=(121.48, 31.23))
scene.add_data("p", gpd.GeoDataFrame({"name": ["外滩"]}, geometry=[shapely.Point(121.48, 31.23)], crs="EPSG:4326"), point_size=12)
scene.show(size=(480, 270))
"""


def test_show_in_a_kernel_swaps_the_picture_for_the_live_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWIN_NOTEBOOK_STATIC", raising=False)
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        client.execute(CODE)
        shown: dict[str, dict] = {}
        deadline = time.monotonic() + 120
        iframe = None
        while iframe is None and time.monotonic() < deadline:
            try:
                message = client.get_iopub_msg(timeout=5)
            except queue.Empty:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "error":
                pytest.fail("\n".join(content["traceback"]))
            if kind == "display_data":
                shown[content["transient"]["display_id"]] = content["data"]
            if kind == "update_display_data":
                assert content["transient"]["display_id"] in shown  # replaces the picture shown first
                iframe = content["data"].get("text/html")
        assert shown and all("image/png" in data for data in shown.values())
        assert iframe is not None and iframe.startswith("<iframe "), iframe
        src = re.search(r'src="([^"]+)"', iframe)[1]
        assert src.startswith("http://127.0.0.1:") or src.startswith("http://localhost:"), src
        page = requests.get(src, timeout=30)
        assert page.status_code == 200 and "trame" in page.text.lower()
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
