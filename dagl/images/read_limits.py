"""The limits every image reader applies, from what a header declares, before a byte is decoded.

Apart from :mod:`dagl.images.io` so that the format readers it calls (:mod:`dagl.images.tiff`, :mod:`dagl.images.jpeg`) can apply
the same limits without importing the module that imports them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserInputError


class ImageReadError(UserInputError):
    """An input that is not a usable image; the message is one line meant for the user."""


class ImageTooLargeError(ImageReadError):
    """An image whose header declares more pixels than :func:`max_pixels` allows."""


#: Largest image any reader decodes, in pixels (width x height). 40 MP covers every test set and
#: common camera frames (24-36 MP) while keeping a decoded float32 RGB copy under 0.5 GB; a header
#: claiming more (a 50000x50000 PNG is a few kB of zlib) is refused before a byte is decoded.
DEFAULT_MAX_PIXELS = 40_000_000
_max_pixels = DEFAULT_MAX_PIXELS


def set_max_pixels(n: int) -> None:
    """Set the process-wide pixel limit of every reader (like Pillow's ``MAX_IMAGE_PIXELS``).

    Pillow's own guard is kept in step (it warns above the limit and raises above twice it), so it
    never decides before ours and never is switched off.
    """
    global _max_pixels
    if int(n) < 1:
        raise ValueError(f"the pixel limit must be positive, got {n}")
    _max_pixels = int(n)
    Image.MAX_IMAGE_PIXELS = _max_pixels


set_max_pixels(DEFAULT_MAX_PIXELS)


def max_pixels() -> int:
    """The pixel limit every reader applies (see :func:`set_max_pixels`)."""
    return _max_pixels


def too_large(path: Path, pixels: int, size: str = "") -> ImageTooLargeError:
    return ImageTooLargeError(f"{path}: {size + ' = ' if size else ''}{pixels:,} pixels exceeds the limit of "
                              f"{_max_pixels:,} pixels; raise it with --max-pixels N "
                              f"(dagl.images.io.set_max_pixels) if you trust this file")


def check_pixels(path: Path, height: int, width: int) -> None:
    """Refuse an image of ``height`` x ``width`` above the limit, from its header, before decoding."""
    if height * width > _max_pixels:
        raise too_large(path, height * width, f"{width}x{height}")


#: Samples per pixel an image may have: gray, gray+alpha, RGB, RGBA. More is not an image any task takes.
MAX_SAMPLES = 4
#: Bytes the decoder may produce per pixel of the limit: a float32 RGBA image at :func:`max_pixels`.
#: Counting bytes, not pixels, bounds what planes, extra samples and deep sample types multiply.
MAX_BYTES_PER_PIXEL = MAX_SAMPLES * 4


def decode_budget() -> int:
    """Bytes a reader may decode for one image: ``max_pixels() * MAX_BYTES_PER_PIXEL``."""
    return _max_pixels * MAX_BYTES_PER_PIXEL


def _sample_kind_ok(dtype: np.dtype) -> bool:
    return dtype in (np.dtype(np.uint8), np.dtype(np.uint16)) or dtype.kind == "f"


def check_header(path: Path, height: int, width: int, samples: int, dtype: np.dtype) -> None:
    """Refuse, from a header alone, an image whose decoded array would not be a usable image or too large.

    Every reader calls this with what its header declares, before a byte of image data is decoded:
    the pixel count (:func:`check_pixels`), the samples per pixel (planes included), the sample
    type, and the decoded size in bytes, which must stay under ``max_pixels() * MAX_BYTES_PER_PIXEL``.
    """
    check_pixels(path, height, width)
    if not 1 <= samples <= MAX_SAMPLES:
        raise ImageReadError(f"{path}: declares {samples} samples per pixel; an image has 1 to {MAX_SAMPLES} "
                             f"(gray, RGB, with or without alpha)")
    dtype = np.dtype(dtype)
    if not _sample_kind_ok(dtype):
        raise ImageReadError(f"{path}: unsupported sample type {dtype} (uint8, uint16 or float are read)")
    decoded = height * width * samples * dtype.itemsize
    if decoded > decode_budget():
        raise ImageTooLargeError(f"{path}: {width}x{height} x {samples} sample(s) of {dtype.itemsize * 8} bits "
                                 f"would decode to {decoded:,} bytes, over the {decode_budget():,} "
                                 f"bytes a {_max_pixels:,}-pixel limit allows; raise it with --max-pixels N "
                                 f"if you trust this file")
