"""Execute batches with a PyTorch module on the CPU or a CUDA GPU."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from dagl.device import is_cuda

from ..base import BaseRunner, ModelInfo, RuntimeLoadError


class TorchRunner(BaseRunner):
    """Runs ``model`` under ``inference_mode``; moves it to ``device`` only on activation."""

    name = "torch"

    def __init__(self, model: nn.Module, info: ModelInfo, device: str = "cpu", threads: int | None = None) -> None:
        super().__init__(info, device)
        self.model = model
        self.threads = threads

    def activate_impl(self) -> None:
        if is_cuda(self.device) and not torch.cuda.is_available():
            raise RuntimeLoadError(f"--device {self.device} was asked for but this PyTorch build sees no CUDA GPU")
        if self.threads:
            torch.set_num_threads(self.threads)  # process-wide: torch has no per-module setting
        self.model.to(self.device).eval()

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), ieee_float32():
            out = self.model(torch.from_numpy(batch).to(self.device))
        return out.float().cpu().numpy()

    def deactivate_impl(self) -> None:
        self.model.cpu()
        if is_cuda(self.device):
            torch.cuda.empty_cache()


@contextmanager
def ieee_float32() -> Iterator[None]:
    """Float32 convolutions and matrix products in IEEE float32, not TF32.

    PyTorch lets cuDNN run float32 convolutions as TF32 by default (10-bit mantissa): on an H200 that put
    the "float32" GPU output 5e-4 off the CPU's, over the 1e-4 parity bound. Autocast (fp16, bf16) is
    unaffected: it chooses its own dtypes.
    """
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    saved = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        conv.fp32_precision, matmul.fp32_precision = saved
