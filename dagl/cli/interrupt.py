"""Ctrl-C and SIGTERM at any moment of a ``dagl-*`` command: one line, exit 128 + the signal, no traceback.

Two phases. While a command is still importing (torch and ONNX take seconds) nothing has been
written, so :func:`install_early` (called by each console script, :mod:`dagl.cli.console`, before its
command imports) makes either signal print the one line and leave at once. Once the command runs, :func:`signals_interrupt` makes them raise :class:`Interrupted` in the main thread:
a ``BaseException`` (so no ``except Exception`` swallows it, and click does not turn it into its
own abort), which unwinds through every ``finally``, so atomic writes and temporary folders are
removed before the command prints its line (:mod:`dagl.cli.common`).
Library users are never affected: importing ``dagl`` installs nothing.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: The process that installed the running handlers; forked children inherit them but are not it.
_owner = os.getpid()


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived while a command ran; ``exit_code`` is 128 + the signal, as a shell reports it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def _raise(signum: int, frame: object) -> None:
    if os.getpid() != _owner:  # a forked child (a DataLoader worker): behave as Python's defaults do
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    raise Interrupted(signum)


def _install(handler) -> dict[int, object]:
    """Set ``handler`` for both signals; returns the previous handlers (none outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():  # Python's rule for signal handlers
        return {}
    return {signum: signal.signal(signum, handler) for signum in SIGNALS}


def install_early(prog: str) -> None:
    """Make SIGINT/SIGTERM print ``PROG: error: interrupted`` and leave at once (while a command imports)."""
    line = f"{prog}: error: interrupted\n".encode()

    def leave_now(signum: int, frame: object) -> None:
        os.write(2, line)
        os._exit(128 + signum)

    _install(leave_now)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT/SIGTERM raise :class:`Interrupted` inside the block; the previous handlers come back after it."""
    global _owner
    _owner = os.getpid()
    previous = _install(_raise)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
