"""The test-set registry: protocol degradations, folder layout, and one-line errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from dagl.data.datasets import DatasetError, add_protocol_noise, centre_crop, datasets_root, folder_set, named_set, open_set
from dagl.images.io import read_image
from dagl.tasks.degradations import grbg_mask


def readme_noise(clean: np.ndarray, sigma: float) -> np.ndarray:
    """The README's recipe, literally: seed 1 right before the image, FloatTensor(1x1xHxW).normal_."""
    torch.manual_seed(1)
    noise = torch.FloatTensor(1, 1, *clean.shape).normal_(0, sigma / 255.0)
    return (torch.from_numpy(clean)[None, None] + noise)[0, 0].numpy()


def save_png(path, array: np.ndarray) -> None:
    Image.fromarray(np.round(array * 255).astype(np.uint8)).save(path)


def test_denoising_inputs_follow_the_readme_recipe(datasets_dir):
    evalset = named_set("set12", sigma=25, limit=3)
    assert evalset.tag == "set12-s25" and evalset.task == "denoise" and len(evalset) == 3
    samples = list(evalset)
    for sample in samples:
        clean = read_image(datasets_dir / "set12" / f"{sample.name}.png")
        np.testing.assert_array_equal(sample.clean, clean)
        np.testing.assert_array_equal(sample.degraded, readme_noise(clean, 25))  # bit-exact, order-independent
        assert sample.degraded.min() < 0  # not clipped
    # Images of the same size get the same noise: the seed is reset before every image.
    same = [s for s in samples if s.clean.shape == samples[0].clean.shape]
    np.testing.assert_allclose(same[0].degraded - same[0].clean, same[1].degraded - same[1].clean, atol=3e-7)


def test_car_inputs_are_the_stored_matlab_jpegs_as_one_channel(datasets_dir):
    sample = next(iter(named_set("classic5", quality=10)))
    stored = read_image(datasets_dir / "classic5" / "jpeg_q10" / f"{sample.name}.jpeg")
    assert stored.ndim == 3 and sample.degraded.ndim == 2
    np.testing.assert_array_equal(sample.degraded, stored[..., 0])
    np.testing.assert_array_equal(sample.clean, read_image(datasets_dir / "classic5" / f"{sample.name}.bmp"))


def test_demosaic_inputs_are_grbg_mosaics_and_crops_keep_the_phase():
    sample = next(iter(named_set("mcmaster18", crop=63)))
    assert sample.degraded.shape == (63, 63, 3)
    mask = grbg_mask(63, 63)
    assert np.all(sample.degraded[mask == 0] == 0)
    np.testing.assert_array_equal(sample.degraded, sample.clean * mask)


def test_centre_crop_uses_even_offsets():
    image = np.arange(9 * 11).reshape(9, 11)
    np.testing.assert_array_equal(centre_crop(image, 4), image[2:6, 2:6])
    np.testing.assert_array_equal(centre_crop(image, 6), image[0:6, 2:8])  # (9-6)//2 = 1 -> 0
    assert centre_crop(image, 50).shape == (9, 11)


def test_folder_layout_matches_by_stem(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "clean").mkdir()
    (tmp_path / "degraded").mkdir()
    clean = np.round(rng.random((20, 24)) * 255) / 255
    save_png(tmp_path / "clean" / "a.png", clean)
    np.save(tmp_path / "degraded" / "a.npy", (clean * 0.5).astype(np.float32))
    (sample,) = folder_set(tmp_path, "jpeg")
    assert sample.name == "a"
    np.testing.assert_allclose(sample.clean, clean, atol=1e-7)
    np.testing.assert_allclose(sample.degraded, clean * 0.5, atol=1e-7)


