"""One session's app process: ``twin serve SCENE`` on a free 127.0.0.1 port that answers only the hub.

The child binds loopback and is given a token file (mode 0600, in the hub's private folder) holding one
random secret under the name of the hub user who opened the session; the hub sends that secret as
``Authorization: Bearer`` on everything it forwards. So another program on the machine that finds the port
gets 401, and an alert acknowledged in the session is recorded under the planner's own name.
On Linux the child is also told to die with the hub (``PR_SET_PDEATHSIG``), so even a killed hub leaves
no app process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path

from twin.errors import HubError

__all__ = ["Child", "free_port"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_OUTPUT_LINES = 40


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send SIGTERM to the child when the hub exits, even when killed; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork: the hook itself only makes the call
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the hub died before the call took effect
            os._exit(1)

    return hook


class Child:
    """``twin serve SCENE`` for one session (see the module docs). Create, ``await start()``, ``await stop()``.

    ``scene``: the scene file. ``user``: who opened the session (recorded on acknowledged alerts).
    ``workdir``: the hub's private folder for the token file. ``label``: names the token file and log lines.
    ``view``: ``auto``, ``remote`` or ``local`` (``twin serve --view``).
    """

    def __init__(self, scene: Path, *, user: str, workdir: Path, label: str, view: str = "auto") -> None:
        self.scene = scene
        self.user = user
        self.label = label
        self.view = view
        self.secret = secrets.token_urlsafe(32)
        self.port = free_port()
        self.token_file = workdir / f"{label}.tokens"
        self.output: deque[str] = deque(maxlen=_OUTPUT_LINES)
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Base address of the child (``http://127.0.0.1:PORT``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True once started and until the process has exited."""
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int | None:
        """Process id once started."""
        return None if self.process is None else self.process.pid

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "twin.cli", "serve", str(self.scene), "--host", "127.0.0.1", "--port", str(self.port),
                "--view", self.view, "--no-browser", "--token-file", str(self.token_file)]

    def _write_token_file(self) -> None:
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(f"{self.user}:{self.secret}\n")

    async def start(self, ready_timeout: float = 120.0) -> None:
        """Start the process and wait until it accepts connections (at most ``ready_timeout`` seconds).

        Raises HubError naming the scene file, with the app's own last error line, if it exits first or does not answer in time
        (then it is stopped).
        """
        self._write_token_file()
        env = {k: v for k, v in os.environ.items() if k != "TWIN_TOKEN"}  # the hub's token never reaches a child
        env["PYTHONUNBUFFERED"] = "1"
        self.process = await asyncio.create_subprocess_exec(
            *self._command(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=env, start_new_session=True, preexec_fn=_die_with_parent_hook(),
        )
        self._reader = asyncio.create_task(self._read_output())
        try:
            await asyncio.wait_for(self._wait_listening(), ready_timeout)
        except asyncio.TimeoutError:
            await self.stop()
            raise HubError(f"{self.scene}: the session's app did not answer within {ready_timeout:g} s") from None
        except BaseException:  # its own error, or the hub cancelled the start: no process is left behind
            await self.stop()
            raise

    async def _wait_listening(self) -> None:
        assert self.process is not None
        while True:
            if self.process.returncode is not None:
                await self._drain()
                raise HubError(f"{self.scene}: the session's app stopped (exit code {self.process.returncode}): {self.last_error()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            writer.close()
            return

    async def _read_output(self) -> None:
        """Keep the child's output (its last lines, for errors) and log it at debug level; drains the pipe so the child never blocks."""
        assert self.process is not None and self.process.stdout is not None
        pending = b""
        while chunk := await self.process.stdout.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                self._keep(raw)
        self._keep(pending)

    def _keep(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            self.output.append(line)
            log.debug("session %s: %s", self.label, line)

    async def _drain(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), 5)

    def last_error(self) -> str:
        """The app's last ``twin: error:`` line (without the prefix), else its last output line, else a note that it printed nothing."""
        for line in reversed(self.output):
            if line.startswith("twin: error: "):
                return line.removeprefix("twin: error: ")
        return self.output[-1] if self.output else "it printed nothing"

    async def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; removes the token file. Returns the exit code (None if never started)."""
        process = self.process
        self.token_file.unlink(missing_ok=True)
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), grace)
            except asyncio.TimeoutError:
                log.warning("session %s: the app did not stop within %g s of SIGTERM: killed", self.label, grace)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        await self._drain()
        return process.returncode
