"""Headless Debian Chromium driven by Playwright, shared by the browser tests: the browser, ``twin serve`` in a subprocess,
and the 3D view's pixels (taken, compared, waited for)."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from playwright import sync_api
from servers import free_port

CHROMIUM = Path("/usr/bin/chromium")
# no background networking: this machine's closed network would refuse those connections
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEW = "#twin-view"
"""The 3D view's box on every page."""
OVERLAYS = (".twin-overlay",)
"""What covers the view on a planner's page (legend, pick card, error and source badges): painted black in its pictures."""
KIOSK_OVERLAYS = (".twin-kiosk-layer > div", ".twin-legend")
"""What covers the view on a wall page (clock, title, sources, alerts, banner; the legends)."""


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


# -- waiting -------------------------------------------------------------------------------------
def wait_until(ok: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> float:
    """Poll ``ok`` every ``every`` s until it holds; the seconds that took. AssertionError naming ``what`` after ``timeout`` s."""
    start = time.monotonic()
    while not ok():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - start


def wait_for_changes(read: Callable[[], object], count: int, timeout: float, what: str) -> None:
    """Poll ``read`` until what it returns has changed ``count`` times (e.g. a page's clock text: ``count`` ticks reached the page,
    however slowly a loaded machine delivers them); AssertionError naming ``what`` after ``timeout`` s."""
    seen = [read()]

    def changed() -> bool:
        now = read()
        if now != seen[-1]:
            seen.append(now)
        return len(seen) > count

    wait_until(changed, timeout, f"{what} to change {count} times (seen: {seen})")


# -- the 3D view's pixels ------------------------------------------------------------------------
def view_pixels(page: sync_api.Page, mask: Sequence[str] = OVERLAYS) -> np.ndarray:
    """The view box as the user sees it (the view, or whatever covers it: the last picture while reconnecting), the elements
    matching the CSS selectors in ``mask`` painted black: (height, width, 3) int16 RGB, one pixel a CSS pixel."""
    from PIL import Image

    shot = page.locator(VIEW).screenshot(mask=[page.locator(selector) for selector in mask], mask_color="#000000")
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.int16)


def differ(a: np.ndarray, b: np.ndarray, level: int = 40) -> float:
    """Share of pixels (0-1) whose colour changed by more than ``level`` (0-255) in a channel between two pictures of one shape."""
    return float((np.abs(a - b).max(axis=2) > level).mean())


