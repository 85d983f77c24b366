"""Image-quality metrics of the paper's protocol (docs/dagl-reference.md).

Both metrics clamp the image under test to [0, data_range] first, because the protocol scores the
network's float output clamped to [0, 1] (not quantised to 8 bits) and no border is shaved.
They compute in float64 so that a comparison between two backends is not blurred by the metric.
"""

from __future__ import annotations

import numpy as np

#: Wang et al. (2004) SSIM constants: an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _clamped(image: np.ndarray, data_range: float) -> np.ndarray:
    return np.clip(np.asarray(image, dtype=np.float64), 0.0, data_range)


def psnr(output: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR in dB of ``output`` clamped to [0, data_range] (the protocol: float, no shave)."""
    out = _clamped(output, data_range)
    mse = float(np.mean((out - np.asarray(target, dtype=np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def _gaussian_taps() -> np.ndarray:
    radius = SSIM_WINDOW // 2
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-(x**2) / (2.0 * SSIM_SIGMA**2))
    return taps / taps.sum()


def _filter_valid(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering over the first two axes (MATLAB's ``filter2(w, x, 'valid')``).

    Only windows that lie entirely inside the image are kept, as in Wang et al.'s reference code;
    this is also what scikit-image's cropped mean computes, so no padding rule is involved.
    """
    size = len(taps)
    rows = image.shape[0] - size + 1
    cols = image.shape[1] - size + 1
    vertical = sum(tap * image[k:k + rows] for k, tap in enumerate(taps))
    return sum(tap * vertical[:, k:k + cols] for k, tap in enumerate(taps))


def ssim(output: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004) of ``output`` clamped to [0, data_range] against ``target``.

    Gray (H, W) or colour (H, W, C) images; for colour, the SSIM map of each channel is computed
    separately and the mean is taken over all channels and positions (scikit-image's
    ``channel_axis=-1``), since the paper gives no colour rule. Variances use the population
    normalisation (1/N), as in the reference MATLAB code.
    """
    x = _clamped(output, data_range)
    y = np.asarray(target, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"ssim: shapes differ, {x.shape} vs {y.shape}")
    if min(x.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"ssim: image {x.shape[:2]} is smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} window")
    taps = _gaussian_taps()
    mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
    var_x = _filter_valid(x * x, taps) - mu_x**2
    var_y = _filter_valid(y * y, taps) - mu_y**2
    cov = _filter_valid(x * y, taps) - mu_x * mu_y
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())
