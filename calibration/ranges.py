"""Measure activation ranges of DAGL on real test-set crops and record the FP16 decision.

Run ``dagl-calibrate --task jpeg --weights model.pt`` after training or receiving new weights: it writes
that task's entry of a ranges file (``fp16_ranges.json`` in the current folder unless ``--output`` says
otherwise), which ``dagl-export --fp16-ranges FILE`` then reads. The package's own record
(``calibration/fp16_ranges.json``, the shipped weights') is rewritten only when ``--output`` names it. Ranges are the output of every module (forward hooks) plus the two
attention internals that no module outputs: the similarity scores S and the masked softmax logits.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from dagl.cli_common import Command, sigma_option, task_option
from dagl.configs import get_config
from dagl.gfam import GFAMHead
from dagl.atomic import write_atomic
from dagl.chosen_weights import load_chosen_weights

from .policy import load_ranges
from .samples import DEFAULT_SIGMA, task_crops

FP16_MAX = 65504.0
#: A module whose activations come within this factor of FP16_MAX is kept in float32: other
#: images or weights shift ranges, and an overflow is a NaN, not a small error.
HEADROOM = 16.0
DEFAULT_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


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


def calibrate(task: str, weights: str | None, datasets_dir: Path, *, sigma: int | None, count: int,
              size: int) -> dict:
    """One task's record for ``fp16_ranges.json``."""
    model, info = load_chosen_weights(task, weights, sigma)
    noise = sigma or DEFAULT_SIGMA
    crops = task_crops(task, datasets_dir, shape=(size, size), count=count, sigma=noise)
    ranges = measure(model, [crop for _, crop in crops])
    record = {"weights": info.as_dict(), "images": [name for name, _ in crops], "crop": [size, size]}
    if info.random:
        record["caveat"] = ("random weights: these ranges say little about trained weights; rerun "
                            "`dagl-calibrate` with the trained weights before trusting them")
    if get_config(task).calibration.add_noise:
        record["sigma"] = noise
    return record | decide(ranges) | {"ranges": ranges}


def write_record(task: str, record: dict, path: Path) -> None:
    """Replace ``task``'s entry of the ranges file, atomically."""
    data = load_ranges(path)
    data["fp16_max"] = FP16_MAX
    data["headroom"] = HEADROOM
    data["tasks"][task] = record
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


@click.command("dagl-calibrate", cls=Command, epilog="""\b
Examples:
  dagl-calibrate --task jpeg --weights model_best.pt          # -> ./fp16_ranges.json
  dagl-export --task jpeg --weights model_best.pt --fp16 --fp16-ranges fp16_ranges.json
""")
@task_option(required=True)
@click.option("--weights", default=None, help="Weights file, or 'random' (seeded; ranges then say little "
              "about trained weights). Default: the shipped weights.")
@sigma_option()
@click.option("--datasets", "datasets_dir", type=click.Path(file_okay=False, path_type=Path),
              default=lambda: os.environ.get("DAGL_DATASETS", DEFAULT_DATASETS), show_default="../shared/datasets")
@click.option("--crops", "count", default=3, show_default=True, help="Images to take one central crop from.")
@click.option("--size", default=96, show_default=True, help="Crop side in pixels.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("fp16_ranges.json"),
              show_default=True, help="Ranges file to add the task's record to (other tasks' records are kept). "
              "Give it to dagl-export --fp16-ranges.")
def main(task: str, weights: str | None, sigma: int | None, datasets_dir: Path, count: int, size: int,
         output: Path) -> None:
    """Measure activation ranges on test-set crops and record which layers FP16 must not touch.

    Every module output and the two attention internals (similarities and logits) are measured on central
    crops of the task's test inputs; a module within a factor 16 of FP16's 65504 is kept in float32
    by the FP16 export that reads the file (docs/fp16-ranges.md)."""
    load_ranges(output)  # an existing file that is not a ranges file: refused before the minutes of measuring
    record = calibrate(task, weights, Path(datasets_dir), sigma=sigma, count=count, size=size)
    write_record(task, record, output)
    click.echo(f"{task}: scores |S| <= {record['peak_scores_absmax']}, logits <= {record['peak_logits_absmax']}, "
               f"other layers <= {record['peak_module_absmax']}; float32 modules beyond the attention path: "
               f"{record['keep_fp32_modules'] or 'none'} -> {output}")


if __name__ == "__main__":
    main()
