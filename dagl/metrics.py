"""Image-quality metrics of the paper's protocol (../shared/datasets/README.md)."""

from __future__ import annotations

import numpy as np


def psnr(output: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR in dB of ``output`` clamped to [0, data_range] (the protocol: float, no shave)."""
    out = np.clip(np.asarray(output, dtype=np.float64), 0.0, data_range)
    mse = float(np.mean((out - np.asarray(target, dtype=np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)
