"""Degradations of the paper's tasks: test-time protocols and on-the-fly training versions.

The test-time ones reproduce the paper's protocol (``docs/dagl-reference.md``) exactly (seeded torch noise, stored
MATLAB JPEGs, stored GRBG mosaics), so that PSNRs compare with the paper's; the training ones
draw from a caller-owned generator so that runs are reproducible and resumable. Each task's
training degradation is a :class:`TrainingDegradation` on its :class:`~dagl.tasks.configs.TaskConfig`.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

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


class TrainingDegradation(ABC):
    """How a clean training crop becomes the network's input, drawn from the sample's own generator."""

    #: True when the degraded crop is not made but read: a twin image from disk (real camera noise).
    paired: ClassVar[bool] = False

    @abstractmethod
    def degrade(self, clean: np.ndarray, rng: np.random.Generator, sigma: int | None,
                twin: np.ndarray | None) -> np.ndarray:
        """The degraded (H, W, C) float32 crop of ``clean`` (H, W, C); ``twin`` is the paired crop, if any.

        Draws come from ``rng`` only (after the crop and transform), so a sample stays a pure function of its key.
        """

    @abstractmethod
    def describe(self, sigma: int | None) -> str:
        """One sentence for logs and the model card, since JPEG and noise details change results."""


@dataclass(frozen=True)
class TrainingNoise(TrainingDegradation):
    """Additive Gaussian noise of the run's sigma, drawn from a torch generator seeded by the sample."""

    def degrade(self, clean: np.ndarray, rng: np.random.Generator, sigma: int | None,
                twin: np.ndarray | None) -> np.ndarray:
        import torch

        generator = torch.Generator().manual_seed(int(rng.integers(2**63)))
        planes = torch.from_numpy(clean).permute(2, 0, 1)  # noise drawn in (C, H, W) order, as the network sees it
        return gaussian_noise(planes, float(sigma), generator).permute(1, 2, 0).numpy()

    def describe(self, sigma: int | None) -> str:
        return f"additive Gaussian noise, sigma {sigma}/255, not clipped (torch.Generator per sample)"


@dataclass(frozen=True)
class TrainingJpeg(TrainingDegradation):
    """A Pillow JPEG round trip at a quality drawn uniformly per crop (gray crops)."""

    qualities: tuple[int, ...]

    def degrade(self, clean: np.ndarray, rng: np.random.Generator, sigma: int | None,
                twin: np.ndarray | None) -> np.ndarray:
        quality = int(rng.choice(self.qualities))
        return jpeg_pil(clean[..., 0], quality)[..., None]

    def describe(self, sigma: int | None) -> str:
        qualities = "{" + ",".join(map(str, self.qualities)) + "}"
        return (f"JPEG encoded with Pillow (libjpeg) at a quality drawn uniformly from {qualities} "
                f"per crop; the test sets' inputs come from MATLAB's encoder")


@dataclass(frozen=True)
class TrainingMosaic(TrainingDegradation):
    """The GRBG Bayer samples of an RGB crop (no random draw)."""

    def degrade(self, clean: np.ndarray, rng: np.random.Generator, sigma: int | None,
                twin: np.ndarray | None) -> np.ndarray:
        return mosaic_grbg(clean)

    def describe(self, sigma: int | None) -> str:
        return "GRBG Bayer mosaic (zeros where the sensor has no sample)"


@dataclass(frozen=True)
class PairedNoise(TrainingDegradation):
    """Real camera noise: the degraded crop is the same window of the clean image's noisy twin."""

    paired = True

    def degrade(self, clean: np.ndarray, rng: np.random.Generator, sigma: int | None,
                twin: np.ndarray | None) -> np.ndarray:
        if twin is None:
            raise ValueError("real-noise training needs the noisy twin of every clean crop")
        return twin

    def describe(self, sigma: int | None) -> str:
        return "real camera noise from paired clean/noisy images"
