"""Held-out PSNR during training: a quick, deterministic proxy to follow progress and pick weights.

Full test images would need the release's tiled inference (the attention grows with the square of
the area), so validation runs on a centred crop of each image, degraded once and deterministically
(the paper's seeded noise, Pillow JPEG at each CAR quality, GRBG mosaic). The paper-protocol numbers
come from ``dagl-eval`` on the shipped weights, not from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..configs import TaskConfig
from ..degradations import jpeg_pil, mosaic_grbg, protocol_noise
from ..io import read_image
from ..metrics import psnr
from .config import TrainingError
from .data import PAIRED_DIRS, list_images, to_task_channels

#: Test sets of ``../shared/datasets`` usable for validation, by the names users know them by.
KNOWN_SETS = ("set12", "bsd68", "urban100", "classic5", "live1", "mcmaster18")
#: JPEG's 8x8 blocks and Bayer's 2x2 cells must keep their phase when a crop is taken.
_ALIGN = {"jpeg": 8, "demosaic": 2}


@dataclass(frozen=True)
class ValidationImage:
    label: str  # e.g. "q10" for CAR; "" when the task has a single degradation
    degraded: np.ndarray  # (H, W, C)
    clean: np.ndarray


def datasets_root() -> Path:
    """``$DAGL_DATASETS``, else ``../shared/datasets`` beside the checkout (as the tests use)."""
    env = os.environ.get("DAGL_DATASETS")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "datasets"


def resolve_set(name: str) -> Path:
    """A folder given as a path, or one of :data:`KNOWN_SETS` under :func:`datasets_root`."""
    path = Path(name)
    if path.is_dir():
        return path
    if name.lower() in KNOWN_SETS:
        path = datasets_root() / name.lower()
        if path.is_dir():
            return path
        raise TrainingError(f"--val {name}: {path} not found (set DAGL_DATASETS to the datasets folder)")
    raise TrainingError(f"--val {name}: not a folder nor one of {', '.join(KNOWN_SETS)}")


def _centre(image: np.ndarray, size: int, align: int) -> np.ndarray:
    height, width = image.shape[:2]
    top = (max(0, height - size) // 2) // align * align
    left = (max(0, width - size) // 2) // align * align
    return image[top:top + size, left:left + size]


def load_validation_set(name: str, config: TaskConfig, sigma: int | None,
                        crop: int) -> list[ValidationImage]:
    """Degraded/clean centred crops of every image of the set (and every CAR quality)."""
    folder = resolve_set(name)
    align = _ALIGN.get(config.name, 1)
    items: list[ValidationImage] = []
    if config.name == "real-denoise":
        if not all((folder / d).is_dir() for d in PAIRED_DIRS):
            raise TrainingError(f"--val {name}: real-denoise validates on pairs: {folder} needs clean/ and noisy/")
        for path in list_images(folder / "clean"):
            clean = to_task_channels(read_image(path), config, path)
            noisy = to_task_channels(read_image(folder / "noisy" / path.name), config, path)
            items.append(ValidationImage("", _centre(noisy, crop, 1), _centre(clean, crop, 1)))
        return items
    for path in list_images(folder):
        image = to_task_channels(read_image(path), config, path)
        if config.name == "denoise":
            clean = _centre(image, crop, 1)
            with torch.random.fork_rng(devices=[]):  # the protocol reseeds the global RNG
                noisy = protocol_noise(torch.from_numpy(np.ascontiguousarray(clean[..., 0]))[None, None],
                                       float(sigma))
            items.append(ValidationImage("", noisy[0, 0].numpy()[..., None], clean))
        elif config.name == "jpeg":
            for quality in config.qualities:
                degraded = jpeg_pil(image[..., 0], quality)[..., None]
                items.append(ValidationImage(f"q{quality}", _centre(degraded, crop, align),
                                             _centre(image, crop, align)))
        else:
            items.append(ValidationImage("", _centre(mosaic_grbg(image), crop, align),
                                         _centre(image, crop, align)))
    return items


@torch.no_grad()
def evaluate(model: nn.Module, items: list[ValidationImage], device: torch.device) -> dict[str, float]:
    """Mean PSNR per label (e.g. per CAR quality) and over everything (``"mean"``, last).

    PSNR is the protocol's: float output clamped to [0, 1], no shave.
    """
    was_training = model.training
    model.eval()
    scores: dict[str, list[float]] = {}
    for item in items:
        x = torch.from_numpy(np.ascontiguousarray(item.degraded)).permute(2, 0, 1)[None].to(device)
        out = model(x)[0].permute(1, 2, 0).float().cpu().numpy()
        value = psnr(out, item.clean)
        scores.setdefault(item.label, []).append(value)
    model.train(was_training)
    means = {label: float(np.mean(values)) for label, values in scores.items() if label}
    means["mean"] = float(np.mean([v for values in scores.values() for v in values]))
    return means
