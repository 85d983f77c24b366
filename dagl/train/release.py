"""The two files a finished run ships: FP16 safetensors and the model card beside them.

Their names are the ones :mod:`dagl.weights.pretrained` looks for, so shipping trained weights is copying
``dagl-<task>[-s<sigma>].safetensors`` and its ``.md`` into ``dagl/weights/``.
"""

from __future__ import annotations

import datetime as dt
import platform
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..artefact.naming import WEIGHTS_KEY, WEIGHTS_SUFFIX, random_label, weights_name
from ..atomic import write_atomic
from ..files import file_digest
from ..weights.checkpoints import save_safetensors
from .config import HELD_OUT, LR_GAMMA, TrainConfig


@dataclass(frozen=True)
class RunSummary:
    """What the card reports about how the weights were made."""

    iterations: int
    wall_seconds: float
    device_name: str
    world_size: int
    n_images: int
    degradation: str
    amp: str
    validation: dict[str, float] | None  # PSNR per label of the shipped weights, then "mean"
    init_iterations: int = 0  # iterations behind the --init weights, as their file records them
    start_validation: dict[str, float] | None = None  # PSNR of the --init (or initial) weights
    trained_validation: dict[str, float] | None = None  # PSNR of this run's final weights
    kept: str = "trained"  # "init" when the starting weights validated better and ship instead
    rate: float | None = None  # training iterations per second (this session)
    schedule: str = ""  # the lr schedule in words


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()})"


def _duration(seconds: float) -> str:
    return str(dt.timedelta(seconds=round(seconds)))


def recorded_iterations(path: Path) -> int:
    """The ``dagl.iterations`` a dagl-train safetensors file records (0 for any other file)."""
    if Path(path).suffix != WEIGHTS_SUFFIX:
        return 0
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return int((fh.metadata() or {}).get("dagl.iterations", 0))
    except (OSError, ValueError):
        return 0


def _start_text(config: TrainConfig, summary: RunSummary) -> str:
    """Where the weights started and which weights ship, for runs given --init."""
    if config.init is None:
        return "- Started from: random initialisation (seeded)\n"
    start = summary.start_validation["mean"] if summary.start_validation else float("nan")
    trained = summary.trained_validation["mean"] if summary.trained_validation else float("nan")
    if summary.kept == "init":
        kept = (f"the STARTING weights: this run's trained weights validated worse ({trained:.3f} dB "
                f"against {start:.3f} dB), so they were not shipped")
    else:
        kept = f"this run's trained weights ({trained:.3f} dB against {start:.3f} dB for the starting weights)"
    return (f"- Started from: `{config.init}` ({summary.init_iterations} iterations recorded), "
            f"with a fresh optimiser\n- Shipped: {kept}\n")


def _ema_text(config: TrainConfig) -> str:
    """The card's word on ``--ema``: the file holds the moving average, not the last iterate."""
    if config.ema is None:
        return ""
    return (f";\n  exponential moving average of the weights, decay {config.ema:g} (EMA): the average is what "
            f"was validated and ships")


def _what(config: TrainConfig, summary: RunSummary, sigma: str) -> str:
    reason = untrained_reason(config, summary.init_iterations + summary.iterations)
    if reason:
        return (f"**UNTRAINED: RANDOM weights** (seeded initialisation, seed {config.seed}) for task `{config.task}`"
                f"{sigma}, written by `dagl-train`, which ran 0 iterations: {reason}. Their outputs are "
                f"meaningless; the file is labelled RANDOM in its metadata and every dagl command warns.")
    return f"DAGL (ICCV 2021) weights for task `{config.task}`{sigma}, trained with `dagl-train`."


