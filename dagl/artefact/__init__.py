"""The artefact format: what build (``dagl.export``) writes and serve (``dagl.runtime``) reads.

One place for the contract between the two, so neither imports the other: the ONNX tensor names and
``dagl.*`` metadata keys, the file names, the engine sidecar as a typed record, the tile and engine
profile defaults, and the probes for the GPU and TensorRT that both the builder and the engine
loader must answer the same way.
"""

from .format import (DEFAULT_BATCH, DEFAULT_MAX_TILE, DEFAULT_MIN_TILE, DEFAULT_OVERLAP, DEFAULT_TILE, INPUT_NAME,
                     METADATA_PREFIX, OUTPUT_NAME, MetadataError, Profile, artefact_stem, check_declared,
                     declared_metadata, onnx_metadata)
from .probe import (GPU, SUPPORTED_TENSORRT, EngineUnavailable, current_gpu, import_tensorrt,
                    tensorrt_supported)
from .sidecar import EngineSidecar, SidecarError, sidecar_path

__all__ = [
    "DEFAULT_BATCH", "DEFAULT_MAX_TILE", "DEFAULT_MIN_TILE", "DEFAULT_OVERLAP", "DEFAULT_TILE", "GPU", "INPUT_NAME",
    "METADATA_PREFIX", "MetadataError", "OUTPUT_NAME", "SUPPORTED_TENSORRT", "EngineSidecar", "EngineUnavailable", "Profile",
    "SidecarError",
    "artefact_stem", "check_declared", "current_gpu", "declared_metadata", "import_tensorrt", "onnx_metadata",
    "sidecar_path", "tensorrt_supported",
]
