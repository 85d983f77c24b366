"""Which nodes of an exported DAGL graph must stay in float32 when the rest runs in FP16.

The GFAM attention computes logits ``10 * S * ReLU(S - mean(S) * thr + bias)``, quadratic in the
patch similarity S: a similarity of ~81 already gives logits past FP16's 65504, and the softmax of
an overflowed row is NaN. The rule is structural, so it holds for any weights: every node between
the score MatMul (inclusive) and the masked attention weights, i.e. the ancestors of the
``softmax * mask`` product up to the nearest MatMul/Conv, stays in float32. The aggregation MatMul
that follows takes weights in [0, 1] and runs in FP16.

On top of that, ``fp16_ranges.json`` (written by ``python -m dagl.calibration.ranges``) may list modules
whose measured activations come within the headroom factor of FP16's range; their nodes are kept
in float32 too, found by the module scope the TorchScript exporter puts in node names.
"""

from __future__ import annotations

import contextlib
import json
import types
from collections.abc import Iterator
from pathlib import Path

import onnx
from torch import Tensor, nn

from dagl.gfam import GFAMHead

RANGES_FILE = Path(__file__).with_name("fp16_ranges.json")
#: The attention path ends where it meets a producer of full-size features.
_PATH_STOPS = ("MatMul", "Conv")


def attention_path_nodes(graph: onnx.GraphProto) -> set[str]:
    """Names of the nodes computing scores, logits, softmax and mask, for every GFAM head."""
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    keep: set[str] = set()
    for softmax in (n for n in graph.node if n.op_type == "Softmax"):
        stack = list(consumers.get(softmax.output[0], []))  # the ``weights * mask`` product
        while stack:
            node = stack.pop()
            if node.name in keep:
                continue
            keep.add(node.name)
            if node.op_type not in _PATH_STOPS:
                stack.extend(producer[name] for name in node.input if name in producer)
    return keep


def module_scope(module_name: str) -> str:
    """ONNX node-name prefix the TorchScript exporter gives a module's nodes.

    ``body.8.c1_1`` -> ``/body/body.8/c1_1/``: a numbered child of a Sequential is scoped as
    ``<parent attribute>.<index>``.
    """
    scopes: list[str] = []
    parts = module_name.split(".")
    for i, part in enumerate(parts):
        scopes.append(f"{parts[i - 1]}.{part}" if part.isdigit() and i else part)
    return "/" + "/".join(scopes) + "/"


def load_ranges(path: Path = RANGES_FILE) -> dict:
    """The committed calibration record (empty if it was never generated)."""
    return json.loads(path.read_text()) if path.is_file() else {"tasks": {}}


def fp32_nodes(graph: onnx.GraphProto, task: str, ranges: dict | None = None) -> set[str]:
    """Every node of ``graph`` that must run in float32 for ``task``."""
    keep = attention_path_nodes(graph)
    record = (ranges if ranges is not None else load_ranges())["tasks"].get(task, {})
    scopes = tuple(module_scope(name) for name in record.get("keep_fp32_modules", []))
    if scopes:
        keep.update(node.name for node in graph.node if node.name.startswith(scopes))
    return keep


@contextlib.contextmanager
def float32_attention(model: nn.Module) -> Iterator[nn.Module]:
    """The policy applied to a PyTorch model run in FP16: each GFAM head's attention in float32.

    ONNX Runtime's CPU provider runs many FP16 nodes by casting to float32 internally, so it cannot
    show an FP16 overflow; ``model.half()`` on the CPU computes in true FP16 and, inside this
    context, mirrors what the FP16 graph and the TensorRT engine keep in float32.
    """
    heads = [m for m in model.modules() if isinstance(m, GFAMHead)]
    for head in heads:
        def attention(self: GFAMHead, scores: Tensor, thr: Tensor, bias: Tensor, *,
                      _original=head.attention) -> Tensor:
            return _original(scores.float(), thr.float(), bias.float()).to(scores.dtype)

        head.attention = types.MethodType(attention, head)  # instance attribute shadows the method
    try:
        yield model
    finally:
        for head in heads:
            del head.attention
