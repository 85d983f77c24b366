"""The ``tensorrt`` backend's entry in the registry: a request in, the runner that fits it out.

Apart from :mod:`.loader` (deserialise) and :mod:`.runner` (execute) so that neither has to know the other's
caller: the runners use the loader, this module uses both.
"""

from __future__ import annotations

from dagl.artefact import EngineSidecar, SidecarError
from dagl.device import is_cuda

from ..base import BaseRunner, ModelInputError, RunnerRequest
from ..metadata import resolve_info
from ..onnx_info import read_info
from .runner import OnnxEngineRunner, TensorRTRunner


def create(request: RunnerRequest) -> BaseRunner:
    """The ``tensorrt`` backend's factory; an engine always runs on a GPU (``cuda:N`` picks which)."""
    device = request.device if is_cuda(request.device) else "cuda"
    if request.kind == "onnx":
        info = read_info(request.path, request.task, request.sigma)
        return OnnxEngineRunner(request.path, info, request.engine_cache, device)
    try:
        sidecar = EngineSidecar.read(request.path)
    except SidecarError as exc:
        raise ModelInputError(str(exc)) from None
    info = resolve_info(sidecar.declared(), request.path, request.task, request.sigma)
    return TensorRTRunner(request.path, info, sidecar, device)
