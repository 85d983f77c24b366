"""``--tiling reference``: the authors' recursive quadrant chop, exactly as docs/dagl-reference.md states it.

A parity run with it reproduces the paper's numbers (docs/dagl-reference.md, "The paper's
evaluation protocol").
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .base import PeakTile, Progress, TileFn, TileOptions, TilingPolicy, chunked, pad_to, register_tiling

#: The release's chop threshold: tiles with fewer pixels than this go through the network.
CHOP_MIN_SIZE = 10000
#: Below this side the release's chop indexes outside the image (its tile size h//2//4*4 + 24
#: exceeds h); smaller images are reflection-padded up to it first, a case the release never ran.
CHOP_MIN_SIDE = 44


def chop_geometry(height: int, width: int) -> tuple[int, int, int, int]:
    """(h_half, w_half, h_size, w_size) of one level of the release's chop."""
    h_half, w_half = height // 2, width // 2
    return h_half, w_half, (h_half // 4) * 4 + 24, (w_half // 4) * 4 + 24


def chop_leaves(height: int, width: int, min_size: int = CHOP_MIN_SIZE) -> Iterator[tuple[int, int]]:
    """Shapes of the leaf tiles the chop runs through the network, in execution order."""
    _, _, h_size, w_size = chop_geometry(height, width)
    for _ in range(4):
        if h_size * w_size < min_size:
            yield h_size, w_size
        else:
            yield from chop_leaves(h_size, w_size, min_size)


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


def run_chop(image: np.ndarray, infer: TileFn, min_size: int = CHOP_MIN_SIZE,
                  progress: Progress | None = None) -> np.ndarray:
    """The release's recursive quadrant chop of (C, H, W) (docs/dagl-reference.md, "The paper's evaluation protocol")."""
    _, height, width = image.shape
    padded = pad_to(image, CHOP_MIN_SIDE, CHOP_MIN_SIDE)
    return _chop(padded, infer, min_size, progress)[:, :height, :width]


@register_tiling
class ChopTiling(TilingPolicy):
    name = "reference"  # what users type (--tiling reference); the code calls it the chop
    summary = "the paper's recursive chop (for parity)"

    def run(self, image: np.ndarray, infer: TileFn, options: TileOptions,
            progress: Progress | None = None) -> np.ndarray:
        return run_chop(image, chunked(infer, options.batch), progress=progress)

    def count_tiles(self, height: int, width: int, options: TileOptions) -> int:
        side = CHOP_MIN_SIDE
        return sum(1 for _ in chop_leaves(max(height, side), max(width, side)))

    def peak_tile(self, height: int, width: int, options: TileOptions) -> PeakTile:
        """Leaves hold fewer than CHOP_MIN_SIZE pixels, whatever the image: bounded by that square."""
        side = int(CHOP_MIN_SIZE ** 0.5)
        return PeakTile(side, side, options.batch, "reference tile")
