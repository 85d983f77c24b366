"""The held-out split: training files that are never trained on, so weights are chosen on them.

The paper's test sets (Classic5, LIVE1, Set12, ...) are for reporting: choosing weights on them
(early stopping, ``--init``'s keep-the-better rule, the relay's ship decision) would make their
figures optimistic. So a fixed list of file names is held out of every ``--data`` folder: those
files are skipped by the training pairs and become the validation set ``--val held-out``, the
default. Their degradation is reproducible: every CAR quality of the task for JPEG (Pillow, as
training encodes), otherwise the task's training degradation drawn from a generator seeded by
``(HELD_OUT_SEED, image index)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.datasets import centre_crop
from ..tasks.configs import TaskConfig
from ..tasks.degradations import jpeg_pil
from .config import HELD_OUT

__all__ = ["HELD_OUT", "HELD_OUT_FILES", "HELD_OUT_SEED", "held_out_pairs", "is_held_out"]
#: Seed of the held-out degradations that draw (noise); JPEG and mosaics draw nothing.
HELD_OUT_SEED = 27
#: 24 of BSD400's 400 file names (6 %), drawn once with ``numpy.random.default_rng(27).choice(400, 24,
#: replace=False)``; written out so that the split never depends on a library's generator.
HELD_OUT_FILES = frozenset({
    "test_001.png", "test_004.png", "test_047.png", "test_073.png", "test_077.png", "test_078.png",
    "test_081.png", "test_116.png", "test_119.png", "test_120.png", "test_125.png", "test_126.png",
    "test_161.png", "test_168.png", "test_229.png", "test_258.png", "test_264.png", "test_290.png",
    "test_307.png", "test_354.png", "test_360.png", "test_374.png", "test_389.png", "test_396.png",
})


def is_held_out(path: Path) -> bool:
    """Whether a training file belongs to the held-out split (by its name, in any folder)."""
    return path.name in HELD_OUT_FILES


def held_out_pairs(clean: Sequence[np.ndarray], twins: Sequence[np.ndarray] | None, config: TaskConfig,
                   sigma: int | None, crop: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(label, degraded, clean)`` for the centred ``crop`` of each held-out image, (H, W, C) float32.

    JPEG tasks give one pair per CAR quality (label ``q10`` ...), so the score covers every quality
    the model serves; other tasks give one pair per image (label ``""``).
    """
    pairs: list[tuple[str, np.ndarray, np.ndarray]] = []
    for index, image in enumerate(clean):
        window = centre_crop(image, crop)
        if config.qualities:
            pairs += [(f"q{q}", jpeg_pil(window[..., 0], q)[..., None], window) for q in config.qualities]
            continue
        twin = None if twins is None else centre_crop(twins[index], crop)
        rng = np.random.default_rng([HELD_OUT_SEED, index])
        pairs.append(("", config.degradation.degrade(window, rng, sigma, twin), window))
    return pairs
