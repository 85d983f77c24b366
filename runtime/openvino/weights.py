"""A weights file as an OpenVINO model: the PyTorch network converted in memory, kept as IR in the engine cache.

The network is built as the ``torch`` backend builds it (``dagl.load``) with its GFAM heads in the unfold form
(:data:`CONVERTED_GFAM`) and converted by ``openvino.convert_model``, which traces it as TorchScript, so the
"same"-padding arithmetic on the input's shape stays graph ops and one model serves every batch, height and
width (as ``dagl-export``'s ONNX graph does). The unfold form (``F.unfold``/``F.fold``, which OpenVINO has as
operations) computes the same numbers as the ONNX-friendly ``BatchedGFAM`` without its one-hot convolutions,
whose channels-last output OpenVINO reorders: 1.5x faster in bfloat16 (docs/int8.md). Conversion takes ~10 CPU s, so the result is saved as OpenVINO IR
(float32 weights, not compressed to float16) under the engine cache, keyed by everything it depends on;
the next process reads it in a moment (and compiles it for its tile shape, under a second).
"""

from __future__ import annotations

import hashlib
import os
import uuid
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from dagl.artefact import INPUT_NAME, OUTPUT_NAME

#: Bumped when what is converted changes in a way the versions below do not show.
FORMAT = 2
#: The GFAM implementation (:data:`dagl.network.gfam.GFAM_IMPLEMENTATIONS`) of the converted network.
CONVERTED_GFAM = "unfold"


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def ir_key(weights_sha256: str, task: str, sigma: int | None, openvino_version: str) -> str:
    """The cache name of a conversion: the weights, the network's task, and the code that made it."""
    parts = (str(FORMAT), weights_sha256, task, str(sigma), openvino_version, _version("torch"), _version("dagl"))
    return "dagl-" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def convert(module, channels: int):
    """``module`` (eval, float32) as an ``openvino.Model`` with dynamic N, H, W and dagl's I/O names."""
    import openvino as ov
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shape arithmetic are expected, as in export
        model = ov.convert_model(module.eval().float().cpu(), example_input=torch.rand(1, channels, 64, 64),
                                 input=[ov.PartialShape([-1, channels, -1, -1])])
    model.inputs[0].get_tensor().set_names({INPUT_NAME})
    model.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    return model


def cached_ir(folder: Path, key: str, make) -> Path:
    """``folder/key.xml`` (with its ``.bin``), made by saving ``make()`` the first time.

    Written under a temporary name and renamed, the ``.bin`` first: an ``.xml`` that exists is complete,
    and two processes converting at once each write their own files.
    """
    import openvino as ov

    xml = folder / f"{key}.xml"
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        return xml
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}.xml"
    try:
        ov.save_model(make(), str(tmp), compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp, xml)
    finally:
        for leftover in (tmp, tmp.with_suffix(".bin")):
            leftover.unlink(missing_ok=True)
    return xml
