"""write_image: formats, bit depths, atomicity, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from dagl.io import ImageWriteError, read_image, write_image


@pytest.fixture
def gray():
    return np.random.default_rng(0).random((20, 30), dtype=np.float32)


@pytest.mark.parametrize("name,bit_depth,tolerance", [("a.png", 8, 0.5 / 255), ("a.png", 16, 0.5 / 65535),
                                                       ("a.tif", 8, 0.5 / 255), ("a.tif", 16, 0.5 / 65535),
                                                       ("a.tif", 32, 0.0), ("a.npy", 8, 0.0)])
def test_round_trip_within_quantisation(tmp_path, gray, name, bit_depth, tolerance):
    path = write_image(tmp_path / name, gray, bit_depth)
    assert np.abs(read_image(path) - gray).max() <= tolerance + 1e-7
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_samples_are_stored_at_the_requested_depth(tmp_path, gray):
    with Image.open(write_image(tmp_path / "a.png", gray, 16)) as img:
        assert img.mode == "I;16"
    assert tifffile.imread(write_image(tmp_path / "a.tif", gray, 32)).dtype == np.float32
    assert np.load(write_image(tmp_path / "b.npy", gray * 2 - 0.5)).max() == 1.0  # clamped, float32


def test_colour_png_is_written_as_rgb(tmp_path):
    rgb = np.random.default_rng(1).random((8, 9, 3), dtype=np.float32)
    assert read_image(write_image(tmp_path / "c.png", rgb, 8)).shape == (8, 9, 3)


@pytest.mark.parametrize("name,bit_depth,message", [("a.jpg", 8, "cannot write .jpg"),
                                                    ("a.png", 32, "use --bit-depth 8 or 16"),
                                                    ("missing/a.png", 8, "does not exist")])
def test_refusals_are_one_line(tmp_path, gray, name, bit_depth, message):
    with pytest.raises(ImageWriteError, match=message) as excinfo:
        write_image(tmp_path / name, gray, bit_depth)
    assert "\n" not in str(excinfo.value)


def test_sixteen_bit_colour_png_points_to_tiff(tmp_path):
    with pytest.raises(ImageWriteError, match="write a .tif"):
        write_image(tmp_path / "c.png", np.zeros((4, 4, 3), np.float32), 16)


def test_failed_write_leaves_the_old_file_intact(tmp_path, gray, monkeypatch):
    target = write_image(tmp_path / "a.png", gray, 8)
    before = target.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageWriteError, match="No space left on device"):
        write_image(target, 1 - gray, 8)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["a.png"]
