"""``dagl-eval``: score restorers on the paper's test sets with the paper's protocol.

The protocol (degradations, metrics) lives in :mod:`dagl.data.datasets` and :mod:`dagl.images.metrics`;
models run through :class:`runtime.Restorer`, so PyTorch weights, ONNX files and TensorRT engines
are scored by the same code and can be compared image by image.
"""

from .scoring import EvalResult, ImageResult, Parity, Score, evaluate

__all__ = ["EvalResult", "ImageResult", "Parity", "Score", "evaluate"]
