"""DAGL (ICCV 2021) in PyTorch, faithful to the authors' release.

>>> import dagl
>>> net = dagl.load("jpeg", weights="model_best.pt")  # official checkpoint or .safetensors
>>> restored = net(degraded)                           # (N, 1, H, W) float32 in [0, 1]
"""

from __future__ import annotations

from .interrupt import install_early as _install_early

_install_early()  # first, before the heavy imports below: Ctrl-C while they load is one line, not a traceback

from pathlib import Path  # noqa: E402

from .configs import TASKS, TaskConfig, get_config  # noqa: E402
from .model import DAGL, create  # noqa: E402
from .pretrained import shipped_weights  # noqa: E402
from .weights import WeightsError, load_into, read_state_dict, save_safetensors  # noqa: E402

__all__ = ["DAGL", "TASKS", "TaskConfig", "WeightsError", "create", "get_config", "load",
           "read_state_dict", "save_safetensors", "shipped_weights"]


def load(task: str, weights: str | Path | None = None, *, sigma: int | None = None,
         gfam: str = "batched") -> DAGL:
    """An eval-mode DAGL for ``task`` with ``weights`` (or the weights shipped for it).

    ``weights`` may be an official release checkpoint (``torch.save`` of the state dict) or a
    ``.safetensors`` file. Without it, the weights shipped in the package for ``task`` (and
    ``sigma`` for denoising) are used; if none ship, :class:`WeightsError` says so.
    """
    if weights is None:
        weights = shipped_weights(task, sigma)
    model = create(task, gfam=gfam)
    load_into(model, weights)
    return model.eval()
