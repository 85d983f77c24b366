"""Pick the backend for an artefact and build its (not yet activated) runner.

The file's suffix names its kind (engine, ONNX graph, weights); ``--backend`` names a backend of
:data:`dagl.runtime.backends.REGISTRY` that takes that kind, or ``auto`` for the kind's default.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from dagl import TASKS, WeightsError, shipped_weights
from dagl.artefact.naming import ENGINE_SUFFIXES, ONNX_SUFFIXES, WEIGHTS_SUFFIXES
from dagl.device import is_auto, resolve_device
from dagl.suggest import did_you_mean

from .backends import REGISTRY, Backend, auto_backend, backends_for, check_runs, run_precision
from .base import BaseRunner, ModelInputError, RunnerRequest, default_cache_dir

BACKENDS = ("auto", *REGISTRY)
#: ``--backend``'s help in every command: auto's rule, then what each backend of the registry runs.
BACKEND_HELP = ("auto picks by extension: .plan/.engine tensorrt, .onnx onnxruntime, .pt/.pth/.safetensors torch "
                "(dagl-infer on a CPU: openvino in bf16 where OpenVINO and a bfloat16 CPU are present, the fastest "
                "path within 0.05 dB of float32). "
                + " ".join(f"{name}: {backend.summary}." for name, backend in REGISTRY.items()))


def artefact_kind(path: Path) -> str:
    """``engine``, ``onnx`` or ``weights``: what an artefact's extension says it is."""
    suffix = path.suffix.lower()
    for kind, suffixes in (("engine", ENGINE_SUFFIXES), ("onnx", ONNX_SUFFIXES), ("weights", WEIGHTS_SUFFIXES)):
        if suffix in suffixes:
            return kind
    raise ModelInputError(f"{path}: unknown model type {suffix or '(no extension)'}; expected "
                          f"{', '.join(ENGINE_SUFFIXES + ONNX_SUFFIXES + WEIGHTS_SUFFIXES)}")


@dataclass(frozen=True)
class ModelChoice:
    """What a MODEL argument names, found without loading anything (no torch, no ONNX Runtime)."""

    path: Path
    #: ``engine``, ``onnx`` or ``weights`` (:func:`artefact_kind`).
    kind: str
    backend: Backend
    #: The task MODEL named (``jpeg``: the weights shipped for it), else the ``task`` given.
    task: str | None


def choose_model(model_path: str | Path, backend: str = "auto", task: str | None = None,
                 sigma: int | None = None) -> ModelChoice:
    """Resolve ``model_path`` (a file, or a task name for its shipped weights) and the backend for it.

    Everything here is a look at names and the file system, so the commands call it first and a typo
    is refused in a moment, not after the seconds torch takes to import: a near miss of a task name
    (``jpg``) is answered with the task meant. Raises :class:`ModelInputError` (one line).
    """
    path = Path(model_path)
    if not path.exists() and str(model_path) in TASKS:
        if task not in (None, str(model_path)):
            raise ModelInputError(f"model {model_path!r} names a task, but --task is {task!r}")
        task = str(model_path)
        try:
            path = shipped_weights(task, sigma)
        except WeightsError as exc:
            raise ModelInputError(str(exc)) from None
    if not path.is_file():
        if path.suffix or len(path.parts) > 1:  # a file name: only a file was meant
            raise ModelInputError(f"{path}: no such model file")
        hint = did_you_mean(str(model_path), TASKS) or f" (the tasks: {', '.join(TASKS)})"
        raise ModelInputError(f"{path}: no such model file or task{hint}")
    if backend not in BACKENDS:
        raise ModelInputError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    kind = artefact_kind(path)
    chosen = auto_backend(kind) if backend == "auto" else REGISTRY[backend]
    if kind not in chosen.kinds:
        raise ModelInputError(f"{path.name} is a {auto_backend(kind).name} artefact; it cannot run with --backend "
                              f"{backend} (backends for it: {', '.join(backends_for(kind))})")
    return ModelChoice(path, kind, chosen, task)


def create_runner(model_path: str | Path, backend: str = "auto", device: str = "cpu",
                  task: str | None = None, sigma: int | None = None, threads: int | None = None,
                  engine_cache: Path | None = None, precision: str | None = None) -> BaseRunner:
    """A runner for ``model_path``; reads metadata now (so the task is known) but loads nothing heavy.

    ``model_path`` may also be a task name (``"jpeg"``): the weights shipped for it, on PyTorch
    (:func:`choose_model`). ``backend`` is ``auto`` (by the file's kind) or a name of
    :data:`dagl.runtime.backends.REGISTRY`. ``device`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    (:func:`dagl.device.resolve_device`; an engine always runs on a GPU: ``cuda:N`` picks which).
    ``threads`` caps CPU threads (ONNX Runtime intra-op, torch); ``None`` keeps each library's default.
    ``engine_cache`` is where the TensorRT backends keep the engines they build from an ONNX file
    (default: :func:`dagl.runtime.base.default_cache_dir`). ``precision`` is the one to run at (a name of
    ``dagl/artefact/precision.py``; ``None``: the artefact's own), checked against the artefact and the
    backend's entry (:func:`~dagl.runtime.backends.run_precision`); the runner's ``info.precision`` says what
    it runs at.
    """
    choice = choose_model(model_path, backend, task, sigma)
    if precision is not None:  # before the factory reads (and torch loads) anything
        check_runs(choice.backend.name, precision)
    device_is_auto = is_auto(device)
    device = resolve_device(device)
    runner = choice.backend.factory(RunnerRequest(choice.path, choice.kind, device, device_is_auto, choice.task,
                                                  sigma, threads, engine_cache or default_cache_dir()))
    running = run_precision(choice.backend.name, runner.info.precision, precision, choice.path.name)
    runner.info = replace(runner.info, precision=running)
    return runner
