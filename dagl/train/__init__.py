"""Training DAGL with the paper's recipe: one GPU, or many through ``torchrun`` and DDP.

``dagl-train`` (:mod:`dagl.train.cli`) is the user's door; :class:`~dagl.train.trainer.Trainer`
holds the loop, :mod:`~dagl.train.data` the on-the-fly degradations, :mod:`~dagl.train.checkpoint`
the exact-resume state and :mod:`~dagl.train.release` the two files that ship (weights + card).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import TrainConfig, TrainingError

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["TrainConfig", "Trainer", "TrainingError"]


def __getattr__(name: str):
    """``Trainer`` loads torch: imported on first use, so ``dagl-train --help`` stays fast."""
    if name == "Trainer":
        from .trainer import Trainer

        return Trainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
