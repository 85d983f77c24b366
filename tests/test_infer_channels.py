"""The CLI's channel policy per task (no network involved)."""

from __future__ import annotations

import numpy as np
import pytest

from dagl.degradations import mosaic_grbg
from dagl.io import LUMA
from dagl.runtime.channels import ChannelError, to_network

RNG = np.random.default_rng(0)


def test_gray_tasks_take_gray_as_is_and_identical_channels_silently():
    gray = RNG.random((10, 12), dtype=np.float32)
    assert to_network(gray, "jpeg") == (gray, None)
    out, note = to_network(np.repeat(gray[..., None], 3, axis=2), "denoise")
    assert note is None and np.array_equal(out, gray)


def test_colour_to_a_gray_task_is_luma_with_a_note():
    rgb = RNG.random((10, 12, 3), dtype=np.float32)
    out, note = to_network(rgb, "jpeg")
    np.testing.assert_allclose(out, 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2], rtol=1e-6)
    assert LUMA.sum() == pytest.approx(1.0) and "luma" in note


def test_demosaic_takes_a_mosaic_or_a_raw_frame():
    rgb = RNG.random((10, 12, 3), dtype=np.float32)
    mosaic = mosaic_grbg(rgb)
    assert to_network(mosaic, "demosaic") == (mosaic, None)
    raw = mosaic.sum(axis=2)  # one sample per pixel, in GRBG order
    out, note = to_network(raw, "demosaic")
    np.testing.assert_array_equal(out, mosaic)
    assert "raw" in note


@pytest.mark.parametrize("image,task,message", [
    (np.zeros((10, 12), np.float32), "real-denoise", "needs a 3-channel RGB image"),
    (np.zeros((10, 12, 5), np.float32), "jpeg", "5 channels"),
    (np.dstack([np.zeros((9, 9, 3)), np.full((9, 9), 0.5)]).astype(np.float32), "real-denoise", "transparent"),
])
def test_refusals(image, task, message):
    with pytest.raises(ChannelError, match=message):
        to_network(image, task)


def test_opaque_alpha_is_dropped():
    rgba = np.dstack([RNG.random((9, 9, 3)), np.ones((9, 9))]).astype(np.float32)
    out, _ = to_network(rgba, "real-denoise")
    np.testing.assert_array_equal(out, rgba[..., :3])
    gray_alpha = np.dstack([rgba[..., 0], np.ones((9, 9))]).astype(np.float32)
    assert to_network(gray_alpha, "jpeg")[0].shape == (9, 9)
