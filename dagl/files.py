"""Small files a user hands over (an engine sidecar, a JSON record): read with bounds, never trusted.

``open`` on a FIFO blocks until a writer comes, ``/dev/zero`` never ends, and ``json.loads`` on
100,000 nested brackets recurses until Python gives up. So: open without blocking, accept only a
regular file (judged on the opened descriptor, so a swap after the check changes nothing), read at
most ``limit`` bytes, and measure JSON nesting before parsing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path

import numpy as np

#: Nesting deeper than this is not a record dagl writes (sidecars nest 2 levels).
MAX_JSON_DEPTH = 32
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def read_small(path: str | Path, limit: int, what: str = "this file") -> bytes:
    """The bytes of regular file ``path`` if it holds at most ``limit`` of them.

    Raises ``FileNotFoundError``/``OSError`` as ``open`` does, and ``ValueError`` (one line) for a
    FIFO, device or folder, or a file over ``limit`` bytes; nothing past ``limit + 1`` bytes is read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file (a FIFO, device or folder)")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"over {limit:,} bytes, too large for {what}")
    return data


def json_depth(text: str) -> int:
    """How deep ``text``'s arrays and objects nest (brackets inside strings do not count)."""
    skeleton = np.frombuffer(_STRING.sub('""', text).encode("utf-8"), np.uint8)
    steps = np.isin(skeleton, (ord("["), ord("{"))).astype(np.int64) - np.isin(skeleton, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def loads_bounded(text: str, max_depth: int = MAX_JSON_DEPTH) -> object:
    """``json.loads`` of ``text`` after refusing (``ValueError``) nesting deeper than ``max_depth``."""
    depth = json_depth(text)
    if depth > max_depth:
        raise ValueError(f"JSON nested {depth:,} levels deep (at most {max_depth})")
    return json.loads(text)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file, recorded in artefacts so each names the file it was made from (weights, ONNX)."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()
