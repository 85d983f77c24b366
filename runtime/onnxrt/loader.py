"""Read an ONNX file's ``dagl.*`` metadata and make its runner (the ONNX Runtime backends' factories)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dagl.artefact import INPUT_NAME, OUTPUT_NAME, declared_metadata
from dagl.artefact.operators import SUPPORTED_TYPES, operator_refusal
from dagl.artefact.precision import get_precision
from dagl.device import is_cuda

from ..base import ModelInfo, ModelInputError, RunnerRequest
from ..metadata import resolve_info
from .runner import OnnxRuntimeRunner, OnnxRuntimeTensorRTRunner

#: onnx.TensorProto.FLOAT: every dagl-export graph (FP16 ones too) takes and returns float32.
_FLOAT = 1


def read_info(path: Path, task: str | None = None, sigma: int | None = None) -> ModelInfo:
    """The network an ONNX file holds, from its ``dagl.task``/``channels``/``sigma``/``precision`` props."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf errors have no common base class
        raise ModelInputError(f"{path}: not a readable ONNX file ({exc.__class__.__name__})") from None
    declared = declared_metadata({p.key: p.value for p in model.metadata_props}, path)
    info = resolve_info(declared, path, task, sigma)
    check_interface(model.graph, path, info.channels)
    check_operators(model.graph, path, get_precision(info.precision).operators)
    return info


def _describe(value) -> tuple[str, int, list[int | str]]:
    tensor = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    return value.name, tensor.elem_type, dims


def check_interface(graph, path: Path, channels: int) -> None:
    """Refuse a graph whose I/O is not one float32 (N, C, H, W) ``input`` -> ``output`` pair, N/H/W dynamic.

    A graph from elsewhere would otherwise fail on the first tile with ONNX Runtime's multi-line
    message ("Please fix either the inputs/outputs or the model"): other names, a static batch (the
    tiler sends up to --batch tiles, fewer at the end) or a static size (tiles are any size).
    """
    inputs = [v for v in graph.input if v.name not in {i.name for i in graph.initializer}]
    for role, values, expected in (("input", inputs, INPUT_NAME), ("output", graph.output, OUTPUT_NAME)):
        names = [v.name for v in values]
        if names != [expected]:
            raise ModelInputError(f"{path.name}: graph {role}s are {names}, expected one named {expected!r} "
                                  f"(export it with dagl-export)")
        name, elem_type, dims = _describe(values[0])
        if elem_type != _FLOAT:
            raise ModelInputError(f"{path.name}: {role} {name!r} has ONNX element type {elem_type}, expected "
                                  f"float32 ({_FLOAT})")
        if len(dims) != 4 or (isinstance(dims[1], int) and dims[1] not in (0, channels)):
            raise ModelInputError(f"{path.name}: {role} {name!r} has shape {dims}, expected "
                                  f"(N, {channels}, H, W)")
        static = [("N", "C", "H", "W")[axis] for axis in (0, 2, 3) if isinstance(dims[axis], int) and dims[axis]]
        if static:
            raise ModelInputError(f"{path.name}: {role} {name!r} has shape {dims} with a static "
                                  f"{'/'.join(static)}; dagl runs batches of tiles of any size, so N, H and W "
                                  f"must be dynamic (export it with dagl-export)")


def check_operators(graph, path: Path, operators: Mapping[str, tuple[str, ...]] = SUPPORTED_TYPES) -> None:
    """Refuse a graph with a node outside the operator table dagl-export checks its graphs against.

    A foreign graph may hold a ``Loop`` that never ends (a hang, not an error), a custom operator
    or a data-dependent shape; dagl's own graphs never do, so one table decides both at export and here:
    ``operators``, the declared precision's (an INT8 graph's holds its Q/DQ nodes).
    """
    for node in graph.node:
        refusal = operator_refusal(node.op_type, node.domain, operators)
        if refusal:
            raise ModelInputError(f"{path.name}: node {node.name or node.output[0]!r} ({node.op_type}): {refusal}; "
                                  f"dagl runs only graphs made of the operators dagl-export writes")


def create(request: RunnerRequest) -> OnnxRuntimeRunner:
    """The ``onnxruntime`` backend's factory: the CUDA provider for a GPU device, the CPU provider for ``cpu``."""
    return OnnxRuntimeRunner(request.path, read_info(request.path, request.task, request.sigma), request.device,
                             request.threads, cpu_fallback=request.device_is_auto)


def create_tensorrt_ep(request: RunnerRequest) -> OnnxRuntimeTensorRTRunner:
    """The ``onnxruntime-tensorrt`` backend's factory: TensorRT inside ONNX Runtime, on a GPU whatever ``--device``."""
    device = request.device if is_cuda(request.device) else "cuda"
    return OnnxRuntimeTensorRTRunner(request.path, read_info(request.path, request.task, request.sigma), device,
                                     request.engine_cache / "onnxruntime-tensorrt", request.threads)
