"""Is there a GPU and a TensorRT here? Asked by the engine builder and the engine loader alike.

Both must answer the same way (an engine built for one GPU is refused on another), so the probes
live below both. ``tensorrt`` is imported only when asked for: everything else works without it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from types import ModuleType

from ..errors import DaglError


#: The TensorRT releases dagl builds and runs engines with, as a pip specifier (the ``tensorrt``
#: extra in pyproject.toml says the same; a test keeps them equal). Engines are strongly typed
#: networks, which need 10.12+ (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``); 11.x networks
#: always are. 12 is excluded until it has been tried: a major release removes API (11.0 did).
SUPPORTED_TENSORRT = ">=10.12,<12"
_OLDEST, _FIRST_UNSUPPORTED = (10, 12), (12, 0)


class EngineUnavailable(DaglError):
    """No engine can be built or run on this machine (no tensorrt, no GPU); ONNX files still work."""


def tensorrt_supported(version: str) -> bool:
    """Whether TensorRT ``version`` (e.g. ``"11.4.0.106"``) lies in :data:`SUPPORTED_TENSORRT`."""
    try:
        release = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return _OLDEST <= release < _FIRST_UNSUPPORTED


def _require_supported(version: str) -> None:
    """:class:`EngineUnavailable` unless TensorRT ``version`` is one dagl supports."""
    if not tensorrt_supported(version):
        raise EngineUnavailable(f"TensorRT {version} is not supported: dagl builds and runs engines with "
                                f"TensorRT {SUPPORTED_TENSORRT} (pip install 'dagl[tensorrt]')")


@dataclass(frozen=True)
class GPU:
    name: str
    compute_capability: str


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module if it is a release dagl supports, or :class:`EngineUnavailable` saying why not.

    The builder, ``--engine-required`` and the engine loader all need a *supported* TensorRT, so the
    release is checked here, once, rather than by each of them.
    """
    try:
        import tensorrt
    except ImportError as exc:
        raise EngineUnavailable(f"tensorrt is not installed ({exc}); pip install 'dagl[tensorrt]' "
                                "on a machine with an NVIDIA GPU") from None
    _require_supported(tensorrt.__version__)
    return tensorrt


def current_gpu() -> GPU:
    """Name and compute capability of CUDA device 0, from torch or else nvidia-smi."""
    import torch

    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        return GPU(torch.cuda.get_device_name(0), f"{major}.{minor}")
    if shutil.which("nvidia-smi"):
        result = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader", "-i", "0"],
                                capture_output=True, text=True, check=False)
        if result.returncode == 0 and "," in result.stdout:
            name, capability = (part.strip() for part in result.stdout.splitlines()[0].rsplit(",", 1))
            return GPU(name, capability)
    raise EngineUnavailable("no CUDA GPU found (torch.cuda and nvidia-smi see none)")
