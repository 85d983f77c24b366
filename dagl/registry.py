"""One rule for every name-keyed registry (precisions, backends): a name is registered once.

A table built as ``{entry.name: entry for entry in ...}`` keeps the last of two entries with one name
and drops the first without a word; a second entry called ``fp16`` would silently replace the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Protocol, TypeVar


class Named(Protocol):
    name: str


T = TypeVar("T", bound=Named)


def by_name(entries: Iterable[T], what: str) -> Mapping[str, T]:
    """A read-only ``name -> entry`` table of ``entries`` in their order; ``ValueError`` on a repeated name."""
    table: dict[str, T] = {}
    for entry in entries:
        if entry.name in table:
            raise ValueError(f"{what} {entry.name!r} is registered twice")
        table[entry.name] = entry
    return MappingProxyType(table)
