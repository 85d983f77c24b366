"""Training state that resumes exactly: weights, optimiser, schedule, scaler, iteration, RNGs.

The data pipeline's randomness is keyed by (seed, epoch, position) (see :mod:`dagl.train.data`),
so its "generator state" is the iteration count; the global Python/NumPy/torch generators are
saved too, so that nothing that might draw from them (a future dropout, a library) breaks resume.

Checkpoints are read with ``torch.load(weights_only=True)``: a checkpoint is a file a user may
have been handed, and a full unpickler would run whatever code a crafted file names. Everything
saved is therefore tensors and plain Python values (the NumPy RNG state's key array becomes a
tensor), which the restricted unpickler accepts; anything else is refused with one line.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import first_line
from .config import RESUME_INVARIANTS, TrainConfig, TrainingError

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    """The global generators' states as tensors and plain values (loadable with weights_only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {"python": random.getstate(),
             "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    saved = state["numpy"]
    np.random.set_state((saved["name"], saved["keys"].numpy().astype(np.uint32), saved["pos"],
                         saved["has_gauss"], saved["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write must leave the previous checkpoint intact."""
    with atomic_path(path) as temp:
        torch.save(state, temp)


def read(path: Path) -> dict[str, Any]:
    """The file's contents through the restricted unpickler; a file that needs more is refused."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise TrainingError(f"--resume: refused {path}: it holds objects other than tensors and plain "
                            f"values, which could run code when loaded ({first_line(exc)})") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise TrainingError(f"--resume: cannot read {path}: {first_line(exc)}") from None
    if not isinstance(state, dict) or not {"config", "iteration", "model"} <= state.keys():
        raise TrainingError(f"--resume: {path} is not a dagl-train checkpoint")
    return state


def load(path: Path, config: TrainConfig) -> dict[str, Any]:
    """The saved state, refused if the run it belongs to differs in a field that defines it."""
    if not path.is_file():
        raise TrainingError(f"--resume: no checkpoint at {path}")
    state = read(path)
    # A field added after the checkpoint was written stands at its default there (e.g. no --ema).
    saved = {f.name: f.default for f in fields(TrainConfig)} | state["config"]
    current = config.to_dict()
    for key in RESUME_INVARIANTS:
        if saved.get(key) != current.get(key):
            raise TrainingError(f"--resume: {path} was made with {key}={saved.get(key)!r}, "
                                f"this run asks for {current.get(key)!r}")
    if state["iteration"] > config.iterations:
        raise TrainingError(f"--resume: {path} is at iteration {state['iteration']}, "
                            f"past --iterations {config.iterations}")
    return state
