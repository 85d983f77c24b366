"""Weights that ship inside the package (``dagl/weights/``), kept apart from the code.

A file ``dagl/weights/dagl-<task>[-s<sigma>].safetensors`` (:func:`dagl.artefact.naming.weights_name`)
with a model card beside it (``.md``) is picked up automatically; nothing else needs registering.
"""

from __future__ import annotations

from pathlib import Path

from ..artefact.naming import weights_name
from ..errors import WeightsError

WEIGHTS_DIR = Path(__file__).parent


def shipped_weights(task: str, sigma: int | None = None) -> Path:
    """Path of the shipped weights for ``task``; :class:`WeightsError` if none ship."""
    path = WEIGHTS_DIR / weights_name(task, sigma)
    if not path.is_file():
        raise WeightsError(f"no trained weights ship for {path.stem!r}; pass a weights file "
                           f"(an official DAGL checkpoint or a .safetensors from dagl-train)")
    return path
