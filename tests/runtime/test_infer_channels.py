"""The CLI's channel policy per task (no network involved)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dagl.images.colour import rgb_to_ycbcr
from dagl.images.io import read_image
from dagl.runtime.channels import ChannelError, to_network
from dagl.tasks.degradations import mosaic_grbg
from colour_images import RNG, colour_jpeg, jfif_rgb, jfif_ycbcr


def test_gray_tasks_take_gray_as_is_and_identical_channels_silently():
    gray = RNG.random((10, 12), dtype=np.float32)
    image = to_network(gray, "jpeg")
    assert image.array is gray and image.note is None and image.to_file(gray) is gray
    image = to_network(np.repeat(gray[..., None], 3, axis=2), "denoise")
    assert image.note is None and np.array_equal(image.array, gray) and image.to_file(gray).shape == (10, 12)


def test_ycbcr_is_jfif_and_what_pillow_decodes_to(tmp_path):
    jpeg = colour_jpeg(tmp_path / "photo.jpg")
    rgb = read_image(jpeg)
    ycbcr = rgb_to_ycbcr(rgb)
    np.testing.assert_allclose(ycbcr, jfif_ycbcr(rgb), atol=1e-6)
    with Image.open(jpeg) as img:  # Pillow's decode, then its own (8-bit, rounded) YCbCr conversion
        pillow = np.asarray(img.convert("RGB").convert("YCbCr"), dtype=np.float64) / 255
    diff = np.abs(ycbcr - pillow) * 255  # in 8-bit levels: Pillow's fixed point floors
    assert diff.max() < 1.5 and diff.mean() < 0.6


def test_colour_into_a_gray_task_restores_luma_and_keeps_chroma_exactly(tmp_path):
    rgb = read_image(colour_jpeg(tmp_path / "photo.jpg"))
    image = to_network(rgb, "jpeg", chroma="keep")
    assert "restored the luma, kept the colour" in image.note and image.planes == [image.array]
    np.testing.assert_allclose(image.array, jfif_ycbcr(rgb)[..., 0], atol=1e-6)
    restored = np.clip(0.8 * image.array + 0.1 + 0.02 * np.roll(image.array, 3, axis=1), 0, 1)  # any gray "model"
    out = image.to_file(restored)
    assert out.shape == rgb.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    in_gamut = ((out > 0) & (out < 1)).all(axis=2)  # pixels the final clamp did not touch
    assert in_gamut.mean() > 0.95
    got, want = jfif_ycbcr(out), jfif_ycbcr(rgb)
    np.testing.assert_allclose(got[..., 1:][in_gamut], want[..., 1:][in_gamut], atol=1e-6)
    np.testing.assert_allclose(got[..., 0][in_gamut], restored[in_gamut], atol=1e-6)
    assert np.abs(got[..., 1:] - want[..., 1:]).max() > 1e-3 or in_gamut.all()  # clamped ones did move


class FakeNetwork:
    """A gray "model" that is not the identity, recording the planes it is given (Restorer's call shape)."""

    def __init__(self):
        self.seen = []

    def __call__(self, plane, progress=None):
        self.seen.append(plane.copy())
        if progress is not None:
            progress(1)
        return np.clip(0.9 * plane + 0.03 + 0.05 * np.roll(plane, 2, axis=0), 0, 1).astype(np.float32)


def test_chroma_restore_runs_cb_and_cr_through_the_network_as_gray_planes(tmp_path):
    rgb = read_image(colour_jpeg(tmp_path / "photo.jpg"))
    image = to_network(rgb, "jpeg", chroma="restore")
    assert "restored the luma and the chroma" in image.note
    network, ticks = FakeNetwork(), []
    out = image.restore(network, progress=ticks.append)
    want = jfif_ycbcr(rgb)  # T.871's printed formulas, not dagl.images.colour
    assert len(network.seen) == 3 and ticks == [1, 1, 1]
    for plane, seen in zip(np.moveaxis(want, -1, 0), network.seen):  # Y, Cb, Cr, each a full-size (H, W) plane
        assert seen.shape == rgb.shape[:2] and seen.dtype == np.float32
        np.testing.assert_allclose(seen, plane, atol=1e-6)
    by_hand = np.clip(jfif_rgb(*(network(plane.astype(np.float32)) for plane in np.moveaxis(want, -1, 0))), 0, 1)
    assert out.shape == rgb.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, by_hand, atol=1e-5)
    kept = to_network(rgb, "jpeg", chroma="keep").restore(network)  # the decoded chroma: a different picture
    np.testing.assert_allclose(kept, np.clip(jfif_rgb(network(want[..., 0].astype(np.float32)), want[..., 1],
                                                      want[..., 2]), 0, 1), atol=1e-5)
    assert np.abs(kept - out).max() > 0.01


def test_chroma_is_only_for_a_gray_task_given_colour():
    gray = RNG.random((10, 12), dtype=np.float32)
    network = FakeNetwork()
    assert len(to_network(gray, "denoise", chroma="restore").planes) == 1  # a gray photo has no chroma
    rgb = RNG.random((10, 12, 3), dtype=np.float32)
    image = to_network(rgb, "real-denoise", chroma="restore")  # a colour network sees all three at once
    assert len(image.planes) == 1 and image.restore(network).shape == (10, 12, 3) and len(network.seen) == 1
    with pytest.raises(ValueError, match="keep, restore"):
        to_network(rgb, "jpeg", chroma="all")


def test_opaque_alpha_is_carried_through_around_the_restored_colour():
    rgb = RNG.uniform(0.2, 0.8, (9, 9, 3)).astype(np.float32)
    image = to_network(np.dstack([rgb, np.ones((9, 9), np.float32)]), "denoise")
    out = image.to_file(image.array)  # an identity "model": the photo comes back as it went in
    assert out.shape == (9, 9, 4) and np.array_equal(out[..., 3], np.ones((9, 9)))
    np.testing.assert_allclose(out[..., :3], rgb, atol=1e-6)


def test_demosaic_takes_a_mosaic_or_a_raw_frame():
    rgb = RNG.random((10, 12, 3), dtype=np.float32)
    mosaic = mosaic_grbg(rgb)
    image = to_network(mosaic, "demosaic")
    assert image.array is mosaic and image.note is None
    raw = mosaic.sum(axis=2)  # one sample per pixel, in GRBG order
    image = to_network(raw, "demosaic")
    np.testing.assert_array_equal(image.array, mosaic)
    assert "raw" in image.note


@pytest.mark.parametrize("image,task,message", [
    (np.zeros((10, 12), np.float32), "real-denoise", "needs a 3-channel RGB image"),
    (np.zeros((10, 12, 5), np.float32), "jpeg", "5 channels"),
    (np.dstack([np.zeros((9, 9, 3)), np.full((9, 9), 0.5)]).astype(np.float32), "real-denoise", "transparent"),
])
def test_refusals(image, task, message):
    with pytest.raises(ChannelError, match=message):
        to_network(image, task)


def test_opaque_alpha_goes_around_the_network():
    rgba = np.dstack([RNG.random((9, 9, 3)), np.ones((9, 9))]).astype(np.float32)
    image = to_network(rgba, "real-denoise")
    np.testing.assert_array_equal(image.array, rgba[..., :3])
    np.testing.assert_array_equal(image.to_file(image.array), rgba)
    gray_alpha = np.dstack([rgba[..., 0], np.ones((9, 9))]).astype(np.float32)
    image = to_network(gray_alpha, "jpeg")
    assert image.array.shape == (9, 9) and image.to_file(image.array).shape == (9, 9, 2)
