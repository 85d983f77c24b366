"""The options of one training run, and the recipe's constants with where they come from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UserInputError

#: The release is built on the EDSR framework, whose "epoch" is ``--test_every`` = 1000 batches
#: (not a pass over the images); the paper's "halve the lr every 200 epochs" is therefore
#: 200 x 1000 iterations.
EPOCH_ITERATIONS = 1000
LR_DECAY_EPOCHS = 200
LR_STEP_ITERATIONS = LR_DECAY_EPOCHS * EPOCH_ITERATIONS
LR_GAMMA = 0.5

#: Fields that must not change when a run is resumed: they define what the saved state means.
RESUME_INVARIANTS = ("task", "sigma", "batch_size", "patch", "lr", "lr_step", "seed",
                     "epoch_iterations", "n_images", "ema", "warmup")


class TrainingError(UserInputError):
    """A training set-up the user must fix (options, data, a --resume checkpoint); one line, exit 2."""


#: ``--val``'s default: the training files never trained on (dagl.train.heldout), the set weights are chosen on.
HELD_OUT = "held-out"
#: ``--val`` for a run that validates nothing.
NO_VALIDATION = "none"


#: The names of ``dagl.network.gfam.GFAM_IMPLEMENTATIONS``, spelled here so that ``dagl-train --help`` needs no
#: torch (a test keeps the two equal); the first is the training default.
GFAM_NAMES = ("unfold", "batched", "plain")


@dataclass
class TrainConfig:
    """Everything that defines a run; saved in checkpoints and quoted in the model card."""

    task: str
    data: list[Path]
    iterations: int | None  # with time_budget: an optional cap on the planned count
    out: Path
    sigma: int | None = None
    batch_size: int = 32
    patch: int = 64
    lr: float = 1e-4
    lr_step: int = LR_STEP_ITERATIONS
    resume: bool = False
    amp: str = "auto"
    val: str | None = HELD_OUT
    val_every: int = 5000
    val_crop: int = 96
    val_limit: int | None = None
    seed: int = 0
    workers: int = 4
    device: str | None = None
    log_every: int = 100
    checkpoint_every: int = 5000
    n_images: int | None = None
    epoch_iterations: int = EPOCH_ITERATIONS
    #: Wall-clock seconds for the whole command; the iterations and a cosine lr are planned from it.
    time_budget: float | None = None
    #: Weights to start from (fresh optimiser); the better of them and the trained ones ship.
    init: Path | None = None
    #: Training set-up: GFAM implementation, memory format, torch.compile (docs/training.md measures them).
    gfam: str = GFAM_NAMES[0]
    channels_last: bool = False
    compile: bool = False
    #: Decay of the exponential moving average of the weights (``--ema``), which is validated and ships
    #: instead of the last iterate; None: no average.
    ema: float | None = None
    #: Iterations of linear lr warm-up before the schedule (``--warmup``); 0: none.
    warmup: int = 0
    command: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        """Refuse options no run can honour as soon as they are put together, before a process group,
        a network or any data exists: each is a one-line ``dagl-train: error:`` the user can fix."""
        if self.resume and self.time_budget:
            raise TrainingError("--resume continues a fixed --iterations run; continue a --time-budget run "
                                "with a new run that starts from its weights (--init)")
        if not self.time_budget and not self.iterations:
            raise TrainingError("pass --iterations, or --time-budget to plan them from the measured rate")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise TrainingError(f"--ema {self.ema:g}: the decay must lie strictly between 0 and 1 (e.g. 0.999)")
        if self.warmup < 0:
            raise TrainingError(f"--warmup {self.warmup}: the warm-up cannot be negative")
        if self.val == NO_VALIDATION:
            self.val = None
        if self.init is not None and not self.val:
            raise TrainingError("--init needs --val: the run validates the starting weights and ships "
                                "whichever of them and the trained ones validate better")
        from ..data.datasets import DATASETS

        if self.init is not None and self.val in DATASETS:
            raise TrainingError(f"--init chooses between the starting and the trained weights on --val, and "
                                f"{self.val} is one of the paper's test sets, which are for reporting only: "
                                f"validate on --val {HELD_OUT} (the default) or a folder of your own")

    def per_rank_batch(self, world_size: int) -> int:
        """Each of ``world_size`` processes' share of the global ``batch_size``, which must split evenly
        (the processes' batches together are the batch of one step)."""
        if self.batch_size % world_size:
            raise TrainingError(f"--batch-size {self.batch_size} (the global batch) is not divisible "
                                f"by the {world_size} processes")
        return self.batch_size // world_size

    def to_dict(self) -> dict:
        """JSON-friendly form (paths as strings) for checkpoints and the model card."""
        out = asdict(self)
        out["data"] = [str(p) for p in self.data]
        out["out"] = str(self.out)
        out["init"] = None if self.init is None else str(self.init)
        return out
