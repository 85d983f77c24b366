"""Every reader is bounded: one pixel limit for every format, checked from the header before decoding;
one frame per file; finite samples; EXIF orientation applied and said."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crafted import BOMBS, png_bomb
from dagl.images import io
from dagl.images.io import DEFAULT_MAX_PIXELS, ImageReadError, ImageTooLargeError, max_pixels, read_image, set_max_pixels


@pytest.fixture
def restore_limit():
    yield
    set_max_pixels(DEFAULT_MAX_PIXELS)


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_huge_headers_are_refused_before_decoding_in_one_line(tmp_path, kind):
    path = BOMBS[kind](tmp_path / f"bomb.{kind}")
    assert path.stat().st_size < 100_000
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as excinfo:
        read_image(path)
    message = str(excinfo.value)
    assert time.perf_counter() - start < 1.0  # nothing was decoded
    assert "\n" not in message and str(path) in message
    assert "exceeds the limit of 40,000,000 pixels" in message and "--max-pixels" in message


def test_refusal_names_the_width_and_height_when_below_pillows_own_guard(tmp_path):
    path = png_bomb(tmp_path / "wide.png", width=9000, height=5000)  # 45 MP: ours refuses, Pillow only warns
    with pytest.raises(ImageTooLargeError, match=r"9000x5000 = 45,000,000 pixels exceeds"):
        read_image(path)


def test_the_limit_is_process_wide_and_adjustable(tmp_path, restore_limit):
    path = tmp_path / "small.png"
    Image.new("L", (20, 10)).save(path)
    set_max_pixels(199)
    assert max_pixels() == 199 and Image.MAX_IMAGE_PIXELS == 199
    with pytest.raises(ImageTooLargeError, match="20x10 = 200 pixels exceeds the limit of 199"):
        read_image(path)
    set_max_pixels(200)
    assert read_image(path).shape == (10, 20)
    with pytest.raises(ValueError):
        set_max_pixels(0)


def test_pillow_guard_is_never_disabled():
    """dagl-infer used to set ``Image.MAX_IMAGE_PIXELS = None``; no module may switch it off."""
    root = Path(__file__).resolve().parents[2]
    sources = [p for folder in ("dagl", "runtime", "export", "calibration") for p in (root / folder).rglob("*.py")]
    assert len(sources) > 20
    assert not [p for p in sources if "MAX_IMAGE_PIXELS = None" in p.read_text()]
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS == max_pixels()


def test_animated_png_is_refused_not_read_as_its_first_frame(tmp_path):
    path = tmp_path / "anim.png"
    frames = [Image.new("L", (8, 8), v) for v in (0, 255)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageReadError, match="holds 2 frames"):
        read_image(path)


def test_multi_page_tiff_is_refused_not_read_as_its_first_page(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "pages.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack")
    with pytest.raises(ImageReadError, match="holds 3 pages"):
        read_image(tmp_path / "pages.tif")


def test_exif_orientation_is_applied_and_noted(tmp_path, caplog):
    image = Image.new("L", (12, 8))
    image.putpixel((0, 0), 255)  # top-left marker
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif, quality=100)
    with caplog.at_level(logging.WARNING, logger=io.__name__):
        upright = read_image(path)
    assert upright.shape == (12, 8)
    assert upright[0, -1] > 0.9  # the marker moved to the top-right corner
    assert "EXIF orientation (6)" in caplog.text


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(tmp_path, value):
    array = np.full((8, 8), 0.5, np.float32)
    array[3, 4] = value
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(ImageReadError, match="holds 1 NaN or infinite sample"):
        read_image(tmp_path / "x.npy")


def test_npy_with_python_objects_is_refused_without_unpickling(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([[object()] * 8] * 8), allow_pickle=True)
    with pytest.raises(ImageReadError, match="holds Python objects"):
        read_image(tmp_path / "obj.npy")


def _through_eval_dataset(folder):
    from dagl.data.datasets import folder_set

    list(folder_set(folder, "denoise", sigma=25))


def _through_training_data(folder):
    from dagl.tasks.configs import get_config
    from dagl.train.data import load_images

    load_images([folder / "clean"], get_config("denoise"), patch=8)


@pytest.mark.parametrize("reader", ["eval dataset", "training data"])
@pytest.mark.parametrize("kind", ["png", "tif"])
def test_every_reader_refuses_a_bomb_in_one_line(tmp_path, reader, kind):
    """The crafted 50000x50000 PNG and 40000x40000 zlib TIFF, through each way the toolkit reads images."""
    from dagl.errors import DaglError

    folder = tmp_path / "set12"
    (folder / "clean").mkdir(parents=True)
    BOMBS[kind](folder / "clean" / f"bomb.{kind}")
    run = {"eval dataset": _through_eval_dataset, "training data": _through_training_data}[reader]
    with pytest.raises(DaglError) as excinfo:
        run(folder)
    message = str(excinfo.value)
    assert "\n" not in message and "exceeds the limit of 40,000,000 pixels" in message and "--max-pixels" in message


def _one_line_refusal(path, error=ImageReadError):
    with pytest.raises(error) as excinfo:
        read_image(path)
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message
    return message


def test_planar_tiff_counts_every_plane_from_its_tags(tmp_path):
    """(3, 30000, 30000) planar: 900 MP, refused by its pixels before the 2.7 GB planes are allocated."""
    from crafted import tiff_planar_bomb

    path = tiff_planar_bomb(tmp_path / "planar.tif")
    assert path.stat().st_size < 100_000
    assert "30000x30000 = 900,000,000 pixels exceeds" in _one_line_refusal(path, ImageTooLargeError)


def test_tiff_with_a_thousand_samples_per_pixel_is_refused_from_its_tags(tmp_path):
    """2000x2000 (4 MP, under the pixel limit) x 1000 samples would decode to 4 GB: refused from the tags."""
    from crafted import tiff_samples_bomb

    path = tiff_samples_bomb(tmp_path / "samples.tif")
    assert "declares 1000 samples per pixel" in _one_line_refusal(path)


def test_npy_with_too_many_channels_is_refused_from_its_header(tmp_path):
    path = tmp_path / "deep.npy"
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (2000, 2000, 1000)})
    assert "declares 1000 samples per pixel" in _one_line_refusal(path)


def test_decoded_bytes_count_the_bit_depth(tmp_path, restore_limit):
    """A float64 RGB image of 100 px decodes to 2400 bytes: over the 1600 a 100-pixel limit allows."""
    path = tmp_path / "deep.npy"
    np.save(path, np.zeros((10, 10, 3), np.float64))
    set_max_pixels(100)
    message = _one_line_refusal(path, ImageTooLargeError)
    assert "3 sample(s) of 64 bits would decode to 2,400 bytes, over the 1,600" in message
    set_max_pixels(150)  # 150 * 16 = 2400 bytes: allowed, and read as float32
    assert read_image(path).dtype == np.float32


def test_integer_sample_types_are_refused_from_the_header(tmp_path):
    import tifffile

    path = tmp_path / "int32.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.int32))
    assert "unsupported sample type int32" in _one_line_refusal(path)


def test_a_planar_tiff_reads_as_height_width_samples(tmp_path):
    import tifffile

    rgb = np.random.default_rng(0).integers(0, 256, (3, 12, 20), dtype=np.uint8)
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, rgb, planarconfig="separate", photometric="rgb")
    np.testing.assert_array_equal(read_image(path), np.moveaxis(rgb, 0, -1) / np.float32(255))


@pytest.mark.slow
@pytest.mark.parametrize("tiled", [False, True], ids=["strip", "tile"])
def test_a_tiff_segment_is_bounded_by_what_it_inflates_to(tmp_path, tiled):
    """A 48x48 TIFF (2,304 bytes declared) whose zlib segment inflates to 256 MiB: tifffile inflated it in
    full (3.3 GB, and a MemoryError at the size first tried). Counted while inflating, it is refused after
    about 1 MiB of output, which tracemalloc sees as the peak."""
    import tracemalloc

    from crafted import inflating_tiff

    path = inflating_tiff(tmp_path / "bomb.tif", 256 << 20, tiled)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        message = _one_line_refusal(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "TIFF segment 0 inflates past its declared 2,304 bytes" in message
    assert peak < 16 << 20


def test_a_tiff_segment_within_its_declared_size_reads(tmp_path):
    from crafted import inflating_tiff

    assert read_image(inflating_tiff(tmp_path / "ok.tif", 48 * 48)).tolist() == np.zeros((48, 48)).tolist()


def test_a_tiff_compression_that_cannot_be_counted_is_refused_by_name(tmp_path):
    import tifffile

    path = tmp_path / "lzw.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), compression="zlib")
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        where = tif.pages[0].tags["Compression"].valueoffset
    data[where:where + 2] = (5).to_bytes(2, "little")  # LZW: tifffile would need imagecodecs
    path.write_bytes(bytes(data))
    assert "TIFF compression LZW is not read" in _one_line_refusal(path)


def test_a_jpeg_of_repeated_scans_is_refused_before_decoding(tmp_path):
    """Its 10 progressive scans repeated 20 times: 200 passes over the image (one of 3 MB
    decoded for minutes). Pillow decoded it and exited 0."""
    from crafted import scan_bomb

    assert "a JPEG of more than 100 scans" in _one_line_refusal(scan_bomb(tmp_path / "scans.jpg", 20))
    assert read_image(scan_bomb(tmp_path / "ten.jpg", 10)).shape == (64, 80, 3)  # 100 scans: still read


def test_scans_are_counted_past_markers_inside_the_entropy_data(tmp_path):
    from crafted import scan_bomb
    from dagl.images.jpeg import count_scans

    assert count_scans(scan_bomb(tmp_path / "one.jpg", 1, (300, 200))) == 10
    Image.new("L", (40, 30), 128).save(tmp_path / "base.jpg", format="JPEG")
    assert count_scans(tmp_path / "base.jpg") == 1


def test_a_tiff_cut_into_too_many_strips_is_refused_before_any_is_read(tmp_path):
    """One-row strips of a tall, one-pixel-wide page: each strip is a step of the count and of the decode."""
    import tifffile

    from dagl.images.tiff import MAX_SEGMENTS

    path = tmp_path / "strips.tif"
    tifffile.imwrite(path, np.zeros((MAX_SEGMENTS + 1, 1), np.uint8), rowsperstrip=1)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages[0].dataoffsets) == MAX_SEGMENTS + 1  # the file is what the test says it is
    with pytest.raises(ImageReadError, match=f"cut into {MAX_SEGMENTS + 1:,} strips or tiles"):
        read_image(path)
    ok = tmp_path / "ok.tif"
    tifffile.imwrite(ok, np.full((300, 1), 7, np.uint8), rowsperstrip=1)
    assert read_image(ok).shape == (300, 1)
