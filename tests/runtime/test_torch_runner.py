"""The PyTorch runner computes float32 as IEEE float32: TF32 (PyTorch's default for cuDNN convolutions)
put an H200's "float32" output 5e-4 off the CPU's, over the 1e-4 parity bound."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dagl.runtime.base import ModelInfo
from dagl.runtime.pyt.runner import TorchRunner


class RecordsPrecision(nn.Module):
    """The identity, noting the float32 precision settings in force when it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision))
        return x


def test_inference_runs_in_ieee_float32_and_restores_the_settings_after():
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = "tf32"  # what PyTorch defaults cuDNN convolutions to
    try:
        model = RecordsPrecision()
        batch = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
        with TorchRunner(model, ModelInfo(task="jpeg", channels=1)) as runner:
            out = runner.infer(batch)
        assert model.seen == [("ieee", "ieee")]
        np.testing.assert_array_equal(out, batch)
        assert conv.fp32_precision == "tf32"  # the process's own choice is back
    finally:
        conv.fp32_precision, matmul.fp32_precision = before
