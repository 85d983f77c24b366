"""Test helper: backend-vs-backend parity through Polygraphy's Comparator, with explicit tolerances.

Polygraphy already runs several backends on the same feeds and compares their outputs; what it
lacks is our backends. :class:`PolygraphyRunner` adapts any dagl runner (PyTorch, ONNX Runtime,
TensorRT with its sidecar check) to Polygraphy's runner interface, so a check is one
``Comparator.run`` + ``compare_accuracy`` over test-set crops (:mod:`dagl.runtime.parity_data`),
next to Polygraphy's own ``OnnxrtRunner``/``TrtRunner``. The bounds are the
:class:`~dagl.runtime.compare.Tolerance` records that own them: a ``max_abs`` bound becomes Polygraphy's
``SimpleCompareFunc`` (absolute, rtol 0, on the max error), a ``min_psnr`` bound its ``PsnrCompareFunc``,
and the result is a :class:`~dagl.runtime.compare.Verdict` like every other parity check's.

Needs ``polygraphy`` (pure Python; the ``test`` and ``tensorrt`` extras install it). Importing
Polygraphy's TensorRT backend is left to Polygraphy, which does it lazily.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
from polygraphy.backend.base import BaseRunner as PolygraphyBaseRunner
from polygraphy.comparator import Comparator, PsnrCompareFunc, SimpleCompareFunc

from dagl.artefact import INPUT_NAME, OUTPUT_NAME

from dagl.runtime.base import BaseRunner
from dagl.runtime.compare import Tolerance, Verdict, worst
from dagl.runtime.compare import compare as compare_arrays

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


def onnxruntime_runner(onnx_path: Path):
    """Polygraphy's ONNX Runtime runner on the CPU provider (what ``--onnxrt`` runs)."""
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    return OnnxrtRunner(SessionFromOnnx(str(onnx_path), providers=["cpu"]))


def _polygraphy_judges(tolerance: Tolerance) -> list:
    judges = []
    if tolerance.max_abs is not None:
        judges.append(SimpleCompareFunc(atol=tolerance.max_abs, rtol=0.0, check_error_stat="max"))
    if tolerance.min_psnr is not None:
        judges.append(PsnrCompareFunc(psnr_threshold=tolerance.min_psnr))
    return judges


def compare_runners(baseline, candidate, feeds: Iterable[dict[str, np.ndarray]], tolerance: Tolerance) -> Verdict:
    """Run both Polygraphy runners on ``feeds`` and judge ``candidate`` against ``baseline``.

    Passes only if Polygraphy's Comparator and :func:`dagl.runtime.compare.compare` both pass (they
    differ in one detail: Polygraphy's PSNR peak is the baseline's maximum, ours is 1, what a user
    gets after clamping); the numbers are the worst over all feeds.
    """
    feeds = list(feeds)
    results = Comparator.run([baseline, candidate], data_loader=feeds)
    polygraphy_passed = all(bool(Comparator.compare_accuracy(results, compare_func=judge))
                            for judge in _polygraphy_judges(tolerance))
    (_, expected), (_, actual) = results.items()
    verdict = worst(compare_arrays(e[OUTPUT_NAME], a[OUTPUT_NAME], tolerance) for e, a in zip(expected, actual))
    return replace(verdict, passed=verdict.passed and polygraphy_passed)
