"""Build the PyTorch network of a weights file for the task the caller resolved (metadata or --task)."""

from __future__ import annotations

from pathlib import Path

import dagl
from dagl.weights import WeightsError

from ..base import ModelInfo, ModelInputError


def load_model(weights: Path, info: ModelInfo, gfam: str = "batched") -> dagl.DAGL:
    """An eval-mode float32 DAGL for ``info.task`` with ``weights`` loaded strictly."""
    try:
        return dagl.load(info.task, weights=weights, gfam=gfam)
    except WeightsError as exc:
        raise ModelInputError(str(exc)) from None  # the user's file: exit 2
