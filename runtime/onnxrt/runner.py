"""Execute batches with an ONNX Runtime inference session."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dagl.artefact import INPUT_NAME, OUTPUT_NAME

from ..base import BaseRunner, ModelInfo, ModelInputError
from .loader import session_providers


class OnnxRuntimeRunner(BaseRunner):
    """One ``InferenceSession`` per activation, created lazily because building it takes seconds."""

    name = "onnxruntime"

    def __init__(self, path: Path, info: ModelInfo, device: str = "cpu", threads: int | None = None) -> None:
        super().__init__(info, device)
        self.path = path
        self.threads = threads
        self.session = None

    def activate_impl(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=session_providers(self.device))
        except Exception as exc:  # ORT raises its own unrelated exception classes
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelInputError(f"{self.path}: ONNX Runtime cannot load it ({reason})") from None
        if self.session.get_providers()[0] != "CUDAExecutionProvider":  # onnxruntime without CUDA: said in a warning
            self.device = "cpu"

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return out

    def deactivate_impl(self) -> None:
        self.session = None
