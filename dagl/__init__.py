"""DAGL (ICCV 2021) in PyTorch, faithful to the authors' release.

>>> import dagl
>>> net = dagl.load("jpeg", weights="model_best.pt")  # official checkpoint or .safetensors
>>> restored = net(degraded)                           # (N, 1, H, W) float32 in [0, 1]
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import WeightsError
from .tasks.configs import TASKS, TaskConfig, get_config
from .weights.pretrained import shipped_weights

if TYPE_CHECKING:
    from .network.model import DAGL, create
    from .weights.checkpoints import load_into, read_state_dict, save_safetensors

#: Names served from their modules on first use (PEP 562), so that ``import dagl.images.io`` or a command's
#: ``--help`` does not spend seconds importing torch; ``dagl.DAGL`` and ``dagl.load`` import it then.
_LAZY = {"DAGL": "network.model", "create": "network.model", "load_into": "weights.checkpoints",
         "read_state_dict": "weights.checkpoints", "save_safetensors": "weights.checkpoints"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DAGL", "TASKS", "TaskConfig", "WeightsError", "create", "get_config", "load",
           "read_state_dict", "save_safetensors", "shipped_weights"]


def load(task: str, weights: str | Path | None = None, *, sigma: int | None = None,
         gfam: str = "batched") -> DAGL:
    """An eval-mode DAGL for ``task`` with ``weights`` (or the weights shipped for it).

    ``weights`` may be an official release checkpoint (``torch.save`` of the state dict) or a
    ``.safetensors`` file. Without it, the weights shipped in the package for ``task`` (and
    ``sigma`` for denoising) are used; if none ship, :class:`WeightsError` says so.
    """
    from .network.model import create
    from .weights.checkpoints import load_into

    if weights is None:
        weights = shipped_weights(task, sigma)
    model = create(task, gfam=gfam)
    load_into(model, weights)
    return model.eval()
