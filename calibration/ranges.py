"""Measure activation ranges of DAGL on held-out training crops and record the FP16 decision.

Run ``dagl-calibrate --task jpeg --weights model.pt`` after training or receiving new weights: it writes
that task's entry of a ranges file (``fp16_ranges.json`` in the current folder unless ``--output`` says
otherwise), which ``dagl-export --fp16-ranges FILE`` then reads. The package's own record
(``calibration/fp16_ranges.json``, the shipped weights') is rewritten only when ``--output`` names it. Ranges are the output of every module (forward hooks) plus the two
attention internals that no module outputs: the similarity scores S and the masked softmax logits.
"""

from __future__ import annotations

import contextlib
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from dagl.atomic import write_atomic
from dagl.chosen_weights import load_chosen_weights
from dagl.network.gfam import GFAMHead
from dagl.tasks.configs import get_config

from .policy import load_ranges
from .samples import held_out_crops

FP16_MAX = 65504.0
#: A module whose activations come within this factor of FP16_MAX is kept in float32: other
#: images or weights shift ranges, and an overflow is a NaN, not a small error.
HEADROOM = 16.0


class RangeTracker:
    """Running min / max / max-abs per named tensor, over every forward pass seen."""

    def __init__(self) -> None:
        self.ranges: dict[str, list[float]] = {}

    def update(self, name: str, tensor: Tensor) -> None:
        low, high = float(tensor.min()), float(tensor.max())
        old = self.ranges.get(name)
        self.ranges[name] = [low, high] if old is None else [min(old[0], low), max(old[1], high)]

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: {"min": _round(low), "max": _round(high), "absmax": _round(max(-low, high))}
                for name, (low, high) in self.ranges.items()}


def _round(value: float) -> float:
    return float(f"{value:.5g}")


@contextlib.contextmanager
def track(model: nn.Module, tracker: RangeTracker) -> Iterator[None]:
    """Record every module's output, and S and the logits inside every GFAM head."""
    handles = [module.register_forward_hook(lambda _m, _i, out, name=name: tracker.update(name, out))
               for name, module in model.named_modules() if name]
    heads = [(name, m) for name, m in model.named_modules() if isinstance(m, GFAMHead)]
    for name, head in heads:
        original = head.attention

        def attention(self: GFAMHead, scores: Tensor, thr: Tensor, bias: Tensor, *, _name: str = name,
                      _original=original) -> Tensor:
            mask = torch.relu(scores - scores.mean(dim=-1, keepdim=True) * thr + bias)
            tracker.update(f"{_name}.scores", scores)
            tracker.update(f"{_name}.logits", scores * mask * self.softmax_scale)
            return _original(scores, thr, bias)

        head.attention = types.MethodType(attention, head)  # instance attribute shadows the method
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for _, head in heads:
            del head.attention


def measure(model: nn.Module, crops: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """Ranges of every module output and attention internal over ``crops`` ((C, H, W) arrays)."""
    tracker = RangeTracker()
    with track(model, tracker), torch.no_grad():
        for crop in tqdm(crops, desc="ranges", unit="crop", file=sys.stderr):
            model(torch.from_numpy(crop)[None])
    return tracker.summary()


def decide(ranges: dict[str, dict[str, float]]) -> dict:
    """The FP16 decision derived from ``ranges``: attention always float32, plus any hot module."""
    limit = FP16_MAX / HEADROOM
    internals = {k: v for k, v in ranges.items() if k.endswith((".scores", ".logits"))}
    modules = {k: v for k, v in ranges.items() if k not in internals}
    hot = sorted(name for name, r in modules.items() if r["absmax"] > limit)

    def peak(suffix: str) -> float:
        return max((r["absmax"] for k, r in internals.items() if k.endswith(suffix)), default=0.0)

    return {
        "limit": limit,
        "peak_scores_absmax": peak(".scores"),
        "peak_logits_absmax": peak(".logits"),
        "peak_module_absmax": max((r["absmax"] for r in modules.values()), default=0.0),
        "keep_fp32_attention": True,
        "keep_fp32_modules": hot,
    }


#: The noise level of the crops of a denoising task calibrated without a --sigma (the paper's middle level).
DEFAULT_SIGMA = 25


def calibrate(task: str, weights: str | None, data: Path | None, *, sigma: int | None, images: int,
              size: int) -> dict:
    """One task's record for ``fp16_ranges.json``, measured on held-out training crops (never a test set)."""
    model, info = load_chosen_weights(task, weights, sigma)
    noise = (sigma or DEFAULT_SIGMA) if get_config(task).sigmas else None
    crops, description = held_out_crops(task, noise, data, size, images)
    ranges = measure(model, [crop[0] for crop in crops])
    record = {"weights": info.as_dict(), "data": description, "crops": len(crops), "crop": [size, size]}
    if info.random:
        record["caveat"] = ("random weights: these ranges say little about trained weights; rerun "
                            "`dagl-calibrate` with the trained weights before trusting them")
    if noise is not None:
        record["sigma"] = noise
    return record | decide(ranges) | {"ranges": ranges}


def write_record(task: str, record: dict, path: Path) -> None:
    """Replace ``task``'s entry of the ranges file, atomically."""
    data = load_ranges(path)
    data["fp16_max"] = FP16_MAX
    data["headroom"] = HEADROOM
    data["tasks"][task] = record
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
