"""The training loop: DDP-wrapped DAGL, Adam + step decay, AMP, EMA, logs, validation, checkpoints.

Each part of a run (network, starting weights, DDP/compile wrap, optimiser and schedule, resumed state,
data) has a small builder here; :class:`Trainer` puts them together in order and :meth:`Trainer.fit` is
the loop. The options themselves are checked by :class:`~dagl.train.config.TrainConfig`."""

from __future__ import annotations

import copy
import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from .. import load as load_weights
from ..network.gfam import GFAMHead
from ..network.model import DAGL, create
from ..tasks.configs import TaskConfig, get_config
from ..weights.checkpoints import WeightsError, load_into
from . import checkpoint, release
from .budget import TimeBudget
from .config import LR_GAMMA, TrainConfig, TrainingError
from .data import EpochKeySampler, TrainingPairs, describe_degradation, load_images, make_loader
from .distributed import DistContext, from_main, mean_over_ranks
from .schedule import LrSchedule
from .validation import ValidationImage, load_validation_set, validation_psnr

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
LOG_NAME = "train.log"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX): there bf16 autocast
    nearly halves a training step; elsewhere it is emulated and slower than float32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto`` is bf16 where the hardware has it (no loss scaling needed), else full precision."""
    if amp != "auto":
        return amp
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "off"


def freeze_unused(model: DAGL) -> None:
    """The release's ``W`` convs never see a gradient; DDP refuses such parameters unless frozen."""
    for module in model.modules():
        if isinstance(module, GFAMHead):
            module.W.requires_grad_(False)


def build_network(task: str, gfam: str, device: torch.device, channels_last: bool) -> DAGL:
    """A fresh DAGL in training mode on ``device``, its never-trained convs frozen (seeded by the caller)."""
    model = create(task, gfam=gfam)
    freeze_unused(model)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(device, memory_format=memory_format).train()


def seeded_network(config: TrainConfig, device: torch.device) -> DAGL:
    """The run's fresh network, seeded with ``config.seed`` so that every rank starts from the same weights."""
    torch.manual_seed(config.seed)
    return build_network(config.task, config.gfam, device, config.channels_last)


def load_init(model: DAGL, path: Path) -> int:
    """Load ``--init`` weights into ``model``; returns the iterations they were trained for, if recorded."""
    try:
        load_into(model, path)
    except WeightsError as exc:
        raise TrainingError(f"--init: {exc}") from None
    return release.recorded_iterations(path)


def wrap_for_training(model: DAGL, ctx: DistContext, compiled: bool) -> nn.Module:
    """What the steps call: ``model`` under DDP when distributed (it averages the gradients over the
    ranks), then under ``torch.compile`` if asked; the weights stay ``model``'s."""
    net: nn.Module = model
    if ctx.distributed:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    return torch.compile(net) if compiled else net


