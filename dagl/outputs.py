"""Output places checked before any work: a run that would fail to write after minutes of work
(a missing or read-only folder, a name the filesystem refuses, a format nobody writes) fails first.

Nothing is left here: folders are made when the first output is written, so a run that fails
early leaves nothing behind (an existing folder is tried with a nameless file, gone on close). The exit code of each refusal is 2 (dagl.errors' rule: the place the
user named); a disk that fills up while writing is still a failure while working, decided there.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import OutputError, output_error

#: The usual limit of one path component, in bytes, where the filesystem does not say.
DEFAULT_NAME_MAX = 255


def _existing(folder: Path) -> Path:
    """The nearest folder of ``folder`` (itself included) that exists."""
    existing = folder
    while not _exists(existing) and existing != existing.parent:
        existing = existing.parent
    return existing


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a name over the filesystem's limit: it cannot exist
        return False


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return DEFAULT_NAME_MAX


def check_output_name(path: str | Path) -> None:
    """Refuse a path with a component over the filesystem's name limit (``ENAMETOOLONG`` otherwise,
    from the first ``exists()`` on it)."""
    path = Path(path)
    _check_names(path, _existing(path.parent))


def _check_names(path: Path, existing: Path) -> None:
    limit = _name_max(existing)
    for part in path.parts:
        if len(os.fsencode(part)) > limit:
            shown = part if len(part) <= 40 else f"{part[:37]}..."
            raise OutputError(f"{shown}: a name of {len(os.fsencode(part))} bytes is over the filesystem's limit "
                              f"of {limit}; choose a shorter output name")


def check_output_folder(folder: str | Path) -> None:
    """Refuse an output folder that could not be created or written, without creating it."""
    folder = Path(folder)
    existing = _existing(folder)
    _check_names(folder, existing)
    if not existing.is_dir():
        raise OutputError(f"cannot create output folder {folder} ({existing} is not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {existing} is not writable")
    _try_write(existing)


def _try_write(folder: Path) -> None:
    """Create a nameless file in ``folder`` and drop it: permission bits say nothing for root, nor for a
    read-only mount or ``/proc``, where only a write says whether writes work (the file is gone on
    close: ``O_TMPFILE``, or a name unlinked at once)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise output_error(folder, exc, what="cannot write into this output folder") from None


def check_output_file(path: str | Path, suffixes: Iterable[str] | None = None) -> None:
    """Refuse an output file that could not be written: a folder by that name, a suffix outside
    ``suffixes`` (lower case, with the dot), or a folder :func:`check_output_folder` refuses."""
    path = Path(path)
    allowed = sorted(suffixes) if suffixes is not None else None
    if allowed is not None and path.suffix.lower() not in allowed:
        raise OutputError(f"{path}: cannot write {path.suffix or 'files without extension'}; "
                          f"use one of {', '.join(allowed)}")
    check_output_name(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; name a file")
    check_output_folder(path.parent)
