"""Headless Debian Chromium driven by Playwright, shared by the browser tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright import sync_api
from servers import free_port

CHROMIUM = Path("/usr/bin/chromium")
# no background networking: this machine's closed network would refuse those connections
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@contextmanager
def chromium() -> Iterator[sync_api.Browser]:
    """Launch Debian's chromium headless (Playwright's own browser download cannot work here)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is not installed: run scripts/setup.sh (Debian package chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_for_language(page: sync_api.Page, timeout: float = 30_000) -> None:
    """Wait until the page has taken its language from the browser (it starts in the default language, zh_CN)."""
    page.wait_for_function("() => window.trame && window.trame.state && window.trame.state.get('twin_lang_from_browser') === false", timeout=timeout)


@contextmanager
def twin_serve(scene: Path, log: Path, *, view: str = "remote", timeout: float = 40.0, env: dict[str, str | None] | None = None,
               host: str = "127.0.0.1", args: Sequence[str] = (), strict: bool = False) -> Iterator[str]:
    """``twin serve SCENE`` in a subprocess on a free port of ``host``; yields its URL once it answers, stops it after.

    ``env``: variables added to the server's environment (e.g. ``TWIN_TOKEN``); None removes one. ``args``: more
    options (``--token-file``, ...). ``strict``: at the end the server must still run and have logged no traceback,
    and it must exit 0 on SIGTERM (its tick loop did not die and it stops cleanly).
    """
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    port = free_port(host)
    environ = {k: v for k, v in {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}.items() if v is not None}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "serve", str(scene), "--host", host, "--port", str(port), "--view", view,
                                 "--no-browser", *args], stdout=out, stderr=subprocess.STDOUT, env=environ)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"twin serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"twin serve did not listen on {host}:{port} within {timeout:g} s:\n{log.read_text(errors='replace')}")
                time.sleep(0.2)
        yield f"http://{host}:{port}/"
        if strict:
            assert proc.poll() is None, f"twin serve exited:\n{log.read_text(errors='replace')}"
            assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
    if strict:
        assert code == 0, f"twin serve exited with {code} on SIGTERM (None: it did not stop in 10 s):\n{log.read_text(errors='replace')}"
