"""Learning-rate schedules as plain objects, so the checkpoint stores them as plain values.

``torch.optim.lr_scheduler.LambdaLR`` saves the ``__dict__`` of a callable object (not the
object), which ``torch.load(weights_only=True)`` reads back; a closure would not survive resume.
"""

from __future__ import annotations

import math


class LrSchedule:
    """Factor of the base lr at each iteration.

    * ``step``: the paper's, ``gamma ** (iteration // step)``;
    * ``cosine``: for ``--time-budget`` runs, whose length is only known once the rate has been
      measured: constant until :attr:`total` is planned, then half a cosine from 1 down to
      ``floor`` at ``total``, so the run ends at a low lr whatever length the budget allowed.

    ``warmup`` > 0 puts a linear warm-up in front (``--warmup``): the step at ``iteration`` (0-based)
    runs at ``(iteration + 1) / warmup`` of the lr until the full lr at ``warmup - 1``, so that a
    higher peak lr does not hit a fresh Adam, whose first steps are the largest, at full size. The
    cosine then runs over the iterations after the warm-up; the step decay keeps counting from 0.
    """

    def __init__(self, kind: str, step: int = 1, gamma: float = 0.5, total: int | None = None,
                 floor: float = 0.01, warmup: int = 0) -> None:
        if kind not in ("step", "cosine"):
            raise ValueError(f"unknown lr schedule {kind!r}")
        self.kind = kind
        self.step = step
        self.gamma = gamma
        self.total = total
        self.floor = floor
        self.warmup = warmup

    def __call__(self, iteration: int) -> float:
        ramp = min(1.0, (iteration + 1) / self.warmup) if self.warmup else 1.0
        if self.kind == "step":
            return ramp * self.gamma ** (iteration // self.step)
        if not self.total or iteration < self.warmup:
            return ramp
        length = max(self.total - self.warmup, 1)
        progress = min(iteration - self.warmup, length) / length
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def describe(self, lr: float) -> str:
        warmup = f" after a linear warm-up over {self.warmup} it" if self.warmup else ""
        if self.kind == "step":
            return f"lr {lr:g}{warmup} x{self.gamma} every {self.step} it"
        return (f"lr {lr:g}{warmup} on a cosine down to {lr * self.floor:g} over the iterations the time "
                f"budget allows")
