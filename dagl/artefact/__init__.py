"""The artefact format: what build (``dagl.export``) writes and serve (``dagl.runtime``) reads.

One place for the contract between the two, so neither imports the other: the ONNX tensor names and
``dagl.*`` metadata keys, every file name and the untrained-weights label (``naming.py``), the
precisions (``precision.py``), the engine sidecar as a typed record, the tile and engine profile
defaults, and the probes for the GPU and TensorRT that both the builder and the engine loader must
answer the same way.
"""

from .format import (DEFAULT_BATCH, DEFAULT_MAX_TILE, DEFAULT_MIN_TILE, DEFAULT_OVERLAP, DEFAULT_TILE, INPUT_NAME,
                     METADATA_PREFIX, OUTPUT_NAME, MetadataError, Profile, check_declared, declared_metadata,
                     onnx_metadata)
from .naming import (artefact_stem, engine_name, is_random_label, manifest_name, onnx_name, random_label,
                     sidecar_path, weights_name)
from .precision import (GRAPH_PRECISIONS, PRECISIONS, Precision, PrecisionError, get_graph_precision,
                        get_precision)
from .probe import (GPU, SUPPORTED_TENSORRT, EngineUnavailable, current_gpu, import_tensorrt,
                    tensorrt_supported)
from .sidecar import EngineSidecar, EngineTask, SidecarError

__all__ = [
    "DEFAULT_BATCH", "DEFAULT_MAX_TILE", "DEFAULT_MIN_TILE", "DEFAULT_OVERLAP", "DEFAULT_TILE", "GPU", "INPUT_NAME",
    "GRAPH_PRECISIONS", "METADATA_PREFIX", "MetadataError", "OUTPUT_NAME", "PRECISIONS", "SUPPORTED_TENSORRT",
    "EngineSidecar", "EngineTask", "EngineUnavailable", "Precision", "PrecisionError", "Profile", "SidecarError",
    "artefact_stem", "check_declared", "current_gpu", "declared_metadata", "engine_name", "get_graph_precision",
    "get_precision",
    "import_tensorrt", "is_random_label", "manifest_name", "onnx_metadata", "onnx_name", "random_label", "sidecar_path",
    "tensorrt_supported", "weights_name",
]
