"""ONNX export of DAGL (ONNX-friendly GFAM, FP16) and TensorRT engine builds: :func:`export` is the one call."""

from .pipeline import ExportResult, export

__all__ = ["ExportResult", "export"]
