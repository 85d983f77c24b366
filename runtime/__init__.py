"""Inference over TensorRT, ONNX Runtime and PyTorch behind one runner interface.

>>> from dagl.runtime import Restorer
>>> with Restorer("dagl-jpeg.onnx", tiling="grid") as restore:
...     out = restore(image)          # float32 (H, W) or (H, W, C) in [0, 1]

>>> from dagl.runtime import open_restorer
>>> restore, line = open_restorer("jpeg")   # dagl-infer's auto: the fastest CPU path within 0.05 dB of float32

The backends are the entries of ``dagl.runtime.backends.REGISTRY``; their code lives in
``dagl.runtime.pyt``, ``dagl.runtime.onnxrt`` and ``dagl.runtime.trt`` (imported only when an artefact
needs them, so ``import dagl.runtime`` works without torch, ONNX Runtime or TensorRT loaded).
"""

from dagl.memory import MemoryBudgetError, estimate_peak_bytes

from .base import BaseRunner, InferenceError, ModelInfo, ModelInputError, RuntimeLoadError
from .auto import open_restorer
from .loader import create_runner
from .restorer import InputArrayError, Restorer, RestorerClosedError

__all__ = ["BaseRunner", "InferenceError", "InputArrayError", "MemoryBudgetError", "ModelInfo", "ModelInputError", "Restorer",
           "RestorerClosedError", "RuntimeLoadError", "create_runner", "estimate_peak_bytes", "open_restorer"]
