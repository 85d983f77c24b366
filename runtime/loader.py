"""Pick the backend for an artefact and build its (not yet activated) runner."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dagl import TASKS, WeightsError, shipped_weights
from dagl.artefact import EngineSidecar, SidecarError, declared_metadata
from dagl.artefact.naming import ENGINE_SUFFIXES, ONNX_SUFFIXES, WEIGHTS_SUFFIXES
from dagl.device import is_cuda, resolve_device

from .base import BaseRunner, ModelInputError
from .metadata import resolve_info

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


def backend_for(path: Path) -> str:
    """The backend an artefact's extension implies (``auto``)."""
    suffix = path.suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        return "tensorrt"
    if suffix in ONNX_SUFFIXES:
        return "onnxruntime"
    if suffix in WEIGHTS_SUFFIXES:
        return "torch"
    raise ModelInputError(f"{path}: unknown model type {suffix or '(no extension)'}; expected "
                           f"{', '.join(ENGINE_SUFFIXES + ONNX_SUFFIXES + WEIGHTS_SUFFIXES)}")


def create_runner(model_path: str | Path, backend: str = "auto", device: str = "cpu",
                  task: str | None = None, sigma: int | None = None, threads: int | None = None) -> BaseRunner:
    """A runner for ``model_path``; reads metadata now (so the task is known) but loads nothing heavy.

    ``model_path`` may also be a task name (``"jpeg"``): the weights shipped for it, on PyTorch.
    ``device`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (:func:`dagl.device.resolve_device`; an engine
    always runs on a GPU: ``cuda:N`` picks which). ``threads`` caps CPU threads (ONNX Runtime intra-op,
    torch); ``None`` keeps each library's default.
    """
    device = resolve_device(device)
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
        raise ModelInputError(f"{path}: no such model file")
    if backend not in BACKENDS:
        raise ModelInputError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    implied = backend_for(path)
    if backend not in ("auto", implied):
        raise ModelInputError(f"{path.name} is a {implied} artefact; it cannot run with --backend {backend}")
    if implied == "tensorrt":
        from .trt import TensorRTRunner

        try:
            sidecar = EngineSidecar.read(path)
        except SidecarError as exc:
            raise ModelInputError(str(exc)) from None
        info = resolve_info(sidecar.declared(), path, task, sigma)
        return TensorRTRunner(path, info, sidecar, device if is_cuda(device) else "cuda")
    if implied == "onnxruntime":
        from .onnxrt import OnnxRuntimeRunner, read_info

        return OnnxRuntimeRunner(path, read_info(path, task, sigma), device, threads)
    from dagl.weights import file_digest, weights_metadata

    from .pyt import TorchRunner, load_model

    try:
        declared = declared_metadata(weights_metadata(path), path)
    except WeightsError as exc:
        raise ModelInputError(str(exc)) from None
    if not task and not declared.get("task"):
        raise ModelInputError(f"{path.name} is a weights file and does not say which task it is for; "
                              f"pass --task")
    info = replace(resolve_info(declared, path, task, sigma), weights_sha256=file_digest(path))
    return TorchRunner(load_model(path, info), info, device, threads)
