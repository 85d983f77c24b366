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
    """

    def __init__(self, kind: str, step: int = 1, gamma: float = 0.5, total: int | None = None,
                 floor: float = 0.01) -> None:
        if kind not in ("step", "cosine"):
            raise ValueError(f"unknown lr schedule {kind!r}")
        self.kind = kind
        self.step = step
        self.gamma = gamma
        self.total = total
        self.floor = floor

    def __call__(self, iteration: int) -> float:
        if self.kind == "step":
            return self.gamma ** (iteration // self.step)
        if not self.total:
            return 1.0
        progress = min(iteration, self.total) / self.total
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def describe(self, lr: float) -> str:
        if self.kind == "step":
            return f"lr {lr:g} x{self.gamma} every {self.step} it"
        return (f"lr {lr:g} on a cosine down to {lr * self.floor:g} over the iterations the time budget "
                f"allows")
