"""Float32 ONNX -> FP16 ONNX that keeps float32 I/O and the overflow-prone nodes in float32.

The conversion itself is onnxconverter-common's (it inserts the Casts at every float32/FP16
boundary); which nodes stay float32 is :func:`dagl.calibration.policy.fp32_nodes`'s decision.
"""

from __future__ import annotations

import warnings

import onnx
from onnx import TensorProto


def _casts_to_float(model: onnx.ModelProto) -> set[str]:
    return {node.name for node in model.graph.node if node.op_type == "Cast"
            and any(a.name == "to" and a.i == TensorProto.FLOAT for a in node.attribute)}


def to_fp16(model: onnx.ModelProto, keep_fp32: set[str]) -> onnx.ModelProto:
    """FP16 copy of ``model`` with ``keep_fp32`` node names and the graph I/O left in float32."""
    from onnxconverter_common import float16

    # The converter leaves the graph's own Cast(to=FLOAT) nodes as they are, although it types
    # their outputs FP16; they are retargeted below. Its own boundary Casts must stay untouched.
    retarget = _casts_to_float(model) - keep_fp32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "value truncated to 1e-7" for tiny weights: expected in FP16
        converted = float16.convert_float_to_float16(model, keep_io_types=True,
                                                     node_block_list=sorted(keep_fp32))
    for node in converted.graph.node:
        if node.name in retarget:
            for attr in node.attribute:
                if attr.name == "to":
                    attr.i = TensorProto.FLOAT16
    return converted
