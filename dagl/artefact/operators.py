"""The ONNX operators a dagl graph may hold: TensorRT 11's support matrix less the project's refusals.

One table for both sides of the artefact contract: ``dagl.export`` checks every graph it writes
against it (``export/trt_check.py``, which also holds the table's sources), and ``dagl.runtime``
checks a foreign ``.onnx`` against it before the first run, so a graph with a ``Loop`` that never
ends, a custom operator or a data-dependent shape is refused in one line instead of hanging or
failing inside ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Opset range every TensorRT 11.x parser accepts ("opset 9 to opset 24"; 25 only from 11.5 on).
OPSET_RANGE = (9, 24)

_F = ("FLOAT", "FLOAT16", "BFLOAT16")
_FI = _F + ("INT32", "INT64")
_FIB = _FI + ("BOOL",)

#: Operator -> data types of its first input that the support matrix lists (TensorRT 11).
SUPPORTED_TYPES: dict[str, tuple[str, ...]] = {
    "Add": _FI, "Sub": _FI, "Mul": _FI, "Div": _FI, "Pow": _FI, "Neg": _FI, "Abs": _FI,
    "Sqrt": _F, "Exp": _F, "Log": _F, "Reciprocal": _F, "Erf": _F, "Floor": _F, "Ceil": _F,
    "Max": _FI, "Min": _FI, "Mod": _FI, "Sum": _FI, "Mean": _FI,
    "Relu": _FI, "PRelu": _F, "LeakyRelu": _F, "Sigmoid": _F, "Tanh": _F, "Clip": _F,
    "Softmax": _F, "LogSoftmax": _F,
    "Conv": _F, "ConvTranspose": _F, "MatMul": _F, "Gemm": _F,
    "ReduceMean": _FI, "ReduceSum": _FI, "ReduceMax": _FI, "ReduceMin": _FI,
    "Greater": _FI, "GreaterOrEqual": _FI, "Less": _FI, "LessOrEqual": _FI, "Equal": _FI,
    "Not": ("BOOL",), "And": ("BOOL",), "Or": ("BOOL",), "Where": _FIB,
    "Cast": _FIB + ("UINT8",),
    "Shape": _FIB, "Gather": _FIB, "Concat": _FIB, "Reshape": _FIB, "Flatten": _FIB,
    "Transpose": _FIB, "Unsqueeze": _FIB, "Squeeze": _FIB, "Slice": _FIB, "Expand": _FIB,
    "Identity": _FIB, "Tile": _FIB, "Split": _FIB, "Pad": _FI, "Range": _FI,
    "Constant": _FIB, "ConstantOfShape": _FIB,
}

#: Operators whose output (not input) type is what the matrix's "Supported Types" column means.
OUTPUT_TYPED = {"Constant", "ConstantOfShape"}

#: Inputs the matrix says must be build-time constants: operator -> input index.
CONSTANT_INPUTS: dict[str, int] = {
    "ReduceMean": 1, "ReduceSum": 1, "ReduceMax": 1, "ReduceMin": 1,
}

#: Refused by this project even where TensorRT parses them, with the reason shown to the user.
PROJECT_REFUSED: dict[str, str] = {
    "Col2Im": "not supported by TensorRT (col2im must be a ConvTranspose)",
    "Im2Col": "not an ONNX operator TensorRT knows (im2col must be a Conv)",
    "NonZero": "data-dependent output shape",
    "Unique": "data-dependent output shape",
    "Compress": "data-dependent output shape",
    "NonMaxSuppression": "data-dependent output shape",
    "TopK": "data-dependent output shape unless K is constant",
    "Loop": "control flow (engine would loop on the host side)",
    "Scan": "control flow",
    "If": "control flow (data-dependent branch)",
}


def operator_refusal(op_type: str, domain: str = "",
                     supported: Mapping[str, tuple[str, ...]] = SUPPORTED_TYPES) -> str | None:
    """Why a node of ``op_type`` (in ``domain``) may not be in a dagl graph, or ``None`` if it may.

    ``supported`` is the operator table of the graph's precision (:attr:`dagl.artefact.Precision.operators`:
    this table plus what the precision adds, e.g. an INT8 graph's QuantizeLinear/DequantizeLinear)."""
    if domain not in ("", "ai.onnx"):
        return f"custom domain {domain!r} needs a plugin"
    if op_type in PROJECT_REFUSED:
        return PROJECT_REFUSED[op_type]
    if op_type not in supported:
        return "operator not in the TensorRT 11 support list"
    return None
