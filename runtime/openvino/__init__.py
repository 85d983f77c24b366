"""OpenVINO backend: ``.onnx`` files from ``dagl-export`` on OpenVINO's CPU plugin, in float32 or bfloat16."""

from .loader import create
from .runner import OpenVINORunner, compile_config

__all__ = ["OpenVINORunner", "compile_config", "create"]
