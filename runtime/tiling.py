"""Splitting an image into tiles for the network and putting the outputs back together.

GFAM attends from every query to every pixel of its input, so a tile's cost grows with the
square of its area: a whole image is never run as one tile unless asked (``none``). Two policies:

* ``grid``: fixed-size tiles on a regular grid with ``overlap`` pixels shared between
  neighbours, blended with linear ramps so no seam shows. Tiles go through the network
  ``batch`` at a time and are accumulated into the output, so memory stays bounded by the image
  itself whatever its size; one tile size also suits fixed-shape engines.
* ``reference``: the authors' recursive quadrant chop, exactly as docs/dagl-reference.md states it, so a
  parity run reproduces the paper's numbers.

Every function takes ``infer``: (N, C, h, w) float32 -> same, e.g. a runner's ``infer`` wrapped
by :func:`chunked` and optionally by :func:`dagl.runtime.ensemble.ensemble`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from dagl.artefact import DEFAULT_BATCH, DEFAULT_OVERLAP, DEFAULT_TILE
from dagl.errors import UserInputError

TileFn = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int], None]

TILINGS = ("grid", "reference", "none")


class TilingError(UserInputError, ValueError):
    """Tiling options that cannot work together (e.g. an overlap as large as the tile)."""


#: The release's chop threshold: tiles with fewer pixels than this go through the network.
REFERENCE_MIN_SIZE = 10000
#: Below this side the release's chop indexes outside the image (its tile size h//2//4*4 + 24
#: exceeds h); smaller images are reflection-padded up to it first, a case the release never ran.
REFERENCE_MIN_SIDE = 44


def chunked(infer: TileFn, batch: int) -> TileFn:
    """``infer`` applied to at most ``batch`` tiles at a time (the memory bound of every policy)."""
    def run(tiles: np.ndarray) -> np.ndarray:
        if len(tiles) <= batch:
            return infer(tiles)
        return np.concatenate([infer(tiles[i:i + batch]) for i in range(0, len(tiles), batch)])
    return run


def _pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflection-pad (C, H, W) at the bottom/right up to at least (height, width)."""
    pad_h, pad_w = max(0, height - image.shape[1]), max(0, width - image.shape[2])
    if not pad_h and not pad_w:
        return image
    return np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)), mode="reflect")


# --- grid -------------------------------------------------------------------------------------

def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``length`` with ``tile``-long windows overlapping by >= ``overlap``.

    The last window is aligned to the end rather than padded, so every tile holds real pixels.
    """
    if length <= tile:
        return [0]
    return list(range(0, length - tile, tile - overlap)) + [length - tile]


def blend_ramp(tile: int, overlap: int) -> np.ndarray:
    """1-D weights: 1 inside, rising linearly over ``overlap`` pixels at both ends, never 0.

    Outputs are divided by the summed weights, so at the image border (one tile only) the ramp
    cancels out, and inside overlaps each tile fades out where its context is poorest.
    """
    index = np.arange(tile, dtype=np.float32)
    ramp = np.minimum(index + 1, tile - index) / (overlap + 1)
    return np.minimum(ramp, 1.0).astype(np.float32)


def grid_positions(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Top-left corners of the grid tiles of an image (after padding to at least one tile)."""
    return [(top, left) for top in tile_starts(max(height, tile), tile, overlap)
            for left in tile_starts(max(width, tile), tile, overlap)]


def run_grid(image: np.ndarray, infer: TileFn, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
             batch: int = DEFAULT_BATCH, progress: Progress | None = None) -> np.ndarray:
    """Restore (C, H, W) tile by tile; images smaller than a tile are padded by reflection."""
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
    channels, height, width = image.shape
    padded = _pad_to(image, tile, tile)
    weight_2d = np.outer(blend_ramp(tile, overlap), blend_ramp(tile, overlap))
    out = np.zeros(padded.shape, dtype=np.float32)
    weights = np.zeros(padded.shape[1:], dtype=np.float32)
    positions = grid_positions(height, width, tile, overlap)
    for start in range(0, len(positions), batch):
        group = positions[start:start + batch]
        tiles = np.stack([padded[:, t:t + tile, l:l + tile] for t, l in group])
        for (top, left), restored in zip(group, infer(tiles)):
            out[:, top:top + tile, left:left + tile] += restored * weight_2d
            weights[top:top + tile, left:left + tile] += weight_2d
        if progress:
            progress(len(group))
    return (out / weights)[:, :height, :width]


