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


def tiny_onnx(path: Path, body: str = "identity", *, input_name: str = "input", output_name: str = "output",
              elem_type: int = 1, metadata: dict[str, str] | None = None, channels: int = 1) -> Path:
    """A one-node ONNX graph standing in for a DAGL export (milliseconds to build and to load).

    ``body``: ``identity``; ``divide`` (x / x: 1 where x != 0, NaN where x == 0); ``pool`` (a mean
    over H and W, an (N, C, 1, 1) output that numpy would broadcast into a flat image), declared as
    such; ``hidden-pool``: the same, its output declared (N, 1, h, w) so only running it tells;
    ``reshape-by-7``: loads, and fails at run time on a batch whose size 7 does not divide.
    """
    import onnx
    from onnx import helper

    dims = ["N", channels, "H", "W"]
    nodes = {"identity": [helper.make_node("Identity", [input_name], [output_name])],
             "reshape-by-7": [helper.make_node("Shape", [input_name], ["shape"]),
                              helper.make_node("Constant", [], ["sevens"], value_ints=[7, -1]),
                              helper.make_node("Reshape", [input_name, "sevens"], ["rows"]),
                              helper.make_node("Reshape", ["rows", "shape"], [output_name])],
             "divide": [helper.make_node("Div", [input_name, input_name], [output_name])],
             "pool": [helper.make_node("ReduceMean", [input_name], [output_name], axes=[2, 3], keepdims=1)],
             "hidden-pool": [helper.make_node("ReduceMean", [input_name], [output_name], axes=[2, 3], keepdims=1)]}[body]
    out_dims = {"pool": ["N", channels, 1, 1], "hidden-pool": ["N", channels, "h", "w"]}.get(body, dims)
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(input_name, elem_type, dims)],
                              [helper.make_tensor_value_info(output_name, elem_type, out_dims)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = {"dagl.task": "jpeg", "dagl.channels": str(channels), "dagl.precision": "fp32", "dagl.weights": "0" * 64}
    onnx.helper.set_model_props(model, props | (metadata or {}))
    onnx.save(model, str(path))
    return path


def tiff_planar_bomb(path: Path, width: int = 30000, height: int = 30000, planes: int = 3) -> Path:
    """A one-plane-per-sample (planar) TIFF whose tags claim ``planes`` planes of ``width`` x ``height``."""
    tifffile.imwrite(path, np.zeros((planes, 16, 16), np.uint8), planarconfig="separate", photometric="rgb",
                     compression="zlib")
    _patch_tiff_size(path, width, height)
    return path


def tiff_samples_bomb(path: Path, width: int = 2000, height: int = 2000, samples: int = 1000) -> Path:
    """A contiguous TIFF with ``samples`` samples per pixel whose tags claim ``width`` x ``height``."""
    tifffile.imwrite(path, np.zeros((16, 16, samples), np.uint8), planarconfig="contig", photometric="minisblack",
                     extrasamples=[0] * (samples - 1), compression="zlib")
    _patch_tiff_size(path, width, height)
    return path


def inflating_tiff(path: Path, inflated: int, tiled: bool = False) -> Path:
    """A 48x48 uint8 zlib TIFF (one strip, or one tile) whose segment inflates to ``inflated`` bytes."""
    tifffile.imwrite(path, np.zeros((48, 48), np.uint8), compression="zlib", **({"tile": (48, 48)} if tiled else {}))
    names = ("TileOffsets", "TileByteCounts") if tiled else ("StripOffsets", "StripByteCounts")
    with tifffile.TiffFile(path) as tif:
        where = [tif.pages[0].tags[name].valueoffset for name in names]
    bomb = zlib.compress(b"\0" * inflated, 9)
    data = bytearray(path.read_bytes())
    for offset, value in zip(where, (len(data), len(bomb))):
        data[offset:offset + 4] = struct.pack("<I", value)
    path.write_bytes(bytes(data) + bomb)
    return path


def scan_bomb(path: Path, repeats: int, size: tuple[int, int] = (64, 80)) -> Path:
    """A progressive colour JPEG (10 scans) whose scans are repeated ``repeats`` times before its end."""
    pixels = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", progressive=True, quality=90)
    data = path.read_bytes()
    first = data.index(b"\xff\xda")
    path.write_bytes(data[:first] + data[first:-2] * repeats + b"\xff\xd9")
    return path
