"""Image files to float arrays and back: the one place that knows bit depths and file formats.

Arrays are float32 in [0, 1], shaped (H, W) for gray and (H, W, 3) for colour, because that is what
both the networks' tensors and the metrics want; integer storage is an on-disk concern only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

#: Extensions read through Pillow; ``.npy`` and ``.tif``/``.tiff`` have their own readers.
PIL_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".webp", ".ppm", ".pgm"}
TIFF_SUFFIXES = {".tif", ".tiff"}
IMAGE_SUFFIXES = PIL_SUFFIXES | TIFF_SUFFIXES | {".npy"}


class ImageReadError(ValueError):
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
