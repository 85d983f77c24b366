"""``none``: the whole image in one network call (its cost grows with the square of its area)."""

from __future__ import annotations

import numpy as np

from .base import PeakTile, Progress, TileFn, TileOptions, TilingPolicy, register_tiling


@register_tiling
class WholeImage(TilingPolicy):
    name = "none"
    summary = "whole image at once (cost grows with area^2)"

    def run(self, image: np.ndarray, infer: TileFn, options: TileOptions,
            progress: Progress | None = None) -> np.ndarray:
        out = infer(image[None])[0]
        if progress:
            progress(1)
        return out

    def count_tiles(self, height: int, width: int, options: TileOptions) -> int:
        return 1

    def peak_tile(self, height: int, width: int, options: TileOptions) -> PeakTile:
        return PeakTile(height, width, 1, "whole image")
