"""Backend-vs-backend parity through Polygraphy's Comparator, with explicit tolerances.

Polygraphy already runs several backends on the same feeds and compares their outputs; what it
lacks is our backends. :class:`PolygraphyRunner` adapts any dagl runner (PyTorch, ONNX Runtime,
TensorRT with its sidecar check) to Polygraphy's runner interface, so a check is one
``Comparator.run`` + ``compare_accuracy`` over test-set crops (:mod:`dagl.runtime.parity_data`),
next to Polygraphy's own ``OnnxrtRunner``/``TrtRunner``. The verdicts used by the tests:

* float32 ONNX vs float32 PyTorch: max |diff| <= 1e-4 (``SimpleCompareFunc``, rtol 0);
* FP16 ONNX vs float32 PyTorch: PSNR >= 50 dB (``PsnrCompareFunc``).

Needs ``polygraphy`` (pure Python; the ``test`` and ``tensorrt`` extras install it). Importing
Polygraphy's TensorRT backend is left to Polygraphy, which does it lazily.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from polygraphy.backend.base import BaseRunner as PolygraphyBaseRunner
from polygraphy.comparator import Comparator, PsnrCompareFunc, SimpleCompareFunc

from dagl.artefact import INPUT_NAME, OUTPUT_NAME
from dagl.metrics import psnr

from .base import BaseRunner

#: The tolerances of the CI parity check (see the module docstring).
FP32_MAX_ABS_DIFF = 1e-4
FP16_MIN_PSNR_DB = 50.0


class PolygraphyRunner(PolygraphyBaseRunner):
    """A dagl runner seen as a Polygraphy runner: feed ``{"input": x}``, get ``{"output": y}``."""

    def __init__(self, runner: BaseRunner, name: str | None = None) -> None:
        super().__init__(name=name or f"dagl-{runner.name}")
        self.runner = runner

    def activate_impl(self) -> None:
        self.runner.activate()

    def get_input_metadata_impl(self):
        from polygraphy.common import TensorMetadata

        return TensorMetadata().add(INPUT_NAME, np.float32, (None, self.runner.info.channels, None, None))

    def infer_impl(self, feed_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        output = self.runner.infer(feed_dict[INPUT_NAME])
        self.inference_time = time.perf_counter() - start
        return {OUTPUT_NAME: output}

    def deactivate_impl(self) -> None:
        self.runner.deactivate()


@dataclass(frozen=True)
class ParityResult:
    """Polygraphy's verdict plus the measured numbers behind it (worst over every feed).

    ``max_abs_diff`` is over the raw outputs; ``min_psnr_db`` over the outputs clamped to [0, 1].
    """

    passed: bool
    feeds: int
    max_abs_diff: float
    min_psnr_db: float

    def __str__(self) -> str:
        return (f"{'PASS' if self.passed else 'FAIL'} on {self.feeds} crops: max |diff| {self.max_abs_diff:.3g}, "
                f"min PSNR {self.min_psnr_db:.2f} dB")


def onnxruntime_runner(onnx_path: Path):
    """Polygraphy's ONNX Runtime runner on the CPU provider (what ``--onnxrt`` runs)."""
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    return OnnxrtRunner(SessionFromOnnx(str(onnx_path), providers=["cpu"]))


def compare(reference, candidate, feeds: Iterable[dict[str, np.ndarray]], *,
            max_abs_diff: float | None = None, min_psnr_db: float | None = None) -> ParityResult:
    """Run both Polygraphy runners on ``feeds`` and judge ``candidate`` against ``reference``.

    Exactly one tolerance is given: ``max_abs_diff`` (absolute, rtol 0: outputs are in [0, 1]) or
    ``min_psnr_db`` (Polygraphy's PSNR, peak = the reference's maximum).
    """
    if (max_abs_diff is None) == (min_psnr_db is None):
        raise ValueError("give exactly one of max_abs_diff and min_psnr_db")
    feeds = list(feeds)
    results = Comparator.run([reference, candidate], data_loader=feeds)
    if max_abs_diff is not None:
        judge = SimpleCompareFunc(atol=max_abs_diff, rtol=0.0, check_error_stat="max")
    else:
        judge = PsnrCompareFunc(psnr_threshold=min_psnr_db)
    passed = bool(Comparator.compare_accuracy(results, compare_func=judge))
    (_, expected), (_, actual) = results.items()
    diffs = [float(np.max(np.abs(a[OUTPUT_NAME] - e[OUTPUT_NAME]))) for e, a in zip(expected, actual)]
    # PSNR of what a user gets: both outputs clamped to [0, 1] as the Restorer clamps them.
    scores = [psnr(a[OUTPUT_NAME], np.clip(e[OUTPUT_NAME], 0, 1)) for e, a in zip(expected, actual)]
    return ParityResult(passed, len(feeds), max(diffs), min(scores) if scores else math.inf)
