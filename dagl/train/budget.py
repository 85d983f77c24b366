"""``--time-budget``: plan a run's iterations from its measured rate, and stop in time.

The budget is wall clock from the start of the command and covers loading, training, the
validations and writing the outputs. The first few iterations are slow (DataLoader start-up,
cuDNN autotuning, compilation), so the rate is measured after them, over a short rate window; the
planned count then fixes the length of the cosine lr schedule. Whatever the plan, the run stops
before an iteration that would eat into the time reserved for the final validation and the files.
"""

from __future__ import annotations

import time

#: Iterations excluded from the rate: they pay for warm-up, not for training.
WARMUP_ITERATIONS = 2
#: The rate window needs at least this many measured iterations...
RATE_MIN_ITERATIONS = 3
#: ... and lasts this fraction of the budget, clamped to [RATE_MIN_SECONDS, RATE_MAX_SECONDS].
RATE_FRACTION = 0.05
RATE_MIN_SECONDS = 1.0
RATE_MAX_SECONDS = 20.0
#: Re-plan whenever the plan moves by more than this (relative): the cosine is stretched or shrunk to
#: the new length, which moves the lr by a few per cent at most, and the run still ends at the deadline.
REPLAN_CHANGE = 0.02
#: Slack on the next iteration's duration when deciding whether it still fits.
STEP_SAFETY = 1.25
#: Fixed part of the reserve: the final checkpoint, the FP16 weights, their reload and the card.
WRITE_SECONDS = 4.0
#: The final validation repeats the first one, minus its one-off start-up costs; this covers noise.
VALIDATION_SAFETY = 1.2


class TimeBudget:
    """Deadline bookkeeping of one run (rank 0's clock decides; see :func:`dagl.train.distributed`)."""

    def __init__(self, seconds: float, started_at: float | None = None) -> None:
        self.seconds = float(seconds)
        self.started_at = time.monotonic() if started_at is None else started_at
        self.deadline = self.started_at + self.seconds
        self.reserve = WRITE_SECONDS + 0.02 * self.seconds
        self.planned: int | None = None
        self.rate: float | None = None  # it/s measured over the rate window
        self._rate_start: tuple[int, float] | None = None
        self._last_step = 0.0

    @property
    def rate_seconds(self) -> float:
        return min(max(RATE_FRACTION * self.seconds, RATE_MIN_SECONDS), RATE_MAX_SECONDS)

    def reserve_for_validation(self, validation_seconds: float) -> None:
        """Keep room for the final validation, measured on the starting weights (plus slack)."""
        self.reserve = WRITE_SECONDS + 0.02 * self.seconds + VALIDATION_SAFETY * validation_seconds

    def left(self, now: float | None = None) -> float:
        return self.deadline - (time.monotonic() if now is None else now)

    def observe(self, iteration: int, step_seconds: float, now: float | None = None) -> int | None:
        """Record one finished iteration; returns the planned total the first time it is known."""
        now = time.monotonic() if now is None else now
        self._last_step = step_seconds
        if self.planned is not None:
            return self._replan(iteration, now)
        if iteration == WARMUP_ITERATIONS or (iteration > WARMUP_ITERATIONS and self._rate_start is None):
            self._rate_start = (iteration, now)
            return None
        if self._rate_start is None:
            return None
        first, start = self._rate_start
        if iteration - first < RATE_MIN_ITERATIONS or now - start < self.rate_seconds:
            return None
        self.planned = self._plan(iteration, now)
        return self.planned

    def _plan(self, iteration: int, now: float) -> int:
        first, start = self._rate_start
        self.rate = (iteration - first) / (now - start)
        training_left = max(0.0, self.deadline - self.reserve - now)
        return iteration + int(self.rate * training_left * 0.98)

    def _replan(self, iteration: int, now: float) -> int | None:
        """Re-plan with the longer measurement when it moves the plan by over :data:`REPLAN_CHANGE`,
        at any point of the run: early on the rate is still settling (caches, allocator, clocks), and
        on a shared machine it moves with the neighbours' load all along; a plan fixed early would
        stop a run long before its deadline when the machine frees up, or run it into the reserve."""
        planned = self._plan(iteration, now)
        if abs(planned - self.planned) <= REPLAN_CHANGE * self.planned:
            return None
        self.planned = planned
        return planned

    def should_stop(self, iteration: int, now: float | None = None) -> bool:
        """Stop at the plan, or before an iteration that would not end ahead of the reserve."""
        now = time.monotonic() if now is None else now
        if self.planned is not None and iteration >= self.planned:
            return True
        return now + STEP_SAFETY * self._last_step > self.deadline - self.reserve
