"""Static TensorRT 11.x compatibility check of an ONNX graph, run on every export before a graph is written.

Building an engine needs a GPU and can fail late (on the deployment machine) on an operator the
parser refuses. This check runs anywhere and fails early, naming the offending node.

Source of the rules: onnx-tensorrt's ``docs/operators.md`` support matrix, which NVIDIA's ONNX opset
guide for TensorRT 11.x names as the operator list
(https://docs.nvidia.com/deeplearning/tensorrt/latest/reference/onnx-opset-guide.html). The operator
rows are those of the matrix of the 10.15 release ("TensorRT 10.15 supports operators in the
inclusive range of opset 9 to opset 24"), the newest one transcribed here; the parser sections of
the TensorRT 11.0-11.5 release notes list only additions to it (11.0: Swish and the
TRT_Attention/TRT_MoE/TRT_KVCacheUpdate custom operators; 11.5: opset 25), so every 11.x parser
accepts what it accepts, and the opset bound is 24 (25 needs 11.5 or later). Only the operators a
DAGL graph can contain plus their close relatives are listed (the table is in
``dagl/artefact/operators.py``, shared with the runtime's check of foreign graphs); anything else is
refused, which is the safe direction for a static check. On top of the matrix, the project refuses operators that the
matrix accepts but that would break its guarantees: data-dependent output shapes (NonZero, Unique,
...), control flow (Loop, If, Scan) and the im2col family (Col2Im is "N" in the matrix).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import onnx
from onnx import TensorProto

from dagl.artefact.onnx_graph import graph_inputs, graph_outputs
from dagl.artefact.operators import (CONSTANT_INPUTS, OPSET_RANGE, OUTPUT_TYPED, PROJECT_REFUSED, SUPPORTED_TYPES,
                                    operator_refusal)
from dagl.artefact.precision import FP32
from dagl.errors import DaglError

__all__ = ["CONSTANT_INPUTS", "OPSET_RANGE", "PROJECT_REFUSED", "SUPPORTED_TYPES", "Problem",
           "TensorRTCompatibilityError", "assert_tensorrt_compatible", "check_tensorrt_compatible"]


@dataclass(frozen=True)
class Problem:
    """One reason a graph would not build on TensorRT 11, attached to the node that causes it."""

    node: str
    op_type: str
    reason: str

    def __str__(self) -> str:
        return f"node {self.node!r} ({self.op_type}): {self.reason}"


class TensorRTCompatibilityError(DaglError):
    """A graph that TensorRT 11 would refuse; the message names the first offending node."""

    def __init__(self, problems: list[Problem]) -> None:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"not TensorRT-11 compatible: {problems[0]}{more}")
        self.problems = problems


def _type_name(elem_type: int) -> str:
    return TensorProto.DataType.Name(elem_type)


def _tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every named tensor, from ONNX shape inference (types survive dynamic dims)."""
    try:
        graph = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError):
        graph = model.graph  # malformed nodes (reported below anyway): check the types that are declared
    types = {init.name: init.data_type for init in graph.initializer}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        types[info.name] = info.type.tensor_type.elem_type
    return types


def _check_io(model: onnx.ModelProto) -> list[Problem]:
    """Graph inputs need a known rank and named or fixed dims, so a profile can cover them."""
    problems = []
    for value in [*graph_inputs(model.graph), *graph_outputs(model.graph)]:
        if value.dims is None:
            problems.append(Problem(value.name, "graph I/O", "unknown rank; profiles need a fixed rank"))
            continue
        for axis, dim in enumerate(value.dims):
            if dim is None:
                problems.append(Problem(value.name, "graph I/O", f"axis {axis} is neither fixed nor named"))
        if _type_name(value.elem_type) not in ("FLOAT", "FLOAT16"):
            problems.append(Problem(value.name, "graph I/O",
                                    f"I/O type {_type_name(value.elem_type)} is not float"))
    return problems


def check_tensorrt_compatible(model: onnx.ModelProto,
                              operators: Mapping[str, tuple[str, ...]] = FP32.operators) -> list[Problem]:
    """Every rule above applied to ``model``; an empty list means it should parse on TensorRT 11.

    ``operators`` is the table of the graph's precision (:attr:`dagl.artefact.Precision.operators`):
    the float32 and FP16 entries allow exactly :data:`SUPPORTED_TYPES`, so Q/DQ nodes are refused
    unless a precision's entry (INT8) adds them.
    """
    problems = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    low, high = OPSET_RANGE
    if opset is None or not low <= opset <= high:
        problems.append(Problem("<model>", "opset", f"opset {opset} outside TensorRT 11's {low}-{high}"))
    problems.extend(_check_io(model))
    types = _tensor_types(model)
    constants = {init.name for init in model.graph.initializer}
    constants.update(out for node in model.graph.node if node.op_type == "Constant" for out in node.output)
    for node in model.graph.node:
        name, op = node.name or node.output[0], node.op_type
        refusal = operator_refusal(op, node.domain, operators)
        if refusal:
            problems.append(Problem(name, op, refusal))
            continue
        typed = node.output[0] if op in OUTPUT_TYPED else (node.input[0] if node.input else None)
        if typed and typed in types and types[typed]:
            type_name = _type_name(types[typed])
            if type_name not in operators[op]:
                problems.append(Problem(name, op, f"type {type_name} not supported for {op}"))
        if op == "Cast":
            target = next(a.i for a in node.attribute if a.name == "to")
            if _type_name(target) not in operators["Cast"]:
                problems.append(Problem(name, op, f"cast to {_type_name(target)} not supported"))
        index = CONSTANT_INPUTS.get(op)
        if index is not None and len(node.input) > index and node.input[index] \
                and node.input[index] not in constants:
            problems.append(Problem(name, op, f"input {index} must be a build-time constant"))
    return problems


def assert_tensorrt_compatible(model: onnx.ModelProto,
                               operators: Mapping[str, tuple[str, ...]] = FP32.operators) -> None:
    """Raise :class:`TensorRTCompatibilityError` unless ``model`` passes every rule (``operators``: as above)."""
    problems = check_tensorrt_compatible(model, operators)
    if problems:
        raise TensorRTCompatibilityError(problems)
