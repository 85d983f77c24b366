"""TensorRT backend: ``.plan``/``.engine`` files with a ``X.plan.json`` sidecar (TensorRT 10.12+ and 11.x),
and ``.onnx`` files built into an engine on first use and found again in the engine cache (``cache.py``).

``tensorrt`` is imported only when an engine is loaded or built, so ``import dagl.runtime`` works without it.
"""

from .cache import EngineKey, cached_engine, engine_key
from .compat import EngineTarget, engine_mismatch
from .backend import create
from .loader import load_engine
from .runner import OnnxEngineRunner, TensorRTRunner

__all__ = ["EngineKey", "EngineTarget", "OnnxEngineRunner", "TensorRTRunner", "cached_engine", "create",
           "engine_key", "engine_mismatch", "load_engine"]
