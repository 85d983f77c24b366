"""``python tools/remote_train.py``: one budgeted training run on a remote GPU host, returned within its limits.

A lent or rented GPU usually comes with a time budget, a folder that travels to it and a folder that
comes back under limits (how many files, how large). ``dagl-train --time-budget --init`` already
trains within a budget; this script adds only what such a host needs around it, for any host:

1. ``dagl-train --time-budget (BUDGET - SCORE_SECONDS) --init WEIGHTS`` with the options after ``--``
   passed through; the budget is dagl-train's own (no second clock here);
2. with ``--score ARGS`` (repeatable), ``dagl-eval ARGS --model <the shipped weights> --report ...``,
   each given at most ``--score-seconds`` (a hang guard: the time kept out of training for it);
3. copies into OUTPUT, most useful first (weights, card, score reports, log, checkpoint, the rest), every
   file that fits ``--max-files`` / ``--max-file-mib`` / ``--max-output-mib`` (files already in OUTPUT
   count), and writes ``remote_train.json``: every step's command and exit status, every file returned
   and every file left out with the reason.

Relative ``--data`` and ``--init`` paths are read from ``--input``, which also becomes ``$DAGL_DATASETS``
for the named sets of ``--val`` and ``--score``. See docs/training.md ("Remote runs").
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click

from dagl.artefact.naming import weights_name
from dagl.atomic import atomic_path, write_atomic
from dagl.cli.common import Command, device_option, sigma_option, task_option
from dagl.device import is_auto
from dagl.errors import DaglError, UserInputError

SUMMARY_NAME = "remote_train.json"
#: Room kept in OUTPUT's limits for the summary itself (one file, at most this many bytes).
SUMMARY_RESERVE_BYTES = 64 * 2**10
MIB = 2**20


@dataclass(frozen=True)
class Limits:
    """What the output folder may hold; ``None`` is no limit."""

    max_files: int | None = None
    max_file_bytes: int | None = None
    max_total_bytes: int | None = None

    def refusal(self, size: int, files: int, total: int) -> str | None:
        """Why one more file of ``size`` bytes does not fit beside ``files`` files of ``total`` bytes."""
        if self.max_file_bytes is not None and size > self.max_file_bytes:
            return f"{size / MIB:.1f} MiB is over the {self.max_file_bytes / MIB:g} MiB a file may have"
        if self.max_files is not None and files + 1 > self.max_files:
            return f"the output already holds the {self.max_files} files it may have"
        if self.max_total_bytes is not None and total + size > self.max_total_bytes:
            return (f"{size / MIB:.1f} MiB would take the output past its {self.max_total_bytes / MIB:g} MiB "
                    f"({total / MIB:.1f} MiB used)")
        return None


@dataclass
class Delivery:
    """What :func:`deliver` copied and what it left out (name, bytes, and why)."""

    kept: list[dict] = field(default_factory=list)
    left_out: list[dict] = field(default_factory=list)


def priority(path: Path, shipped_stem: str) -> int:
    """The order files are offered to the output: the weights that ship and their card first, then the
    score reports, the logs, the checkpoint (continuing exactly), the rest (e.g. plots)."""
    if path.stem == shipped_stem and path.suffix in (".safetensors", ".md"):
        return 0
    return {".md": 1, ".csv": 1, ".json": 1, ".log": 2, ".pt": 3}.get(path.suffix, 4)


def deliver(files: Sequence[Path], output: Path, limits: Limits) -> Delivery:
    """Copy ``files``, in their order, into ``output`` while they fit ``limits``, with room kept for the
    summary; each copy is atomic, so a run cut short leaves only whole files."""
    output.mkdir(parents=True, exist_ok=True)
    existing = [p for p in output.iterdir() if p.is_file() and p.name != SUMMARY_NAME]
    files_used, bytes_used = len(existing) + 1, sum(p.stat().st_size for p in existing) + SUMMARY_RESERVE_BYTES
    taken = {p.name for p in existing} | {SUMMARY_NAME}
    done = Delivery()
    for path in files:
        size = path.stat().st_size
        reason = ("a file of that name is already there (not replaced)" if path.name in taken
                  else limits.refusal(size, files_used, bytes_used))
        if reason is not None:
            done.left_out.append({"name": path.name, "from": str(path), "bytes": size, "reason": reason})
            continue
        with atomic_path(output / path.name) as tmp:
            shutil.copyfile(path, tmp)
        taken.add(path.name)
        files_used, bytes_used = files_used + 1, bytes_used + size
        done.kept.append({"name": path.name, "bytes": size})
    return done


def entry_point(name: str) -> str:
    """The ``dagl-*`` command installed beside this Python (so a venv's is used even if not on PATH)."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise DaglError(f"{name} not found: install the project (pip install -e .) in this Python first")
    return found


def run_step(argv: list[str], env: dict[str, str], timeout: float | None = None) -> dict:
    """One child command, its output passed through; its exit status recorded, never raised."""
    click.echo(f"remote_train: {shlex.join(argv)}", err=True)
    try:
        code = subprocess.run(argv, env=env, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return {"command": shlex.join(argv), "returncode": None, "error": f"stopped after {timeout:g} s"}
    return {"command": shlex.join(argv), "returncode": code}


def _under(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else base / path


@dataclass
class Plan:
    """One remote run, as the options gave it."""

    task: str
    sigma: int | None
    budget: float
    input: Path
    data: list[Path]
    output: Path
    limits: Limits
    init: Path | None = None
    device: str | None = None
    scores: list[list[str]] = field(default_factory=list)
    score_seconds: float = 120.0
    train_args: list[str] = field(default_factory=list)

    @property
    def train_budget(self) -> float:
        return self.budget - (self.score_seconds * len(self.scores))

    def check(self) -> None:
        """The user's mistakes, before anything runs."""
        if self.train_budget < 1:
            raise UserInputError(f"--budget {self.budget:g} leaves no time for training after "
                                 f"{len(self.scores)} x --score-seconds {self.score_seconds:g}")
        for folder in self.data:
            if not folder.is_dir():
                raise UserInputError(f"--data: no folder at {folder}")
        if self.init is not None and not self.init.is_file():
            raise UserInputError(f"--init: no weights file at {self.init}")
        room = self.limits.refusal(SUMMARY_RESERVE_BYTES, 0, 0)
        if room is not None:
            raise UserInputError(f"the output limits leave no room for {SUMMARY_NAME}: {room}")


def train_argv(plan: Plan, run: Path) -> list[str]:
    """dagl-train on the plan's data into ``run``, within the training share of the budget."""
    argv = [entry_point("dagl-train"), "--task", plan.task, "--out", str(run),
            "--time-budget", f"{plan.train_budget:g}"]
    argv += ["--sigma", str(plan.sigma)] if plan.sigma is not None else []
    argv += ["--init", str(plan.init)] if plan.init is not None else []
    argv += ["--device", plan.device] if plan.device else []
    for folder in plan.data:
        argv += ["--data", str(folder)]
    return argv + plan.train_args


def score_argv(plan: Plan, args: list[str], weights: Path, report: Path) -> list[str]:
    """dagl-eval of the shipped ``weights`` with the user's ``args``, its report into ``report``."""
    argv = [entry_point("dagl-eval"), "--task", plan.task, *args, "--model", str(weights), "--report", str(report)]
    return argv + (["--device", plan.device] if plan.device else [])


def remote_run(plan: Plan, work: Path) -> dict:
    """Train, score, deliver; returns the summary written to OUTPUT (``ok`` false when a step failed)."""
    env = dict(os.environ, DAGL_DATASETS=str(plan.input.resolve()))
    run = work / "run"
    summary: dict = {"task": plan.task, "sigma": plan.sigma, "budget_seconds": plan.budget,
                     "train_budget_seconds": plan.train_budget, "limits": asdict(plan.limits), "steps": []}
    summary["steps"].append({"step": "train", **run_step(train_argv(plan, run), env)})
    weights = run / weights_name(plan.task, plan.sigma)
    reports = []
    for i, args in enumerate(plan.scores):
        if not weights.is_file():
            summary["steps"].append({"step": f"score {i + 1}", "skipped": f"dagl-train wrote no {weights.name}"})
            continue
        report = work / f"score-{i + 1}"
        summary["steps"].append({"step": f"score {i + 1}",
                                 **run_step(score_argv(plan, args, weights, report), env, plan.score_seconds)})
        reports.append(report)
    files = [p for folder in (run, *reports) if folder.is_dir() for p in sorted(folder.iterdir()) if p.is_file()]
    files.sort(key=lambda p: priority(p, weights.stem))  # stable: folder and name order within a rank
    delivery = deliver(files, plan.output, plan.limits)
    summary.update(ok=all(s.get("returncode") == 0 for s in summary["steps"]), returned=delivery.kept,
                   left_out=delivery.left_out)
    write_atomic(plan.output / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")
    for entry in delivery.left_out:
        click.echo(f"remote_train: left out {entry['name']}: {entry['reason']}", err=True)
    return summary


def _mib(value: float | None) -> int | None:
    return None if value is None else int(value * MIB)


@click.command("remote_train", cls=Command)
@task_option(required=True, help="Which DAGL network to train.")
@sigma_option()
@click.option("--budget", required=True, type=click.FloatRange(min=1), metavar="SECONDS",
              help="Wall-clock seconds for training and scoring together.")
@click.option("--input", "input_dir", default=".", show_default=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The folder that travelled to the host: relative --data and --init are read from it, and "
                   "it is $DAGL_DATASETS for named sets (--val, --score).")
@click.option("--data", multiple=True, required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Training folder (dagl-train --data); repeat for several.")
@click.option("--init", type=click.Path(dir_okay=False, path_type=Path), metavar="WEIGHTS",
              help="Weights to continue (dagl-train --init; needs --val among the dagl-train options).")
@click.option("--output", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="The folder that comes back; only what fits the limits below is copied there.")
@click.option("--max-files", type=click.IntRange(min=1), help="Files OUTPUT may hold, the summary included.")
@click.option("--max-file-mib", type=click.FloatRange(min=0, min_open=True), help="MiB one file may have.")
@click.option("--max-output-mib", type=click.FloatRange(min=0, min_open=True), help="MiB OUTPUT may hold in all.")
@click.option("--score", "scores", multiple=True, metavar="ARGS",
              help="dagl-eval options to score the shipped weights with, e.g. \"--dataset classic5 --quality 10\"; "
                   "repeat for several sets.")
@click.option("--score-seconds", default=120.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds kept out of training for each --score, and the most one may take.")
@device_option()
@click.option("--work", type=click.Path(file_okay=False, path_type=Path),
              help="Keep dagl-train's run folder and the score reports here  [default: a temporary folder]")
@click.argument("train_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- DAGL-TRAIN OPTIONS]")
def command(task: str, sigma: int | None, budget: float, input_dir: Path, data: tuple[Path, ...], init: Path | None,
            output: Path, max_files: int | None, max_file_mib: float | None, max_output_mib: float | None,
            scores: tuple[str, ...], score_seconds: float, device: str, work: Path | None,
            train_args: tuple[str, ...]) -> None:
    """Train with dagl-train within BUDGET, score with dagl-eval, return what fits OUTPUT's limits.

    \b
    python tools/remote_train.py --task jpeg --budget 3600 --input data --data train/bsd400 \\
        --init dagl-jpeg.safetensors --output returned --max-files 20 --max-output-mib 200 \\
        --score "--dataset classic5 --quality 10" -- --val-every 0
    """
    plan = Plan(task=task, sigma=sigma, budget=budget, input=input_dir, data=[_under(input_dir, d) for d in data],
                output=output, limits=Limits(max_files, _mib(max_file_mib), _mib(max_output_mib)),
                init=None if init is None else _under(input_dir, init), device=None if is_auto(device) else device,
                scores=[shlex.split(s) for s in scores], score_seconds=score_seconds, train_args=list(train_args))
    plan.check()
    folder = work or Path(tempfile.mkdtemp(prefix="dagl-remote-"))
    try:
        summary = remote_run(plan, folder)
    finally:
        if work is None:
            shutil.rmtree(folder, ignore_errors=True)
    failed = [s for s in summary["steps"] if s.get("returncode") != 0]
    if failed:
        names = ", ".join(s["step"] for s in failed)
        # Exit 2 from a child is its options refused: the options passed through are the user's mistake.
        error = UserInputError if any(s.get("returncode") == 2 for s in failed) else DaglError
        raise error(f"{names} failed; what there was is in {output} (see {SUMMARY_NAME})")
    click.echo(f"remote_train: {len(summary['returned'])} files in {output}, {len(summary['left_out'])} left out")


def main(argv: list[str] | None = None) -> int:
    return command.run(argv)


if __name__ == "__main__":
    sys.exit(main())
