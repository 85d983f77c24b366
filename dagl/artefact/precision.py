"""The precisions an artefact can have: one :class:`Precision` entry each, in :data:`PRECISIONS`.

Everything that depends on a precision reads it from its entry, so that adding one is one entry
here: the ``dagl.precision`` value (validated by :func:`~dagl.artefact.format.check_declared`), the
graph's file name (:mod:`dagl.artefact.naming`), how ``dagl-export`` makes the graph from the
float32 one, the operators its graph may hold beyond the TensorRT table (``export/trt_check.py``),
and the parity bound it is held to (``runtime/compare.py`` builds its tolerances from it).

The graph maker is named as ``"module:function"``, not imported: it lives in ``dagl.export`` (it
needs onnx and the calibration policy), which this layer may not import. ``dagl.export`` resolves it.

A precision that is not a graph of its own (``runs_graph``, as bfloat16 runs the float32 graph) is a
request to the runtime: ``compute`` names the float type it is asked to compute in (OpenVINO's
``INFERENCE_PRECISION_HINT``); it has no file, no engine and no ``dagl.precision`` value of its own, and
only the backends whose registry entry lists it (``runtime/backends.py``) run it.

**INT8** is an explicitly quantized (Q/DQ) graph: its maker (``dagl.export.int8:to_qdq``) calibrates
on held-out training crops (``calibration/int8.py``) and its ``extra_operators`` let exactly the
QuantizeLinear/DequantizeLinear nodes through the TensorRT check (refused for every other entry). A
strongly typed TensorRT network takes its INT8 precision from those Q/DQ nodes, so the engine build
needs nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import UserInputError
from ..registry import by_name
from .operators import SUPPORTED_TYPES


@dataclass(frozen=True)
class Precision:
    """One precision of an exported graph and of the engine built from it."""

    #: ``dagl.precision`` metadata, the sidecar's ``precision`` and the engine file name (``-fp16.plan``).
    name: str
    #: How messages and parity verdicts call it ("FP16 graph refused", "FP16 ONNX vs float32 PyTorch").
    title: str
    #: What the graph's file name adds to the stem: ``dagl-jpeg-fp16.onnx``; "" for the float32 graph.
    onnx_suffix: str
    #: ``"module:function"`` taking (float32 graph, names of the nodes the calibration policy keeps in
    #: float32) and returning this precision's graph; ``None`` for the float32 graph itself.
    make: str | None
    #: The spinner line while ``make`` runs.
    making: str
    #: Parity against float32 PyTorch: largest |diff| allowed, or smallest PSNR (dB), or both.
    max_abs: float | None
    min_psnr: float | None
    #: Parity of a TensorRT engine against ONNX Runtime running the very same graph (PSNR, dB); ``None``
    #: for a precision no engine is built at.
    engine_vs_onnx_psnr: float | None
    #: Operators this precision's graph may hold beyond :data:`~dagl.artefact.operators.SUPPORTED_TYPES`,
    #: with the data types of their first input (e.g. INT8's QuantizeLinear/DequantizeLinear).
    extra_operators: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: The precision whose graph this one runs, if not its own: bfloat16 runs the float32 graph and asks the
    #: runtime to compute in bfloat16. ``None``: a graph of its own, written by ``dagl-export``.
    runs_graph: str | None = None
    #: ``"module:function"`` taking (task, sigma) that ``dagl-export`` calls before the weights load: refuses, in
    #: one line, what would make ``make`` fail minutes later (INT8: no held-out training images to calibrate on).
    check: str | None = None
    #: The float type the runtime computes in where the graph does not say (OpenVINO's names: ``f32``,
    #: ``f16``, ``bf16``): ``f16`` also lets TensorRT inside ONNX Runtime pick FP16 kernels.
    compute: str = "f32"

    @property
    def graph(self) -> str:
        """The name of the precision whose graph file this one runs (its own, or ``runs_graph``)."""
        return self.runs_graph or self.name

    @property
    def operators(self) -> Mapping[str, tuple[str, ...]]:
        """Operator -> supported input types that a graph of this precision is checked against."""
        return MappingProxyType({**SUPPORTED_TYPES, **self.extra_operators})


FP32 = Precision("fp32", "float32", "", make=None, making="", max_abs=1e-4, min_psnr=None,
                 engine_vs_onnx_psnr=60.0)
#: FP16 rounds every activation, so it is held to a PSNR against the float32 output (50 dB: an RMS
#: error of ~0.3 % of full scale, invisible, and far tighter than any task's gain).
FP16 = Precision("fp16", "FP16", "-fp16", make="dagl.export.fp16:to_fp16",
                 making="converting to FP16 (attention path kept in float32)", max_abs=None, min_psnr=50.0,
                 engine_vs_onnx_psnr=50.0, compute="f16")
#: bfloat16 keeps float32's range (no overflow, so no node needs keeping in float32) with an 8-bit mantissa:
#: the float32 graph computed in bfloat16 by OpenVINO on a CPU with AVX512-BF16 or AMX. Its bound is a PSNR
#: against float32, set below what seeded random weights measure (docs/openvino.md).
BF16 = Precision("bf16", "bfloat16", "", make=None, making="", max_abs=None, min_psnr=45.0,
                 engine_vs_onnx_psnr=None, runs_graph=FP32.name, compute="bf16")

#: Post-training static quantization (Q/DQ, symmetric int8, calibrated on held-out training crops; every GFAM head
#: kept float: docs/int8.md). The shipped jpeg weights' INT8 graph costs 0.025 dB on Classic5 q10 (dagl-eval,
#: OpenVINO) and is 51-54 dB from float32 on held-out crops; seeded random weights measured 29.4-32.2 dB with the
#: attention-only policy before (docs/openvino.md). The bound sits below the random weights' figures.
INT8 = Precision("int8", "INT8", "-int8", make="dagl.export.int8:to_qdq",
                 making="quantizing to INT8 (Q/DQ, GFAM heads kept float), calibrating on held-out training crops",
                 max_abs=None, min_psnr=25.0, engine_vs_onnx_psnr=25.0,
                 extra_operators={"QuantizeLinear": ("FLOAT",), "DequantizeLinear": ("INT8",)},
                 check="dagl.export.int8:check_calibration_data")

#: Every precision, by name; the first, float32, is the one every other one is made from and compared with.
PRECISIONS: Mapping[str, Precision] = by_name((FP32, FP16, BF16, INT8), "precision")
#: The precisions that are graphs of their own: ``dagl.precision`` values, ONNX files and engines.
GRAPH_PRECISIONS: Mapping[str, Precision] = MappingProxyType(
    {name: entry for name, entry in PRECISIONS.items() if entry.runs_graph is None})


class PrecisionError(UserInputError):
    """A precision name that no entry has."""


def get_precision(name: str) -> Precision:
    """The entry called ``name``; :class:`PrecisionError` naming the known ones otherwise."""
    try:
        return PRECISIONS[name]
    except KeyError:
        raise PrecisionError(f"unknown precision {name!r}; choose one of: {', '.join(PRECISIONS)}") from None


def get_graph_precision(name: str) -> Precision:
    """The entry called ``name`` if it is a graph of its own (what ``dagl-export`` writes and engines are built
    at); :class:`PrecisionError` otherwise, saying which graph it runs instead."""
    entry = get_precision(name)
    if entry.runs_graph is not None:
        graph = PRECISIONS[entry.runs_graph]
        raise PrecisionError(f"{entry.name} is not a graph of its own: it runs the {graph.title} graph "
                             f"(export --precision {graph.name}) on a backend that computes in {entry.title} "
                             f"(dagl-infer --precision {entry.name})")
    return entry
