"""Colour images for the tests: a 4:2:0 JPEG photo stand-in, and JFIF's YCbCr (both ways) as printed in T.871."""

from __future__ import annotations

import numpy as np
from PIL import Image

RNG = np.random.default_rng(0)


def colour_jpeg(path, height=48, width=64, quality=30):
    """A smooth colour photo stand-in saved as a 4:2:0 JPEG (chroma subsampled, as cameras write it)."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    rgb = np.dstack([0.2 + 0.6 * x, 0.3 + 0.4 * np.sin(6 * y) ** 2, 0.7 - 0.5 * x * y])
    rgb += 0.05 * RNG.standard_normal(rgb.shape)
    Image.fromarray(np.uint8(np.clip(rgb, 0, 1) * 255 + 0.5)).save(path, quality=quality, subsampling=2)
    return path


def jfif_ycbcr(rgb):
    """T.871's printed formulas on the 0-255 scale: the independent transcription for dagl.images.colour."""
    r, g, b = (255 * rgb[..., i].astype(np.float64) for i in range(3))
    return np.dstack([0.299 * r + 0.587 * g + 0.114 * b,
                      128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
                      128 + 0.5 * r - 0.418688 * g - 0.081312 * b]) / 255


def jfif_rgb(y, cb, cr):
    """T.871's printed YCbCr -> RGB formulas (on [0, 1] samples, chroma centred on 128/255)."""
    cb, cr = cb - 128 / 255, cr - 128 / 255
    return np.dstack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb])
