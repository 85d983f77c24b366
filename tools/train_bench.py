"""``python tools/train_bench.py``: one training step of the release's set-up against dagl-train's, side by side.

A training step is what ``dagl-train`` repeats: forward, L2 loss, backward and an Adam step, on one
global batch of random crops. Every set-up trains the same seeded network on the same batch, each in
a fresh process (its own thread count; the torchrun set-ups in their own process group), and the
set-ups are run in turns, round after round, so a neighbour that loads the machine for a while
slows all of them rather than one. The release's set-up is the authors' algorithm as they ran it:
the per-sample GFAM (``PlainGFAM``), float32, every core as a thread of one process.

The ratio printed is the release's median step time over each set-up's, same batch, same run. The CPU time
per step (rank 0's process) is the figure to read on a core shared with other work, and the first step's
wall time is what a set-up pays before its first step (torch.compile's compilation, for one).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import click


@dataclass(frozen=True)
class SetUp:
    """One way to run a training step."""

    name: str
    gfam: str
    amp: str
    ranks: int = 1
    channels_last: bool = False
    compiled: bool = False

    def describe(self, cores: int) -> str:
        threads = max(1, cores // self.ranks)
        where = (f"{self.ranks} torchrun ranks x {threads} thread" if self.ranks > 1
                 else f"1 process x {threads} threads")
        layout = ", channels_last" if self.channels_last else ""
        compiled = ", torch.compile" if self.compiled else ""
        return (f"gfam {self.gfam}, {'float32' if self.amp == 'off' else self.amp + ' autocast'}{layout}{compiled}, "
                f"{where}")


SETUPS = {s.name: s for s in [
    SetUp("release", "plain", "off"),
    SetUp("batched-fp32", "batched", "off"),
    SetUp("unfold-fp32", "unfold", "off"),
    SetUp("unfold-bf16", "unfold", "bf16"),
    SetUp("unfold-bf16-cl", "unfold", "bf16", channels_last=True),
    SetUp("unfold-bf16-compile", "unfold", "bf16", compiled=True),
    SetUp("unfold-bf16-2ranks", "unfold", "bf16", ranks=2),
    SetUp("unfold-fp32-2ranks", "unfold", "off", ranks=2),
]}


def worker(setup: SetUp, task: str, batch: int, patch: int, steps: int) -> dict | None:
    """Time ``steps`` training steps after one warm-up; under torchrun, rank 0 reports."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from dagl.tasks.configs import get_config
    from dagl.train.trainer import build_network, l2_gradients

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = build_network(task, setup.gfam, torch.device("cpu"), setup.channels_last)
    net = DistributedDataParallel(model) if world > 1 else model
    net = torch.compile(net) if setup.compiled else net
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    generator = torch.Generator().manual_seed(1)
    channels = get_config(task).channels
    clean = torch.rand(batch, channels, patch, patch, generator=generator)
    degraded = (clean + 0.05 * torch.randn(clean.shape, generator=generator)).clamp(0, 1)
    share = batch // world
    clean, degraded = clean[rank * share:(rank + 1) * share], degraded[rank * share:(rank + 1) * share]
    if setup.channels_last:
        degraded = degraded.contiguous(memory_format=torch.channels_last)
    times, cpu_times, losses = [], [], []
    for step in range(steps + 1):
        if world > 1:
            dist.barrier()
        start, cpu_start = time.perf_counter(), time.process_time()
        losses.append(l2_gradients(net, optimizer, degraded, clean, setup.amp))
        optimizer.step()
        if world > 1:
            dist.barrier()
        if step:  # the first step warms up the allocator and oneDNN's kernels, and compiles
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
        else:
            first = time.perf_counter() - start
    if world > 1:
        dist.destroy_process_group()
    return {"times": times, "cpu_times": cpu_times, "first": first, "loss": losses[0]} if rank == 0 else None


def run_once(setup: SetUp, task: str, batch: int, patch: int, steps: int, cores: int) -> dict:
    """One measurement of ``setup`` in a fresh process (or process group)."""
    threads = max(1, cores // setup.ranks)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    args = [__file__, "--worker", setup.name, "--task", task, "--batch", str(batch), "--patch", str(patch),
            "--steps", str(steps)]
    if setup.ranks > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={setup.ranks}", *args]
    else:
        command = [sys.executable, *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise click.ClickException(f"set-up {setup.name} failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


@click.command()
@click.option("--task", default="jpeg", show_default=True)
@click.option("--batch", default=8, show_default=True, type=click.IntRange(min=2), help="Global batch.")
@click.option("--patch", default=32, show_default=True, type=click.IntRange(min=16), help="Crop side.")
@click.option("--steps", default=4, show_default=True, type=click.IntRange(min=1),
              help="Timed steps per measurement (after one warm-up step).")
@click.option("--rounds", default=2, show_default=True, type=click.IntRange(min=1),
              help="Turns over all set-ups; the median is over every timed step of every round.")
@click.option("--cores", default=os.cpu_count() or 1, show_default=True, type=click.IntRange(min=1),
              help="Cores the set-ups share out (threads of one process, or one rank each).")
@click.option("--setups", default=",".join(SETUPS), show_default=True, help="Comma-separated set-ups.")
@click.option("--worker", "worker_setup", hidden=True)
def main(task: str, batch: int, patch: int, steps: int, rounds: int, cores: int, setups: str,
         worker_setup: str | None) -> None:
    """Training-step time of each set-up, and its speed-up over the release's."""
    if worker_setup:
        result = worker(SETUPS[worker_setup], task, batch, patch, steps)
        if result is not None:
            print(json.dumps(result))
        return
    chosen = [SETUPS[name] for name in setups.split(",")]
    if chosen[0].name != "release":
        chosen.insert(0, SETUPS["release"])
    times: dict[str, list[float]] = {s.name: [] for s in chosen}
    cpu_times: dict[str, list[float]] = {s.name: [] for s in chosen}
    firsts: dict[str, list[float]] = {s.name: [] for s in chosen}
    losses: dict[str, float] = {}
    for round_ in range(rounds):
        for setup in chosen:
            result = run_once(setup, task, batch, patch, steps, cores)
            times[setup.name] += result["times"]
            cpu_times[setup.name] += result["cpu_times"]
            firsts[setup.name].append(result["first"])
            losses[setup.name] = result["loss"]
            click.echo(f"round {round_ + 1}/{rounds}  {setup.name:20s} "
                       f"{statistics.median(result['times']):6.2f} s/step", err=True)
    load = os.getloadavg()[0]
    release = statistics.median(times["release"])
    click.echo(f"\n{task}, global batch {batch} of {patch}x{patch} crops, {cores} cores, "
               f"{rounds} x {steps} timed steps per set-up, load average at the end {load:.1f}\n")
    click.echo("| set-up | how | s/step (median) | crops/s | vs release | CPU s/step (rank 0) | first step (s) "
               "| first loss |")
    click.echo("|---|---|---:|---:|---:|---:|---:|---:|")
    for setup in chosen:
        median = statistics.median(times[setup.name])
        click.echo(f"| {setup.name} | {setup.describe(cores)} | {median:.2f} | {batch / median:.2f} | "
                   f"{release / median:.2f}x | {statistics.median(cpu_times[setup.name]):.2f} | "
                   f"{statistics.median(firsts[setup.name]):.1f} | {losses[setup.name]:.6f} |")


if __name__ == "__main__":
    main()
