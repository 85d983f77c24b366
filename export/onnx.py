"""Float32 ONNX export of a DAGL model with dynamic batch, height and width.

The network's :class:`~dagl.network.gfam.BatchedGFAM` is already written with ONNX/TensorRT-friendly ops,
so export is a trace of the model as is. The TorchScript-based exporter is used because it records
the "same"-padding arithmetic on the input's shape as graph ops (Shape/Div/Sub/Pad), so one graph
serves every H x W; ``torch.export`` (dynamo) refuses the modulo-4 shape arithmetic as a guard
(torch 2.13 with dynamic N/H/W: "UserError: Invalid ranges [2:1]" while tracing).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from dagl.artefact import INPUT_NAME, OUTPUT_NAME
from dagl.atomic import write_atomic

DEFAULT_OPSET = 17


def export_onnx(model: nn.Module, path: str | Path, *, channels: int, sample_hw: tuple[int, int] = (64, 64),
                opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` (eval mode, float32) to ``path`` with dynamic N, H and W."""
    path = Path(path)
    model = model.eval().float().cpu()
    sample = torch.rand(1, channels, *sample_hw)
    axes = {0: "N", 2: "H", 3: "W"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic are expected here
        torch.onnx.export(model, (sample,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes}, opset_version=opset,
                          dynamo=False, do_constant_folding=True)
    return path


def set_metadata(model: onnx.ModelProto, props: dict[str, str]) -> onnx.ModelProto:
    """Replace ``model``'s ``metadata_props`` with ``props`` (what the runtime reads: task, channels...)."""
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    return model


def save_atomic(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write ``model`` to ``path`` all at once (graphs stay far below protobuf's 2 GiB limit)."""
    return write_atomic(path, model.SerializeToString())
