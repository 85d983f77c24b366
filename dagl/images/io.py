"""Image files to float arrays and back: the one place that knows bit depths and file formats.

Arrays are float32 in [0, 1], shaped (H, W) for gray and (H, W, 3) for colour, because that is what
both the networks' tensors and the metrics want; integer storage is an on-disk concern only.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..atomic import atomic_path
from ..errors import OutputError, output_error, path_error
from .read_limits import (DEFAULT_MAX_PIXELS, MAX_BYTES_PER_PIXEL, MAX_SAMPLES, ImageReadError, ImageTooLargeError,
                          check_header, check_pixels, decode_budget, max_pixels, set_max_pixels, too_large)

#: The format each extension read names (a file's first bytes decide which reader runs; see
#: :func:`_format_of`). NPY and TIFF have their own readers; Pillow reads the others.
SUFFIX_FORMATS = {".npy": "NPY", ".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG",
                  ".bmp": "BMP", ".webp": "WEBP", ".ppm": "PPM", ".pgm": "PPM"}
TIFF_SUFFIXES = {".tif", ".tiff"}
IMAGE_SUFFIXES = set(SUFFIX_FORMATS)

#: ITU-R BT.601 luma weights: MATLAB's rgb2gray (the paper's gray test sets) and Pillow's "L".
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) colour to (H, W) gray with the BT.601 weights."""
    return rgb[..., :3] @ LUMA


def has_gray_content(image: np.ndarray) -> bool:
    """Whether an (H, W, >=3) image repeats one plane in its first three channels (e.g. the CAR JPEGs)."""
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2]))


#: The readers' limits (:mod:`dagl.images.read_limits`) are part of this module's interface: ``--max-pixels`` and
#: programs set them here (``dagl.images.io.set_max_pixels``).
__all__ = [
    "DEFAULT_MAX_PIXELS", "IMAGE_SUFFIXES", "LUMA", "MAX_BYTES_PER_PIXEL", "MAX_SAMPLES", "SUFFIX_FORMATS",
    "TIFF_SUFFIXES", "WRITE_BIT_DEPTHS", "ImageReadError", "ImageTooLargeError", "ImageWriteError",
    "check_header", "check_pixels", "check_writable", "decode_budget", "has_gray_content", "max_pixels",
    "read_image", "set_max_pixels", "to_luma", "write_image",
]
log = logging.getLogger(__name__)


def _to_unit_float(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageReadError(f"{path}: holds {int((~np.isfinite(array)).sum())} NaN or infinite sample(s)")
        return array.astype(np.float32)
    raise ImageReadError(f"{path}: unsupported sample type {array.dtype}")


def _image_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int, int]:
    """(H, W, samples) of an (H, W) or (H, W, C) array; other ranks are refused."""
    if len(shape) not in (2, 3):
        raise ImageReadError(f"{path}: expected a 2-D image, got an array of shape {tuple(shape)}")
    return int(shape[0]), int(shape[1]), int(shape[2]) if len(shape) == 3 else 1


