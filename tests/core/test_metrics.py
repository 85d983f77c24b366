"""PSNR and SSIM against scikit-image on real test images with their real degradations."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dagl.data.datasets import add_protocol_noise
from dagl.images.io import read_image
from dagl.images.metrics import psnr, ssim


def skimage_ssim(test: np.ndarray, clean: np.ndarray) -> float:
    """Wang et al. SSIM as scikit-image computes it, in float64 (float32 input would filter in float32)."""
    return structural_similarity(clean.astype(np.float64), test.astype(np.float64), gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False, data_range=1.0,
                                 channel_axis=-1 if clean.ndim == 3 else None)


@pytest.fixture(scope="module")
def pairs(datasets_dir):
    """(degraded, clean) pairs: stored MATLAB JPEGs (square and 768x512), a GRBG mosaic, protocol noise."""
    classic5 = read_image(datasets_dir / "classic5" / "baboon.bmp")
    live1 = read_image(datasets_dir / "live1" / "bikes.bmp")
    mcmaster = read_image(datasets_dir / "mcmaster18" / "01.tif")
    set12 = read_image(datasets_dir / "set12" / "01.png")
    return {
        "classic5 q10": (read_image(datasets_dir / "classic5" / "jpeg_q10" / "baboon.jpeg")[..., 0], classic5),
        "live1 q40": (read_image(datasets_dir / "live1" / "jpeg_q40" / "bikes.jpeg")[..., 0], live1),
        "mcmaster18 mosaic": (read_image(datasets_dir / "mcmaster18" / "mosaic" / "01.tif"), mcmaster),
        "set12 sigma 50": (add_protocol_noise(set12, 50), set12),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["classic5 q10", "live1 q40", "mcmaster18 mosaic", "set12 sigma 50"])
def test_psnr_and_ssim_match_scikit_image(pairs, name):
    degraded, clean = pairs[name]
    clamped = np.clip(degraded, 0, 1)  # the protocol scores the clamped output; scikit-image does not clamp
    assert abs(psnr(degraded, clean) - peak_signal_noise_ratio(clean.astype(np.float64), clamped.astype(np.float64),
                                                               data_range=1.0)) <= 1e-6
    assert abs(ssim(degraded, clean) - skimage_ssim(clamped, clean)) <= 1e-6


def test_noisy_input_is_scored_clamped(pairs):
    noisy, clean = pairs["set12 sigma 50"]
    assert noisy.min() < 0 and noisy.max() > 1  # otherwise this test would not test the clamp
    unclamped = 10 * np.log10(1 / np.mean((noisy.astype(np.float64) - clean) ** 2))
    assert psnr(noisy, clean) > unclamped + 0.1


def test_known_values():
    rng = np.random.default_rng(0)
    clean = rng.random((32, 40))
    assert psnr(clean, clean) == float("inf")
    assert ssim(clean, clean) == pytest.approx(1.0, abs=1e-12)
    # A uniform error of 0.1 is an MSE of 0.01: exactly 20 dB.
    assert psnr(np.clip(clean, 0.1, 1) - 0.1 + 0.0, np.clip(clean, 0.1, 1)) == pytest.approx(20.0, abs=1e-9)


def test_ssim_refuses_images_smaller_than_its_window():
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ssim(np.zeros((10, 30)), np.zeros((10, 30)))
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(np.zeros((20, 30)), np.zeros((20, 31)))
