"""ONNX Runtime backend: ``.onnx`` files from ``dagl-export`` (task from their metadata_props)."""

from .loader import read_info, session_providers
from .runner import OnnxRuntimeRunner

__all__ = ["OnnxRuntimeRunner", "read_info", "session_providers"]
