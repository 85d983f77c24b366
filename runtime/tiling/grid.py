"""``grid``: fixed-size tiles on a regular grid, blended over their overlap.

``overlap`` pixels are shared between neighbours and blended with linear ramps so no seam shows.
Tiles go through the network ``batch`` at a time and are accumulated into the output, so memory
stays bounded by the image itself whatever its size; one tile size also suits fixed-shape engines.
"""

from __future__ import annotations

import numpy as np

from .base import PeakTile, Progress, TileFn, TileOptions, TilingPolicy, pad_to, register_tiling


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


def run_grid(image: np.ndarray, infer: TileFn, options: TileOptions,
             progress: Progress | None = None) -> np.ndarray:
    """Restore (C, H, W) tile by tile; images smaller than a tile are padded by reflection."""
    tile, overlap, batch = options.tile, options.overlap, options.batch
    channels, height, width = image.shape
    padded = pad_to(image, tile, tile)
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


@register_tiling
class GridTiling(TilingPolicy):
    name = "grid"
    summary = "fixed tiles blended over their overlap (fast, bounded memory)"

    def run(self, image: np.ndarray, infer: TileFn, options: TileOptions,
            progress: Progress | None = None) -> np.ndarray:
        return run_grid(image, infer, options, progress)

    def count_tiles(self, height: int, width: int, options: TileOptions) -> int:
        return len(grid_positions(height, width, options.tile, options.overlap))

    def peak_tile(self, height: int, width: int, options: TileOptions) -> PeakTile:
        """Every call is ``batch`` square tiles, whatever the image (small ones are padded up to one)."""
        return PeakTile(options.tile, options.tile, options.batch)

    def describe(self, options: TileOptions) -> str:
        return f"{self.name} (tile {options.tile}, overlap {options.overlap})"
