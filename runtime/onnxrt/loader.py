"""The ONNX Runtime backends' factories: an ``.onnx`` file, checked (:mod:`..onnx_info`), on its runner."""

from __future__ import annotations

from dagl.device import is_cuda

from ..base import RunnerRequest
from ..onnx_info import read_info
from .runner import OnnxRuntimeRunner, OnnxRuntimeTensorRTRunner


def create(request: RunnerRequest) -> OnnxRuntimeRunner:
    """The ``onnxruntime`` backend's factory: the CUDA provider for a GPU device, the CPU provider for ``cpu``."""
    return OnnxRuntimeRunner(request.path, read_info(request.path, request.task, request.sigma), request.device,
                             request.threads, cpu_fallback=request.device_is_auto)


def create_tensorrt_ep(request: RunnerRequest) -> OnnxRuntimeTensorRTRunner:
    """The ``onnxruntime-tensorrt`` backend's factory: TensorRT inside ONNX Runtime, on a GPU whatever ``--device``."""
    device = request.device if is_cuda(request.device) else "cuda"
    return OnnxRuntimeTensorRTRunner(request.path, read_info(request.path, request.task, request.sigma), device,
                                     request.engine_cache / "onnxruntime-tensorrt", request.threads)
