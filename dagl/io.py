"""Image files to float arrays and back: the one place that knows bit depths and file formats.

Arrays are float32 in [0, 1], shaped (H, W) for gray and (H, W, 3) for colour, because that is what
both the networks' tensors and the metrics want; integer storage is an on-disk concern only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .atomic import atomic_path
from .errors import UserInputError

#: Extensions read through Pillow; ``.npy`` and ``.tif``/``.tiff`` have their own readers.
PIL_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".webp", ".ppm", ".pgm"}
TIFF_SUFFIXES = {".tif", ".tiff"}
IMAGE_SUFFIXES = PIL_SUFFIXES | TIFF_SUFFIXES | {".npy"}

#: Largest input image, in pixels, a reader accepts unless told otherwise (a 40 MP scan is ~160 MB as float32).
DEFAULT_MAX_PIXELS = 40_000_000
_max_pixels = DEFAULT_MAX_PIXELS


def set_max_pixels(limit: int) -> None:
    """Set the process-wide input pixel limit (the CLIs' ``--max-pixels``)."""
    global _max_pixels
    _max_pixels = int(limit)


def max_pixels() -> int:
    """The input pixel limit now in force."""
    return _max_pixels


#: ITU-R BT.601 luma weights: MATLAB's rgb2gray (the paper's gray test sets) and Pillow's "L".
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) colour to (H, W) gray with the BT.601 weights."""
    return rgb[..., :3] @ LUMA


def has_gray_content(image: np.ndarray) -> bool:
    """Whether an (H, W, >=3) image repeats one plane in its first three channels (e.g. the CAR JPEGs)."""
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2]))


class ImageReadError(UserInputError):
    """An input that is not a usable image; the message is one line meant for the user."""


def _to_unit_float(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    raise ImageReadError(f"{path}: unsupported sample type {array.dtype}")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as float32 in [0, 1], (H, W) or (H, W, C); errors are :class:`ImageReadError`."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix in TIFF_SUFFIXES:
            import tifffile

            array = tifffile.imread(path)
        else:
            with Image.open(path) as img:
                img.load()
                if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                    array = np.asarray(img, dtype=np.uint16)
                elif img.mode in ("L", "RGB", "RGBA", "LA"):
                    array = np.asarray(img)
                else:
                    array = np.asarray(img.convert("RGB"))
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        reason = "not an image or truncated" if not isinstance(exc, UnidentifiedImageError) else "not an image"
        raise ImageReadError(f"{path}: {reason} ({exc.__class__.__name__}: {exc})") from None
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise ImageReadError(f"{path}: expected a 2-D image, got an array of shape {array.shape}")
    return _to_unit_float(array, path)


#: Extensions :func:`write_image` knows, and the bit depths each accepts (32 means float32).
WRITE_BIT_DEPTHS = {".png": (8, 16), ".tif": (8, 16, 32), ".tiff": (8, 16, 32), ".npy": (32,)}


class ImageWriteError(UserInputError):
    """An output that cannot be written as asked; the message is one line meant for the user."""


def _quantise(array: np.ndarray, bit_depth: int) -> np.ndarray:
    clamped = np.clip(array, 0.0, 1.0)
    if bit_depth == 32:
        return clamped.astype(np.float32)
    peak, dtype = (255.0, np.uint8) if bit_depth == 8 else (65535.0, np.uint16)
    return np.round(clamped * peak).astype(dtype)


def write_image(path: str | Path, array: np.ndarray, bit_depth: int = 8) -> Path:
    """Write a float image in [0, 1] to ``path`` atomically, in the format its extension names.

    The file appears complete or not at all: it is written to a temporary file in the same
    folder and renamed over ``path``, so an interrupted run never leaves a truncated image that
    a later step would read as valid. ``.npy`` always stores the clamped float32 array (exact,
    for parity work); PNG stores 8 or 16 bits (16-bit only for gray, Pillow's limit); TIFF
    stores 8, 16 bits or float32 (``bit_depth=32``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_BIT_DEPTHS:
        raise ImageWriteError(f"{path}: cannot write {suffix or 'files without extension'}; "
                              f"use one of {', '.join(sorted(WRITE_BIT_DEPTHS))}")
    if suffix == ".npy":
        bit_depth = 32
    if bit_depth not in WRITE_BIT_DEPTHS[suffix]:
        raise ImageWriteError(f"{path}: {suffix} cannot hold {bit_depth}-bit samples; "
                              f"use --bit-depth {' or '.join(map(str, WRITE_BIT_DEPTHS[suffix]))}")
    if suffix == ".png" and bit_depth == 16 and array.ndim == 3:
        raise ImageWriteError(f"{path}: 16-bit colour PNG is not supported; write a .tif instead")
    pixels = _quantise(np.asarray(array), bit_depth)
    if not path.parent.is_dir():
        raise ImageWriteError(f"{path}: output folder {path.parent} does not exist")
    try:
        with atomic_path(path) as temp, open(temp, "wb") as handle:
            if suffix == ".npy":
                np.save(handle, pixels, allow_pickle=False)
            elif suffix in TIFF_SUFFIXES:
                import tifffile

                tifffile.imwrite(handle, pixels)
            else:
                Image.fromarray(pixels).save(handle, format="PNG")  # uint16 (H, W) maps to mode I;16
    except OSError as exc:
        raise ImageWriteError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path
