"""Run one or more restorers over an evaluation set and score every output.

The first model is the base: with ``--compare``, every other model is measured against it image
by image (max abs difference, PSNR of one output against the other, PSNR delta against ground
truth), which is what decides whether an engine may replace the PyTorch model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dagl.data.datasets import EvalSet, centre_crop
from dagl.images.metrics import psnr, ssim
from dagl.runtime import Restorer
from dagl.runtime.compare import measure

#: Side of the crop shown in the per-dataset picture.
SHOWCASE_SIZE = 96


@dataclass(frozen=True)
class Score:
    psnr: float
    ssim: float


@dataclass(frozen=True)
class Parity:
    """One compared model against the base model on one image."""

    max_abs: float
    #: PSNR of the compared output against the base output.
    psnr_vs_base: float
    #: Compared model's PSNR against ground truth minus the base model's.
    delta_psnr: float


@dataclass(frozen=True)
class ImageResult:
    name: str
    shape: tuple[int, ...]
    degraded: Score
    #: One per model, base first.
    scores: tuple[Score, ...]
    #: One per compared model (models[1:]).
    parity: tuple[Parity, ...]


@dataclass(frozen=True)
class Showcase:
    """Crops of the first image for the side-by-side picture."""

    name: str
    degraded: np.ndarray
    outputs: tuple[np.ndarray, ...]
    clean: np.ndarray


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


@dataclass
class EvalResult:
    evalset: EvalSet
    #: Display names, base model first.
    models: tuple[str, ...]
    #: Settings the restorers ran with (tiling, ensemble, backends, device), for the report header.
    settings: dict[str, str]
    images: list[ImageResult] = field(default_factory=list)
    #: Seconds each model spent restoring, summed over images.
    seconds: list[float] = field(default_factory=list)
    showcase: Showcase | None = None

    def mean_degraded(self) -> Score:
        return Score(_mean([r.degraded.psnr for r in self.images]), _mean([r.degraded.ssim for r in self.images]))

    def mean_scores(self) -> tuple[Score, ...]:
        return tuple(Score(_mean([r.scores[m].psnr for r in self.images]),
                           _mean([r.scores[m].ssim for r in self.images])) for m in range(len(self.models)))

    def summary_parity(self) -> tuple[Parity, ...]:
        """Per compared model: the WORST max abs difference, and mean PSNR-vs-base and delta."""
        return tuple(Parity(max(r.parity[c].max_abs for r in self.images),
                            _mean([r.parity[c].psnr_vs_base for r in self.images]),
                            _mean([r.parity[c].delta_psnr for r in self.images]))
                     for c in range(len(self.models) - 1))


def _score(output: np.ndarray, clean: np.ndarray) -> Score:
    return Score(psnr(output, clean), ssim(output, clean))


def _parity(output: np.ndarray, base: np.ndarray, score: Score, base_score: Score) -> Parity:
    max_abs, psnr_vs_base = measure(base, output)
    return Parity(max_abs, psnr_vs_base, score.psnr - base_score.psnr)


def evaluate(restorers: Sequence[Restorer], names: Sequence[str], evalset: EvalSet,
             settings: dict[str, str] | None = None, on_tiles: Callable[[int], None] | None = None,
             on_image: Callable[[str], None] | None = None) -> EvalResult:
    """Restore every image of ``evalset`` with each restorer (base first) and score the outputs.

    ``settings`` is recorded for the report. ``on_tiles(n)`` is called as network tiles finish and
    ``on_image(name)`` after each image, so a caller can drive progress bars; outputs are not kept
    beyond the showcase crop, so memory does not grow with the set.
    """
    result = EvalResult(evalset, tuple(names), dict(settings or {}), seconds=[0.0] * len(restorers))
    for sample in evalset:
        outputs = []
        for index, restore in enumerate(restorers):
            start = time.perf_counter()
            outputs.append(restore(sample.degraded, progress=on_tiles))
            result.seconds[index] += time.perf_counter() - start
        scores = tuple(_score(out, sample.clean) for out in outputs)
        parity = tuple(_parity(out, outputs[0], score, scores[0]) for out, score in zip(outputs[1:], scores[1:]))
        result.images.append(ImageResult(sample.name, sample.clean.shape, _score(sample.degraded, sample.clean),
                                         scores, parity))
        if result.showcase is None:
            result.showcase = Showcase(sample.name, centre_crop(sample.degraded, SHOWCASE_SIZE),
                                       tuple(centre_crop(out, SHOWCASE_SIZE) for out in outputs),
                                       centre_crop(sample.clean, SHOWCASE_SIZE))
        if on_image:
            on_image(sample.name)
    return result
