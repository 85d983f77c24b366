"""Parity verdicts (Polygraphy style): how close an artefact's output must be to its baseline, in one place.

Whether an ONNX graph or an engine may replace the PyTorch model is a number and a bound. The bounds
used to live in the tests, twice; here they are named :class:`Tolerance` records, and :func:`compare`
returns a :class:`Verdict` (pass/fail, the measured numbers, one line for a log) that the tests,
``dagl-eval --compare`` and anyone scripting a deployment check share.

The bounds are each precision's (its entry in ``dagl/artefact/precision.py``): a float32 graph computes
the same arithmetic in another order, so its output is held to an absolute difference; an FP16 graph
rounds every activation, so it is held to a PSNR against the float32 output. A new precision gets its
tolerance for every backend from its entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

import numpy as np

from dagl.artefact.precision import PRECISIONS
from dagl.errors import DaglError
from dagl.images.metrics import psnr


class ParityError(DaglError):
    """A candidate's output is outside its tolerance: it may not replace its baseline."""


@dataclass(frozen=True)
class Tolerance:
    """The bound one kind of candidate must meet against its baseline; set ``max_abs``, ``min_psnr`` or both."""

    name: str
    #: Largest allowed |candidate - baseline| over all samples.
    max_abs: float | None = None
    #: Smallest allowed PSNR (dB, peak 1) of the candidate, clamped to [0, 1], against the baseline.
    min_psnr: float | None = None

    def describe(self) -> str:
        bounds = [f"max |diff| <= {self.max_abs:g}" if self.max_abs is not None else "",
                  f"PSNR >= {self.min_psnr:g} dB" if self.min_psnr is not None else ""]
        return " and ".join(b for b in bounds if b)


@cache  # one Tolerance record per (candidate, precision): verdicts and the registry share them
def bounds_for(candidate: str) -> Mapping[str, Tolerance]:
    """Each precision's bound (by name) for a candidate called ``candidate`` in verdicts, against float32
    PyTorch on the CPU: what a backend's registry entry holds, so a new precision reaches every backend."""
    return MappingProxyType({entry.name: Tolerance(f"{entry.title} {candidate} vs float32 PyTorch", entry.max_abs,
                                                   entry.min_psnr) for entry in PRECISIONS.values()})


#: A TensorRT engine against ONNX Runtime running the very same graph (float32, or the FP16 graph).
ENGINE_VS_ONNX = {entry.name: Tolerance(f"{entry.title} TensorRT engine vs ONNX Runtime, same graph",
                                        min_psnr=entry.engine_vs_onnx_psnr)
                  for entry in PRECISIONS.values() if entry.engine_vs_onnx_psnr is not None}


@dataclass(frozen=True)
class Verdict:
    """The outcome of one comparison (or the worst case of several, see :func:`worst`)."""

    passed: bool
    max_abs: float
    psnr: float
    tolerance: Tolerance
    #: How many arrays (images, crops) the numbers cover.
    count: int = 1

    @property
    def summary(self) -> str:
        """One line: PASSED/FAILED, what was compared, the worst numbers and the bound."""
        over = f" over {self.count} arrays" if self.count > 1 else ""
        return (f"{'PASSED' if self.passed else 'FAILED'} {self.tolerance.name}{over}: max |diff| "
                f"{self.max_abs:.3g}, PSNR {self.psnr:.2f} dB (required: {self.tolerance.describe()})")

    def __bool__(self) -> bool:
        return self.passed


def measure(baseline: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(max |candidate - baseline| of the raw outputs, PSNR of the two clamped to [0, 1]); shapes must match.

    The PSNR is of what a user gets: the Restorer clamps every output, so values a (random-weight)
    network puts outside [0, 1] must not count as a difference on either side.
    """
    baseline, candidate = np.asarray(baseline), np.asarray(candidate)
    if baseline.shape != candidate.shape:
        raise ValueError(f"cannot compare shapes {candidate.shape} and {baseline.shape}")
    max_abs = float(np.max(np.abs(candidate.astype(np.float64) - baseline.astype(np.float64))))
    return max_abs, psnr(candidate, np.clip(baseline, 0.0, 1.0))


def judge(max_abs: float, psnr_db: float, tolerance: Tolerance, count: int = 1) -> Verdict:
    """The verdict on numbers already measured (e.g. the worst over a test set)."""
    passed = ((tolerance.max_abs is None or max_abs <= tolerance.max_abs)
              and (tolerance.min_psnr is None or psnr_db >= tolerance.min_psnr))
    return Verdict(passed, max_abs, psnr_db, tolerance, count)


def compare(baseline: np.ndarray, candidate: np.ndarray, tolerance: Tolerance) -> Verdict:
    """Measure ``candidate`` against ``baseline`` and judge it by ``tolerance``; shapes must match."""
    return judge(*measure(baseline, candidate), tolerance)


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """One verdict for many comparisons under one tolerance: the largest difference and the lowest PSNR."""
    verdicts = list(verdicts)
    if not verdicts:
        raise ValueError("no verdicts to combine")
    return judge(max(v.max_abs for v in verdicts), min(v.psnr for v in verdicts), verdicts[0].tolerance,
                 sum(v.count for v in verdicts))
