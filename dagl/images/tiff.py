"""One-page TIFF files to arrays, bounded by what their data really inflates to, in the colours their tags say.

tifffile (without the optional imagecodecs) inflates a compressed strip or tile in full, whatever
size its tags declare: a few MB of zlib reach gigabytes. So before tifffile decodes anything, each
segment is inflated here once, in steps of :data:`_STEP` bytes whose output is counted and dropped,
and the file is refused when a segment yields more than its declared size or all of them more than
the reader's byte budget. A compression this module cannot count is refused, never decoded blind.

The photometric interpretation decides what the samples mean: gray (BlackIsZero, or WhiteIsZero
inverted), RGB, or palette indices (looked up in the colour map). The others (CMYK, CIELab, YCbCr,
...) are refused by name: read as gray or RGB they would be a plausible, wrong picture.
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .read_limits import ImageReadError, check_header, decode_budget

#: tifffile's axes of a one-image page: contiguous samples (YXS) or one plane per sample (SYX).
_TIFF_AXES = {"YX", "YXS", "SYX"}
#: Strips or tiles a page may have: every one is a step of the count and of tifffile's decode, so a tall
#: one-pixel-wide page cut into one-row strips would loop for minutes. 40 MP cut into 16x16 tiles (TIFF's
#: smallest) is 156,250; one-row strips of a 40,000-row image are 40,000.
MAX_SEGMENTS = 1 << 18
#: Bytes inflated per step while counting (the memory the count needs).
_STEP = 1 << 20
#: Colour samples each honoured photometric interpretation has (one extra sample may follow: alpha).
_COLOUR_SAMPLES = {"MINISBLACK": 1, "MINISWHITE": 1, "PALETTE": 1, "RGB": 3}


def _stream_size(inflater: zlib._Decompress | lzma.LZMADecompressor, data: bytes, limit: int) -> int:
    """Bytes ``data`` inflates to, counted :data:`_STEP` at a time; stops once past ``limit``."""
    produced = len(inflater.decompress(data, _STEP))
    while produced <= limit:
        if isinstance(inflater, lzma.LZMADecompressor):
            if inflater.eof or inflater.needs_input:
                break
            produced += len(inflater.decompress(b"", _STEP))
        elif inflater.unconsumed_tail:
            produced += len(inflater.decompress(inflater.unconsumed_tail, _STEP))
        else:
            produced += len(inflater.flush())  # what the last bits of input still hold (a few bytes)
            break
    return produced


def _packbits_size(data: bytes, limit: int) -> int:
    """Bytes PackBits ``data`` expands to, from its run headers alone; stops once past ``limit``."""
    produced = position = 0
    while position < len(data) and produced <= limit:
        header = data[position]
        if header < 128:  # a literal run of header + 1 bytes
            produced += min(header + 1, len(data) - position - 1)
            position += header + 2
        elif header > 128:  # one byte repeated 257 - header times
            produced += 257 - header
            position += 2
        else:
            position += 1
    return produced


#: TIFF compression codes whose output can be counted before decoding, and how (None: stored as is).
_COUNTERS: dict[int, Callable[[bytes, int], int] | None] = {
    1: None,
    8: lambda data, limit: _stream_size(zlib.decompressobj(), data, limit),  # Adobe deflate
    32946: lambda data, limit: _stream_size(zlib.decompressobj(), data, limit),  # old deflate
    34925: lambda data, limit: _stream_size(lzma.LZMADecompressor(), data, limit),
    32773: _packbits_size,
}


def _check_inflation(path: Path, tif, page) -> None:  # noqa: ANN001 (tifffile's classes)
    """Refuse a page whose compressed segments inflate past their declared size or the byte budget."""
    compression = int(page.compression)
    if compression not in _COUNTERS:
        raise ImageReadError(f"{path}: TIFF compression {_name(page.compression)} is not read; save it uncompressed, "
                             f"or with deflate, LZMA or PackBits")
    count = _COUNTERS[compression]
    if count is None:
        return
    segment = int(np.prod(page.chunks)) * page.dtype.itemsize
    budget = decode_budget()
    if segment > budget:
        raise ImageReadError(f"{path}: a TIFF strip or tile of {segment:,} bytes is over the {budget:,} bytes "
                             f"a reader decodes")
    handle = tif.filehandle
    total = 0
    for index, (offset, size) in enumerate(zip(page.dataoffsets, page.databytecounts)):
        if not size:
            continue
        handle.seek(offset)
        try:
            produced = count(handle.read(size), segment)
        except (zlib.error, lzma.LZMAError) as exc:
            raise ImageReadError(f"{path}: TIFF segment {index} is corrupt ({exc})") from None
        total += produced
        if produced > segment or total > budget:
            raise ImageReadError(f"{path}: TIFF segment {index} inflates past "
                                 f"{'its declared ' if produced > segment else 'the reader budget of '}"
                                 f"{segment if produced > segment else budget:,} bytes; a hostile or corrupt file")


def _name(value: object) -> str:
    """A tag value's name (tifffile's enums), or its number where the value is not a known one."""
    return getattr(value, "name", str(value))


def _check_photometric(path: Path, page) -> None:  # noqa: ANN001 (tifffile's page)
    """Refuse, from the tags, a photometric interpretation or sample layout this reader does not honour."""
    name = _name(page.photometric)
    if name not in _COLOUR_SAMPLES:
        name += " (CMYK)" if name == "SEPARATED" else ""
        raise ImageReadError(f"{path}: TIFF photometric interpretation {name} is not read (gray, RGB and palette "
                             f"are); convert it to RGB or gray first")
    extra = len(page.extrasamples)
    colour = int(page.samplesperpixel) - extra
    if colour != _COLOUR_SAMPLES[name] or extra > (0 if name == "PALETTE" else 1):
        raise ImageReadError(f"{path}: a {name} TIFF with {colour} colour and {extra} extra sample(s) per pixel; "
                             f"expected {_COLOUR_SAMPLES[name]} colour sample(s)"
                             f"{'' if name == 'PALETTE' else ' and at most one alpha'}")
    if name in ("MINISWHITE", "PALETTE") and page.dtype.kind != "u":
        raise ImageReadError(f"{path}: a {name} TIFF of {page.dtype} samples is not read (integer samples are)")
    if name == "PALETTE" and (page.colormap is None or page.colormap.ndim != 2 or page.colormap.shape[0] != 3):
        raise ImageReadError(f"{path}: a palette TIFF without a usable colour map")


def _colours(path: Path, page, array: np.ndarray) -> np.ndarray:  # noqa: ANN001 (tifffile's page)
    """The decoded samples as gray or RGB (any alpha last), as :func:`_check_photometric` allowed them."""
    name = _name(page.photometric)
    if name == "MINISWHITE":  # 0 is white: the gray plane inverted, alpha as it is
        inverted = np.iinfo(array.dtype).max - array
        return np.dstack([inverted[..., 0], array[..., 1]]) if array.ndim == 3 else inverted
    if name == "PALETTE":  # indices into a 16-bit RGB colour map
        colormap = page.colormap.astype(np.uint16)
        if int(array.max(initial=0)) >= colormap.shape[1]:
            raise ImageReadError(f"{path}: palette index {int(array.max())} is past its {colormap.shape[1]} colours")
        return np.moveaxis(np.take(colormap, array, axis=1), 0, -1)
    return array


def read_tiff(path: Path) -> np.ndarray:
    """A one-page TIFF as (H, W[, S]) gray or RGB, its tags and its segments checked before decoding."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if len(tif.pages) != 1:
            raise ImageReadError(f"{path}: holds {len(tif.pages)} pages; expected one image")
        page = tif.pages[0]
        if page.axes not in _TIFF_AXES or page.dtype is None:
            raise ImageReadError(f"{path}: a TIFF of axes {page.axes} and shape {page.shape} is not one 2-D image")
        check_header(path, int(page.imagelength), int(page.imagewidth), int(page.samplesperpixel), page.dtype)
        _check_photometric(path, page)
        if len(page.dataoffsets) > MAX_SEGMENTS:
            raise ImageReadError(f"{path}: a TIFF cut into {len(page.dataoffsets):,} strips or tiles (at most "
                                 f"{MAX_SEGMENTS:,}); a hostile or corrupt file")
        _check_inflation(path, tif, page)
        array = page.asarray()
        array = np.moveaxis(array, 0, -1) if page.axes == "SYX" else array
        return _colours(path, page, array)
