"""An independent score of a weights file: scikit-image PSNR of one centre crop, the network run by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

import dagl

CROP = 44  # under the reference chop's threshold: one tile, the whole crop


def independent_psnr(weights: Path, test_set: Path, ensemble: bool = False) -> tuple[float, float]:
    """scikit-image PSNR of the JPEG input and of the restored centre crop of a CAR test set's first q10 image
    (by name): the network run here on the whole CROP x CROP window, which is one tile of the release's chop;
    with ``ensemble``, the mean of its 8 flips/rotations, each undone."""
    first = sorted(test_set.glob("*.bmp"))[0]
    clean = np.asarray(Image.open(first).convert("L"), np.float32) / 255
    jpeg = np.asarray(Image.open(test_set / "jpeg_q10" / f"{first.stem}.jpeg"), np.float32)
    jpeg = (jpeg[..., 0] if jpeg.ndim == 3 else jpeg) / 255
    window = _centre(clean)
    return _scores(dagl.load("jpeg", weights=weights), clean[window], jpeg[window], ensemble)


def independent_denoise_psnr(weights: Path, test_set: Path, sigma: int,
                             ensemble: bool = False) -> tuple[float, float]:
    """The same for Gaussian denoising: the centre crop of a test set's first image (by name) plus the
    release's test noise on it (``torch.manual_seed(1)``, then ``normal_(0, sigma / 255)``, not clipped)."""
    first = sorted(test_set.glob("*.png"))[0]
    clean = np.asarray(Image.open(first).convert("L"), np.float32) / 255
    clean = np.ascontiguousarray(clean[_centre(clean)])
    torch.manual_seed(1)
    noisy = clean + torch.FloatTensor(1, 1, *clean.shape).normal_(0, sigma / 255.0)[0, 0].numpy()
    return _scores(dagl.load("denoise", weights=weights, sigma=sigma), clean, noisy, ensemble)


def _centre(image: np.ndarray) -> tuple[slice, slice]:
    top, left = ((n - CROP) // 2 // 2 * 2 for n in image.shape)
    return slice(top, top + CROP), slice(left, left + CROP)


def _scores(model: torch.nn.Module, clean: np.ndarray, degraded: np.ndarray, ensemble: bool) -> tuple[float, float]:
    """PSNR of ``degraded`` and of the model's output for it (the 8-view mean with ``ensemble``)."""
    from skimage.metrics import peak_signal_noise_ratio

    x = torch.from_numpy(degraded.copy())[None, None]
    views = [(turns, flip) for flip in (False, True) for turns in range(4)] if ensemble else [(0, False)]
    outputs = []
    with torch.no_grad():
        for turns, flip in views:
            seen = torch.rot90(x.flip(-1) if flip else x, turns, (2, 3))
            out = torch.rot90(model(seen), -turns, (2, 3))
            outputs.append((out.flip(-1) if flip else out)[0, 0].double().numpy())
    restored = np.mean(outputs, axis=0).astype(np.float32)
    return (peak_signal_noise_ratio(clean, degraded, data_range=1.0),
            peak_signal_noise_ratio(clean, np.clip(restored, 0, 1), data_range=1.0))
