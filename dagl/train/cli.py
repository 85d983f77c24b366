"""``dagl-train``: the paper's training recipe on one GPU, or on many through ``torchrun``."""

from __future__ import annotations

import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..artefact.naming import weights_name
from ..cli.common import SEED, Command, FiniteFloat, sigma_option, task_option
from ..memory import check_memory, check_training_memory, memory_budget
from .config import GFAM_NAMES, HELD_OUT, LR_STEP_ITERATIONS, NO_VALIDATION, TrainConfig
from .sources import check_sources

EPILOG = """\b
Examples:
  # gray denoising, sigma 25, on BSD400, one GPU
  dagl-train --task denoise --sigma 25 --data ../shared/datasets/train/bsd400 \\
             --iterations 400000 --val set12
\b
  # the same on 8 GPUs of one node (--batch-size stays the global batch: 8 x 4)
  torchrun --nproc-per-node 8 -m dagl.train.cli --task denoise --sigma 25 \\
             --data ../shared/datasets/train/bsd400 --iterations 400000 --val set12
\b
  # continue an interrupted run exactly where its last checkpoint left it
  dagl-train ... --resume
\b
  # 9 minutes in all, continuing the shipped weights; ships the better of start and end
  dagl-train --task jpeg --data ../shared/datasets/train/bsd400 --val-every 0 \\
             --time-budget 540 --init dagl/weights/dagl-jpeg.safetensors
\b
  # the same on a CPU at a tiny size, one minute in all
  dagl-train --task jpeg --data ../shared/datasets/train/bsd400 --n-images 8 --batch-size 2 \\
             --patch 16 --workers 0 --device cpu --val-crop 16 --val-every 0 \\
             --log-every 1 --time-budget 60 --out /tmp/dagl-budget
\b
  # the relay: continue the shipped jpeg weights on one core at nice 19 for 2.5 h, in the
  # background, score them on the full Classic5 q10 images, ship them only if better
  # (from a checkout; docs/training.md, "The relay")
  python tools/relay.py run --budget 9000
\b
On a CPU the defaults are the fastest set-up: --gfam unfold and bf16 autocast where the CPU has
native bfloat16 (python tools/train_bench.py measures it against the release's set-up).
\b
The run writes OUT/checkpoint.pt, OUT/train.log and, at the end, OUT/dagl-<task>[-s<sigma>].safetensors
with its model card (.md): copy both into dagl/weights/ to ship them. See docs/training.md.
"""


class TrainDevice(click.ParamType):
    """``cpu``, ``cuda`` or ``cuda:N``, checked against this machine before any data or model loads."""

    name = "device"
    _PATTERN = re.compile(r"cpu|cuda(?::(\d{1,3}))?")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        match = self._PATTERN.fullmatch(str(value))
        if not match:
            self.fail(f"{value!r} is not one of cpu, cuda, cuda:N", param, ctx)
        if value != "cpu":
            import torch

            if not torch.cuda.is_available():
                self.fail(f"{value}, but torch sees no CUDA GPU on this machine; use --device cpu", param, ctx)
            if match.group(1) is not None and int(match.group(1)) >= torch.cuda.device_count():
                self.fail(f"{value}, but this machine has {torch.cuda.device_count()} GPU(s) "
                          f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})", param, ctx)
        return str(value)


def _config(task: str, sigma: int | None, data: tuple[str, ...], out: str | None, **options) -> TrainConfig:
    name = Path(weights_name(task, sigma)).stem  # the task's sigma rule: a TaskError names the fix
    if not data:
        raise click.UsageError("pass at least one training folder with --data")
    if options["init"] is not None:
        options["init"] = Path(options["init"])
    command = shlex.join(["dagl-train", *sys.argv[1:]])
    return TrainConfig(task=task, sigma=sigma, data=[Path(d) for d in data],
                       out=Path(out) if out else Path("runs") / name, command=command, **options)


@click.command("dagl-train", cls=Command, epilog=EPILOG,
               interrupted_hint="continue from the last checkpoint with --resume")
@task_option(required=True, help="Which DAGL network to train.")
@sigma_option()
@click.option("--data", "data", multiple=True, metavar="DIR",
              help="Folder of clean training images; repeat for several. real-denoise needs "
                   "DIR/clean and DIR/noisy with the same file names.")
@click.option("--iterations", type=click.IntRange(min=1),
              help="Optimiser steps in all (with --time-budget: an optional cap on the planned count).")
@click.option("--time-budget", type=FiniteFloat(min=1), metavar="SECONDS",
              help="Wall-clock seconds for the whole command (loading, training, validations, writing). "
                   "The rate is measured over the first iterations, the iteration count planned from it, "
                   "and the lr follows a cosine over the planned iterations; time is kept for the final "
                   "validation and files. Replaces the --lr-step schedule.")
@click.option("--init", type=click.Path(dir_okay=False), metavar="WEIGHTS",
              help="Start from these weights (.safetensors or official checkpoint) with a fresh optimiser. "
                   "The starting weights are validated first (on --val), and if the trained ones "
                   "validate worse, the starting weights ship instead (the log and card say so).")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1),
              help="Global batch, split evenly over the torchrun processes.")
@click.option("--patch", default=64, show_default=True, type=click.IntRange(min=8),
              help="Side of the random training crops.")
