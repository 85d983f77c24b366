"""Build the PyTorch network of a weights file for the task the caller resolved (metadata or --task)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dagl
from dagl.artefact import declared_metadata
from dagl.files import file_digest
from dagl.weights.checkpoints import WeightsError, weights_metadata

from ..base import ModelInfo, ModelInputError, RunnerRequest
from ..metadata import resolve_info
from .runner import TorchRunner


def load_model(weights: Path, info: ModelInfo, gfam: str = "batched") -> dagl.DAGL:
    """An eval-mode float32 DAGL for ``info.task`` with ``weights`` loaded strictly."""
    try:
        return dagl.load(info.task, weights=weights, gfam=gfam)
    except WeightsError as exc:
        raise ModelInputError(str(exc)) from None  # the user's file: exit 2


def create(request: RunnerRequest, gfam: str = "batched") -> TorchRunner:
    """The ``torch`` backend's factory: a weights file's task from its metadata or ``--task``, then its network
    (``gfam``: which implementation of :mod:`dagl.network.gfam` computes the heads)."""
    path = request.path
    try:
        declared = declared_metadata(weights_metadata(path), path)
    except WeightsError as exc:
        raise ModelInputError(str(exc)) from None
    if not request.task and not declared.get("task"):
        raise ModelInputError(f"{path.name} is a weights file and does not say which task it is for; "
                              f"pass --task")
    info = replace(resolve_info(declared, path, request.task, request.sigma), weights_sha256=file_digest(path))
    return TorchRunner(load_model(path, info, gfam), info, request.device, request.threads)
