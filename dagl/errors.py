"""The one exception family a user is meant to see.

Every CLI catches :class:`DaglError` and prints its message as one line; anything else is a bug and
keeps its traceback. Subclasses say *what* went wrong; ``exit_code`` says *whose* problem it is:
2 for something the user handed us (a file, a value), as click does for bad options, and 1 for a
failure while working.
"""

from __future__ import annotations


class DaglError(Exception):
    """A failure the user can act on; the message is one line and needs no traceback."""

    exit_code = 1


class UserInputError(DaglError):
    """A file or value the user gave cannot be used as given: their mistake, not ours."""

    exit_code = 2


class WeightsError(UserInputError):
    """A weights file that cannot be used for the requested model; the message says why.

    Defined here, not in :mod:`dagl.weights` (which re-exports it), so that code naming it, such as
    the shipped-weights lookup, does not import torch.
    """
