"""Check an engine's sidecar against this machine and its TensorRT (10.12+ or 11.x), then deserialise it;
and the ``tensorrt`` backend's factory (an engine, or an ONNX file built into one through the engine cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagl.artefact import EngineSidecar, EngineUnavailable, current_gpu, import_tensorrt
from dagl.artefact.precision import FP32
from dagl.device import cuda_index

from ..base import ModelInfo, ModelInputError, RuntimeLoadError
from .compat import EngineTarget, engine_mismatch


def tensorrt_module() -> Any:
    """``tensorrt`` if a supported release is installed, else one line saying why not and what else runs."""
    try:
        return import_tensorrt()
    except EngineUnavailable as exc:
        raise RuntimeLoadError(f"the TensorRT backend is unavailable: {exc}; or run the .onnx file "
                               f"with --backend onnxruntime") from None


def current_target(trt: Any) -> EngineTarget:
    """This process's TensorRT version and GPU, probed as the engine builder probes them."""
    try:
        gpu = current_gpu()
    except EngineUnavailable as exc:
        raise RuntimeLoadError(f"TensorRT engines need a CUDA GPU: {exc}") from None
    return EngineTarget(trt.__version__, gpu.name, gpu.compute_capability)


def rebuild_hint(info: ModelInfo, sidecar: EngineSidecar) -> str:
    precision = f" --precision {sidecar.precision}" if sidecar.precision != FP32.name else ""
    sigma = f" --sigma {info.sigma}" if info.sigma is not None else ""
    return f"dagl-export --task {info.task}{sigma}{precision} --weights WEIGHTS"


def _require_cuda_torch(engine: Path, device: str) -> None:
    """The runner's buffers are torch CUDA tensors: a torch without CUDA would fail on the first tile."""
    import torch

    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        cuda = "has no CUDA" if torch.version.cuda is None else "sees no CUDA GPU"
        raise RuntimeLoadError(f"{engine.name}: TensorRT engines run on CUDA buffers from torch, and this torch "
                               f"{cuda}; install a CUDA build of torch, or run the .onnx file with "
                               f"--backend onnxruntime")


def load_engine(engine: Path, info: ModelInfo, sidecar: EngineSidecar, device: str = "cuda") -> tuple[Any, Any]:
    """(runtime, ICudaEngine) for ``engine``, refused with one line if it was built elsewhere or cannot run
    here (``device``: where the runner's buffers live)."""
    trt = tensorrt_module()
    _require_cuda_torch(engine, device)
    index = cuda_index(device)
    if index is not None:  # TensorRT deserialises onto, and runs on, the current CUDA device
        import torch

        torch.cuda.set_device(index)
    built = EngineTarget(sidecar.tensorrt_version, sidecar.gpu_name, sidecar.compute_capability)
    problem = engine_mismatch(built, current_target(trt), rebuild_hint(info, sidecar))
    if problem:
        raise RuntimeLoadError(f"{engine}: {problem}")
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    deserialised = runtime.deserialize_cuda_engine(engine.read_bytes())
    if deserialised is None:
        raise ModelInputError(f"{engine}: TensorRT could not deserialise it (corrupt or foreign file)")
    return runtime, deserialised
