"""write_image: formats, bit depths, atomicity, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from dagl.images.io import ImageReadError, ImageWriteError, read_image, write_image


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


def _refusal(path):
    from dagl.images.io import ImageReadError

    with pytest.raises(ImageReadError) as excinfo:
        read_image(path)
    assert "\n" not in str(excinfo.value) and str(path) in str(excinfo.value)
    return str(excinfo.value)


def test_a_palette_tiff_reads_as_its_colours(tmp_path):
    """Was read as its index plane: a gray picture of palette numbers."""
    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, 1] = 65535  # white
    colormap[:, 2] = (65535, 32768, 0)  # orange
    tifffile.imwrite(tmp_path / "p.tif", np.array([[0, 1], [2, 1]], np.uint8), photometric="palette",
                     colormap=colormap)
    expected = np.moveaxis(colormap[:, [[0, 1], [2, 1]]], 0, -1) / 65535.0
    np.testing.assert_allclose(read_image(tmp_path / "p.tif"), expected, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_white_is_zero_tiff_is_not_a_negative(tmp_path, dtype):
    peak = np.iinfo(dtype).max
    tifffile.imwrite(tmp_path / "w.tif", np.array([[0, peak // 4, peak]], dtype), photometric="miniswhite")
    np.testing.assert_allclose(read_image(tmp_path / "w.tif"), [[1.0, 1 - (peak // 4) / peak, 0.0]], atol=1e-7)


@pytest.mark.parametrize(("photometric", "samples", "expected"), [
    ("separated", 4, "photometric interpretation SEPARATED (CMYK) is not read"),
    ("cielab", 3, "photometric interpretation CIELAB is not read"),
    ("ycbcr", 3, "photometric interpretation YCBCR is not read"),
])
def test_colour_spaces_that_are_not_gray_or_rgb_are_refused_by_name(tmp_path, photometric, samples, expected):
    """CMYK came out as RGBA with K as alpha (then a wrong "transparent pixels"); CIELab as RGB."""
    extra = {"subsampling": (1, 1)} if photometric == "ycbcr" else {}
    tifffile.imwrite(tmp_path / "c.tif", np.full((4, 4, samples), 200, np.uint8), photometric=photometric, **extra)
    assert expected in _refusal(tmp_path / "c.tif")


def test_gray_tiff_with_three_samples_is_not_read_as_rgb(tmp_path):
    tifffile.imwrite(tmp_path / "g.tif", np.zeros((4, 4, 3), np.uint8), photometric="minisblack", planarconfig="contig")
    assert "a MINISBLACK TIFF with 1 colour and 2 extra sample(s)" in _refusal(tmp_path / "g.tif")


@pytest.mark.parametrize(("name", "write", "expected"), [
    ("float.png", lambda p: tifffile.imwrite(p, np.full((8, 8), 0.5, np.float32)), "holds TIFF data, not the PNG"),
    ("int.png", lambda p: tifffile.imwrite(p, np.full((8, 8), 70000, np.int32)), "holds TIFF data, not the PNG"),
    ("png.jpg", lambda p: Image.new("L", (8, 8)).save(p, format="PNG"), "holds PNG data, not the JPEG"),
    ("npy.tif", lambda p: np.save(p.with_suffix(""), np.zeros((8, 8))) or p.with_suffix(".npy").rename(p), "holds NPY data, not the TIFF"),
    ("text.png", lambda p: p.write_text("hello"), "not an image (its first bytes are none of BMP, JPEG, NPY"),
])
def test_the_reader_follows_the_content_and_refuses_a_wrong_name(tmp_path, name, write, expected):
    """TIFF data named .png went through Pillow: float samples black, int32 wrapped, exit 0."""
    write(tmp_path / name)
    assert expected in _refusal(tmp_path / name)


def test_a_file_named_with_no_known_extension_is_read_by_its_content(tmp_path):
    tifffile.imwrite(tmp_path / "scan.dat", np.full((4, 4), 0.25, np.float32), photometric="minisblack")
    np.testing.assert_array_equal(read_image(tmp_path / "scan.dat"), np.full((4, 4), 0.25, np.float32))


@pytest.mark.parametrize("mode", ["P", "1", "L", "RGB", "I;16"])
def test_transparency_without_an_alpha_channel_becomes_alpha(tmp_path, mode):
    """A palette's (or a colour key's) transparent colour was dropped by the conversion to RGB; as alpha,
    the channel rules refuse it like RGBA's."""
    from dagl.tasks.channels import ChannelError, split_alpha

    key = {"P": 1, "1": 1, "L": 7, "RGB": (7, 7, 7), "I;16": 300}[mode]
    img = Image.new(mode, (4, 2), 0)
    if mode == "P":
        img.putpalette([0, 0, 0, 255, 255, 255])
    img.putpixel((1, 1), key)
    img.save(tmp_path / "t.png", transparency=key)
    image = read_image(tmp_path / "t.png")
    assert image.shape == (2, 4, 4 if mode in ("P", "RGB") else 2)
    assert image[..., -1].tolist() == [[1, 1, 1, 1], [1, 0, 1, 1]]
    with pytest.raises(ChannelError, match="has transparent pixels"):
        split_alpha(image)


def test_an_opaque_palette_png_reads_as_rgb(tmp_path):
    img = Image.new("P", (2, 1), 1)
    img.putpalette([0, 0, 0, 255, 128, 0])
    img.save(tmp_path / "o.png")
    np.testing.assert_allclose(read_image(tmp_path / "o.png"), [[[1, 128 / 255, 0]] * 2], atol=1e-7)


def _png(path, samples: np.ndarray, colour_type: int) -> None:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour): filter 0 on every row, one IDAT."""
    import struct
    import zlib

    height, width = samples.shape[:2]
    rows = b"".join(b"\0" + samples[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("name,colour_type,channels", [("rgb.png", 2, 3), ("gray-alpha.png", 4, 2),
                                                       ("rgb.ppm", None, 3)])
def test_a_16_bit_colour_file_pillow_reads_at_8_bits_is_refused(tmp_path, name, colour_type, channels):
    """Pillow decodes these to 8 bits: a restore at a precision the file does not have, so a refusal instead."""
    samples = np.random.default_rng(1).integers(0, 65536, (6, 7, channels)).astype(np.uint16)
    path = tmp_path / name
    if colour_type is None:
        path.write_bytes(b"P6\n# a comment\n7 6\n65535\n" + samples.astype(">u2").tobytes())
    else:
        _png(path, samples, colour_type)
    with pytest.raises(ImageReadError) as excinfo:
        read_image(path)
    assert str(excinfo.value) == (f"{path}: a 16-bit {'PPM' if colour_type is None else 'PNG'} with colour or alpha, "
                                  "which the image library here reads at 8 bits only; save it as a 16-bit TIFF to "
                                  "restore it at full precision")


def test_a_16_bit_gray_file_is_read_at_full_precision(tmp_path):
    samples = np.random.default_rng(2).integers(0, 65536, (6, 7, 1)).astype(np.uint16)
    _png(tmp_path / "gray.png", samples, 0)
    (tmp_path / "gray.pgm").write_bytes(b"P5\n7 6\n65535\n" + samples.astype(">u2").tobytes())
    for name in ("gray.png", "gray.pgm"):
        np.testing.assert_allclose(read_image(tmp_path / name), samples[..., 0] / 65535, atol=1e-7)
