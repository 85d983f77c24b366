"""Reading and writing DAGL weights: official release checkpoints and the project's safetensors.

Loading is strict on purpose. A checkpoint for another task (or another sigma's network with a
different ResBlock count) silently half-loaded gives plausible-looking garbage, so every mismatch
is refused with the first offending key and both shapes.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from ..artefact.naming import WEIGHTS_SUFFIX
from ..atomic import atomic_path
from ..errors import WeightsError, first_line

#: Keys of the release's checkpoints that the forward pass never uses and our model does not carry.
IGNORED_PREFIXES = ("add_mean.",)
#: The release's ``add_mean`` (EDSR's mean shift with the DIV2K RGB mean, built in ``__init__``, never applied).
RELEASE_RGB_MEAN = (0.4488, 0.4371, 0.4040)
#: Wrappers some training scripts add around a state dict.
_WRAPPER_KEYS = ("state_dict", "model", "params")
def _not_safetensors(path: Path, exc: Exception) -> WeightsError:
    return WeightsError(f"cannot read weights from {path}: not a readable safetensors file ({first_line(exc)})")


def _load_torch(path: Path) -> object:
    """``torch.load`` restricted to tensors and containers (``weights_only``): a file never runs code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() and zipfile.is_zipfile(path):
            raise WeightsError(f"cannot read weights from {path}: it holds Python objects besides tensors "
                               f"(a dagl-train checkpoint, or optimizer/RNG state), which are not unpickled for "
                               f"safety; use a weights-only file such as the .safetensors dagl-train writes") from None
    except Exception:  # torch raises KeyError, RuntimeError, EOFError... for foreign bytes
        pass
    raise WeightsError(f"cannot read weights from {path}: not a PyTorch/safetensors weights file")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from ``.safetensors`` or a ``torch.save`` file, tensors on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix == WEIGHTS_SUFFIX:
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise _not_safetensors(path, exc) from None
    else:
        state = _load_torch(path)
    for key in _WRAPPER_KEYS:
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    # DataParallel / DDP saves prefix every key with "module.".
    return {k.removeprefix("module."): v for k, v in state.items()}


def weights_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file (``dagl.task`` etc. from dagl-train); ``{}`` for others.

    Read from the header only, so the task is known before any tensor is loaded.
    """
    path = Path(path)
    if path.suffix != WEIGHTS_SUFFIX or not path.is_file():
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types
        raise _not_safetensors(path, exc) from None


def check_values(state: Mapping[str, Tensor]) -> None:
    """Refuse integer/boolean or non-finite tensors, naming the first: they would load as garbage."""
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            raise WeightsError(f"tensor {key!r} holds {str(tensor.dtype).removeprefix('torch.')} values; "
                               f"DAGL weights are floating point")
        if not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise WeightsError(f"tensor {key!r} holds {bad} NaN or infinite value(s); the weights are broken")


def check_compatible(model: nn.Module, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Return ``state`` restricted to the model's keys, or raise naming the first mismatch."""
    expected = model.state_dict()
    given = {k: v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
    for key, tensor in expected.items():
        if key not in given:
            raise WeightsError(f"checkpoint is missing key {key!r} (expected shape {tuple(tensor.shape)})")
        if given[key].shape != tensor.shape:
            raise WeightsError(f"key {key!r}: checkpoint has shape {tuple(given[key].shape)}, "
                               f"model expects {tuple(tensor.shape)}")
    unexpected = [k for k in given if k not in expected]
    if unexpected:
        raise WeightsError(f"checkpoint has unexpected key {unexpected[0]!r} "
                           f"(shape {tuple(given[unexpected[0]].shape)}) and {len(unexpected) - 1} more")
    check_values(given)
    return given


def load_into(model: nn.Module, path: str | Path) -> nn.Module:
    """Load ``path`` into ``model`` strictly, converting any storage dtype to the model's."""
    state = check_compatible(model, read_state_dict(path))
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model


def release_only_tensors() -> dict[str, Tensor]:
    """The tensors the release's network holds beyond ours: written so our files load strictly into theirs."""
    return {"add_mean.weight": torch.eye(3).view(3, 3, 1, 1), "add_mean.bias": torch.tensor(RELEASE_RGB_MEAN)}


def save_safetensors(model: nn.Module, path: str | Path, *, fp16: bool = False,
                     metadata: Mapping[str, str] | None = None) -> Path:
    """Write the model's weights as safetensors (optionally stored as FP16 to halve the size).

    The file also carries the release's unused ``add_mean`` tensors, so it loads with ``strict=True`` into
    the authors' own network as well as into ours (which skips them). A shared module (the main body's one
    PReLU) is written under each of its keys, as ``torch.save`` of the release's state dict has it: every
    tensor is copied, since safetensors refuses tensors that share memory.
    """
    from safetensors.torch import save_file

    path = Path(path)
    dtype = torch.float16 if fp16 else torch.float32
    state = {**model.state_dict(), **release_only_tensors()}
    tensors = {k: v.detach().to("cpu", dtype, copy=True).contiguous() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp:
        save_file(tensors, str(temp), metadata=dict(metadata or {}))
    return path

