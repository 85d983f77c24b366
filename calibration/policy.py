"""Which nodes of an exported DAGL graph must stay in float32 when the rest runs in FP16.

The GFAM attention computes logits ``10 * S * ReLU(S - mean(S) * thr + bias)``, quadratic in the
patch similarity S: a similarity of ~81 already gives logits past FP16's 65504, and the softmax of
an overflowed row is NaN. The rule is structural, so it holds for any weights: every node between
the score MatMul (inclusive) and the masked attention weights, i.e. the ancestors of the
``softmax * mask`` product up to the nearest MatMul/Conv, stays in float32. The aggregation MatMul
that follows takes weights in [0, 1] and runs in FP16.

On top of that, a ranges file (``dagl-calibrate`` writes one; the package's ``fp16_ranges.json`` is the shipped
weights' record, and ``dagl-export --fp16-ranges FILE`` takes another) may list modules
whose measured activations come within the headroom factor of FP16's range; their nodes are kept
in float32 too, found by the module scope the TorchScript exporter puts in node names.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from pathlib import Path

import onnx
from torch import Tensor, nn

from dagl.errors import UserInputError, first_line
from dagl.files import loads_bounded, read_small
from dagl.network.gfam import GFAMHead

#: The record shipped with the package (its weights' ranges; the tasks without weights: random ones).
RANGES_FILE = Path(__file__).with_name("fp16_ranges.json")
#: A ranges file is a few hundred kB (every module's min/max for four tasks); more is not one.
MAX_RANGES_BYTES = 4 << 20
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


class RangesError(UserInputError):
    """A ranges file that is not one ``dagl-calibrate`` writes."""


def load_ranges(path: Path = RANGES_FILE) -> dict:
    """A ranges record (``{"tasks": {}}`` if the file does not exist yet): read bounded, since a user may
    hand one over, and checked where the export reads it (each task's ``keep_fp32_modules``, a list of
    module names)."""
    path = Path(path)
    if not path.exists():
        return {"tasks": {}}
    try:
        data = loads_bounded(read_small(path, MAX_RANGES_BYTES, "a ranges file").decode("utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise RangesError(f"{path}: not a readable ranges file ({first_line(exc)})") from None
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, dict) or not all(
            isinstance(record, dict) and isinstance(record.get("keep_fp32_modules", []), list)
            and all(isinstance(name, str) for name in record.get("keep_fp32_modules", []))
            for record in tasks.values()):
        raise RangesError(f"{path}: not a ranges file (no \"tasks\" records with a keep_fp32_modules list); "
                          f"make one with dagl-calibrate")
    return data


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
