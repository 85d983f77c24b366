"""Which device a backend runs on: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked before any work.

One rule for every command and for :class:`dagl.runtime.Restorer`: ``auto`` is the first CUDA GPU
torch sees, else the CPU; ``cuda``/``cuda:N`` without that GPU is refused in one line, because a
typo or a missing GPU must not quietly run for an hour on the CPU. torch is imported only when a
CUDA answer is needed, so resolving ``cpu`` (and a command's ``--help``) costs nothing.
"""

from __future__ import annotations

import re

from .errors import UserInputError

#: What the device options accept, as said in help texts and errors.
DEVICE_NAMES = "auto, cpu, cuda or cuda:N"
AUTO = "auto"
_PATTERN = re.compile(r"(auto|cpu|cuda)(?::(\d+))?")


def is_auto(name: str) -> bool:
    """Whether ``name`` asks for ``auto`` (any case and spacing): the one choice that needs no check."""
    return str(name).strip().lower() == AUTO


class DeviceError(UserInputError):
    """A device name that is not one, or a GPU this machine does not have; one line for the user."""


def resolve_device(name: str) -> str:
    """``name`` as ``cpu``, ``cuda`` or ``cuda:N`` after checking that the GPU exists."""
    match = _PATTERN.fullmatch(str(name).strip().lower())
    if not match or (match.group(2) is not None and match.group(1) != "cuda"):
        raise DeviceError(f"{name!r} is not a device; use {DEVICE_NAMES}")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        return "cpu"
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if kind == "auto":
        return "cuda" if count else "cpu"
    if not count:
        raise DeviceError(f"{name}, but torch sees no CUDA GPU on this machine; use --device cpu (or auto)")
    if index is not None and int(index) >= count:
        raise DeviceError(f"{name}, but torch sees {count} CUDA GPU(s) (cuda:0 to cuda:{count - 1})")
    return f"cuda:{int(index)}" if index is not None else "cuda"


def is_cuda(device: str) -> bool:
    """Whether a resolved device name is a CUDA GPU (``cuda`` or ``cuda:N``)."""
    return device == "cuda" or device.startswith("cuda:")


def cuda_index(device: str) -> int | None:
    """N of ``cuda:N``; ``None`` for plain ``cuda`` (torch's current GPU) and for the CPU."""
    return int(device.split(":", 1)[1]) if device.startswith("cuda:") else None