def build_optimiser(model: DAGL, config: TrainConfig, budgeted: bool
                    ) -> tuple[torch.optim.Adam, LrSchedule, torch.optim.lr_scheduler.LambdaLR]:
    """Adam over the trainable weights and its lr schedule: the paper's step decay, or with a time
    budget a cosine whose length the budget plans once the rate is measured."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    schedule = (LrSchedule("cosine", warmup=config.warmup) if budgeted else
                LrSchedule("step", step=config.lr_step, gamma=LR_GAMMA, warmup=config.warmup))
    return optimizer, schedule, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def averaged_weights(model: DAGL, decay: float | None) -> AveragedModel | None:
    """``--ema``: an exponential moving average of ``model``'s weights (and buffers), or None.

    Adam's steps on small batches (the relay's 8 crops) scatter the last iterate around the point it
    is heading for; an average of the recent iterates sits nearer it, so the average validates and ships.
    Each step moves the average by ``1 - decay`` towards the weights. It starts at the starting weights:
    torch's first update copies whatever it is given, so it is given them here, not the first iterate,
    which a fresh Adam moves by about the lr in every weight at once (its first step is g/|g|); on the
    shipped jpeg weights that iterate validated far below the start (docs/training.md, "More learning
    per CPU hour"), and an average anchored there stays near it for about ``1 / (1 - decay)`` steps.
    The main body's shared PReLU is one parameter in both models (``parameters()`` yields a shared
    tensor once), so it is averaged once and stays shared.
    """
    if decay is None:
        return None
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.update_parameters(model)  # the average starts at the starting weights
    return ema


def resume_state(config: TrainConfig, path: Path) -> dict | None:
    """The checkpoint at ``path`` to continue with ``--resume``; None for a fresh run, which never
    overwrites the checkpoint of another."""
    if config.resume:
        return checkpoint.load(path, config)
    if path.exists():
        raise TrainingError(f"{path} exists: pass --resume to continue that run or choose another --out")
    return None


def build_data(config: TrainConfig, task: TaskConfig, is_main: bool
               ) -> tuple[list[Path], TrainingPairs, list[ValidationImage] | None]:
    """The training images (their paths, and the pairs made from them on the fly) and, on rank 0 with
    ``--val``, the validation set."""
    clean, noisy, image_paths = load_images(config.data, task, config.patch, config.n_images)
    dataset = TrainingPairs(clean, noisy, task, config.sigma, config.patch, config.seed)
    validation = (load_validation_set(config.val, task, config.sigma, config.val_crop, config.val_limit,
                                      config.data)
                  if config.val and is_main else None)
    return image_paths, dataset, validation


def l2_gradients(net: nn.Module, optimizer: torch.optim.Optimizer, degraded: torch.Tensor, clean: torch.Tensor,
                 amp: str, scaler: torch.amp.GradScaler | None = None) -> float:
    """Forward + backward of the recipe's L2 loss under ``amp``; returns the loss (float32 MSE)."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(degraded.device.type, dtype=AMP_DTYPES.get(amp, torch.float32), enabled=amp in AMP_DTYPES):
        loss = F.mse_loss(net(degraded).float(), clean)
    (scaler.scale(loss) if scaler is not None else loss).backward()
    return loss.item()


def _eta(seconds: float) -> str:
    return str(dt.timedelta(seconds=round(seconds)))


def rounded_to_fp16(model: DAGL) -> DAGL:
    """A copy of ``model`` with its weights rounded as the FP16 release file stores them."""
    twin = copy.deepcopy(model)
    twin.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    return twin


def _mean(scores: dict[str, float] | None) -> float:
    return float("-inf") if not scores else scores["mean"]


