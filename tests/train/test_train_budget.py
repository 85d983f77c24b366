"""--time-budget, --init and the keep-the-better-weights rule, on CPU at a tiny size."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import dagl
from dagl.train import Trainer, TrainingError, distributed
from dagl.train.budget import RATE_MIN_ITERATIONS, WARMUP_ITERATIONS, TimeBudget
from dagl.train.schedule import LrSchedule
from tiny_training import tiny

BUDGET = 25.0


@pytest.fixture(scope="module")
def bsd400(datasets_dir: Path) -> Path:
    return datasets_dir / "train" / "bsd400"


def test_the_budget_plans_from_the_rate_after_warm_up_and_stops_before_the_reserve():
    budget = TimeBudget(100.0, started_at=0.0)  # reserve 4 + 2 = 6 s; rate window 5 s
    assert budget.reserve == pytest.approx(6.0) and budget.rate_seconds == pytest.approx(5.0)
    # Warm-up iterations take 3 s each and do not count; then 0.5 s per iteration.
    assert budget.observe(1, 3.0, now=3.0) is None
    assert budget.observe(WARMUP_ITERATIONS, 3.0, now=6.0) is None
    now, iteration, planned = 6.0, WARMUP_ITERATIONS, None
    while planned is None:
        iteration, now = iteration + 1, now + 0.5
        planned = budget.observe(iteration, 0.5, now=now)
    assert iteration == WARMUP_ITERATIONS + 10 and now == 11.0  # 5 s of rate window, >= RATE_MIN_ITERATIONS
    assert iteration - WARMUP_ITERATIONS >= RATE_MIN_ITERATIONS
    assert budget.rate == pytest.approx(2.0)
    # 100 - 6 - 11 = 83 s left at 2 it/s, with 2 % slack: 162 more iterations.
    assert planned == 12 + int(2.0 * 83 * 0.98) == 174
    # The rate keeps constant: no re-plan. Then it doubles: the plan follows once it moves by over 2 %,
    # early or late in the run (a neighbour's load comes and goes), and stays put for smaller moves.
    assert budget.observe(20, 0.5, now=15.0) is None
    replanned = budget.observe(30, 0.25, now=16.0)  # 28 iterations in 10 s since the rate window began
    assert replanned == 30 + int(2.8 * (94 - 16.0) * 0.98) == 244 and budget.planned == 244
    late = budget.observe(150, 0.25, now=60.0)  # 148 iterations in 54 s: 2.74 it/s, the plan -1.2 %
    assert late is None and budget.planned == 244
    late = budget.observe(200, 0.25, now=68.0)  # 198 in 62 s: 3.19 it/s, the plan moves by 15 %
    assert late == 200 + int(198 / 62 * (94 - 68.0) * 0.98) == 281 and budget.planned == 281
    budget = TimeBudget(100.0, started_at=0.0)
    budget.observe(WARMUP_ITERATIONS, 3.0, now=6.0)
    assert budget.observe(WARMUP_ITERATIONS + 10, 0.5, now=11.0) == 174
    assert not budget.should_stop(173, now=90.0)
    assert budget.should_stop(174, now=90.0)  # the plan is reached
    assert budget.should_stop(100, now=93.5)  # 93.5 + 1.25 * 0.5 > 94: the next step would eat the reserve


def test_the_cosine_schedule_waits_for_the_plan_then_ends_at_the_floor():
    schedule = LrSchedule("cosine", floor=0.01)
    assert schedule(50) == 1.0  # not planned yet
    schedule.total = 100
    assert schedule(0) == 1.0
    assert schedule(50) == pytest.approx(0.505)
    assert schedule(100) == pytest.approx(0.01) and schedule(150) == pytest.approx(0.01)
    step = LrSchedule("step", step=3, gamma=0.5)
    assert [step(i) for i in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]


@pytest.mark.slow
def test_time_budget_run_stops_within_the_budget_and_writes_loadable_weights(tmp_path, bsd400):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "dagl.train.cli", "--task", "jpeg", "--data", str(bsd400), "--n-images", "4",
               "--batch-size", "2", "--patch", "16", "--workers", "0", "--device", "cpu", "--log-every", "1",
               "--val-crop", "16", "--val-limit", "1", "--time-budget", str(BUDGET), "--out", str(out)]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUDGET + 60)
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    assert wall < BUDGET + 10, f"took {wall:.1f} s for a {BUDGET} s budget (imports included)"
    model = dagl.load("jpeg", weights=out / "dagl-jpeg.safetensors")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    log = (out / "train.log").read_text()
    assert "time budget: 25 s" in log and "cosine" in log
    done = [line for line in log.splitlines() if "iterations this session" in line]
    iterations = int(done[0].split("done: ")[1].split()[0])
    assert iterations >= 1
    card = (out / "dagl-jpeg.md").read_text()
    assert f"Iterations: {iterations}\n" in card and "within a budget of 25 s" in card
    assert torch.load(out / "checkpoint.pt", weights_only=True)["iteration"] == iterations


def _scripted_validation(monkeypatch, means: list[float]) -> None:
    """Trainer.validate returns these means in turn (start, then trained), so the choice is forced."""
    queue = list(means)
    monkeypatch.setattr(Trainer, "validate", lambda self, model: {"q10": queue[0], "mean": queue.pop(0)})


@pytest.mark.slow
@pytest.mark.parametrize("start, trained, kept", [(30.0, 20.0, "init"), (20.0, 30.0, "trained")])
def test_init_weights_ship_unless_training_validates_better(tmp_path, bsd400, monkeypatch, start, trained, kept):
    torch.manual_seed(5)
    init = dagl.save_safetensors(dagl.create("jpeg"), tmp_path / "init.safetensors", fp16=True,
                                 metadata={"dagl.iterations": "7"})
    _scripted_validation(monkeypatch, [start, trained])
    config = tiny(tmp_path / "run", bsd400, task="jpeg", sigma=None, iterations=2, init=init, lr=1e-2)
    snapshots = []
    trainer = Trainer(config, distributed.setup("cpu"), on_snapshot=lambda t: snapshots.append(t.iteration),
                      snapshot_seconds=0)
    assert trainer.init_iterations == 7
    weights = trainer.fit()
    assert snapshots == [1]  # during training; the end writes the final files instead
    assert trainer.kept == kept
    shipped = dagl.read_state_dict(weights)
    started = dagl.read_state_dict(init)
    same = all(torch.equal(shipped[k], started[k]) for k in started)
    assert same == (kept == "init")
    card = weights.with_suffix(".md").read_text()
    assert "2 in this run + 7 before = 9" in card
    assert ("STARTING weights" in card) == (kept == "init")
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as fh:
        assert fh.metadata()["dagl.iterations"] == ("7" if kept == "init" else "9")


def test_init_without_val_and_resume_with_budget_are_refused(tmp_path, bsd400):
    ctx = distributed.setup("cpu")
    with pytest.raises(TrainingError, match="--init needs --val"):
        Trainer(tiny(tmp_path, bsd400, init=tmp_path / "w.safetensors", val=None), ctx)
    with pytest.raises(TrainingError, match="--resume continues"):
        Trainer(tiny(tmp_path, bsd400, time_budget=10.0, resume=True), ctx)
    with pytest.raises(TrainingError, match="--init: weights file not found"):
        Trainer(tiny(tmp_path, bsd400, init=tmp_path / "none.safetensors"), ctx)
