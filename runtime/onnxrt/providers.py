"""Which ONNX Runtime execution providers a session gets, with the options deployments set: pure functions.

ONNX Runtime quietly runs on the CPU when a provider it was given is not in its build, or fails to
start (a missing CUDA or TensorRT library): a warning in its log, then hours on the wrong device.
So the list is built here, checked against ``get_available_providers()`` before the session is made
(:func:`missing_provider`), and the session's own ``get_providers()`` is checked after (the runner).
Nothing here imports ``onnxruntime``; the tests check every option on a CPU-only machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dagl.artefact import INPUT_NAME, Profile, get_precision
from dagl.device import cuda_index, is_cuda

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
#: What to install when a provider is missing (said in the one-line error).
INSTALL = {CUDA: "pip install onnxruntime-gpu (and its CUDA 12 and cuDNN 9 libraries)",
           TENSORRT: "pip install onnxruntime-gpu and TensorRT (pip install 'dagl[tensorrt]'), on an NVIDIA GPU"}

#: One entry of InferenceSession's ``providers``: a name, or (name, options).
Provider = str | tuple[str, dict[str, object]]


def provider_name(provider: Provider) -> str:
    return provider if isinstance(provider, str) else provider[0]


def cuda_provider(device: str) -> Provider:
    """The CUDA provider on GPU N for ``cuda:N`` (``device_id``); plain ``cuda`` keeps ONNX Runtime's GPU 0."""
    index = cuda_index(device)
    return (CUDA, {"device_id": index}) if index is not None else CUDA


def session_providers(device: str) -> list[Provider]:
    """CUDA first (on GPU N for ``cuda:N``), the CPU behind it for a GPU device; the CPU alone for ``cpu``."""
    return [cuda_provider(device), CPU] if is_cuda(device) else [CPU]


def _shapes(shape: tuple[int, ...]) -> str:
    """``input:1x1x16x16``: the form of ``trt_profile_*_shapes``."""
    return f"{INPUT_NAME}:{'x'.join(str(s) for s in shape)}"


def tensorrt_options(precision: str, device: str, cache_dir: Path, profile: Profile,
                     workspace_bytes: int) -> dict[str, object]:
    """TensorRT execution provider options for a dagl graph of ``precision`` (a name of ``PRECISIONS``).

    * FP16 follows the graph: a graph whose entry computes in ``f16`` (the FP16 graph from
      ``dagl-export --precision fp16``, attention kept float32 through explicit Casts) enables FP16
      kernels, the float32 graph does not;
    * the engine and the timing cache are kept in ``cache_dir`` and found again by the next session;
    * one explicit profile (the one ``dagl-export`` builds with by default), so the engine is built
      once for every tile and batch dagl-infer sends, not rebuilt for each new shape;
    * the workspace is the one dagl's own builder allows.

    Unlike dagl's own builder, ONNX Runtime's TensorRT provider builds a weakly typed network on
    TensorRT 10, so with FP16 enabled TensorRT may also choose FP16 for layers the graph keeps float32;
    the GPU tests hold its output to the FP16 engine's bound (its registry entry's ``fp16`` tolerance).
    """
    options: dict[str, object] = {
        "trt_fp16_enable": get_precision(precision).compute == "f16",
        "trt_max_workspace_size": workspace_bytes,
        "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache_dir),
        "trt_profile_min_shapes": _shapes(profile.min), "trt_profile_opt_shapes": _shapes(profile.opt),
        "trt_profile_max_shapes": _shapes(profile.max),
    }
    index = cuda_index(device)
    if index is not None:
        options["device_id"] = index
    return options


def tensorrt_session_providers(precision: str, device: str, cache_dir: Path, profile: Profile,
                               workspace_bytes: int) -> list[Provider]:
    """TensorRT first; CUDA, then the CPU, for any node TensorRT does not take (a dagl graph has none)."""
    return [(TENSORRT, tensorrt_options(precision, device, cache_dir, profile, workspace_bytes)),
            cuda_provider(device), CPU]


def missing_provider(wanted: str, available: Sequence[str]) -> str | None:
    """``None`` if ``wanted`` is in this onnxruntime build (``available``), else one line saying what to install."""
    if wanted in available:
        return None
    hint = f"; {INSTALL[wanted]}" if wanted in INSTALL else ""
    return f"this onnxruntime has no {wanted} (it has {', '.join(available) or 'none'}){hint}"