# --- reference chop ---------------------------------------------------------------------------

def chop_geometry(height: int, width: int) -> tuple[int, int, int, int]:
    """(h_half, w_half, h_size, w_size) of one level of the release's chop."""
    h_half, w_half = height // 2, width // 2
    return h_half, w_half, (h_half // 4) * 4 + 24, (w_half // 4) * 4 + 24


def reference_leaves(height: int, width: int, min_size: int = REFERENCE_MIN_SIZE) -> Iterator[tuple[int, int]]:
    """Shapes of the leaf tiles the chop runs through the network, in execution order."""
    _, _, h_size, w_size = chop_geometry(height, width)
    for _ in range(4):
        if h_size * w_size < min_size:
            yield h_size, w_size
        else:
            yield from reference_leaves(h_size, w_size, min_size)


def _chop(image: np.ndarray, infer: TileFn, min_size: int, progress: Progress | None) -> np.ndarray:
    _, height, width = image.shape
    h_half, w_half, h_size, w_size = chop_geometry(height, width)
    tiles = [image[:, 0:h_size, 0:w_size], image[:, 0:h_size, width - w_size:width],
             image[:, height - h_size:height, 0:w_size], image[:, height - h_size:height, width - w_size:width]]
    if h_size * w_size < min_size:
        outputs = list(infer(np.stack(tiles)))
        if progress:
            progress(4)
    else:
        outputs = [_chop(t, infer, min_size, progress) for t in tiles]
    out = np.empty_like(image)
    row, col = h_size - height + h_half, w_size - width + w_half
    out[:, :h_half, :w_half] = outputs[0][:, :h_half, :w_half]
    out[:, :h_half, w_half:] = outputs[1][:, :h_half, col:]
    out[:, h_half:, :w_half] = outputs[2][:, row:, :w_half]
    out[:, h_half:, w_half:] = outputs[3][:, row:, col:]
    return out


def run_reference(image: np.ndarray, infer: TileFn, min_size: int = REFERENCE_MIN_SIZE,
                  progress: Progress | None = None) -> np.ndarray:
    """The release's recursive quadrant chop of (C, H, W) (docs/dagl-reference.md, "The paper's evaluation protocol")."""
    _, height, width = image.shape
    padded = _pad_to(image, REFERENCE_MIN_SIDE, REFERENCE_MIN_SIDE)
    return _chop(padded, infer, min_size, progress)[:, :height, :width]


# --- dispatch ---------------------------------------------------------------------------------

def count_tiles(tiling: str, height: int, width: int, tile: int = DEFAULT_TILE,
                overlap: int = DEFAULT_OVERLAP) -> int:
    """How many network tiles one image takes (for progress bars and benchmarks)."""
    if tiling == "grid":
        return len(grid_positions(height, width, tile, overlap))
    if tiling == "reference":
        side = REFERENCE_MIN_SIDE
        return sum(1 for _ in reference_leaves(max(height, side), max(width, side)))
    return 1


def run_tiled(image: np.ndarray, infer: TileFn, tiling: str, tile: int = DEFAULT_TILE,
              overlap: int = DEFAULT_OVERLAP, batch: int = DEFAULT_BATCH,
              progress: Progress | None = None) -> np.ndarray:
    """Restore (C, H, W) with the named tiling policy."""
    if tiling == "grid":
        return run_grid(image, infer, tile, overlap, batch, progress)
    if tiling == "reference":
        return run_reference(image, chunked(infer, batch), progress=progress)
    if tiling == "none":
        out = infer(image[None])[0]
        if progress:
            progress(1)
        return out
    raise ValueError(f"unknown tiling {tiling!r}; choose one of: {', '.join(TILINGS)}")
