"""TensorRT backend: ``.plan``/``.engine`` files with a ``X.plan.json`` sidecar (TensorRT 10.12+ and 11.x).

``tensorrt`` is imported only when an engine is loaded, so ``import dagl.runtime`` works without it.
"""

from .compat import EngineTarget, engine_mismatch
from .loader import load_engine
from .runner import TensorRTRunner

__all__ = ["EngineTarget", "TensorRTRunner", "engine_mismatch", "load_engine"]
