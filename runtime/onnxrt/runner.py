"""Execute batches with an ONNX Runtime inference session, on the execution provider that was asked for."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dagl.artefact import INPUT_NAME, OUTPUT_NAME
from dagl.errors import first_line

from ..base import CACHE_ENV, BaseRunner, InferenceError, ModelInfo, ModelInputError, RuntimeLoadError
from .providers import CPU, Provider, missing_provider, provider_name, session_providers, tensorrt_session_providers

log = logging.getLogger(__name__)


class OnnxRuntimeRunner(BaseRunner):
    """One ``InferenceSession`` per activation, created lazily because building it takes seconds.

    The session runs on the first provider of :meth:`providers` or not at all: ONNX Runtime's own
    silent fallback to the CPU is refused in one line. Only ``cpu_fallback`` (the user said
    ``--device auto``) lets a missing CUDA provider mean the CPU, with a warning, as ``auto`` promises.
    """

    name = "onnxruntime"

    def __init__(self, path: Path, info: ModelInfo, device: str = "cpu", threads: int | None = None,
                 cpu_fallback: bool = False) -> None:
        super().__init__(info, device)
        self.path = path
        self.threads = threads
        self.cpu_fallback = cpu_fallback
        self.session = None

    def providers(self) -> list[Provider]:
        """The session's providers, best first (the CUDA or the CPU provider, by ``device``)."""
        return session_providers(self.device)

    def activate_impl(self) -> None:
        import onnxruntime as ort

        providers = self.providers()
        wanted = provider_name(providers[0])
        problem = missing_provider(wanted, ort.get_available_providers())
        if problem and self.cpu_fallback:
            log.warning("%s; --device auto runs %s on the CPU", problem, self.path.name)
            providers, wanted, problem = [CPU], CPU, None
        if problem:
            raise RuntimeLoadError(f"{self.path.name}: --backend {self.name} on {self.device}: {problem}")
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        try:
            session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # ORT raises its own unrelated exception classes
            raise ModelInputError(f"{self.path}: ONNX Runtime cannot load it ({first_line(exc)})") from None
        running = session.get_providers()[0]
        if running != wanted:
            problem = (f"ONNX Runtime could not start its {wanted} and fell back to {running} (its log above "
                       f"says why; usually a missing CUDA, cuDNN or TensorRT library)")
            if not self.cpu_fallback:
                raise RuntimeLoadError(f"{self.path.name}: {problem}; use --device cpu to run on the CPU")
            log.warning("%s; --device auto runs %s on the CPU", problem, self.path.name)
        if running == CPU:
            self.device = "cpu"
        self.session = session

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        try:
            (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        except Exception as exc:  # ORT's own classes (Fail, RuntimeException, ...) share no base but Exception
            # a graph that loads but fails on this input (a Reshape that does not fit, a Tile or Expand past
            # the memory): the image fails, as any failure while working, in one line
            raise InferenceError(f"ONNX Runtime failed running {self.path.name} on a batch of shape "
                                 f"{list(batch.shape)} ({first_line(exc)})") from None
        return out

    def deactivate_impl(self) -> None:
        self.session = None


class OnnxRuntimeTensorRTRunner(OnnxRuntimeRunner):
    """ONNX Runtime's TensorRT execution provider: TensorRT builds the engine inside the session.

    The engine and timing caches live in ``cache_dir/ort<version>`` (ONNX Runtime names each engine by
    the graph and GPU; engines of another onnxruntime are never mixed in), built for one explicit profile,
    so the second session on a machine starts in seconds. Shapes outside the profile are refused
    before ONNX Runtime sees them. It always runs on a GPU (``cuda:N`` picks which).
    """

    name = "onnxruntime-tensorrt"

    def __init__(self, path: Path, info: ModelInfo, device: str, cache_dir: Path, threads: int | None = None) -> None:
        from dagl.artefact.engine_build import default_profile  # imports torch: only for this backend

        super().__init__(path, info, device, threads)
        self.cache_dir = cache_dir
        self.profile = default_profile(info.channels)

    @property
    def max_batch(self) -> int | None:
        return self.profile.max[0]

    def providers(self) -> list[Provider]:
        import onnxruntime as ort

        from dagl.artefact.engine_build import WORKSPACE_BYTES

        folder = self.cache_dir / f"ort{ort.__version__}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeLoadError(f"cannot create the engine cache {folder} ({exc.strerror}); set "
                                   f"{CACHE_ENV} to a writable folder") from None
        return tensorrt_session_providers(self.info.precision, self.device, folder, self.profile, WORKSPACE_BYTES)

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        low, high = self.profile.min, self.profile.max
        if not all(lo <= s <= hi for s, lo, hi in zip(batch.shape, low, high)):
            raise RuntimeLoadError(f"--backend {self.name} takes shapes from {list(low)} to {list(high)}, not "
                                   f"{list(batch.shape)}; choose --tile/--batch inside that range")
        return super().infer_impl(batch)