def _read_npy(path: Path) -> np.ndarray:
    """An ``.npy`` array, its header checked (shape, no objects) before the data is read."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version not in readers:
            raise ImageReadError(f"{path}: .npy format version {version[0]}.{version[1]} is not supported")
        shape, _, dtype = readers[version](handle)
    if dtype.hasobject:
        raise ImageReadError(f"{path}: holds Python objects (dtype {dtype}); only numeric arrays are read")
    check_header(path, *_image_shape(shape, path), dtype)
    return np.load(path, allow_pickle=False)


#: Sample types Pillow's modes decode to (others are converted to 8-bit RGB below).
_PILLOW_DTYPES = {"I;16": np.uint16, "I;16B": np.uint16, "I;16L": np.uint16, "I": np.uint16, "F": np.float32}


def _transparent_as_alpha(img: Image.Image, path: Path) -> Image.Image | np.ndarray:
    """``img`` with any transparency it declares as an alpha channel, which the channel rules then judge.

    A palette (or a gray or RGB colour key, PNG's tRNS) makes some colours transparent without an
    alpha channel: converting to RGB dropped it silently. 16-bit gray has no Pillow mode with alpha,
    so its colour key becomes a 16-bit alpha plane here.
    """
    key = img.info.get("transparency")
    if img.mode in ("P", "PA"):
        return img.convert("RGBA" if key is not None or img.mode == "PA" else "RGB")
    if key is None:
        return img
    if img.mode in ("1", "L", "RGB"):
        return img.convert("RGBA" if img.mode == "RGB" else "LA")
    if img.mode in ("I;16", "I;16B", "I;16L", "I") and isinstance(key, int):
        gray = np.asarray(img, dtype=np.uint16)
        return np.dstack([gray, np.where(gray == key, 0, 65535).astype(np.uint16)])
    raise ImageReadError(f"{path}: declares transparency in mode {img.mode}, which is not read")


def _declared_bits(path: Path, kind: str) -> int:
    """Bits per sample a PNG's header or a PPM/PGM's maxval declares (8 for everything else)."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if kind == "PNG":
        return head[24] if len(head) > 24 else 8
    if kind == "PPM":  # "P6 <width> <height> <maxval>", each token after whitespace or a # comment line
        tokens = re.sub(rb"#[^\n]*", b" ", head).split()
        if len(tokens) > 3 and tokens[0] in (b"P2", b"P3", b"P5", b"P6") and tokens[3].isdigit():
            return 16 if int(tokens[3]) > 255 else 8
    return 8


def _read_pillow(path: Path, kind: str) -> np.ndarray:
    """A one-frame image of Pillow format ``kind``: size (and a JPEG's scans) checked first, EXIF rotation applied."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own check follows
        img = Image.open(path, formats=[kind])
    with img:
        check_header(path, img.height, img.width, len(img.getbands()), _PILLOW_DTYPES.get(img.mode, np.uint8))
        if img.mode in ("RGB", "RGBA") and _declared_bits(path, kind) > 8:
            # Pillow decodes 16-bit colour PNG and PPM to 8 bits: the image would be restored at a precision
            # the file does not have, silently
            raise ImageReadError(f"{path}: a 16-bit {kind} with colour or alpha, which the image library here reads "
                                 f"at 8 bits only; save it as a 16-bit TIFF to restore it at full precision")
        frames = getattr(img, "n_frames", 1)
        if frames > 1:
            raise ImageReadError(f"{path}: holds {frames} frames (animated or multi-page); expected one image")
        if kind == "JPEG":
            from .jpeg import MAX_SCANS, count_scans

            if count_scans(path) > MAX_SCANS:
                raise ImageReadError(f"{path}: a JPEG of more than {MAX_SCANS} scans (each one a pass over the "
                                     f"whole image); encoders write about 10")
        img.load()
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
        if orientation not in (1, None):
            img = ImageOps.exif_transpose(img)
            log.warning("%s: rotated/flipped upright as its EXIF orientation (%s) asks", path, orientation)
        img = _transparent_as_alpha(img, path)
        if isinstance(img, np.ndarray):
            return img
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            return np.asarray(img, dtype=np.uint16)
        if img.mode in ("L", "RGB", "RGBA", "LA"):
            return np.asarray(img)
        return np.asarray(img.convert("RGB"))


#: Each format read, by its first bytes; Pillow reads the ones other than NPY and TIFF.
_SIGNATURES = ((b"\x93NUMPY", "NPY"), (b"II*\0", "TIFF"), (b"MM\0*", "TIFF"), (b"II+\0", "TIFF"),
               (b"MM\0+", "TIFF"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"),
               *((b"P%d" % n, "PPM") for n in range(1, 7)))


def _format_of(path: Path) -> str:
    """The format ``path`` holds, from its first bytes; refused when its extension names another.

    The reader follows the content: TIFF data named ``.png`` went through Pillow, which read float
    samples as black and wrapped 32-bit integers, and exited 0.
    """
    with open(path, "rb") as handle:
        head = handle.read(12)
    found = "WEBP" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else next(
        (kind for signature, kind in _SIGNATURES if head.startswith(signature)), None)
    if found is None:
        raise ImageReadError(f"{path}: not an image (its first bytes are none of "
                             f"{', '.join(sorted(set(SUFFIX_FORMATS.values())))})")
    named = SUFFIX_FORMATS.get(path.suffix.lower())
    if named is not None and named != found:
        raise ImageReadError(f"{path}: holds {found} data, not the {named} its name says; rename it to what it is")
    return found


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as float32 in [0, 1], (H, W) or (H, W, C); errors are :class:`ImageReadError`.

    Every format is checked against :func:`max_pixels` from its header before it is decoded, holds
    exactly one frame, and (for float storage) only finite samples.
    """
    path = Path(path)
    try:
        is_file = path.is_file()
    except OSError as exc:  # ENAMETOOLONG: a name or path the system refuses to look up
        raise path_error(path, exc, ImageReadError) from None
    if not is_file:
        raise ImageReadError(f"{path}: no such file")
    try:
        kind = _format_of(path)
        if kind == "NPY":
            array = _read_npy(path)
        elif kind == "TIFF":
            from .tiff import read_tiff

            array = read_tiff(path)
        else:
            array = _read_pillow(path, kind)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's guard fires at twice our limit, in open()
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        raise too_large(path, int(pixels.group(1)) if pixels else max_pixels() + 1) from None
    except (UnidentifiedImageError, OSError, ValueError, EOFError, SyntaxError) as exc:
        reason = "not an image or truncated" if not isinstance(exc, UnidentifiedImageError) else "not an image"
        raise ImageReadError(f"{path}: {reason} ({exc.__class__.__name__}: {exc})".splitlines()[0]) from None
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise ImageReadError(f"{path}: expected a 2-D image, got an array of shape {array.shape}")
    return _to_unit_float(array, path)


#: Extensions :func:`write_image` knows, and the bit depths each accepts (32 means float32).
WRITE_BIT_DEPTHS = {".png": (8, 16), ".tif": (8, 16, 32), ".tiff": (8, 16, 32), ".npy": (32,)}


class ImageWriteError(OutputError):
    """An output that cannot be written as asked; the message is one line meant for the user."""


def _quantise(array: np.ndarray, bit_depth: int) -> np.ndarray:
    clamped = np.clip(array, 0.0, 1.0)
    if bit_depth == 32:
        return clamped.astype(np.float32)
    peak, dtype = (255.0, np.uint8) if bit_depth == 8 else (65535.0, np.uint16)
    return np.round(clamped * peak).astype(dtype)


def check_writable(path: str | Path, bit_depth: int, channels: int | None = None) -> int:
    """Refuse an output format, bit depth or channel count :func:`write_image` cannot honour, before any work.

    Returns the bit depth that will be written (``.npy`` always stores float32). Callers run it
    when planning outputs, so ``--bit-depth 32 -o x.png`` fails before minutes of inference, and
    again with ``channels`` once the model (so the output's channels) is known.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_BIT_DEPTHS:
        raise ImageWriteError(f"{path}: cannot write {suffix or 'files without extension'}; "
                              f"use one of {', '.join(sorted(WRITE_BIT_DEPTHS))}")
    if suffix == ".npy":
        return 32
    if bit_depth not in WRITE_BIT_DEPTHS[suffix]:
        raise ImageWriteError(f"{path}: {suffix} cannot hold {bit_depth}-bit samples; "
                              f"use --bit-depth {' or '.join(map(str, WRITE_BIT_DEPTHS[suffix]))}")
    if suffix == ".png" and bit_depth == 16 and channels is not None and channels > 1:
        raise ImageWriteError(f"{path}: 16-bit colour PNG is not supported; write a .tif instead")
    return bit_depth


class _WritesThroughPython:
    """A binary file whose data reaches the disk through ``write``, so a failed write keeps its errno.

    Given a real file, ``np.save`` and tifffile hand the array to numpy's ``tofile``, which reports a
    short write as ``OSError("N requested and M written")`` with no errno: a full disk then read as the
    user's mistake (exit 2). With ``fileno`` hidden both write through Python's own file object, where
    ENOSPC stays ENOSPC (:func:`dagl.errors.os_error_exit_code` makes it 1).
    """

    def __init__(self, handle: io.BufferedIOBase) -> None:
        self._handle = handle

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")

    def __getattr__(self, name: str) -> object:
        return getattr(self._handle, name)


def write_image(path: str | Path, array: np.ndarray, bit_depth: int = 8, overwrite: bool = True) -> Path:
    """Write a float image in [0, 1] to ``path`` atomically, in the format its extension names.

    The file appears complete or not at all: it is written to a temporary file in the same
    folder and renamed over ``path``, so an interrupted run never leaves a truncated image that
    a later step would read as valid. ``.npy`` always stores the clamped float32 array (exact,
    for parity work); PNG stores 8 or 16 bits (16-bit only for gray, Pillow's limit); TIFF
    stores 8, 16 bits or float32 (``bit_depth=32``). ``overwrite=False`` refuses to replace a file
    that exists when the write finishes (checked by the final move itself, so two concurrent runs
    cannot both succeed on one name).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    array = np.asarray(array)
    bit_depth = check_writable(path, bit_depth, array.shape[2] if array.ndim == 3 else 1)
    bad = array.size - int(np.isfinite(array).sum())
    if bad:  # clipping would write NaN as black and Inf as white: a plausible image of nothing
        raise ImageWriteError(f"{path}: the image holds {bad} NaN or infinite sample(s); not written")
    pixels = _quantise(array, bit_depth)
    if not path.parent.is_dir():
        raise ImageWriteError(f"{path}: output folder {path.parent} does not exist")
    try:
        with atomic_path(path, replace=overwrite) as temp, open(temp, "wb") as handle:
            if suffix == ".npy":
                np.save(_WritesThroughPython(handle), pixels, allow_pickle=False)
            elif suffix in TIFF_SUFFIXES:
                import tifffile

                tifffile.imwrite(_WritesThroughPython(handle), pixels)
            else:
                Image.fromarray(pixels).save(handle, format="PNG")  # uint16 (H, W) maps to mode I;16
    except FileExistsError:
        raise ImageWriteError(f"{path}: appeared while this image was restored (another run writing there?); "
                              f"not replaced without --overwrite") from None
    except OSError as exc:  # a full disk is a failure while working (1), a read-only folder the user's (2)
        raise output_error(path, exc, ImageWriteError) from None
    return path
