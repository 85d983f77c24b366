"""Execute batches with a TensorRT 10.12+/11.x engine, using torch tensors as device buffers.

torch is already a dependency and owns a caching allocator and streams, so it replaces
cuda-python/pycuda here: inputs and outputs are CUDA tensors whose ``data_ptr()`` is bound by
tensor name (``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``: the same calls in
TensorRT 10 and 11). The buffers' torch device is a parameter only so that the tests can run this
exact code against the TensorRT 11 fake with host memory; real engines need ``"cuda"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dagl.artefact import INPUT_NAME, OUTPUT_NAME, EngineSidecar, import_tensorrt

from ..base import BaseRunner, ModelInfo, RuntimeLoadError
from .cache import cached_engine
from .loader import load_engine


class TensorRTRunner(BaseRunner):
    """One execution context on the current CUDA device; shapes must lie in the engine's profile."""

    name = "tensorrt"

    def __init__(self, path: Path, info: ModelInfo, sidecar: EngineSidecar | None, device: str = "cuda") -> None:
        super().__init__(info, device=device)
        self.path = path
        self.sidecar = sidecar
        self.engine = self.context = self._runtime = None

    @property
    def max_batch(self) -> int | None:
        return self.sidecar.max_batch

    def activate_impl(self) -> None:
        self._runtime, self.engine = load_engine(self.path, self.info, self.sidecar, self.device)
        trt = import_tensorrt()  # found: load_engine has just used it
        # Strongly typed engines keep the ONNX graph's I/O types; dagl-export writes float32 I/O
        # for both precisions, and the buffers below are float32.
        for name in (INPUT_NAME, OUTPUT_NAME):
            if self.engine.get_tensor_dtype(name) != trt.float32:
                raise RuntimeLoadError(f"{self.path.name}: tensor {name!r} is {self.engine.get_tensor_dtype(name)}, "
                                       f"not float32; rebuild it from an ONNX file written by dagl-export")
        self.context = self.engine.create_execution_context()

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        low, high = self.sidecar.min_shape, self.sidecar.max_shape
        if not all(lo <= s <= hi for s, lo, hi in zip(shape, low, high)):
            raise RuntimeLoadError(f"{self.path.name} accepts shapes from {list(low)} to {list(high)}, not {list(shape)}; "
                                   f"choose --tile/--batch inside that range or rebuild the engine")

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        import torch

        self._check_shape(batch.shape)
        device = torch.device(self.device)
        stream = torch.cuda.current_stream(device) if device.type == "cuda" else None
        inputs = torch.from_numpy(batch).to(device)
        if not self.context.set_input_shape(INPUT_NAME, tuple(batch.shape)):
            raise RuntimeLoadError(f"{self.path.name} refused input shape {list(batch.shape)}")
        outputs = torch.empty(tuple(self.context.get_tensor_shape(OUTPUT_NAME)), dtype=torch.float32, device=device)
        self.context.set_tensor_address(INPUT_NAME, inputs.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, outputs.data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream if stream else 0):
            raise RuntimeError(f"TensorRT failed to execute {self.path.name} on shape {batch.shape}")
        if stream:
            stream.synchronize()
        return outputs.cpu().numpy()

    def deactivate_impl(self) -> None:
        self.context = self.engine = self._runtime = None


class OnnxEngineRunner(TensorRTRunner):
    """An ONNX file on TensorRT: on activation its engine is found in the engine cache, or built there.

    Built for ``dagl-export``'s default profile (:func:`dagl.artefact.engine_build.default_profile`),
    so it takes what dagl-infer sends by default; the runner then is the engine runner above.
    """

    def __init__(self, onnx: Path, info: ModelInfo, cache_dir: Path, device: str = "cuda") -> None:
        from dagl.artefact.engine_build import default_profile  # imports torch, as the engine buffers do

        super().__init__(onnx, info, None, device)
        self.onnx = onnx
        self.cache_dir = cache_dir
        self.profile = default_profile(info.channels)

    @property
    def max_batch(self) -> int | None:
        return self.profile.max[0]

    def activate_impl(self) -> None:
        self.path, self.sidecar = cached_engine(self.onnx, self.info, self.profile, self.cache_dir)
        super().activate_impl()
