"""Read an engine's sidecar, check it fits this machine, and deserialise it with TensorRT 10."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..base import ModelInfo, RuntimeLoadError
from .compat import EngineTarget, engine_mismatch


def import_tensorrt() -> Any:
    """The ``tensorrt`` module (found the way the engine builder finds it), or one clear line."""
    from dagl.export.tensorrt_build import EngineUnavailable, import_tensorrt as find_tensorrt

    try:
        return find_tensorrt()
    except EngineUnavailable as exc:
        raise RuntimeLoadError(f"the TensorRT backend is unavailable: {exc}; or run the .onnx file "
                               f"with --backend onnxruntime") from None


def sidecar_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def read_sidecar(engine: Path) -> dict[str, Any]:
    path = sidecar_path(engine)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RuntimeLoadError(f"{engine}: its sidecar {path.name} is missing; the engine's task, "
                               f"TensorRT version and GPU are unknown (rebuild it with dagl-export)") from None
    except (OSError, ValueError) as exc:
        raise RuntimeLoadError(f"{path}: unreadable sidecar ({exc})") from None


def current_target(trt: Any) -> EngineTarget:
    """This process's TensorRT version and GPU, found the way the engine builder found its own."""
    from dagl.export.tensorrt_build import EngineUnavailable, current_gpu

    try:
        gpu = current_gpu()
    except EngineUnavailable as exc:
        raise RuntimeLoadError(f"TensorRT engines need a CUDA GPU: {exc}") from None
    return EngineTarget(trt.__version__, gpu.name, gpu.compute_capability)


def rebuild_hint(info: ModelInfo, sidecar: dict[str, Any]) -> str:
    precision = " --fp16" if sidecar.get("precision") == "fp16" else ""
    sigma = f" --sigma {info.sigma}" if info.sigma is not None else ""
    return f"dagl-export --task {info.task}{sigma}{precision} --weights WEIGHTS"


def load_engine(engine: Path, info: ModelInfo, sidecar: dict[str, Any]) -> tuple[Any, Any]:
    """(runtime, ICudaEngine) for ``engine``, refused with one line if it was built elsewhere."""
    trt = import_tensorrt()
    problem = engine_mismatch(sidecar, current_target(trt), rebuild_hint(info, sidecar))
    if problem:
        raise RuntimeLoadError(f"{engine}: {problem}")
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    deserialised = runtime.deserialize_cuda_engine(engine.read_bytes())
    if deserialised is None:
        raise RuntimeLoadError(f"{engine}: TensorRT could not deserialise it (corrupt or foreign file)")
    return runtime, deserialised
