"""Task behaviour lives on the task record: one alpha rule for every reader, and a variant is one entry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from dagl.data.datasets import DATASETS, folder_set
from dagl.errors import DaglError
from dagl.images.io import read_image
from dagl.runtime.channels import to_network
from dagl.tasks.configs import TASKS, get_config
from dagl.tasks.degradations import TrainingJpeg, jpeg_pil
from dagl.train.data import TrainingPairs, describe_degradation, load_images

SIDE = 20


def read_as(reader: str, task: str, path, monkeypatch) -> np.ndarray:
    """``path`` read the way ``reader`` reads an image for ``task``, as (H, W[, C]) network planes."""
    if reader == "dagl-infer":
        return to_network(read_image(path), task).array
    if reader == "evaluation":
        return next(iter(folder_set(path.parent.parent, task, sigma=15))).clean
    if reader == "training":
        stored = load_images([path.parent], get_config(task), patch=8)[0][0]
        return np.squeeze(stored, -1) if stored.shape[-1] == 1 else stored
    raise AssertionError(reader)


def rgba_file(tmp_path, rgb: np.ndarray, alpha: int):
    (tmp_path / "clean").mkdir()
    path = tmp_path / "clean" / "a.png"
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], alpha, np.uint8)]), mode="RGBA").save(path)
    return path


READERS = ["dagl-infer", "evaluation", "training"]  # calibration reads through training (held-out crops)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("task", ["jpeg", "demosaic"])
def test_every_reader_drops_an_opaque_alpha(tmp_path, monkeypatch, reader, task):
    pixels = np.random.default_rng(1).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    if task == "jpeg":  # a gray picture stored as RGBA
        pixels[..., 1] = pixels[..., 2] = pixels[..., 0]
    planes = read_as(reader, task, rgba_file(tmp_path, pixels, 255), monkeypatch)
    expected = pixels[..., 0] if task == "jpeg" else pixels
    scale = 65535 if reader == "training" else 1  # training holds uint16 (k/255 -> k*257)
    np.testing.assert_allclose(planes, expected / 255 * scale, atol=1e-5 * scale)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("task", ["jpeg", "demosaic"])
def test_every_reader_refuses_transparent_pixels(tmp_path, monkeypatch, reader, task):
    gray = np.full((SIDE, SIDE, 3), 128, np.uint8)
    with pytest.raises(DaglError, match="transparent pixels") as caught:
        read_as(reader, task, rgba_file(tmp_path, gray, 254), monkeypatch)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)


def test_the_test_sets_are_the_records_and_keep_the_protocol():
    assert {name: spec.task for name, spec in DATASETS.items()} == {
        "set12": "denoise", "bsd68": "denoise", "urban100": "denoise", "live1": "jpeg", "classic5": "jpeg",
        "mcmaster18": "demosaic"}
    assert {name: spec.inputs.describe(25, 10) for name, spec in DATASETS.items() if name != "bsd68"} == {
        "set12": "Gaussian noise sigma 25, torch seed 1", "urban100": "Gaussian noise sigma 25, torch seed 1",
        "live1": "stored MATLAB JPEG q10", "classic5": "stored MATLAB JPEG q10", "mcmaster18": "stored GRBG mosaic"}


def test_a_task_variant_is_one_entry(monkeypatch):
    """A q10-only CAR variant, registered as one record: training, the channel policy and the sigma rule follow."""
    variant = dataclasses.replace(get_config("jpeg"), name="jpeg-q10", qualities=(10,), degradation=TrainingJpeg((10,)),
                                  test_sets=())
    monkeypatch.setitem(TASKS, "jpeg-q10", variant)
    image = np.random.default_rng(2).integers(0, 65536, (40, 40, 1)).astype(np.uint16)
    data = TrainingPairs([image], None, get_config("jpeg-q10"), sigma=None, patch=16, seed=0)
    for position in range(4):
        degraded, clean = data[(0, position)]
        np.testing.assert_array_equal(degraded[0].numpy(), jpeg_pil(clean[0].numpy(), 10))
    assert "quality drawn uniformly from {10}" in describe_degradation(variant, None)
    gray = np.random.default_rng(3).random((12, 12), dtype=np.float32)
    assert to_network(np.dstack([gray] * 3), "jpeg-q10").array.shape == (12, 12)
    assert get_config("jpeg-q10").check_sigma(None) is None