def block_means(pixels: np.ndarray, block: int = 8) -> np.ndarray:
    """Means of ``block`` x ``block`` pixel blocks: a picture's layout without its fine detail, for comparing two pictures of a
    live scene (an image codec's noise and a tick's small marks between two shots change few blocks; a moved camera, most)."""
    h, w = pixels.shape[0] // block * block, pixels.shape[1] // block * block
    return pixels[:h, :w].reshape(h // block, block, w // block, block, 3).mean(axis=(1, 3))


SETTLE_S, SETTLED = 0.5, 0.002
"""A settled picture: two shots ``SETTLE_S`` apart with under ``SETTLED`` of the pixels changed (level 30); a live scene whose
marks change every tick needs a larger share (``settled`` of :func:`wait_for_view`)."""


def wait_for_view(page: sync_api.Page, ok: Callable[[np.ndarray], bool], timeout: float = 30.0, settle: bool = True, *,
                  mask: Sequence[str] = OVERLAYS, what: str = "the expected picture", settled: float = SETTLED) -> np.ndarray:
    """The view's pixels (:func:`view_pixels`) once ``ok(pixels)`` holds; AssertionError naming ``what`` after ``timeout`` s.

    ``settle``: the picture must also have settled (two shots :data:`SETTLE_S` apart that agree and both pass ``ok``), so that
    a frame of a moving camera, the half-size first picture or a JPEG whose WebP still is on its way is never taken as the
    picture. Wanted wherever the picture is a reference that later pictures are compared with; a mere check may pass False.
    ``settled``: the share of pixels that may change between the two shots.
    """
    deadline = time.monotonic() + timeout
    last: np.ndarray | None = None
    while True:
        pixels = view_pixels(page, mask)
        good = ok(pixels)
        if good and (not settle or (last is not None and last.shape == pixels.shape and differ(pixels, last, 30) < settled)):
            return pixels
        if time.monotonic() > deadline:
            moving = f"; {differ(pixels, last, 30):.1%} changed between the last two shots" if last is not None and last.shape == pixels.shape else ""
            raise AssertionError(f"the 3D view did not show {what} within {timeout:g} s{moving}")
        last = pixels if good else None
        time.sleep(SETTLE_S if settle else 0.3)


# -- twin serve ----------------------------------------------------------------------------------
@dataclass
class TwinServer:
    """A ``twin serve`` (or ``twin hub``) subprocess in a process group of its own: its address, process and log."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM to the server, SIGKILL to its group after ``timeout`` s; its exit code (None: it had to be killed). A server
        that had already exited: what it left in its group is killed."""
        if self.process.poll() is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            return None


def start_twin(scene: Path, log: Path, *, view: str = "remote", kiosk: bool = False, env: dict[str, str | None] | None = None,
               host: str = "127.0.0.1", port: int | None = None, args: Sequence[str] = (), command: str = "serve", timeout: float = 60.0) -> TwinServer:
    """``twin COMMAND SCENE`` (``serve``, or ``hub`` with a folder of scenes) on ``port`` of ``host`` (default: a free one), its
    output in ``log``; returned once it listens (the test fails with the log if it exits first or does not listen in ``timeout`` s).

    ``kiosk``: ``--kiosk``. ``env``: variables added to the server's environment (``TWIN_TICK_SECONDS``, ``TWIN_TOKEN``, ...);
    None removes one. ``args``: more options (``--token-file``, ``--sessions``, ...). The server runs in its own process group
    (``os.killpg`` stops or kills it with what it started). Stop it with :meth:`TwinServer.stop`.
    """
    port = port or free_port(host)
    environ = {k: v for k, v in {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}.items() if v is not None}
    cmd = [sys.executable, "-m", "twin.cli", command, str(scene), "--host", host, "--port", str(port), "--view", view, *(["--no-browser"] if command == "serve" else []),
           *(["--kiosk"] if kiosk else []), *args]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        server = TwinServer(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environ, start_new_session=True), host, port, log)
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"twin {command} exited with {server.process.returncode}:\n{server.log()}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                pytest.fail(f"twin {command} did not listen on {host}:{port} within {timeout:g} s:\n{server.log()}")
            time.sleep(0.2)


CLOSED_PAGES = ("Cannot write to closing transport", "Error handling request")
"""wslink's report of a reply to a page that had just closed (a race in wslink, not in twin): no fault of the server's; ``noise``
for :func:`without` and :func:`twin_serve`."""


def without(log: str, *noise: str) -> str:
    """The server's log less its records (``twin: ...`` lines and what follows them) that hold any of the texts ``noise``."""
    records = log.split("\ntwin: ")
    return "\ntwin: ".join(r for r in records if not any(text in r for text in noise))


@contextmanager
def twin_serve(scene: Path, log: Path, *, view: str = "remote", timeout: float = 60.0, env: dict[str, str | None] | None = None,
               host: str = "127.0.0.1", args: Sequence[str] = (), kiosk: bool = False, strict: bool = False, noise: Sequence[str] = ()) -> Iterator[str]:
    """``twin serve SCENE`` (:func:`start_twin`) for the ``with`` block; yields its URL, stops it after.

    ``strict``: at the end the server must still run and have logged no traceback (but in records holding a text of ``noise``,
    see :func:`without`), and it must exit 0 on SIGTERM (its tick loop did not die and it stops cleanly).
    """
    server = start_twin(scene, log, view=view, kiosk=kiosk, env=env, host=host, args=args, timeout=timeout)
    try:
        yield server.url
        if strict:
            assert server.process.poll() is None, f"twin serve exited:\n{server.log()}"
            assert "Traceback" not in without(server.log(), *noise), server.log()
    finally:
        code = server.stop()
    if strict:
        assert code == 0, f"twin serve exited with {code} on SIGTERM (None: it did not stop in 10 s):\n{server.log()}"
