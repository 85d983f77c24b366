"""The one exception family a user is meant to see, and the one rule for exit codes.

Every CLI catches :class:`DaglError` and prints its message as one line; anything else is a bug and
keeps its traceback. Subclasses say *what* went wrong; ``exit_code`` says *whose* problem it is.
The rule, written here once and followed by every command:

* **2, the user's to fix**: an option or value; a file they named that is missing, unreadable,
  corrupt or unfit (images, weights, ONNX files, engines, sidecars, data sets); an output place they
  named that cannot be written (no such folder, no permission, a read-only filesystem, a name the
  filesystem refuses). Click's usage errors are 2 as well.
* **1, a failure while working**: the disk or quota filling up, an I/O error, memory running out,
  a backend or GPU that is not there, an engine that will not build, a network output with NaN,
  parity out of bounds.
* **128 + signal** (130 Ctrl-C, 143 SIGTERM): interrupted (:mod:`dagl.cli.interrupt`).

A failed write is classified by :func:`os_error_exit_code`, so every writer answers alike.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

#: OS errors that are the machine failing while working, not a bad place the user named.
WORKING_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EFBIG})


class DaglError(Exception):
    """A failure the user can act on; the message is one line and needs no traceback.

    ``exit_code`` is the class's unless given (:func:`output_error` decides it from the OS error).
    """

    exit_code = 1

    def __init__(self, *args: object, exit_code: int | None = None) -> None:
        super().__init__(*args)
        if exit_code is not None:
            self.exit_code = exit_code


class UserInputError(DaglError):
    """A file or value the user gave cannot be used as given: their mistake, not ours."""

    exit_code = 2


class WeightsError(UserInputError):
    """A weights file that cannot be used for the requested model; the message says why.

    Defined here, not in :mod:`dagl.weights.checkpoints` (which re-exports it), so that code naming it, such as
    the shipped-weights lookup, does not import torch.
    """


class OutputError(UserInputError):
    """An output that cannot be written where the user asked (exit 2), or failed while writing (exit 1)."""


def first_line(exc: BaseException) -> str:
    """``exc``'s message for one line of an error: libraries (ONNX Runtime, OpenVINO, torch) write pages, and the
    first line says what went wrong; an empty message gives the exception's class name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def os_error_exit_code(exc: OSError) -> int:
    """1 for a disk that is full, an I/O error and the like (:data:`WORKING_ERRNOS`), else 2 (the place)."""
    return DaglError.exit_code if exc.errno in WORKING_ERRNOS else UserInputError.exit_code


def output_error(path: str | Path, exc: OSError, cls: type[DaglError] = OutputError, what: str = "cannot write") -> DaglError:
    """One line for a failed write of ``path``, with the exit code of the rule above."""
    return cls(f"{path}: {what} ({exc.strerror or exc})", exit_code=os_error_exit_code(exc))


def shown_path(path: str | Path) -> str:
    """``path`` for one line of an error: a name of thousands of bytes is cut in its middle."""
    text = os.fsdecode(path)
    return text if len(text) <= 120 else f"{text[:60]}...{text[-40:]}"


def path_error(path: str | Path, exc: OSError, cls: type[DaglError] = UserInputError) -> DaglError:
    """One line (exit 2) for a path the system will not even look up: a name over the filesystem's limit
    (255 bytes on most) or a path over PATH_MAX, where ``exists()`` raises ``ENAMETOOLONG``."""
    return cls(f"{shown_path(path)}: {exc.strerror or exc} ({len(os.fsencode(path)):,} bytes)",
               exit_code=UserInputError.exit_code)
