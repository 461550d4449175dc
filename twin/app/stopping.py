"""``twin serve`` stops within a second or two of SIGTERM or SIGINT, however busy its page loop is.

aiohttp (through wslink) asks the server's loop to exit on SIGTERM and SIGINT, but its handler runs only when the loop gets
to it. A wall's loop runs the view updates gathered over a tick back to back (each may render and encode a still, ~1 s of
llvmpipe at 1920x1080 on a loaded machine), so a busy server went on for up to 10 s after the signal. :func:`stop_on_signals`
adds a handler that Python runs in the main thread between two steps, inside such a run too: it tells the page bridge to
drop the updates still waiting (the pages are going away), and aiohttp's exit follows once the render under way returns.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType

__all__ = ["STOP_SIGNALS", "stop_on_signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop a server."""


def stop_on_signals(on_stop: Callable[[], None], signals: Iterable[signal.Signals] = STOP_SIGNALS) -> bool:
    """Call ``on_stop`` as soon as one of ``signals`` arrives, then what handled it before (aiohttp's loop handler, Python's
    KeyboardInterrupt, or the system's default: the process ends). Only the main thread sets signal handlers: elsewhere
    nothing is set and False is returned."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in signals:
        signal.signal(sig, _chained(on_stop, signal.getsignal(sig)))
    return True


def _chained(on_stop: Callable[[], None], previous: object) -> Callable[[int, FrameType | None], None]:
    """A signal handler: ``on_stop``, then ``previous`` (a handler, or ``signal.SIG_DFL``/``SIG_IGN``/None)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        on_stop()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:  # what the system does: put it back and let the signal come again
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    return handler
