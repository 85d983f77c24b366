"""Held-out PSNR during training: a quick, deterministic proxy to follow progress and pick weights.

The sets and their degraded inputs are :mod:`dagl.data.datasets`' (protocol noise, the stored MATLAB
JPEGs at each CAR quality, the stored GRBG mosaics, or a clean/ + degraded/ folder). Full test
images would need the release's tiled inference (the attention grows with the square of the
area), so validation runs on a centred crop of each image; the paper-protocol numbers come from
``dagl-eval`` on the shipped weights, not from here. Weights are chosen on the held-out split of the
training images (the default), never on a paper test set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.datasets import DATASETS, DatasetError, open_set
from ..images.metrics import psnr
from ..tasks.configs import TaskConfig
from .config import TrainingError
from .data import load_images, stored_to_float
from .heldout import HELD_OUT, held_out_pairs


@dataclass(frozen=True)
class ValidationImage:
    label: str  # e.g. "q10" for CAR on a named set; "" when there is a single degradation
    degraded: np.ndarray  # (H, W, C)
    clean: np.ndarray


def _hwc(image: np.ndarray) -> np.ndarray:
    return image[..., None] if image.ndim == 2 else image


def load_validation_set(source: str, config: TaskConfig, sigma: int | None, crop: int,
                        limit: int | None = None, data: Sequence[Path] = ()) -> list[ValidationImage]:
    """Centred crops of every image (or the first ``limit``) of ``source``, at every CAR quality
    for the named JPEG sets; ``held-out`` is the split of the training folders ``data`` that is
    never trained on (:mod:`dagl.train.heldout`)."""
    if source == HELD_OUT:
        clean, twins, _ = load_images(data, config, patch=1, limit=limit, held_out=True)
        pairs = held_out_pairs([stored_to_float(c) for c in clean],
                               None if twins is None else [stored_to_float(t) for t in twins], config, sigma, crop)
        return [ValidationImage(label, degraded, window) for label, degraded, window in pairs]
    qualities = config.qualities if source in DATASETS and config.qualities else (None,)
    items: list[ValidationImage] = []
    try:
        for quality in qualities:
            evalset = open_set(source, config.name, sigma=None if sigma is None else float(sigma),
                               quality=quality, crop=crop, limit=limit)
            with torch.random.fork_rng(devices=[]):  # the protocol noise reseeds the global RNG
                samples = list(evalset)
            label = f"q{quality}" if quality is not None else ""
            items += [ValidationImage(label, _hwc(s.degraded), _hwc(s.clean)) for s in samples]
    except DatasetError as exc:
        raise TrainingError(f"--val {source}: {exc}") from None
    return items


@torch.no_grad()
def validation_psnr(model: nn.Module, items: list[ValidationImage], device: torch.device) -> dict[str, float]:
    """Mean PSNR per label (e.g. per CAR quality) and over everything (``"mean"``, last).

    PSNR is the protocol's: float output clamped to [0, 1], no shave.
    """
    was_training = model.training
    model.eval()
    scores: dict[str, list[float]] = {}
    for item in items:
        x = torch.from_numpy(np.ascontiguousarray(item.degraded)).permute(2, 0, 1)[None].to(device)
        out = model(x)[0].permute(1, 2, 0).float().cpu().numpy()
        scores.setdefault(item.label, []).append(psnr(out, item.clean))
    model.train(was_training)
    means = {label: float(np.mean(values)) for label, values in scores.items() if label}
    means["mean"] = float(np.mean([v for values in scores.values() for v in values]))
    return means