@click.option("--lr", default=1e-4, show_default=True, type=FiniteFloat(min=0, min_open=True),
              help="Adam learning rate at the start.")
@click.option("--warmup", default=0, show_default=True, type=click.IntRange(min=0), metavar="N",
              help="Raise the lr linearly from lr/N to lr over the first N iterations, then follow the "
                   "schedule (the cosine of --time-budget starts after them).")
@click.option("--ema", type=FiniteFloat(min=0, max=1, min_open=True, max_open=True), metavar="DECAY",
              help="Keep an exponential moving average of the weights with this decay (e.g. 0.999); the "
                   "average is what is validated and ships (and what --init's starting weights are "
                   "compared against); checkpoints carry it.  [default: off]")
@click.option("--lr-step", default=LR_STEP_ITERATIONS, show_default=True, type=click.IntRange(min=1),
              help="Halve the learning rate every this many iterations (the paper's 200 epochs of "
                   "1000 iterations).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Run folder  [default: runs/dagl-<task>[-s<sigma>]]")
@click.option("--resume", is_flag=True, help="Continue exactly from OUT/checkpoint.pt.")
@click.option("--amp", default="auto", show_default=True, type=click.Choice(["auto", "bf16", "fp16", "off"]),
              help="Mixed precision of forward/backward (GFAM's similarity and mask stay float32); "
                   "auto = bf16 on GPUs and on CPUs with native bfloat16 (AVX512-BF16 or AMX), else off.")
@click.option("--val", default=HELD_OUT, show_default=True,
              help=f"Validation set for PSNR, the one --init and early choices pick weights on: {HELD_OUT} = "
                   "the 24 training files never trained on (dagl.train.heldout), degraded reproducibly; "
                   "a folder (clean/ + degraded/); or, only to follow progress, one of the paper's test "
                   "sets set12, bsd68, urban100, classic5, live1, mcmaster18 (refused with --init: they "
                   f"are for reporting); {NO_VALIDATION}: no validation.")
@click.option("--val-every", default=5000, show_default=True, type=click.IntRange(min=0),
              help="Validate every this many iterations (0: only at the end).")
@click.option("--val-crop", default=96, show_default=True, type=click.IntRange(min=16),
              help="Side of the centred crop of each validation image.")
@click.option("--val-limit", type=click.IntRange(min=1), metavar="N",
              help="Validate on the first N images of the set only (quick runs).")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of the weights and of the data.")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(min=0),
              help="DataLoader worker processes per rank (0: make batches in the training process).")
@click.option("--device", type=TrainDevice(), help="cpu, cuda or cuda:N  [default: this rank's GPU if any, else cpu]")
@click.option("--log-every", default=100, show_default=True, type=click.IntRange(min=1),
              help="Write a log line every this many iterations.")
@click.option("--checkpoint-every", default=5000, show_default=True, type=click.IntRange(min=1),
              help="Save OUT/checkpoint.pt every this many iterations (and at the end).")
@click.option("--n-images", type=click.IntRange(min=1), help="Use only the first N images (smoke tests).")
@click.option("--gfam", default="unfold", show_default=True, type=click.Choice(GFAM_NAMES),
              help="GFAM implementation to train with (the same function, proven equal in float64; "
                   "different speed). unfold is the fastest to train; exported graphs always use batched.")
@click.option("--channels-last", is_flag=True, help="Run the network in channels_last memory format.")
@click.option("--compile", "compile", is_flag=True,
              help="Wrap the network in torch.compile: a minute or two to compile first, then each step in about "
                   "0.64x the CPU time (measured on one core, docs/training.md); for runs of more than a few minutes.")
def command(task: str, sigma: int | None, data: tuple[str, ...], out: str | None, device: str | None,
            **options) -> None:
    """Train DAGL with the paper's recipe: L2 loss, Adam, step decay, random crops with the 8
    flips/rotations, degradations made on the fly; checkpoints resume exactly; the end of the run
    writes the weights and the model card that ship.

    Run it with torchrun for several GPUs or nodes; it picks nccl on CUDA and gloo on CPU.
    """
    started_at = time.monotonic()  # --time-budget counts from here
    config = _config(task, sigma, data, out, device=device, **options)
    check_sources(config)  # before torch imports: a missing folder or a typo costs a moment
    from . import distributed
    from .trainer import Trainer

    ctx = distributed.setup(device)
    try:
        _check_memory(config, ctx)
        Trainer(config, ctx, started_at=started_at).fit()
    finally:
        distributed.teardown()


def _check_memory(config: TrainConfig, ctx) -> None:
    """Refuse crops, batches or validation crops whose estimated peak exceeds this device's budget, before
    any data loads (a huge --batch-size would otherwise fail minutes later with an allocation error)."""
    budget = memory_budget(str(ctx.device))
    check_training_memory(config.patch, -(-config.batch_size // ctx.world_size), budget)
    if config.val:
        check_memory(config.val_crop, config.val_crop, 1, budget, what="validation crop", hint="use a smaller --val-crop")


def main(argv: list[str] | None = None) -> int:
    """Entry point: a DaglError or a usage mistake is one line on stderr and its exit status, never a traceback."""
    return command.run(argv)


if __name__ == "__main__":
    sys.exit(main())
