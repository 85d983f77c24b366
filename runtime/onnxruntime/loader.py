"""Read an ONNX file's ``dagl.*`` metadata and choose ONNX Runtime execution providers."""

from __future__ import annotations

import logging
from pathlib import Path

from dagl.artefact import declared_metadata

from ..base import ModelInfo, RuntimeLoadError
from ..metadata import resolve_info

log = logging.getLogger(__name__)


def read_info(path: Path, task: str | None = None, sigma: int | None = None) -> ModelInfo:
    """The network an ONNX file holds, from its ``dagl.task``/``channels``/``sigma``/``precision`` props."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf errors have no common base class
        raise RuntimeLoadError(f"{path}: not a readable ONNX file ({exc.__class__.__name__})") from None
    declared = declared_metadata({p.key: p.value for p in model.metadata_props})
    return resolve_info(declared, path, task, sigma)


def session_providers(device: str) -> list[str]:
    """CUDA first when asked for and present in this onnxruntime build; else the CPU, with a warning."""
    import onnxruntime as ort

    if device == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        log.warning("this onnxruntime build has no CUDAExecutionProvider; running on the CPU "
                    "(pip install onnxruntime-gpu for CUDA)")
    return ["CPUExecutionProvider"]
