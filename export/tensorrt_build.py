"""The engine build ``dagl-export`` runs: the strongly typed build core of :mod:`dagl.artefact.engine_build`.

The core lives in the artefact layer because two callers need it and may not import each other:
``dagl-export`` (here) and the runtime's engine cache (``dagl-infer model.onnx --backend tensorrt``
builds or reuses the engine itself).
"""

from dagl.artefact.engine_build import TIMING_CACHE_NAME, EngineBuildError, EngineTask, build_engine, network_flags

__all__ = ["TIMING_CACHE_NAME", "EngineBuildError", "EngineTask", "build_engine", "network_flags"]
