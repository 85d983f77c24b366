"""The training loop: DDP-wrapped DAGL, Adam + step decay, AMP, logs, validation, checkpoints."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .. import load as load_weights
from ..configs import get_config
from ..gfam import GFAMHead
from ..model import DAGL, create
from . import checkpoint, release
from .config import LR_GAMMA, TrainConfig, TrainingError
from .data import EpochKeySampler, TrainingPairs, describe_degradation, load_images, make_loader
from .distributed import DistContext, mean_over_ranks
from .validation import evaluate, load_validation_set

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
LOG_NAME = "train.log"


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto`` is bf16 on GPUs that have it (no loss scaling needed), else full precision."""
    if amp != "auto":
        return amp
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "off"


def freeze_unused(model: DAGL) -> None:
    """The release's ``W`` convs never see a gradient; DDP refuses such parameters unless frozen."""
    for module in model.modules():
        if isinstance(module, GFAMHead):
            module.W.requires_grad_(False)


def _eta(seconds: float) -> str:
    return str(dt.timedelta(seconds=round(seconds)))


class Trainer:
    """One rank's share of a run; rank 0 also logs, validates and writes every file."""

    def __init__(self, config: TrainConfig, ctx: DistContext) -> None:
        self.config = config
        self.ctx = ctx
        self.task = get_config(config.task)
        if config.batch_size % ctx.world_size:
            raise TrainingError(f"--batch-size {config.batch_size} (the global batch) is not divisible "
                                f"by the {ctx.world_size} processes")
        self.amp = resolve_amp(config.amp, ctx.device)
        if ctx.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # every batch has the same shape
        torch.manual_seed(config.seed)  # identical initial weights on every rank
        self.model = create(config.task)
        freeze_unused(self.model)
        self.model.to(ctx.device).train()
        self.net: nn.Module = self.model
        if ctx.distributed:
            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=config.lr_step,
                                                         gamma=LR_GAMMA)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.amp == "fp16")
        self.iteration = 0
        self.train_seconds = 0.0
        self.losses: list[float] = []  # this rank's loss at each iteration of this session
        self.out = Path(config.out)
        self._checkpoint_path = self.out / checkpoint.CHECKPOINT_NAME
        if config.resume:
            self._restore(checkpoint.load(self._checkpoint_path, config))
        elif self._checkpoint_path.exists():
            raise TrainingError(f"{self._checkpoint_path} exists: pass --resume to continue that run "
                                f"or choose another --out")
        clean, noisy, self.image_paths = load_images(config.data, self.task, config.patch, config.n_images)
        self.dataset = TrainingPairs(clean, noisy, self.task, config.sigma, config.patch, config.seed)
        self.validation = (load_validation_set(config.val, self.task, config.sigma, config.val_crop)
                           if config.val and ctx.is_main else None)

    # ---- state -------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"config": self.config.to_dict(), "iteration": self.iteration,
                "train_seconds": self.train_seconds, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": checkpoint.rng_state()}

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        checkpoint.set_rng_state(state["rng"])
        self.iteration = state["iteration"]
        self.train_seconds = state["train_seconds"]

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
            yield (degraded.to(self.ctx.device, non_blocking=True), clean.to(self.ctx.device, non_blocking=True))

    def compute_gradients(self, degraded: torch.Tensor, clean: torch.Tensor) -> float:
        """Forward + backward of the L2 loss; DDP averages the gradients over ranks here."""
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.ctx.device.type, dtype=AMP_DTYPES.get(self.amp, torch.float32),
                            enabled=self.amp in AMP_DTYPES):
            loss = F.mse_loss(self.net(degraded).float(), clean)
        self.scaler.scale(loss).backward()
        return loss.item()

    def train_step(self, degraded: torch.Tensor, clean: torch.Tensor) -> float:
        loss = self.compute_gradients(degraded, clean)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
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
        scores = evaluate(model, self.validation, self.ctx.device)
        details = "  ".join(f"{k} {v:.2f}" for k, v in scores.items() if k != "mean")
        self.log(f"val   it {self.iteration:>8d}  {self.config.val} PSNR {scores['mean']:.2f} dB"
                 + (f"  ({details})" if details else ""))
        return scores

    def _announce(self) -> None:
        cfg = self.config
        per_rank = cfg.batch_size // self.ctx.world_size
        self.log(f"dagl-train {cfg.task}{f' sigma {cfg.sigma}' if cfg.sigma else ''}: "
                 f"{len(self.image_paths)} images from {', '.join(map(str, cfg.data))}")
        self.log(f"degradation: {describe_degradation(self.task, cfg.sigma)}")
        self.log(f"recipe: MSE, Adam lr {cfg.lr:g} x{LR_GAMMA} every {cfg.lr_step} it, global batch "
                 f"{cfg.batch_size} ({self.ctx.world_size} x {per_rank}) of {cfg.patch}x{cfg.patch} crops, "
                 f"8 flips/rotations, amp {self.amp}, device {release.device_name(self.ctx.device)}")
        if self.iteration:
            self.log(f"resumed from {self._checkpoint_path} at iteration {self.iteration}")

    def fit(self) -> Path | None:
        """Train to ``config.iterations``; rank 0 returns the shipped weights' path."""
        cfg = self.config
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self._announce()
        bar = tqdm(total=cfg.iterations, initial=self.iteration, unit="it", dynamic_ncols=True,
                   disable=True if not self.ctx.is_main else None)
        window_start, window_iter = time.perf_counter(), self.iteration
        session_start, session_iter = window_start, self.iteration
        for degraded, clean in self.batches() if self.iteration < cfg.iterations else ():
            loss = self.train_step(degraded, clean)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3e}", refresh=False)
            if self.iteration % cfg.log_every == 0 or self.iteration == cfg.iterations:
                now = time.perf_counter()
                rate = (self.iteration - window_iter) / max(now - window_start, 1e-9)
                mean_loss = mean_over_ranks(loss, self.ctx)
                self.log(f"train it {self.iteration:>8d}/{cfg.iterations}  loss {mean_loss:.4e}  "
                         f"lr {self.scheduler.get_last_lr()[0]:.3e}  {rate:.2f} it/s  "
                         f"eta {_eta((cfg.iterations - self.iteration) / max(rate, 1e-9))}")
                window_start, window_iter = now, self.iteration
            if self.ctx.is_main and cfg.val_every and self.iteration % cfg.val_every == 0 \
                    and self.iteration < cfg.iterations:
                self.validate(self.model)
            if self.iteration % cfg.checkpoint_every == 0 or self.iteration == cfg.iterations:
                self.train_seconds += time.perf_counter() - session_start
                session_start = time.perf_counter()
                self.save_checkpoint()
            if self.iteration >= cfg.iterations:
                break
        bar.close()
        self.train_seconds += time.perf_counter() - session_start
        self.log(f"done: {self.iteration - session_iter} iterations this session, "
                 f"{_eta(self.train_seconds)} of training in all")
        return self.ship() if self.ctx.is_main else None

    def ship(self) -> Path:
        """Write the FP16 weights, reload them as a user would, validate them, write the card."""
        weights = release.write_weights(self.model, self.config, self.iteration)
        shipped = load_weights(self.config.task, weights=weights).to(self.ctx.device)
        summary = release.RunSummary(
            iterations=self.iteration, wall_seconds=self.train_seconds,
            device_name=release.device_name(self.ctx.device), world_size=self.ctx.world_size,
            n_images=len(self.image_paths), degradation=describe_degradation(self.task, self.config.sigma),
            amp=self.amp, validation=self.validate(shipped))
        card = release.write_card(self.config, summary, weights)
        self.log(f"wrote {weights} and {card}")
        return weights
