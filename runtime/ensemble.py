"""The x8 geometric self-ensemble: run the 8 flips/rotations of a tile, undo each, average.

Used for the paper's tables. Each transform is undone exactly (flips and 90-degree rotations are
permutations), so for a network that were exactly equivariant the ensemble would change nothing;
the gain comes from averaging over its lack of equivariance.
"""

from __future__ import annotations

import numpy as np

from .tiling import Progress, TileFn

#: (quarter turns, flip left-right), applied as flip first, then rotation.
TRANSFORMS = tuple((turns, flip) for flip in (False, True) for turns in range(4))


def forward_transform(batch: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    """Transform (N, C, h, w) tiles; rotations of non-square tiles swap h and w."""
    out = batch[..., ::-1] if flip else batch
    return np.rot90(out, turns, axes=(2, 3))


def inverse_transform(batch: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    out = np.rot90(batch, -turns, axes=(2, 3))
    return out[..., ::-1] if flip else out


def ensemble(infer: TileFn, progress: Progress | None = None) -> TileFn:
    """``infer`` averaged over the 8 transforms (8 calls of ``infer``, each a batch as given).

    ``progress(n)`` is called after each of the 8 passes with the batch's tile count, so a progress
    bar moves during the 8x longer wait instead of once at its end.
    """
    def run(batch: np.ndarray) -> np.ndarray:
        total = np.zeros(batch.shape, dtype=np.float64)
        for turns, flip in TRANSFORMS:
            out = infer(np.ascontiguousarray(forward_transform(batch, turns, flip)))
            total += inverse_transform(out, turns, flip)
            if progress:
                progress(len(batch))
        return (total / len(TRANSFORMS)).astype(np.float32)
    return run
