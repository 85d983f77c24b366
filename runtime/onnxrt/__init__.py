"""ONNX Runtime backends: ``.onnx`` files from ``dagl-export`` (task from their metadata_props), on the CPU,
CUDA or TensorRT execution provider."""

from .loader import create, create_tensorrt_ep
from .providers import session_providers, tensorrt_options
from .runner import OnnxRuntimeRunner, OnnxRuntimeTensorRTRunner

__all__ = ["OnnxRuntimeRunner", "OnnxRuntimeTensorRTRunner", "create", "create_tensorrt_ep", "session_providers",
           "tensorrt_options"]
