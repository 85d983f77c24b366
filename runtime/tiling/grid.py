"""``grid``: tiles of at most ``tile`` on a regular grid, blended over their overlap.

``overlap`` pixels (at least) are shared between neighbours and blended with linear ramps so no seam shows.
An axis takes the fewest ``tile``-long windows that cover it, shrunk to the smallest side that many need and
spread evenly: GFAM's cost grows faster than a tile's area, so on a 256x256 image 16 tiles of 76x76 cost
about 0.9x as much as 16 of 80x80 that overlap by up to 32 (docs/tiling.md). Sides stay multiples of
GFAM's query stride, :data:`~dagl.artefact.TILE_ALIGN`. Every tile of an image has one
shape, so a backend compiled per shape compiles once per image size. Tiles go through the network ``batch``
at a time and are accumulated into the output, so memory stays bounded by the image itself whatever its size.
"""

from __future__ import annotations

import numpy as np

from dagl.artefact import TILE_ALIGN

from .base import PeakTile, Progress, TileFn, TileOptions, TilingPolicy, pad_to, register_tiling


def axis_tiles(length: int, tile: int, overlap: int) -> tuple[int, list[int]]:
    """The side and start offsets of the tiles along one axis of ``length`` pixels.

    As many tiles as ``tile``-long windows overlapping by >= ``overlap`` need to cover it, each as short as
    that count allows (rounded up to a multiple of :data:`~dagl.artefact.TILE_ALIGN`, which GFAM's strided
    windows need, but never above ``tile``), spread evenly from edge to edge, so every tile holds real pixels and
    neighbours share at least ``overlap``. An axis no longer than ``tile`` is one tile of ``tile`` (the image is padded up to it).
    """
    if length <= tile:
        return tile, [0]
    count = -(-(length - overlap) // (tile - overlap))
    side = -(-(length + (count - 1) * overlap) // count)
    side = min(tile, -(-side // TILE_ALIGN) * TILE_ALIGN)
    return side, [i * (length - side) // (count - 1) for i in range(count)]


def blend_ramp(tile: int, overlap: int) -> np.ndarray:
    """1-D weights: 1 inside, rising linearly over ``overlap`` pixels at both ends, never 0.

    Outputs are divided by the summed weights, so at the image border (one tile only) the ramp
    cancels out, and inside overlaps each tile fades out where its context is poorest.
    """
    index = np.arange(tile, dtype=np.float32)
    ramp = np.minimum(index + 1, tile - index) / (overlap + 1)
    return np.minimum(ramp, 1.0).astype(np.float32)


def grid_layout(height: int, width: int, tile: int, overlap: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """The tile shape of an (H, W) image and the top-left corners of its tiles (after padding to one tile)."""
    tile_h, tops = axis_tiles(height, tile, overlap)
    tile_w, lefts = axis_tiles(width, tile, overlap)
    return (tile_h, tile_w), [(top, left) for top in tops for left in lefts]


def run_grid(image: np.ndarray, infer: TileFn, options: TileOptions,
             progress: Progress | None = None) -> np.ndarray:
    """Restore (C, H, W) tile by tile; images smaller than a tile are padded by reflection."""
    tile, overlap, batch = options.tile, options.overlap, options.batch
    channels, height, width = image.shape
    padded = pad_to(image, tile, tile)
    (tile_h, tile_w), positions = grid_layout(height, width, tile, overlap)
    weight_2d = np.outer(blend_ramp(tile_h, overlap), blend_ramp(tile_w, overlap))
    out = np.zeros(padded.shape, dtype=np.float32)
    weights = np.zeros(padded.shape[1:], dtype=np.float32)
    for start in range(0, len(positions), batch):
        group = positions[start:start + batch]
        tiles = np.stack([padded[:, t:t + tile_h, l:l + tile_w] for t, l in group])
        for (top, left), restored in zip(group, infer(tiles)):
            out[:, top:top + tile_h, left:left + tile_w] += restored * weight_2d
            weights[top:top + tile_h, left:left + tile_w] += weight_2d
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
        return len(grid_layout(height, width, options.tile, options.overlap)[1])

    def peak_tile(self, height: int, width: int, options: TileOptions) -> PeakTile:
        """At most ``batch`` tiles of at most ``tile`` square, whatever the image (small ones are padded up to one)."""
        return PeakTile(options.tile, options.tile, options.batch)

    def describe(self, options: TileOptions) -> str:
        return f"{self.name} (tile {options.tile}, overlap {options.overlap})"
