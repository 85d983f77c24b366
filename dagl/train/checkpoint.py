"""Training state that resumes exactly: weights, optimiser, schedule, scaler, iteration, RNGs.

The data pipeline's randomness is keyed by (seed, epoch, position) (see :mod:`dagl.train.data`),
so its "generator state" is the iteration count; the global Python/NumPy/torch generators are
saved too, so that nothing that might draw from them (a future dropout, a library) breaks resume.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_path
from .config import RESUME_INVARIANTS, TrainConfig, TrainingError

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write must leave the previous checkpoint intact."""
    with atomic_path(path) as temp:
        torch.save(state, temp)


def load(path: Path, config: TrainConfig) -> dict[str, Any]:
    """The saved state, refused if the run it belongs to differs in a field that defines it."""
    if not path.is_file():
        raise TrainingError(f"--resume: no checkpoint at {path}")
    # The RNG states hold NumPy objects, so this is our own file read in full trust.
    state = torch.load(path, map_location="cpu", weights_only=False)
    saved = state["config"]
    current = config.to_dict()
    for key in RESUME_INVARIANTS:
        if saved.get(key) != current.get(key):
            raise TrainingError(f"--resume: {path} was made with {key}={saved.get(key)!r}, "
                                f"this run asks for {current.get(key)!r}")
    if state["iteration"] > config.iterations:
        raise TrainingError(f"--resume: {path} is at iteration {state['iteration']}, "
                            f"past --iterations {config.iterations}")
    return state
