"""Execute batches with an OpenVINO model compiled for the CPU plugin, at the precision the runner was given."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from dagl.artefact import DEFAULT_BATCH, DEFAULT_TILE, INPUT_NAME, OUTPUT_NAME
from dagl.artefact.precision import get_precision
from dagl.errors import first_line

from ..base import CACHE_ENV, BaseRunner, ModelInfo, ModelInputError, RuntimeLoadError

INSTALL = "pip install 'dagl[openvino]'"


def available_cpus() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def stream_count(threads: int) -> int:
    """Streams for ``threads`` threads: one tile per stream, as many streams as a batch of the default size
    fills, the threads shared among them."""
    return max(1, min(threads, DEFAULT_BATCH))


def compile_config(compute: str, threads: int) -> dict[str, str]:
    """``compile_model``'s properties: the inference precision, the threads and the streams they run in.

    The precision is always set: on a CPU with AVX512-BF16 or AMX, OpenVINO computes a float32 graph
    in bfloat16 unless told otherwise, so a float32 run must ask for ``f32``. Each stream runs one tile
    at a time on its share of the threads: on the machine docs/bench-cpu.md was measured on, 16 tiles
    of 80x80 in bfloat16 took 1.84 s (wall) in two streams against 3.77 s as batches of 4 on both threads.
    """
    return {"INFERENCE_PRECISION_HINT": compute, "PERFORMANCE_HINT": "THROUGHPUT",
            "NUM_STREAMS": str(stream_count(threads)), "INFERENCE_NUM_THREADS": str(threads)}


class OpenVINORunner(BaseRunner):
    """A model compiled once per tile shape, with one input of one tile (static shapes run faster than the
    dynamic model: 0.23 CPU s against 0.31 per 80x80 tile in bfloat16 on one thread), its streams each
    given a tile of the batch at a time. Calls from several threads take turns.

    The compiled model must compute in the precision asked for: OpenVINO quietly computes in float32
    when the CPU lacks bfloat16, which is refused in one line, as ONNX Runtime's fallback is.
    """

    name = "openvino"
    #: Tile shapes kept compiled at once (a grid has one; the release chop's borders a few more).
    MAX_SHAPES = 4

    def __init__(self, path: Path, info: ModelInfo, threads: int | None = None) -> None:
        super().__init__(info, "cpu")
        self.path = path
        self.threads = threads or available_cpus()
        self._core = self._model = None
        self._compiled: OrderedDict[tuple[int, int], list] = OrderedDict()  # (h, w) -> one request per stream
        self._request_lock = threading.Lock()  # an infer request runs one inference at a time

    def activate_impl(self) -> None:
        """Read the model and compile it for the default tile, so that a model OpenVINO cannot compile, or a
        precision this CPU lacks, is refused now, before any image is read."""
        try:
            import openvino as ov
        except ImportError:
            raise RuntimeLoadError(f"--backend {self.name} needs OpenVINO: {INSTALL}") from None
        self._core = ov.Core()
        self._model = self.model_source()
        self._requests((DEFAULT_TILE, DEFAULT_TILE))

    def model_source(self):
        """The ``openvino.Model`` to compile: the ``.onnx`` graph here."""
        try:
            return self._core.read_model(str(self.path))
        except Exception as exc:  # OpenVINO raises RuntimeError for anything from a parse error to a bad op
            raise ModelInputError(f"{self.path}: OpenVINO cannot read it ({first_line(exc)})") from None

    def _requests(self, shape: tuple[int, int]) -> list:
        """The infer requests (one per stream) of the model compiled for one tile of ``shape``."""
        import openvino as ov

        if shape in self._compiled:
            self._compiled.move_to_end(shape)
            return self._compiled[shape]
        entry = get_precision(self.info.precision)
        model = self._model.clone()
        try:
            model.reshape({model.inputs[0]: [1, self.info.channels, *shape]})
            compiled = self._core.compile_model(model, "CPU", compile_config(entry.compute, self.threads))
        except Exception as exc:
            raise ModelInputError(f"{self.path}: OpenVINO cannot compile it ({first_line(exc)})") from None
        running = compiled.get_property("INFERENCE_PRECISION_HINT")
        if running != getattr(ov.Type, entry.compute):
            raise RuntimeLoadError(f"{self.path.name}: OpenVINO computes in {running.get_type_name()} on this CPU, "
                                   f"not {entry.compute} as --precision {entry.name} asks (bfloat16 needs AVX512-BF16 "
                                   f"or AMX); use --precision {entry.graph}")
        self._compiled[shape] = [compiled.create_infer_request() for _ in range(stream_count(self.threads))]
        if len(self._compiled) > self.MAX_SHAPES:
            self._compiled.popitem(last=False)
        return self._compiled[shape]

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        outputs = []  # stacked as returned, never written into the input's shape: check_output sees a wrong one
        with self._request_lock:
            requests = self._requests(batch.shape[2:])
            for start in range(0, len(batch), len(requests)):
                group = requests[:len(batch) - start]
                for offset, request in enumerate(group):
                    request.start_async({INPUT_NAME: batch[start + offset:start + offset + 1]})
                for request in group:
                    request.wait()
                    outputs.append(request.get_tensor(OUTPUT_NAME).data.copy())  # the request reuses its buffer
        return np.concatenate(outputs)

    def deactivate_impl(self) -> None:
        self._compiled.clear()
        self._core = self._model = None


class OpenVINOWeightsRunner(OpenVINORunner):
    """A weights file's PyTorch network, converted to OpenVINO on activation (:mod:`.weights`): kept as IR in the
    engine cache, so only the first process on a machine pays for the conversion."""

    def __init__(self, path: Path, model, info: ModelInfo, threads: int | None = None,
                 cache_dir: Path | None = None) -> None:
        super().__init__(path, info, threads)
        self.model = model
        self.cache_dir = cache_dir

    def model_source(self):
        """The IR in the cache (made now if missing); the converted model itself without a cache folder."""
        import openvino as ov

        from .weights import cached_ir, convert, ir_key

        make = lambda: convert(self.model, self.info.channels)  # noqa: E731
        key = ir_key(self.info.weights_sha256 or "", self.info.task, self.info.sigma, ov.get_version())
        try:
            return make() if self.cache_dir is None else self._core.read_model(str(cached_ir(self.cache_dir / "ir", key, make)))
        except OSError as exc:
            raise RuntimeLoadError(f"cannot write the OpenVINO model cache {self.cache_dir} ({exc.strerror}); "
                                   f"set {CACHE_ENV} to a writable folder") from None
        except Exception as exc:  # a network convert_model cannot trace: one line, not OpenVINO's pages
            raise RuntimeLoadError(f"{self.path.name}: OpenVINO cannot convert its network ({first_line(exc)}); "
                                   f"use --backend torch") from None
