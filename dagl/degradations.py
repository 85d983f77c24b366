"""Degradations of the paper's tasks: test-time protocols and on-the-fly training versions.

The test-time ones reproduce the paper's protocol (``docs/dagl-reference.md``) exactly (seeded torch noise, stored
MATLAB JPEGs, stored GRBG mosaics), so that PSNRs compare with the paper's; the training ones
draw from a caller-owned generator so that runs are reproducible and resumable.
"""

from __future__ import annotations

import io

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # imported where the noise is drawn: the numpy-only helpers stay cheap to import
    import torch

#: Bayer layout of the paper's mosaics: row 0 = G R G R ..., row 1 = B G B G ...
GRBG = ((1, 0), (2, 1))  # channel index at (even row, even/odd col) and (odd row, even/odd col)


def protocol_noise(clean: torch.Tensor, sigma: float) -> torch.Tensor:
    """The paper's test noise: ``torch.manual_seed(1)`` then ``normal_(0, sigma/255)``, not clipped.

    ``clean`` is (1, 1, H, W) float in [0, 1]. The global seed is reset on purpose: that is the
    protocol, and it makes the noisy input of an image independent of what ran before it.
    """
    import torch

    torch.manual_seed(1)
    noise = torch.FloatTensor(clean.size()).normal_(0, sigma / 255.0)
    return clean + noise


def gaussian_noise(clean: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Additive Gaussian noise of ``sigma`` (on the 0-255 scale) for training, not clipped."""
    import torch

    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)
    return clean + noise * (sigma / 255.0)


def jpeg_pil(gray: np.ndarray, quality: int) -> np.ndarray:
    """Encode a gray float image in [0, 1] as JPEG with Pillow (libjpeg) at ``quality``, decode."""
    pixels = np.clip(np.round(gray * 255.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as img:
        return np.asarray(img, dtype=np.float32) / 255.0


def grbg_mask(height: int, width: int) -> np.ndarray:
    """(H, W, 3) 0/1 mask of which RGB sample a GRBG sensor records at each pixel."""
    mask = np.zeros((height, width, 3), dtype=np.float32)
    for row in range(2):
        for col in range(2):
            mask[row::2, col::2, GRBG[row][col]] = 1.0
    return mask


def mosaic_grbg(rgb: np.ndarray) -> np.ndarray:
    """Keep only the GRBG Bayer samples of an (H, W, 3) image, zeros elsewhere (the paper's format)."""
    return rgb * grbg_mask(*rgb.shape[:2])


def raw_to_mosaic(raw: np.ndarray) -> np.ndarray:
    """A one-channel GRBG raw frame (H, W) to the 3-channel mosaic layout the network takes."""
    return raw[..., None] * grbg_mask(*raw.shape)
