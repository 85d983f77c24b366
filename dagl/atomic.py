"""Whole-file-or-nothing writes, the only way the toolkit writes a file a user will read.

The data goes to a temporary file created *exclusively* (``O_CREAT | O_EXCL``, unpredictable name)
in the target's folder, then is renamed over the target. So a reader, a crash or a kill never sees a
half-written file; a link planted at a guessable temporary name cannot redirect the write; and the
rename replaces a link at the target itself rather than writing through it. While a temporary file
exists SIGTERM is turned into ``SystemExit`` so the clean-up below runs, as it does for Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)
_lock = threading.Lock()
_depth = 0
_previous_handler: Callable | int | None = None


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _guard_sigterm(enter: bool) -> None:
    """Install the SIGTERM handler for the outermost write (main thread only: Python's rule)."""
    global _depth, _previous_handler
    if threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        if enter:
            _depth += 1
            if _depth == 1 and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                _previous_handler = signal.signal(signal.SIGTERM, _terminate)
        else:
            _depth -= 1
            if _depth == 0 and _previous_handler is not None:
                signal.signal(signal.SIGTERM, _previous_handler)
                _previous_handler = None


def _publish(temp: Path, path: Path, replace: bool) -> None:
    """Move the finished ``temp`` to ``path``; without ``replace``, never over a file that exists now.

    The no-replace move is a hard link (``link`` fails with ``EEXIST`` atomically, so of two writers
    exactly one wins), then the temporary name is dropped. Where the filesystem has no hard links,
    an exclusive create of ``path`` claims the name first, then the rename fills it.
    """
    if replace:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (some network or FAT filesystems): claim the name, then fill it
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.replace(temp, path)


@contextmanager
def atomic_path(path: str | Path, mode: int = 0o666, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on success it is renamed to ``path``.

    For writers that insist on a file name (Pillow, safetensors, matplotlib). The final file gets
    ``mode`` less the umask, like any file the user creates; the temporary one is owner-only.
    ``replace=False`` raises ``FileExistsError`` (and leaves both files as they were) if ``path``
    exists when the write finishes: another writer got there first.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    temp = Path(name)
    _guard_sigterm(True)
    try:
        yield temp
        os.chmod(temp, mode & ~_UMASK)
        _publish(temp, path, replace)
    finally:
        temp.unlink(missing_ok=True)
        _guard_sigterm(False)


def write_atomic(path: str | Path, data: bytes | str, replace: bool = True) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` so that nobody ever sees a partial file."""
    path = Path(path)
    with atomic_path(path, replace=replace) as temp:
        temp.write_bytes(data.encode() if isinstance(data, str) else data)
    return path
