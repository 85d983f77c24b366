"""BT.601 full-range YCbCr, as JPEG/JFIF defines it: how a gray model restores a colour photo.

A gray JPEG-artifact (or denoising) network is trained on luma. A colour photo is split into JPEG's
own planes (JFIF's full-range BT.601 matrix): the convention restores its luma Y and keeps the chroma
Cb, Cr a decoder upsampled; ``dagl-infer`` by default runs Cb and Cr through the same network too,
each as a gray plane (``--chroma``, docs/colour.md). Samples are floats in [0, 1], chroma centred on 128/255 (JFIF's
128 on the 8-bit scale, so the planes are an 8-bit JPEG's divided by 255); Y is :data:`dagl.images.io.LUMA` applied to R, G, B, the same luma the gray tasks use.
"""

from __future__ import annotations

import numpy as np

from .io import LUMA

#: JFIF's RGB -> YCbCr matrix (ITU-T T.871), rows Y, Cb, Cr; Cb and Cr are offset by 128/255 after it.
RGB_TO_YCBCR = np.array([LUMA,
                         [-0.168736, -0.331264, 0.5],
                         [0.5, -0.418688, -0.081312]], dtype=np.float64)
#: Its inverse, computed rather than rounded (T.871's printed 1.402 / 0.344136 ... are this, rounded),
#: so that YCbCr -> RGB -> YCbCr gives the chroma back to float rounding.
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)
CHROMA_OFFSET = np.array([0.0, 128 / 255, 128 / 255])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in [0, 1] to (H, W, 3) Y, Cb, Cr in [0, 1] (float32)."""
    return (rgb[..., :3].astype(np.float64) @ RGB_TO_YCBCR.T + CHROMA_OFFSET).astype(np.float32)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """(H, W, 3) Y, Cb, Cr to RGB (float32), not clamped: the caller decides about out-of-gamut samples."""
    return ((ycbcr.astype(np.float64) - CHROMA_OFFSET) @ YCBCR_TO_RGB.T).astype(np.float32)
