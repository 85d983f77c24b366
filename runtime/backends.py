"""The backends an artefact can run on: one entry each, and the one place a backend is added.

An entry says which artefact kinds the backend takes (``engine``, ``onnx``, ``weights``: the kind
a file's suffix names, :func:`dagl.runtime.loader.artefact_kind`), which kinds ``--backend auto``
gives it, the factory that makes its runner, and the precisions it runs with the parity bound its
output is held to at each against float32 PyTorch (:mod:`dagl.runtime.compare`); :func:`run_precision`
checks a ``--precision`` against it. ``--backend`` of every command, ``create_runner``,
``Restorer`` and ``dagl-eval --compare`` read this table; none of them names a backend.

Factories import their backend when called, so ``import dagl.runtime`` needs neither torch, ONNX
Runtime nor TensorRT.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from dagl.artefact.precision import BF16, FP16, FP32, GRAPH_PRECISIONS, INT8, PRECISIONS, get_precision
from dagl.registry import by_name

from .base import BaseRunner, ModelInputError, RunnerRequest
from .compare import Tolerance, bounds_for

Factory = Callable[[RunnerRequest], BaseRunner]


@dataclass(frozen=True)
class Backend:
    """One way to run artefacts: what it takes, how its runner is made, how close it must come."""

    name: str
    #: Artefact kinds it runs.
    kinds: tuple[str, ...]
    factory: Factory
    #: Parity bound per precision it runs (names of ``dagl/artefact/precision.py``): its keys are the
    #: precisions it supports, which ``--precision`` is checked against.
    tolerances: Mapping[str, Tolerance]
    #: Kinds ``--backend auto`` runs on this backend (each kind has exactly one).
    auto_for: tuple[str, ...] = ()
    #: One line for ``--help`` and error messages.
    summary: str = ""
    #: It runs weights in the float32 network itself (PyTorch): the baseline, i.e. what an exported artefact's
    #: parity is judged against (``dagl-eval --compare``; the bounds of ``runtime/compare.py`` are "vs float32
    #: PyTorch"), and a file ``dagl-bench``'s plain path can load too.
    baseline: bool = False


def lazy(module: str, function: str = "create") -> Factory:
    """The factory ``module.function`` (relative to dagl.runtime), imported on its first call, not before."""
    def factory(request: RunnerRequest) -> BaseRunner:
        return getattr(importlib.import_module(module, __package__), function)(request)

    factory.__qualname__ = f"{module.lstrip('.')}.{function}"
    return factory


def bounds(candidate: str, precisions: Iterable[str]) -> Mapping[str, Tolerance]:
    """The parity bounds of ``candidate`` (its name in verdicts) at each of ``precisions``: what it supports."""
    every = bounds_for(candidate)
    return MappingProxyType({name: every[name] for name in precisions})


REGISTRY: Mapping[str, Backend] = by_name((
    # The graph runners run every graph dagl-export writes, at the graph's own precision.
    Backend("tensorrt", ("engine", "onnx"), lazy(".trt.backend"), bounds("TensorRT engine", GRAPH_PRECISIONS),
            auto_for=("engine",), summary="a TensorRT engine, or an .onnx file built into one (kept in the engine "
                                          "cache)"),
    Backend("onnxruntime", ("onnx",), lazy(".onnxrt.loader"), bounds("ONNX", GRAPH_PRECISIONS),
            auto_for=("onnx",), summary="ONNX Runtime on its CPU or CUDA execution provider, as --device says"),
    Backend("onnxruntime-tensorrt", ("onnx",), lazy(".onnxrt.loader", "create_tensorrt_ep"),
            bounds("TensorRT engine", (FP32.name, FP16.name)),  # INT8 would need its int8 flag set
            summary="ONNX Runtime's TensorRT execution provider (engine and timing cache kept in the engine cache)"),
    # OpenVINO also computes the float32 graph in bfloat16 when asked (its inference precision hint), and runs
    # the INT8 (Q/DQ) graph with int8 kernels. A weights file is converted to OpenVINO (kept in the engine cache).
    Backend("openvino", ("onnx", "weights"), lazy(".openvino.loader"),
            bounds("OpenVINO", (FP32.name, BF16.name, INT8.name)),
            summary="OpenVINO on the CPU (pip install 'dagl[openvino]'), an .onnx file or weights (converted once, "
                    "kept in the engine cache); --precision bf16 computes the float32 network in bfloat16"),
    # PyTorch runs weights, which are float32.
    Backend("torch", ("weights",), lazy(".pyt.loader"), bounds("PyTorch", (FP32.name,)),
            auto_for=("weights",), summary="PyTorch on a weights file (.pt, .pth, .safetensors)", baseline=True),
), "backend")


def auto_backend(kind: str) -> Backend:
    """The backend ``--backend auto`` picks for an artefact of ``kind``."""
    return next(backend for backend in REGISTRY.values() if kind in backend.auto_for)


def backends_for(kind: str) -> list[str]:
    """Every backend that runs an artefact of ``kind``, by name."""
    return [name for name, backend in REGISTRY.items() if kind in backend.kinds]


def tolerance_for(backend: str, precision: str) -> Tolerance:
    """The tolerance for a candidate run by ``backend`` at ``precision`` (a name in ``PRECISIONS``), as its
    entry in :data:`REGISTRY` says."""
    try:
        return REGISTRY[backend].tolerances[precision]
    except KeyError:
        raise ValueError(f"no parity tolerance for backend {backend!r} at precision {precision!r}") from None


def check_runs(backend: str, precision: str) -> None:
    """Refuse, in one line naming the backends that do, a precision ``backend``'s entry does not list."""
    entry = get_precision(precision)
    supported = REGISTRY[backend].tolerances
    if entry.name not in supported:
        others = [name for name, b in REGISTRY.items() if entry.name in b.tolerances]
        hint = f"; backends that do: {', '.join(others)}" if others else ""
        raise ModelInputError(f"--backend {backend} does not run {entry.title} (--precision "
                              f"{'|'.join(supported)}){hint}")


def run_precision(backend: str, graph: str, requested: str | None, artefact: str) -> str:
    """The precision ``backend`` runs ``artefact`` (a graph of precision ``graph``) at, asked for ``requested``.

    ``None`` asks for the graph's own precision. Another one is refused in one line unless its entry
    runs this graph (bfloat16 runs the float32 graph) and the backend's entry lists it.
    """
    entry = get_precision(requested or graph)
    if entry.graph != graph:
        have, need = PRECISIONS[graph], PRECISIONS[entry.graph]
        raise ModelInputError(f"{artefact} holds the {have.title} graph; --precision {entry.name} runs the "
                              f"{need.title} graph (dagl-export --precision {need.name} writes it)")
    check_runs(backend, entry.name)
    return entry.name