class Trainer:
    """One rank's share of a run; rank 0 also logs, validates and writes every file."""

    def __init__(self, config: TrainConfig, ctx: DistContext, started_at: float | None = None,
                 on_snapshot: Callable[[Trainer], None] | None = None, snapshot_seconds: float = 120.0) -> None:
        """``started_at`` (``time.monotonic()``) is when the ``--time-budget`` clock started; rank 0
        calls ``on_snapshot(trainer)`` at least every ``snapshot_seconds`` of training."""
        self.config = config
        self.ctx = ctx
        self.budget = TimeBudget(config.time_budget, started_at) if config.time_budget else None
        self.on_snapshot = on_snapshot
        self.snapshot_seconds = snapshot_seconds
        self.plans = 0  # how often the budget has planned the run's length
        self.task = get_config(config.task)
        self.per_rank_batch = config.per_rank_batch(ctx.world_size)
        self.amp = resolve_amp(config.amp, ctx.device)
        if ctx.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # every batch has the same shape
        self.model = seeded_network(config, ctx.device)  # identical initial weights on every rank
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.init_iterations = load_init(self.model, config.init) if config.init is not None else 0
        # The starting weights, kept to ship instead if training made them worse.
        self.init_state = ({k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
                           if config.init is not None else None)
        # Copied before DDP wraps the model (no hooks come along); every rank keeps one, their weights being equal.
        self.ema = averaged_weights(self.model, config.ema)
        self.net = wrap_for_training(self.model, ctx, config.compile)
        self.optimizer, self.schedule, self.scheduler = build_optimiser(self.model, config, self.budget is not None)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.amp == "fp16")
        self.iteration = 0
        self.train_seconds = 0.0
        self.losses: list[float] = []  # this rank's loss at each iteration of this session
        self.out = Path(config.out)
        self._checkpoint_path = self.out / checkpoint.CHECKPOINT_NAME
        state = resume_state(config, self._checkpoint_path)
        if state is not None:
            self._restore(state)
        self.image_paths, self.dataset, self.validation = build_data(config, self.task, ctx.is_main)
        self.start_validation: dict[str, float] | None = None  # PSNR of the starting weights
        self.trained_validation: dict[str, float] | None = None  # PSNR of this run's final weights
        self.kept = "trained"  # or "init": which weights ship
        self.shipped_state: dict[str, torch.Tensor] | None = None  # float32 state of what shipped

    # ---- state -------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"config": self.config.to_dict(), "iteration": self.iteration,
                "train_seconds": self.train_seconds, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": checkpoint.rng_state(),
                **({"ema": self.ema.state_dict()} if self.ema is not None else {})}

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        checkpoint.set_rng_state(state["rng"])
        self.iteration = state["iteration"]
        self.train_seconds = state["train_seconds"]

    def shipping_model(self) -> DAGL:
        """The weights that are validated and ship: the moving average with ``--ema``, else the last iterate."""
        return self.ema.module if self.ema is not None else self.model

    def save_checkpoint(self) -> None:
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            checkpoint.save(self._checkpoint_path, self.state())

    # ---- steps -------------------------------------------------------------------------------
    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(degraded, clean) batches of this rank, continuing from the current iteration."""
        sampler = EpochKeySampler(self.config.epoch_iterations, self.config.batch_size, self.ctx.rank,
                                  self.ctx.world_size, self.config.seed, start_iteration=self.iteration)
        loader = make_loader(self.dataset, sampler, self.config.workers, self.ctx.device.type == "cuda")
        for degraded, clean in loader:
            yield (degraded.to(self.ctx.device, non_blocking=True, memory_format=self.memory_format),
                   clean.to(self.ctx.device, non_blocking=True, memory_format=self.memory_format))

    def compute_gradients(self, degraded: torch.Tensor, clean: torch.Tensor) -> float:
        """Forward + backward of the L2 loss; DDP averages the gradients over ranks here."""
        return l2_gradients(self.net, self.optimizer, degraded, clean, self.amp, self.scaler)

    def train_step(self, degraded: torch.Tensor, clean: torch.Tensor) -> float:
        loss = self.compute_gradients(degraded, clean)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.iteration += 1
        self.losses.append(loss)
        return loss

    # ---- the run -----------------------------------------------------------------------------
    def log(self, message: str) -> None:
        """A line for the person watching (above the progress bar) and for ``train.log``."""
        if not self.ctx.is_main:
            return
        tqdm.write(message)
        with open(self.out / LOG_NAME, "a", encoding="utf-8") as fh:
            fh.write(f"{dt.datetime.now().isoformat(timespec='seconds')} {message}\n")

    def validate(self, model: nn.Module) -> dict[str, float] | None:
        if not self.validation:
            return None
        scores = validation_psnr(model, self.validation, self.ctx.device)
        details = "  ".join(f"{k} {v:.2f}" for k, v in scores.items() if k != "mean")
        self.log(f"val   it {self.iteration:>8d}  {self.config.val} PSNR {scores['mean']:.2f} dB"
                 + (f"  ({details})" if details else ""))
        return scores

    def _announce(self) -> None:
        cfg = self.config
        self.log(f"dagl-train {cfg.task}{f' sigma {cfg.sigma}' if cfg.sigma else ''}: "
                 f"{len(self.image_paths)} images from {', '.join(map(str, cfg.data))}")
        self.log(f"degradation: {describe_degradation(self.task, cfg.sigma)}")
        self.log(f"recipe: MSE, Adam {self.schedule.describe(cfg.lr)}, global batch "
                 f"{cfg.batch_size} ({self.ctx.world_size} x {self.per_rank_batch}) of {cfg.patch}x{cfg.patch} crops, "
                 f"8 flips/rotations, amp {self.amp}, device {release.device_name(self.ctx.device)}"
                 + (f"; EMA of the weights (decay {cfg.ema:g}) validates and ships" if cfg.ema else ""))
        self.log(f"set-up: gfam {cfg.gfam}, channels_last {'on' if cfg.channels_last else 'off'}, "
                 f"torch.compile {'on' if cfg.compile else 'off'}")
        if cfg.init is not None:
            self.log(f"starting from {cfg.init} ({self.init_iterations} iterations recorded), fresh optimiser")
        if self.budget:
            cap = f", at most {cfg.iterations} iterations" if cfg.iterations else ""
            self.log(f"time budget: {self.budget.seconds:.0f} s for everything{cap}; left now "
                     f"{self.budget.left():.1f} s")
        if self.iteration:
            self.log(f"resumed from {self._checkpoint_path} at iteration {self.iteration}")

    def _validate_start(self) -> None:
        """Score the starting weights as they would ship (FP16-rounded): the bar the run must beat,
        and, timed, the size of the reserve the final validation needs."""
        if not self.validation:
            return
        started = time.monotonic()
        self.log("validating the starting weights")
        self.start_validation = self.validate(rounded_to_fp16(self.model))
        if self.budget:
            self.budget.reserve_for_validation(time.monotonic() - started)
            self.log(f"reserved {self.budget.reserve:.1f} s for the final validation and writing")

    def _target(self) -> int | None:
        """The iteration to stop at, if known: --iterations, or the budget's plan (capped by it)."""
        planned = self.budget.planned if self.budget else None
        if planned is None:
            return self.config.iterations
        return min(planned, self.config.iterations) if self.config.iterations else planned

    def _plan(self, step_seconds: float, bar: tqdm) -> bool:
        """Budget bookkeeping after a step (rank 0's clock, shared with every rank); True = stop."""
        if not self.budget:
            return False
        planned = self.budget.observe(self.iteration, step_seconds) if self.ctx.is_main else None
        if self.ctx.distributed:
            planned = from_main(-1 if planned is None else planned, self.ctx)
            planned = None if planned < 0 else planned
            self.budget.planned = planned if planned is not None else self.budget.planned
        if planned is not None:
            self.schedule.total = self._target()
            bar.total = self._target()
            bar.refresh()
            self.log(f"{'re-plan' if self.plans else 'plan'}: {self.budget.rate or 0:.2f} it/s "
                     f"measured after {self.iteration} iterations; "
                     f"{self._target()} iterations in all, cosine lr over them, "
                     f"{self.budget.reserve:.1f} s kept for validation and writing")
            self.plans += 1
        stop = self.budget.should_stop(self.iteration) if self.ctx.is_main else False
        return bool(from_main(int(stop), self.ctx))

    def fit(self) -> Path | None:
        """Train to ``config.iterations`` (or as the budget allows); rank 0 returns the shipped weights."""
        cfg = self.config
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self._announce()
        if self.ctx.is_main and not self.iteration:
            self._validate_start()
        bar = tqdm(total=self._target(), initial=self.iteration, unit="it", dynamic_ncols=True,
                   disable=True if not self.ctx.is_main else None)
        window_start, window_iter = time.perf_counter(), self.iteration
        session_start, session_iter = window_start, self.iteration
        last_snapshot = step_start = time.monotonic()
        stop = self._plan(0.0, bar) if self.budget else self.iteration >= (cfg.iterations or 0)
        for degraded, clean in self.batches() if not stop else ():
            loss = self.train_step(degraded, clean)
            now = time.monotonic()
            stop = self._plan(now - step_start, bar)
            step_start = now
            target = self._target()
            stop = stop or (target is not None and self.iteration >= target)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3e}", refresh=False)
            if self.iteration % cfg.log_every == 0 or stop:
                now_perf = time.perf_counter()
                rate = (self.iteration - window_iter) / max(now_perf - window_start, 1e-9)
                mean_loss = mean_over_ranks(loss, self.ctx)
                left = (self.budget.left() if self.budget and target is None else
                        (target - self.iteration) / max(rate, 1e-9))
                self.log(f"train it {self.iteration:>8d}/{target if target is not None else '?'}  "
                         f"loss {mean_loss:.4e}  lr {self.scheduler.get_last_lr()[0]:.3e}  {rate:.2f} it/s  "
                         f"eta {_eta(left)}")
                window_start, window_iter = now_perf, self.iteration
            if self.ctx.is_main and cfg.val_every and self.iteration % cfg.val_every == 0 and not stop:
                self.validate(self.shipping_model())
            if self.iteration % cfg.checkpoint_every == 0 or stop:
                self.train_seconds += time.perf_counter() - session_start
                session_start = time.perf_counter()
                self.save_checkpoint()
            if self.ctx.is_main and self.on_snapshot and time.monotonic() - last_snapshot >= self.snapshot_seconds \
                    and not stop:
                self.on_snapshot(self)
                last_snapshot = time.monotonic()
            if stop:
                break
        bar.close()
        self.train_seconds += time.perf_counter() - session_start
        self.session_iterations = self.iteration - session_iter
        self.log(f"done: {self.session_iterations} iterations this session, "
                 f"{_eta(self.train_seconds)} of training in all")
        untrained = release.untrained_reason(cfg, self.init_iterations + self.iteration)
        if untrained:
            self.log(f"nothing was trained: {untrained}; the weights written are the random initialisation, "
                     f"labelled RANDOM in their metadata and card")
        return self.ship() if self.ctx.is_main else None

    def _keep_better(self, model: DAGL) -> None:
        """Put the starting weights back into ``model`` (what ships) if the trained ones validate worse:
        a run never ships a regression of the weights it was given."""
        if self.init_state is not None and self.iteration == 0:
            self.kept = "init"
            self.log("no iteration fitted in the budget: shipping the starting weights")
            return
        if self.init_state is None or _mean(self.trained_validation) >= _mean(self.start_validation):
            if self.init_state is not None:
                self.log(f"keeping the trained weights: {_mean(self.trained_validation):.3f} dB against "
                         f"{_mean(self.start_validation):.3f} dB for the starting weights")
            return
        self.kept = "init"
        model.load_state_dict(self.init_state)
        self.log(f"keeping the STARTING weights: they validate at {_mean(self.start_validation):.3f} dB, "
                 f"the trained ones at {_mean(self.trained_validation):.3f} dB")

    def ship(self) -> Path:
        """Write the FP16 weights, reload them as a user would, validate them, write the card;
        with ``--init``, the better of the starting and the trained weights."""
        total = self.init_iterations + self.iteration
        model = self.shipping_model()
        weights = release.write_weights(model, self.config, total)
        shipped = load_weights(self.config.task, weights=weights).to(self.ctx.device)
        self.trained_validation = self.validate(shipped)
        validation = self.trained_validation
        self._keep_better(model)
        if self.kept == "init":
            weights = release.write_weights(model, self.config, self.init_iterations)
            validation = self.start_validation
        self.shipped_state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
        rate = self.session_iterations / self.train_seconds if self.train_seconds and not self.config.resume else None
        summary = release.RunSummary(
            iterations=self.iteration, wall_seconds=self.train_seconds,
            device_name=release.device_name(self.ctx.device), world_size=self.ctx.world_size,
            n_images=len(self.image_paths), degradation=describe_degradation(self.task, self.config.sigma),
            amp=self.amp, validation=validation, init_iterations=self.init_iterations,
            start_validation=self.start_validation, trained_validation=self.trained_validation,
            kept=self.kept, rate=rate, schedule=self.schedule.describe(self.config.lr))
        card = release.write_card(self.config, summary, weights)
        self.log(f"wrote {weights} and {card}")
        return weights
