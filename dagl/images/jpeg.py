"""The scans of a JPEG file, counted from its markers before libjpeg decodes any of them.

A progressive JPEG refines its coefficients over several scans, and each scan is a pass over the
whole image: the decode work is scans x pixels, and the pixel limit bounds only the second factor.
Encoders write about 10 scans (libjpeg's progressive script: 10 for colour, 6 for gray); a file
whose scans are repeated hundreds of times decodes for minutes. So the markers are walked first
(their lengths, and past each scan's entropy-coded data to the next marker) and a file with more
than :data:`MAX_SCANS` scans is refused. The walk reads the file through a memory map in steps.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

#: Scans a JPEG may have: ten times what encoders write, so decode work stays within ~100 passes.
MAX_SCANS = 100
#: Most bytes searched for markers at a time.
_STEP = 1 << 24
_SOS, _EOI = 0xDA, 0xD9
#: Markers without a length: TEM, RST0-7, SOI, EOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8), 0xD8, _EOI})


def _markers(data: mmap.mmap | bytes, start: int) -> int | None:
    """The offset of the first marker at or after ``start`` inside entropy-coded data, None at the end.

    There a 0xFF byte is followed by 0x00 (a stuffed 0xFF), 0xFF (fill) or RST0-7 unless it begins
    the next marker.
    """
    begin, step = start, 1 << 16  # small steps first: a scan is often a few kB
    while begin + 1 < len(data):
        chunk = np.frombuffer(data, np.uint8, count=min(step + 1, len(data) - begin), offset=begin)
        follower = chunk[1:]
        hits = np.flatnonzero((chunk[:-1] == 0xFF) & (follower != 0x00) & (follower != 0xFF)
                              & ((follower < 0xD0) | (follower > 0xD7)))
        if hits.size:
            return begin + int(hits[0])
        begin, step = begin + step, min(2 * step, _STEP)
    return None


def count_scans(path: Path, limit: int = MAX_SCANS) -> int:
    """The number of scans (SOS markers) in JPEG ``path``, counted up to ``limit + 1``.

    A file that ends early or breaks its marker structure is left to the decoder, which says so.
    """
    with open(path, "rb") as handle:
        if handle.seek(0, 2) < 4:
            return 0
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            scans, position = 0, 2  # past SOI
            while scans <= limit and position + 1 < len(data):
                while position + 1 < len(data) and data[position] == 0xFF and data[position + 1] == 0xFF:
                    position += 1  # fill bytes before a marker
                if data[position] != 0xFF or position + 1 >= len(data):
                    break
                marker = data[position + 1]
                if marker in _STANDALONE:
                    if marker == _EOI:
                        break
                    position += 2
                    continue
                if position + 3 >= len(data):
                    break
                end = position + 2 + (data[position + 2] << 8 | data[position + 3])
                if marker != _SOS:
                    position = end
                    continue
                scans += 1
                following = _markers(data, end)
                if following is None:
                    break
                position = following
            return scans