def card_text(config: TrainConfig, summary: RunSummary, weights: Path) -> str:
    """Markdown model card: enough to judge the weights and to redo the run."""
    sigma = f", sigma {config.sigma}" if config.sigma is not None else ""
    if summary.validation:
        rows = "\n".join(f"| {label} | {value:.2f} |" for label, value in summary.validation.items())
        split = (" (the 24 training files held out of every run, dagl.train.heldout: the weights are chosen "
                 "here, never on a paper test set)" if config.val == HELD_OUT else "")
        val = (f"Validation on `{config.val}`{split} (centred {config.val_crop}x{config.val_crop} crops, "
               f"float output clamped to [0, 1], no shave; a training-time proxy, not the paper's "
               f"protocol: use `dagl-eval` for that), measured on the shipped FP16-stored weights:\n\n"
               f"| degradation | PSNR (dB) |\n|---|---|\n{rows}\n")
    else:
        val = "No validation set was given (`--val`); no PSNR is reported.\n"
    data = ", ".join(f"`{p}`" for p in config.data)
    schedule = summary.schedule or f"lr {config.lr:g} halved (x{LR_GAMMA}) every {config.lr_step} iterations"
    budget = f" (within a budget of {config.time_budget:.0f} s)" if config.time_budget else ""
    rate = f", {summary.rate:.2f} it/s" if summary.rate else ""
    total = summary.init_iterations + summary.iterations
    iterations = (f"{summary.iterations} in this run + {summary.init_iterations} before = {total}"
                  if summary.init_iterations else f"{summary.iterations}")
    return f"""# {weights.stem}

{_what(config, summary, sigma)}

- File: `{weights.name}` (safetensors, stored as FP16; load with `dagl.load("{config.task}", weights=...)`;
  it also loads with `strict=True` into the authors' own network, whose unused `add_mean` tensors it carries)
- SHA-256: `{file_digest(weights)}`

## Training

- Data: {data} ({summary.n_images} images)
- Degradation, made on the fly: {summary.degradation}
- Recipe: L2 (MSE) loss, Adam, {schedule},
  global batch {config.batch_size} of random {config.patch}x{config.patch} crops with the 8 flips/rotations{_ema_text(config)}
{_start_text(config, summary)}- Iterations: {iterations}
- Wall time: {_duration(summary.wall_seconds)} of training{budget} on {summary.world_size} x {summary.device_name}{rate}
- Set-up: GFAM `{config.gfam}`, channels_last {'on' if config.channels_last else 'off'}, torch.compile {'on' if config.compile else 'off'}
- Mixed precision: {summary.amp}
- Seed: {config.seed}
- Software: torch {torch.__version__}, dagl {_version()}
- Command: `{config.command}`
- Written: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}

## Validation

{val}"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dagl")
    except PackageNotFoundError:
        return "unknown"


def untrained_reason(config: TrainConfig, iterations: int) -> str | None:
    """Why a run's weights are its random initialisation (no --init, no iteration), or ``None`` if they are not."""
    if iterations or config.init is not None:
        return None
    if config.time_budget:
        return (f"the --time-budget of {config.time_budget:g} s was used up by loading and the first validation "
                f"before one iteration could run")
    return "no iteration ran"


def write_weights(model: nn.Module, config: TrainConfig, iterations: int) -> Path:
    """FP16 safetensors named as :mod:`dagl.weights.pretrained` expects, with the run in its metadata.

    Weights that were never trained carry the random label every command warns about (``dagl.weights``).
    """
    path = config.out / weights_name(config.task, config.sigma)
    metadata = {"dagl.task": config.task, "dagl.iterations": str(iterations), "dagl.trainer": "dagl-train"}
    reason = untrained_reason(config, iterations)
    if reason:
        metadata[WEIGHTS_KEY] = random_label(config.seed, f"dagl-train ran 0 iterations ({reason})")
    if config.sigma is not None:
        metadata["dagl.sigma"] = str(config.sigma)
    return save_safetensors(model, path, fp16=True, metadata=metadata)


def write_card(config: TrainConfig, summary: RunSummary, weights: Path) -> Path:
    return write_atomic(weights.with_suffix(".md"), card_text(config, summary, weights))
