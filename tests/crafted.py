"""Hostile files made on the fly: tiny on disk, huge or odd in what their headers claim."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, width: int = 50000, height: int = 50000) -> Path:
    """A valid-looking gray PNG header of ``width`` x ``height`` with one small IDAT of zeros."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1) * 4, 9)  # a few rows; the header is what is checked
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def _patch_tiff_size(path: Path, width: int, height: int) -> None:
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        offsets = {name: tags[name].valueoffset for name in ("ImageWidth", "ImageLength", "RowsPerStrip")}
    data = bytearray(path.read_bytes())
    for name, value in (("ImageWidth", width), ("ImageLength", height), ("RowsPerStrip", height)):
        data[offsets[name]:offsets[name] + 4] = struct.pack("<I", value)
    path.write_bytes(bytes(data))


def tiff_bomb(path: Path, width: int = 40000, height: int = 40000) -> Path:
    """A zlib-compressed one-strip TIFF whose tags claim ``width`` x ``height``."""
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), compression="zlib")
    _patch_tiff_size(path, width, height)
    return path


def npy_bomb(path: Path, width: int = 50000, height: int = 50000) -> Path:
    """An ``.npy`` header for a ``height`` x ``width`` uint8 array, and no data."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (height, width)})
    return path


def bmp_bomb(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A tiny BMP whose header claims ``width`` x ``height``."""
    Image.new("L", (8, 8)).save(path, format="BMP")
    data = bytearray(path.read_bytes())
    data[18:26] = struct.pack("<ii", width, height)
    path.write_bytes(bytes(data))
    return path


def jpeg_bomb(path: Path, width: int = 65000, height: int = 65000) -> Path:
    """A tiny baseline JPEG whose SOF0 marker claims ``width`` x ``height``."""
    Image.new("L", (8, 8)).save(path, format="JPEG")
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


BOMBS = {"png": png_bomb, "tif": tiff_bomb, "npy": npy_bomb, "bmp": bmp_bomb, "jpg": jpeg_bomb}
