"""Execute batches with an OpenVINO model compiled for the CPU plugin, at the precision the runner was given."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from dagl.artefact import INPUT_NAME, OUTPUT_NAME
from dagl.artefact.precision import get_precision

from ..base import CACHE_ENV, BaseRunner, ModelInfo, ModelInputError, RuntimeLoadError

INSTALL = "pip install 'dagl[openvino]'"


def compile_config(compute: str, threads: int | None, cache_dir: Path | None) -> dict[str, str]:
    """``compile_model``'s properties: the inference precision, the thread count and the model cache.

    The precision is always set: on a CPU with AVX512-BF16 or AMX, OpenVINO computes a float32 graph
    in bfloat16 unless told otherwise, so a float32 run must ask for ``f32``. ``LATENCY``: one
    request at a time, all threads on it (dagl batches tiles itself). The cache keeps the compiled
    model, so the next process on this machine skips compilation.
    """
    config = {"INFERENCE_PRECISION_HINT": compute, "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    if cache_dir is not None:
        config["CACHE_DIR"] = str(cache_dir)
    return config


class OpenVINORunner(BaseRunner):
    """One compiled model and one infer request per activation; calls from several threads take turns.

    The compiled model must compute in the precision asked for: OpenVINO quietly computes in float32
    when the CPU lacks bfloat16, which is refused in one line, as ONNX Runtime's fallback is.
    """

    name = "openvino"

    def __init__(self, path: Path, info: ModelInfo, threads: int | None = None, cache_dir: Path | None = None) -> None:
        super().__init__(info, "cpu")
        self.path = path
        self.threads = threads
        self.cache_dir = cache_dir
        self.request = None
        self._request_lock = threading.Lock()  # an infer request runs one inference at a time

    def activate_impl(self) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise RuntimeLoadError(f"--backend {self.name} needs OpenVINO: {INSTALL}") from None
        entry = get_precision(self.info.precision)
        if self.cache_dir is not None:
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RuntimeLoadError(f"cannot create the OpenVINO model cache {self.cache_dir} ({exc.strerror}); "
                                       f"set {CACHE_ENV} to a writable folder") from None
        core = ov.Core()
        source = self.model_source()
        try:
            compiled = core.compile_model(source, "CPU", compile_config(entry.compute, self.threads, self.cache_dir))
        except Exception as exc:  # OpenVINO raises RuntimeError for anything from a parse error to a bad property
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelInputError(f"{self.path}: OpenVINO cannot compile it ({reason})") from None
        running = compiled.get_property("INFERENCE_PRECISION_HINT")
        if running != getattr(ov.Type, entry.compute):
            raise RuntimeLoadError(f"{self.path.name}: OpenVINO computes in {running.get_type_name()} on this CPU, "
                                   f"not {entry.compute} as --precision {entry.name} asks (bfloat16 needs AVX512-BF16 "
                                   f"or AMX); use --precision {entry.graph}")
        self.request = compiled.create_infer_request()

    def model_source(self) -> object:
        """What ``compile_model`` reads: the file's path (an ``.onnx`` graph here)."""
        return str(self.path)

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        with self._request_lock:
            self.request.infer({INPUT_NAME: batch})
            return self.request.get_tensor(OUTPUT_NAME).data.copy()  # the request reuses its buffer

    def deactivate_impl(self) -> None:
        self.request = None


class OpenVINOWeightsRunner(OpenVINORunner):
    """A weights file's PyTorch network, converted to OpenVINO on activation (:mod:`.weights`): kept as IR in the
    engine cache, so only the first process on a machine pays for the conversion."""

    def __init__(self, path: Path, model, info: ModelInfo, threads: int | None = None,
                 cache_dir: Path | None = None) -> None:
        super().__init__(path, info, threads, cache_dir)
        self.model = model

    def model_source(self) -> object:
        """The IR in the cache (made now if missing); the converted model itself without a cache folder."""
        import openvino as ov

        from .weights import cached_ir, convert, ir_key

        make = lambda: convert(self.model, self.info.channels)  # noqa: E731
        key = ir_key(self.info.weights_sha256 or "", self.info.task, self.info.sigma, ov.get_version())
        try:
            return make() if self.cache_dir is None else str(cached_ir(self.cache_dir / "ir", key, make))
        except OSError as exc:
            raise RuntimeLoadError(f"cannot write the OpenVINO model cache {self.cache_dir} ({exc.strerror}); "
                                   f"set {CACHE_ENV} to a writable folder") from None
        except Exception as exc:  # a network convert_model cannot trace: one line, not OpenVINO's pages
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeLoadError(f"{self.path.name}: OpenVINO cannot convert its network ({reason}); "
                                   f"use --backend torch") from None
