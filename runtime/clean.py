"""``dagl-infer --reference``: how much a restoration gained, against the clean image a user has.

A user trying the toolkit on a test image usually has its clean original; the number they want is
the PSNR of the input and of the output against it, scored as ``dagl-eval`` scores (float output
clamped to [0, 1], data range 1, no shave), in the output's own channels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dagl.errors import UserInputError
from dagl.images.io import IMAGE_SUFFIXES, read_image, to_luma
from dagl.images.metrics import psnr


def find_clean(clean: Path, source: Path, inputs: int) -> Path | None:
    """The clean image for ``source``: ``clean`` itself (one input), or the file of ``source``'s
    stem in the folder ``clean`` (``None`` when the folder has none)."""
    if clean.is_dir():
        matches = sorted(p for p in clean.iterdir()
                         if p.stem == source.stem and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        return matches[0] if matches else None
    if not clean.is_file():
        raise UserInputError(f"--reference {clean}: no such file or folder")
    if inputs != 1:
        raise UserInputError(f"--reference {clean} is one file for {inputs} inputs: give a folder of "
                             f"clean images named like the inputs")
    return clean


def load_clean(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """The clean image in the channels of an output of ``shape`` (a gray output against colour: its
    luma), read before any work so that a mismatch costs no inference."""
    clean = read_image(path)
    if clean.shape == shape:
        return clean
    if len(shape) == 2 and clean.ndim == 3 and clean.shape[:2] == shape:
        return to_luma(clean[..., :3])
    raise UserInputError(f"--reference {path}: {clean.shape[1]}x{clean.shape[0]} does not match "
                         f"the image ({shape[1]}x{shape[0]})")


def gain_line(name: str, degraded: np.ndarray, restored: np.ndarray, clean: np.ndarray, clean_name: str) -> str:
    """``name: PSNR 27.82 -> 28.61 dB against clean.bmp (+0.79 dB)``; ``degraded`` in the output's channels."""
    before, after = psnr(degraded, clean), psnr(restored, clean)
    return f"{name}: PSNR {before:.2f} -> {after:.2f} dB against {clean_name} ({after - before:+.2f} dB)"
