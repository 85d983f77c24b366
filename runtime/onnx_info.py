"""The checks every runner of an ``.onnx`` file makes before it runs one, whichever backend runs it.

ONNX Runtime and TensorRT (building an engine from the graph) take the same files, so both read the
network from the same ``dagl.*`` metadata and refuse the same foreign graphs, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dagl.artefact import INPUT_NAME, OUTPUT_NAME
from dagl.artefact.onnx_graph import ONNX_FLOAT, OnnxFileError, graph_inputs, graph_outputs, load_onnx
from dagl.artefact.operators import SUPPORTED_TYPES, operator_refusal
from dagl.artefact.precision import get_precision

from .base import ModelInfo, ModelInputError
from .metadata import resolve_info


def read_info(path: Path, task: str | None = None, sigma: int | None = None) -> ModelInfo:
    """The network an ONNX file holds, from its ``dagl.task``/``channels``/``sigma``/``precision`` props."""
    try:
        model, declared = load_onnx(path)
    except OnnxFileError as exc:
        raise ModelInputError(str(exc)) from None
    info = resolve_info(declared, path, task, sigma)
    check_interface(model.graph, path, info.channels)
    check_operators(model.graph, path, get_precision(info.precision).operators)
    return info


def check_interface(graph, path: Path, channels: int) -> None:
    """Refuse a graph whose I/O is not one float32 (N, C, H, W) ``input`` -> ``output`` pair, N/H/W dynamic.

    A graph from elsewhere would otherwise fail on the first tile with ONNX Runtime's multi-line
    message ("Please fix either the inputs/outputs or the model"): other names, a static batch (the
    tiler sends up to --batch tiles, fewer at the end) or a static size (tiles are any size).
    """
    for role, values, expected in (("input", graph_inputs(graph), INPUT_NAME),
                                   ("output", graph_outputs(graph), OUTPUT_NAME)):
        names = [v.name for v in values]
        if names != [expected]:
            raise ModelInputError(f"{path.name}: graph {role}s are {names}, expected one named {expected!r} "
                                  f"(export it with dagl-export)")
        name, elem_type, dims = values[0].name, values[0].elem_type, values[0].shown_dims()
        if elem_type != ONNX_FLOAT:
            raise ModelInputError(f"{path.name}: {role} {name!r} has ONNX element type {elem_type}, expected "
                                  f"float32 ({ONNX_FLOAT})")
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
