"""The ``openvino`` backend's factory: an ONNX file's metadata and interface checked as ONNX Runtime checks them,
or a weights file's network built as the ``torch`` backend builds it (converted to OpenVINO on activation), its
GFAM heads in the unfold form (:data:`.weights.CONVERTED_GFAM`)."""

from __future__ import annotations

from dagl.device import is_cuda

from ..base import ModelInputError, RunnerRequest
from ..onnx_info import read_info
from .runner import OpenVINORunner, OpenVINOWeightsRunner
from .weights import CONVERTED_GFAM


def create(request: RunnerRequest) -> OpenVINORunner:
    """An OpenVINO runner on the CPU; an explicit GPU device is refused (``--device auto`` means the CPU here).

    OpenVINO's own GPU plugin drives Intel GPUs, not the CUDA device ``--device cuda`` names, so this
    backend runs where ``cpu`` says or nowhere.
    """
    if is_cuda(request.device) and not request.device_is_auto:
        raise ModelInputError(f"--backend openvino runs on the CPU only, not --device {request.device}; use "
                              f"--device cpu (or --backend onnxruntime or tensorrt on a GPU)")
    if request.kind == "weights":
        from ..pyt.loader import create as torch_runner  # the task, metadata and network as PyTorch has them

        network = torch_runner(request, gfam=CONVERTED_GFAM)
        return OpenVINOWeightsRunner(request.path, network.model, network.info, request.threads,
                                     request.engine_cache / "openvino")
    info = read_info(request.path, request.task, request.sigma)
    return OpenVINORunner(request.path, info, request.threads)
