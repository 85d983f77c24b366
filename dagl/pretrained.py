"""Weights that ship inside the package (``dagl/weights/``), kept apart from the code.

A file ``dagl/weights/dagl-<task>[-s<sigma>].safetensors`` with a model card beside it
(``.md``) is picked up automatically; nothing else needs registering.
"""

from __future__ import annotations

from pathlib import Path

from .configs import get_config
from .weights import WeightsError

WEIGHTS_DIR = Path(__file__).parent / "weights"


def weights_name(task: str, sigma: int | None = None) -> str:
    config = get_config(task)
    if config.sigmas:
        if sigma is None:
            raise WeightsError(f"task {task!r} has one model per noise level; pass sigma "
                               f"(one of {', '.join(map(str, config.sigmas))})")
        if sigma not in config.sigmas:
            raise WeightsError(f"sigma {sigma} is not one the paper trains for {task!r}; "
                               f"choose one of {', '.join(map(str, config.sigmas))}")
        return f"dagl-{task}-s{sigma}.safetensors"
    return f"dagl-{task}.safetensors"


def shipped_weights(task: str, sigma: int | None = None) -> Path:
    """Path of the shipped weights for ``task``; :class:`WeightsError` if none ship."""
    path = WEIGHTS_DIR / weights_name(task, sigma)
    if not path.is_file():
        raise WeightsError(f"no trained weights ship for {path.stem!r}; pass a weights file "
                           f"(an official DAGL checkpoint or a .safetensors from dagl-train)")
    return path
