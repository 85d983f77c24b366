"""Parity verdicts of ``dagl-eval --compare``: each compared model judged against a float32 PyTorch base.

The bounds are :mod:`dagl.runtime.compare`'s, per backend and precision as the backend registry lists
them; which backend is the float32 baseline is a fact of its registry entry (``Backend.baseline``), not of
its name.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagl.artefact.precision import FP32

from dagl.runtime import Restorer
from dagl.runtime.backends import REGISTRY, tolerance_for
from dagl.runtime.compare import ParityError, Verdict, judge

from .scoring import EvalResult

#: A compared model's name, its verdict, and why it could not pass when that is known (different weights).
Judged = tuple[str, Verdict, str | None]


def different_weights(base: Restorer, candidate: Restorer) -> str | None:
    """Why a parity check of these two cannot pass, when their metadata says they hold different weights."""
    ours, theirs = base.runner.info.weights_identity, candidate.runner.info.weights_identity
    if ours is None or theirs is None or ours == theirs:
        return None
    return f"made from different weights ({ours[:12]} vs {theirs[:12]}); compare artefacts of the same weights"


def parity_verdicts(result: EvalResult, restorers: Sequence[Restorer],
                    names: Sequence[str]) -> list[Judged]:
    """Per compared model, the worst numbers over the set judged by dagl.runtime.compare's tolerance.

    The tolerances bound an exported artefact against float32 PyTorch, so a verdict is given only when
    the base is a float32 PyTorch model and the compared one an ONNX graph or an engine; comparing two
    weights files (e.g. two trainings) reports numbers but judges nothing. The third item says when the
    two were made from different weights (their metadata's SHA-256 differs): then no bound can hold.
    """
    base = restorers[0]
    if (not REGISTRY[base.backend].baseline or base.runner.info.precision != FP32.name
            or not result.images):
        return []
    verdicts = []
    for index, candidate in enumerate(restorers[1:]):
        if REGISTRY[candidate.backend].baseline:
            continue
        parity = [image.parity[index] for image in result.images]
        verdicts.append((names[index + 1], judge(
            max(p.max_abs for p in parity), min(p.psnr_vs_base for p in parity),
            tolerance_for(candidate.backend, candidate.runner.info.precision), len(parity)),
            different_weights(base, candidate)))
    return verdicts


def check_parity(verdicts: Sequence[Judged]) -> None:
    """Raise :class:`ParityError` (exit status 1) when a compared model is out of its bounds."""
    failed = [cause for _, verdict, cause in verdicts if not verdict.passed]
    if failed:
        why = "; every one made from different weights" if all(failed) else ""
        raise ParityError(f"{len(failed)} of {len(verdicts)} compared model(s) out of parity bounds{why}")