def test_folder_of_clean_images_with_sigma_gets_protocol_noise(tmp_path):
    (tmp_path / "clean").mkdir()
    save_png(tmp_path / "clean" / "x.png", np.full((16, 18), 0.5))
    (sample,) = open_set(str(tmp_path), "denoise", sigma=15)
    np.testing.assert_array_equal(sample.degraded, readme_noise(sample.clean, 15))
    np.testing.assert_array_equal(add_protocol_noise(sample.clean, 15), sample.degraded)


def test_datasets_root_follows_the_environment(tmp_path, monkeypatch):
    (tmp_path / "set12").mkdir()
    save_png(tmp_path / "set12" / "only.png", np.zeros((16, 16)))
    monkeypatch.setenv("DAGL_DATASETS", str(tmp_path))
    assert datasets_root() == tmp_path
    assert [p[0] for p in named_set("set12", sigma=15).pairs] == ["only"]


@pytest.mark.parametrize(("source", "task", "options", "message"), [
    ("set12", "denoise", {}, "set12: denoising needs --sigma"),
    ("set12", "jpeg", {"sigma": 25}, "set12 is a denoise test set, but the model is for 'jpeg'"),
    ("classic5", "jpeg", {}, "needs --quality"),
    ("classic5", "jpeg", {"quality": 15}, "jpeg_q15: not found; stored qualities: jpeg_q10, jpeg_q20"),
    ("classic5", "jpeg", {"quality": 10, "sigma": 25}, "--sigma applies to denoising sets only"),
    ("mcmaster18", "demosaic", {"quality": 10}, "--quality applies to the JPEG sets"),
    ("nope", "jpeg", {}, "'nope' is neither a test set (set12, bsd68"),
])
def test_bad_requests_are_one_line_errors(datasets_dir, source, task, options, message):
    with pytest.raises(DatasetError, match=re.escape(message)) as info:
        open_set(source, task, **options)
    assert "\n" not in str(info.value)


def test_bad_folders_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="expected a clean/ subfolder"):
        folder_set(tmp_path, "jpeg")
    (tmp_path / "clean").mkdir()
    with pytest.raises(DatasetError, match="no degraded/ subfolder; give --sigma"):
        folder_set(tmp_path, "jpeg")
    (tmp_path / "degraded").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        folder_set(tmp_path, "jpeg")
    save_png(tmp_path / "clean" / "a.png", np.zeros((16, 16)))
    save_png(tmp_path / "clean" / "b.png", np.zeros((16, 16)))
    save_png(tmp_path / "degraded" / "a.png", np.zeros((16, 17)))
    with pytest.raises(DatasetError, match="no degraded input for b"):
        folder_set(tmp_path, "jpeg")
    save_png(tmp_path / "degraded" / "b.png", np.zeros((16, 16)))
    with pytest.raises(DatasetError, match=r"a.png: shape \(16, 17\) differs from its clean image's \(16, 16\)"):
        list(folder_set(tmp_path, "jpeg"))
    colour = np.zeros((16, 16, 3))
    colour[..., 0] = 1
    save_png(tmp_path / "degraded" / "a.png", colour)
    with pytest.raises(DatasetError, match="colour image, but the task takes gray images"):
        list(folder_set(tmp_path, "jpeg"))
    with pytest.raises(DatasetError, match="takes 3-channel images"):
        list(folder_set(tmp_path, "demosaic"))


@pytest.mark.parametrize("sub", ["clean", "degraded"])
def test_duplicate_stems_in_an_eval_folder_are_refused(tmp_path, sub):
    """clean/a.png and clean/a.bmp: which is the ground truth? Refused instead of picking one."""
    for folder in ("clean", "degraded"):
        (tmp_path / folder).mkdir()
        save_png(tmp_path / folder / "a.png", np.zeros((16, 16)))
    Image.new("L", (16, 16)).save(tmp_path / sub / "a.bmp")
    with pytest.raises(DatasetError) as info:
        folder_set(tmp_path, "jpeg")
    assert str(info.value) == (f"{tmp_path / sub}: a.bmp and a.png share the name 'a'; pairs are matched by name, "
                               f"so keep one")
