"""Keep twin's own command line away from trame's argument parser (it parses ``sys.argv`` when a server starts)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["hidden_argv"]


@contextmanager
def hidden_argv() -> Iterator[None]:
    """Within the block ``sys.argv`` is only the program name (``TRAME_ARGS`` still applies); restored after.

    >>> import sys
    >>> saved = list(sys.argv)
    >>> with hidden_argv():
    ...     len(sys.argv)
    1
    >>> sys.argv == saved
    True
    """
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved
