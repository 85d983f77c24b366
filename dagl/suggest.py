""""Did you mean": the nearest of the names a user could have meant, for the one-line refusals.

A near miss (``jpg`` for the task ``jpeg``, ``clasic5`` for the test set ``classic5``) is the most
common mistake on a command line; naming the fix in the refusal saves a trip to ``--help``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: difflib's similarity ratio a name must reach to be suggested (``jpg`` vs ``jpeg``: 0.86).
CUTOFF = 0.6


def did_you_mean(word: str, names: Iterable[str]) -> str:
    """``"; did you mean 'jpeg'?"`` for the closest of ``names`` to ``word``, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(word), list(names), n=1, cutoff=CUTOFF)
    return f"; did you mean {close[0]!r}?" if close else ""
