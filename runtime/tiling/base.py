"""What a tiling policy is, and the registry every user of one reads.

A policy splits a (C, H, W) image into network calls and stitches the outputs back. Besides
running, it must say how many tiles an image takes (progress bars, benchmarks) and the largest
call it makes (the memory bound of :mod:`dagl.memory`): both are abstract, so a policy
that cannot state its peak cannot be registered, and so cannot run unbounded.

The registry (:data:`TILINGS`) is what ``Restorer``, the memory bound and every ``--tiling``
option read; a policy enters it with :func:`register_tiling`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dagl.artefact import DEFAULT_BATCH, DEFAULT_OVERLAP, DEFAULT_TILE
from dagl.errors import UserInputError

TileFn = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int], None]


class TilingError(UserInputError, ValueError):
    """Tiling options that cannot work together (e.g. an overlap as large as the tile)."""


@dataclass(frozen=True)
class TileOptions:
    """The user's tiling settings; each policy reads the ones it uses (``none`` reads none).

    Checked once, here, so every policy and every caller (``Restorer``, ``run_grid``) can rely on them.
    """

    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    #: Tiles per network call.
    batch: int = DEFAULT_BATCH

    def __post_init__(self) -> None:
        if self.tile < 8 or not 0 <= self.overlap < self.tile or self.batch < 1:
            raise TilingError(f"need tile >= 8, 0 <= overlap < tile and batch >= 1; got tile={self.tile}, "
                              f"overlap={self.overlap}, batch={self.batch}")


@dataclass(frozen=True)
class PeakTile:
    """The largest network call a policy makes: ``batch`` tiles of ``height`` x ``width`` px."""

    height: int
    width: int
    batch: int
    #: What a tile is called in the refusal ("1 whole image(s) of ...").
    what: str = "tile"


class TilingPolicy(ABC):
    """One way to cut an image into network calls. Subclass, fill in the abstract methods, register."""

    #: The ``--tiling`` value.
    name: ClassVar[str]
    #: One phrase for ``--tiling``'s help.
    summary: ClassVar[str]

    @abstractmethod
    def run(self, image: np.ndarray, infer: TileFn, options: TileOptions,
            progress: Progress | None = None) -> np.ndarray:
        """Restore (C, H, W) through ``infer`` ((N, C, h, w) -> same); ``progress(n)`` as tiles finish."""

    @abstractmethod
    def count_tiles(self, height: int, width: int, options: TileOptions) -> int:
        """Network tiles one (H, W) image takes (what :meth:`run` reports to ``progress`` in all)."""

    @abstractmethod
    def peak_tile(self, height: int, width: int, options: TileOptions) -> PeakTile:
        """The largest call :meth:`run` makes on an (H, W) image, bounded before it runs."""

    def describe(self, options: TileOptions) -> str:
        """The policy and the settings it uses, for report headers."""
        return self.name


#: name -> policy, in registration order (the order ``--tiling`` lists them).
TILINGS: dict[str, TilingPolicy] = {}


def register_tiling(policy: type[TilingPolicy]) -> type[TilingPolicy]:
    """Class decorator: add one instance of ``policy`` to :data:`TILINGS` under its ``name``.

    Instantiating it here is what makes a missing abstract method (say ``peak_tile``) fail at
    import, not as an unbounded run later.
    """
    if policy.name in TILINGS:
        raise ValueError(f"tiling {policy.name!r} is registered twice")
    TILINGS[policy.name] = policy()
    return policy


def get_tiling(name: str) -> TilingPolicy:
    """The registered policy called ``name``; the error lists the choices, since users type these."""
    try:
        return TILINGS[name]
    except KeyError:
        raise TilingError(f"unknown tiling {name!r}; choose one of: {', '.join(TILINGS)}") from None


def tilings_help() -> str:
    """``--tiling``'s help: every registered policy with its summary."""
    return "; ".join(f"{name}: {policy.summary}" for name, policy in TILINGS.items()) + "."


def chunked(infer: TileFn, batch: int) -> TileFn:
    """``infer`` applied to at most ``batch`` tiles at a time (the memory bound of every policy)."""
    def run(tiles: np.ndarray) -> np.ndarray:
        if len(tiles) <= batch:
            return infer(tiles)
        return np.concatenate([infer(tiles[i:i + batch]) for i in range(0, len(tiles), batch)])
    return run


def pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflection-pad (C, H, W) at the bottom/right up to at least (height, width)."""
    pad_h, pad_w = max(0, height - image.shape[1]), max(0, width - image.shape[2])
    if not pad_h and not pad_w:
        return image
    return np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
