"""Inference over TensorRT, ONNX Runtime and PyTorch behind one runner interface.

>>> from dagl.runtime import Restorer
>>> with Restorer("dagl-jpeg.onnx", tiling="grid") as restore:
...     out = restore(image)          # float32 (H, W) or (H, W, C) in [0, 1]

Backends live in ``dagl.runtime.torch``, ``dagl.runtime.onnxruntime`` and ``dagl.runtime.tensorrt`` (imported
only when an artefact needs them, so ``import dagl.runtime`` works without TensorRT).
"""

from .base import BaseRunner, ModelInfo, ModelInputError, RuntimeLoadError
from .loader import create_runner
from .restorer import Restorer

__all__ = ["BaseRunner", "ModelInfo", "ModelInputError", "Restorer", "RuntimeLoadError", "create_runner"]
