"""The backends an artefact can run on: one entry each, and the one place a backend is added.

An entry says which artefact kinds the backend takes (``engine``, ``onnx``, ``weights``: the kind
a file's suffix names, :func:`dagl.runtime.loader.artefact_kind`), which kinds ``--backend auto``
gives it, the factory that makes its runner, and the parity bound its output is held to against
float32 PyTorch (:mod:`dagl.runtime.compare`). ``--backend`` of every command, ``create_runner``,
``Restorer`` and ``dagl-eval --compare`` read this table; none of them names a backend.

Factories import their backend when called, so ``import dagl.runtime`` needs neither torch, ONNX
Runtime nor TensorRT.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .base import BaseRunner, RunnerRequest
from .compare import Tolerance, bounds_for

Factory = Callable[[RunnerRequest], BaseRunner]


@dataclass(frozen=True)
class Backend:
    """One way to run artefacts: what it takes, how its runner is made, how close it must come."""

    name: str
    #: Artefact kinds it runs.
    kinds: tuple[str, ...]
    factory: Factory
    #: Parity bound per precision of the artefact (every entry of ``dagl/artefact/precision.py``).
    tolerances: Mapping[str, Tolerance]
    #: Kinds ``--backend auto`` runs on this backend (each kind has exactly one).
    auto_for: tuple[str, ...] = ()
    #: One line for ``--help`` and error messages.
    summary: str = ""


def lazy(module: str, function: str = "create") -> Factory:
    """The factory ``module.function`` (relative to dagl.runtime), imported on its first call, not before."""
    def factory(request: RunnerRequest) -> BaseRunner:
        return getattr(importlib.import_module(module, __package__), function)(request)

    factory.__qualname__ = f"{module.lstrip('.')}.{function}"
    return factory


#: name -> backend, in registration order (the order ``--backend`` lists them).
REGISTRY: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Add ``backend`` to :data:`REGISTRY`; a second entry under a taken name is refused, not silently swapped
    in, since every command resolves ``--backend`` through this table."""
    if backend.name in REGISTRY:
        raise ValueError(f"backend {backend.name!r} is registered twice")
    REGISTRY[backend.name] = backend
    return backend


for _backend in (
    Backend("tensorrt", ("engine", "onnx"), lazy(".trt.backend"), bounds_for("TensorRT engine"),
            auto_for=("engine",), summary="a TensorRT engine, or an .onnx file built into one (kept in the engine "
                                          "cache)"),
    Backend("onnxruntime", ("onnx",), lazy(".onnxrt.loader"), bounds_for("ONNX"),
            auto_for=("onnx",), summary="ONNX Runtime on its CPU or CUDA execution provider, as --device says"),
    Backend("onnxruntime-tensorrt", ("onnx",), lazy(".onnxrt.loader", "create_tensorrt_ep"),
            bounds_for("TensorRT engine"),
            summary="ONNX Runtime's TensorRT execution provider (engine and timing cache kept in the engine cache)"),
    Backend("torch", ("weights",), lazy(".pyt.loader"), bounds_for("PyTorch"),
            auto_for=("weights",), summary="PyTorch on a weights file (.pt, .pth, .safetensors)"),
):
    register_backend(_backend)


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
