"""One training window: everything a lent GPU machine should do in a single device run.

``python -m dagl.train.window run`` (what ``tools/gpu-window.sh`` calls on the device), in order:

1. a throughput probe (:mod:`dagl.train.probe`, at most ``--probe-seconds``) that picks the fastest
   correct training set-up and logs every candidate's it/s;
2. ``dagl-train``'s loop for the ``jpeg`` model (one model for q 10-40, the paper's recipe otherwise)
   under ``--time-budget``, from the best weights at hand (``--init auto``), shipping the better of
   the starting and the trained weights; the float32 state lands in the returned folder at least
   every ``--snapshot-seconds``, so a window cut short still returns its progress;
3. Classic5 q10 and LIVE1 q10 with the paper's protocol, the GPU parity tests, one 512x512 image
   timed at FP32 and FP16 (:mod:`dagl.train.window_eval`);
4. the model card with those numbers, ``window.json`` and ``window.md``.

``prepare`` (run here, before the device call) copies the data the window needs into an ignored
folder that travels with the call; ``join`` rebuilds the float32 weights from their returned parts.
``--tiny`` runs the same steps at a toy size on the CPU; the test suite does so.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click
import torch

from ..configs import get_config
from ..pretrained import WEIGHTS_DIR, weights_name
from ..weights import WeightsError, load_into
from . import distributed
from .config import TrainConfig, TrainingError
from .data import TrainingPairs, load_images
from .probe import SetUp, probe
from .release import device_name
from .window_eval import CAR_CELLS, car_protocol, parity_tests, time_image, timing_image
from .window_files import copy_into, join_float32, part_names, write_float32_parts

TASK = "jpeg"
STEM = Path(weights_name(TASK)).stem
#: What ``prepare`` copies: the training set, and the CAR sets' clean images with their stored JPEGs
#: (Classic5 at every quality, since training validates on all four; LIVE1 at q10 only).
DATA_PARTS = (("train/bsd400", None), ("classic5", ("jpeg_q10", "jpeg_q20", "jpeg_q30", "jpeg_q40")),
              ("live1", ("jpeg_q10",)))
DEFAULT_WINDOW_DIR = Path(".window")
#: The device's return limit on the folder's total (64 MiB) with room for the logs.
TRAVEL_LIMIT_BYTES = 60 * 2**20
FLOAT32_INIT = "init/dagl-jpeg-fp32.safetensors"


@dataclass(frozen=True)
class WindowSize:
    """Sizes and time shares of one window; :data:`FULL` for a GPU, :data:`TINY` for the CPU test."""

    batch_size: int = 32
    patch: int = 64
    max_iterations: int | None = None  # a cap on the planned iterations (keeps the test short)
    n_images: int | None = None
    val_crop: int = 96
    workers: int = 8
    log_every: int = 100
    probe_seconds: float = 45.0
    #: Kept after training for the evaluation, the parity tests, the timing and the reports.
    after_seconds: float = 150.0
    eval_limit: int | None = None
    eval_crop: int | None = None
    val_limit: int | None = None
    timing_size: int = 512
    timing_repeats: int = 3
    timing_warmup: int = 1
    parity_timeout: float = 120.0
    #: Seconds a step must have left to start: (evaluate, parity, timing); their sum + writing fits
    #: in ``after_seconds``.
    needs: tuple[float, float, float] = (60.0, 40.0, 20.0)


FULL = WindowSize()
#: 44 is the smallest side the reference chop takes without padding. The steps after training are a
#: few forward passes here and always run (needs 0), so the test sees every step whatever the load.
TINY = WindowSize(batch_size=2, patch=16, max_iterations=6, n_images=4, val_crop=16, val_limit=1, workers=0,
               log_every=1, probe_seconds=6.0, after_seconds=15.0, eval_limit=1, eval_crop=44, timing_size=44,
               timing_repeats=1, timing_warmup=0, parity_timeout=40.0, needs=(0.0, 0.0, 0.0))


def repo_root() -> Path:
    """The checkout (for the parity tests): this file's, or the working directory when the package
    runs from a copy of the tree (``tools/gpu-window.sh``'s fallback runs it from the checkout)."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "tests" / "test_gpu_parity.py").is_file() else Path.cwd()


def say(message: str) -> None:
    """Progress for the window log: plain lines, flushed, readable without a terminal."""
    print(f"{dt.datetime.now().strftime('%H:%M:%S')} {message}", flush=True)


# ---- prepare ---------------------------------------------------------------------------------
def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def prepare_data(source: Path, dest: Path) -> int:
    """Copy :data:`DATA_PARTS` from ``source`` into ``dest``; returns the bytes copied."""
    for name, subfolders in DATA_PARTS:
        origin = source / name
        if not origin.is_dir():
            raise click.ClickException(f"{origin} not found (pass --datasets or set DAGL_DATASETS)")
        target = dest / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for path in origin.iterdir():
            if path.is_file():
                shutil.copy2(path, target / path.name)
        for sub in subfolders or ():
            shutil.copytree(origin / sub, target / sub)
    return folder_bytes(dest)


# ---- run ---------------------------------------------------------------------------------------
def resolve_init(init: str, window_dir: Path) -> Path | None:
    """``auto``: the float32 weights ``prepare --continue-from`` left, else the shipped weights, else none."""
    if init == "none":
        return None
    if init != "auto":
        return Path(init)
    for candidate in (window_dir / FLOAT32_INIT, WEIGHTS_DIR / weights_name(TASK)):
        if candidate.is_file():
            return candidate
    return None


def starting_state(init: Path | None, seed: int) -> dict[str, torch.Tensor]:
    """The weights the probe compares set-ups on: the run's own starting point."""
    from ..model import create

    torch.manual_seed(seed)
    model = create(TASK)
    if init is not None:
        try:
            load_into(model, init)
        except WeightsError as exc:
            raise click.ClickException(f"--init: {exc}") from None
    return model.state_dict()


def probe_batch(train: Path, profile: WindowSize, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One training batch made exactly as the training loop makes them."""
    clean, _, _ = load_images([train], get_config(TASK), profile.patch, profile.n_images)
    pairs = TrainingPairs(clean, None, get_config(TASK), None, profile.patch, seed)
    samples = [pairs[(0, i)] for i in range(profile.batch_size)]
    return torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])


class Window:
    """The state of one window run; each step records what it did in :attr:`report`."""

    def __init__(self, data: Path, out: Path, budget: float, profile: WindowSize, device: str, init: Path | None,
                 seed: int, snapshot_seconds: float, command: str) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + budget
        self.data, self.out, self.profile, self.seed = data, out, profile, seed
        self.device = torch.device(device)
        self.init = init
        self.snapshot_seconds = snapshot_seconds
        self.work = Path(tempfile.mkdtemp(prefix="dagl-window-"))
        self.weights: Path | None = None
        self.report: dict = {"started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                             "command": command, "budget_seconds": budget, "device": device_name(self.device),
                             "torch": torch.__version__, "profile": profile.__dict__,
                             "init": None if init is None else str(init), "steps": {}}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def step(self, name: str, needs: float, action) -> None:
        """Run one step if ``needs`` seconds remain; its failure is recorded, never fatal."""
        started = time.monotonic()
        if self.left() < needs:
            self.report["steps"][name] = {"skipped": f"only {self.left():.0f} s of the window left"}
            say(f"{name}: skipped, {self.left():.0f} s left")
            return
        say(f"{name}: start ({self.left():.0f} s of the window left)")
        try:
            result = action()
            self.report["steps"][name] = {"ok": True, "result": result}
        except Exception as exc:  # a window must return what it has, whatever broke
            self.report["steps"][name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
            say(f"{name}: FAILED: {type(exc).__name__}: {exc}")
        self.report["steps"][name]["seconds"] = round(time.monotonic() - started, 2)

    # -- the steps --------------------------------------------------------------------------
    def run_probe(self) -> dict:
        batch = probe_batch(self.data / "train" / "bsd400", self.profile, self.seed)
        chosen, results = probe(TASK, starting_state(self.init, self.seed), batch, self.device,
                                self.profile.probe_seconds, tiny=self.profile is TINY, log=say)
        self.setup = chosen
        return {"chosen": chosen.__dict__ | {"label": chosen.label},
                "candidates": [r.to_dict() for r in results]}

    def config(self, setup: SetUp, budget: float, workers: int) -> TrainConfig:
        p = self.profile
        return TrainConfig(task=TASK, data=[self.data / "train" / "bsd400"], iterations=p.max_iterations,
                           out=self.work / "run", batch_size=p.batch_size, patch=p.patch, val="classic5",
                           val_every=0, val_crop=p.val_crop, val_limit=p.val_limit, seed=self.seed, workers=workers,
                           device=str(self.device), log_every=p.log_every, checkpoint_every=10**9,
                           n_images=p.n_images, time_budget=budget, init=self.init, amp=setup.amp,
                           gfam=setup.gfam, channels_last=setup.channels_last, compile=setup.compile,
                           command=self.report["command"])

    def snapshot(self, trainer) -> None:
        """The latest float32 state and log into the returned folder (a cut-short window keeps them)."""
        write_float32_parts(trainer.model.state_dict(), self.out, STEM,
                            {"dagl.task": TASK, "dagl.iterations": str(trainer.init_iterations + trainer.iteration),
                             "dagl.snapshot": "latest"})
        copy_into([trainer.out / "train.log"], self.out)
        say(f"snapshot: float32 weights at iteration {trainer.iteration} written to {self.out}")

    def train(self) -> dict:
        from .trainer import Trainer

        setup = getattr(self, "setup", SetUp())
        budget = self.left() - self.profile.after_seconds
        if budget < 5:
            raise TrainingError(f"only {budget:.0f} s left for training")
        ctx = distributed.setup(str(self.device))
        # If the chosen set-up breaks past the probe's few steps (or DataLoader workers cannot start,
        # e.g. a small /dev/shm), train once more with the reference set-up and no workers.
        attempts = [(setup, self.profile.workers), (SetUp(), 0)]
        for attempt, (chosen, workers) in enumerate(attempts):
            run = self.work / "run"
            if run.exists():
                shutil.rmtree(run)
            budget = self.left() - self.profile.after_seconds
            try:
                trainer = Trainer(self.config(chosen, budget, workers), ctx, on_snapshot=self.snapshot,
                                  snapshot_seconds=self.snapshot_seconds)
                weights = trainer.fit()
                break
            except TrainingError:
                raise
            except Exception as exc:  # e.g. a compiled set-up that fails past the probe's steps
                if attempt + 1 == len(attempts) or self.left() - self.profile.after_seconds < 30:
                    raise
                say(f"train: {chosen.label} failed ({type(exc).__name__}: {exc}); "
                    f"again with {attempts[-1][0].label}, no DataLoader workers")
        metadata = {"dagl.task": TASK, "dagl.iterations": str(trainer.init_iterations
                                                              + (trainer.iteration if trainer.kept == "trained" else 0)),
                    "dagl.kept": trainer.kept}
        write_float32_parts(trainer.shipped_state, self.out, STEM, metadata)
        copy_into([weights, trainer.out / "train.log"], self.out)
        self.weights = self.out / weights.name
        self.card = weights.with_suffix(".md")
        return {"setup": chosen.label, "iterations": trainer.iteration, "planned": trainer.budget.planned,
                "training_seconds": round(trainer.train_seconds, 1),
                "its": (trainer.session_iterations / trainer.train_seconds) if trainer.train_seconds else None,
                "init_iterations": trainer.init_iterations, "kept": trainer.kept,
                "start_validation": trainer.start_validation, "trained_validation": trainer.trained_validation,
                "n_images": len(trainer.image_paths)}

    def evaluate(self) -> list[dict]:
        rows = car_protocol(self.weights, self.data, str(self.device), self.profile.eval_limit,
                            self.profile.eval_crop)
        for row in rows:
            if "psnr" in row:
                say(f"eval {row['dataset']} q{row['quality']}: {row['psnr']:.2f} dB (input {row['input_psnr']:.2f}, "
                    f"paper x8 {row['paper_psnr_x8']:.2f}), {row['images']} images")
        return rows

    def parity(self) -> dict:
        result = parity_tests(repo_root(), self.data, self.device.type == "cuda",
                              min(self.profile.parity_timeout, max(self.left() - 10, 10)))
        say(f"parity: {result['counts']} (exit {result['returncode']})")
        return result

    def timing(self) -> dict:
        image = timing_image(self.data, self.profile.timing_size)
        result = time_image(self.weights, image, str(self.device), self.profile.timing_repeats,
                            self.profile.timing_warmup)
        say(f"timing {image.shape[0]}x{image.shape[1]}: "
            + ", ".join(f"{k} {v['median_seconds']:.3f} s" for k, v in result.items()
                        if isinstance(v, dict) and "median_seconds" in v))
        return result

    # -- outputs ------------------------------------------------------------------------------
    def write(self) -> None:
        self.report["wall_seconds"] = round(time.monotonic() - self.started, 1)
        text = json.dumps(self.report, indent=2, default=str)
        (self.out / "window.json").write_text(text + "\n", encoding="utf-8")
        (self.out / "window.md").write_text(window_markdown(self.report), encoding="utf-8")
        card = getattr(self, "card", None)
        if card is not None and card.is_file():
            (self.out / card.name).write_text(card.read_text(encoding="utf-8") + "\n" + card_section(self.report),
                                              encoding="utf-8")
        shutil.rmtree(self.work, ignore_errors=True)


def _result(report: dict, step: str):
    entry = report["steps"].get(step, {})
    return entry.get("result") if entry.get("ok") else None


def car_table(report: dict) -> str:
    """Classic5 q10 / LIVE1 q10: the JPEG input, these weights, the paper (x8 ensemble)."""
    rows = _result(report, "evaluate") or []
    lines = ["| set | JPEG input (dB) | these weights (dB) | paper, x8 ensemble (dB) |", "|---|---|---|---|"]
    for dataset, quality in CAR_CELLS:
        row = next((r for r in rows if r["dataset"] == dataset and r["quality"] == quality and "psnr" in r), None)
        if row is None:
            lines.append(f"| {dataset} q{quality} | - | not measured | - |")
            continue
        size = f" ({row['images']} images" + (f", {row['crop']}x{row['crop']} crops)" if row["crop"] else ")")
        lines.append(f"| {dataset} q{quality}{size} | {row['input_psnr']:.2f} | **{row['psnr']:.2f}** | "
                     f"{row['paper_psnr_x8']:.2f} |")
    return "\n".join(lines)


def card_section(report: dict) -> str:
    """What the card adds after a window: where, how fast, and the paper-protocol PSNR."""
    train = _result(report, "train") or {}
    probe_result = _result(report, "probe") or {}
    its = f"{train['its']:.2f} it/s" if train.get("its") else "unknown it/s"
    return (f"## Training window ({report['started']})\n\n"
            f"- GPU: {report['device']}; torch {report['torch']}\n"
            f"- Data: BSD400 ({train.get('n_images', '?')} images), JPEG made with Pillow on the fly\n"
            f"- Iterations in this window: {train.get('iterations', '?')} "
            f"(planned {train.get('planned') or 'before the rate was measured: stopped by the clock'}), "
            f"{train.get('training_seconds', '?')} s of training, {its}\n"
            f"- Set-up chosen by the throughput probe: {probe_result.get('chosen', {}).get('label', 'default')}\n"
            f"- Window wall time: {report.get('wall_seconds', '?')} s of a {report['budget_seconds']:.0f} s budget\n\n"
            f"## Evaluation, paper protocol\n\nStored MATLAB JPEGs, the release's reference chop, no x8 ensemble, "
            f"float32 on {report['device']}:\n\n{car_table(report)}\n")


def window_markdown(report: dict) -> str:
    """The human summary of ``window.json``: every step, the probe table, the numbers."""
    lines = [f"# DAGL training window, {report['started']}", "", f"- Device: {report['device']}",
             f"- Command: `{report['command']}`", f"- Wall time: {report.get('wall_seconds')} s of "
             f"{report['budget_seconds']:.0f} s", "", "## Steps", "", "| step | status | seconds |", "|---|---|---|"]
    for name, entry in report["steps"].items():
        status = "ok" if entry.get("ok") else entry.get("skipped") or f"FAILED: {entry.get('error', '')[:120]}"
        lines.append(f"| {name} | {status} | {entry.get('seconds', '-')} |")
    probe_result = _result(report, "probe")
    if probe_result:
        lines += ["", "## Throughput probe", "", "| set-up | it/s | first loss | note |", "|---|---|---|---|"]
        for c in probe_result["candidates"]:
            its = f"{c['its']:.2f}" if c.get("its") else "-"
            loss = f"{c['loss']:.6g}" if c.get("loss") is not None else "-"
            lines.append(f"| {c['setup']['label']} | {its} | {loss} | {c.get('note', '')} |")
        lines.append(f"\nChosen: {probe_result['chosen']['label']}")
    lines += ["", "## Paper protocol", "", car_table(report)]
    parity = _result(report, "parity")
    if parity:
        lines += ["", "## GPU parity tests", "", f"`{parity['command']}`: {parity['counts']}, "
                  f"exit {parity['returncode']}"]
    timing = _result(report, "timing")
    if timing:
        lines += ["", "## Timing", "", "| precision | median seconds |", "|---|---|"]
        lines += [f"| {k} | {v.get('median_seconds', v.get('error'))} |" for k, v in timing.items()
                  if k in ("fp32", "fp16")]
        lines.append(f"\nOne {timing['shape'][0]}x{timing['shape'][1]} image, reference chop, {timing['device']}.")
    return "\n".join(lines) + "\n"


def run_window(window: Window) -> int:
    """All steps in order; 0 when the window trained and returned weights, 1 otherwise."""
    p = window.profile
    window.step("probe", p.after_seconds + p.probe_seconds + 10, window.run_probe)
    window.step("train", p.after_seconds + 5, window.train)
    if window.weights is not None:
        window.step("evaluate", p.needs[0], window.evaluate)
        window.step("parity", p.needs[1], window.parity)
        window.step("timing", p.needs[2], window.timing)
    window.write()
    say(f"window done in {window.report['wall_seconds']} s; files in {window.out}: "
        + ", ".join(sorted(p.name for p in window.out.iterdir())))
    return 0 if window.weights is not None else 1


# ---- command line --------------------------------------------------------------------------------
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
def cli() -> None:
    """A training window for the jpeg model on a lent GPU: prepare here, run there, join the returned
    float32 parts. See docs/training.md, "Training windows"."""


@cli.command()
@click.option("--datasets", type=click.Path(file_okay=False, path_type=Path),
              help="The datasets folder  [default: $DAGL_DATASETS or ../shared/datasets]")
@click.option("--dest", default=DEFAULT_WINDOW_DIR / "data", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Where the window's data goes (ignored by git).")
@click.option("--continue-from", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A previous window's returned folder: its float32 parts become the next window's start "
                   f"(DEST/../{FLOAT32_INIT}).")
def prepare(datasets: Path | None, dest: Path, continue_from: Path | None) -> None:
    """Copy what a window needs into DEST, which travels with the device call (carry: .window)."""
    from ..datasets import datasets_root

    size = prepare_data(datasets or datasets_root(), dest)
    if continue_from is not None:
        parts = [continue_from / name for name in part_names(STEM)]
        try:
            joined = join_float32(parts, dest.parent / FLOAT32_INIT)
        except WeightsError as exc:
            raise click.ClickException(str(exc)) from None
        size += joined.stat().st_size
        click.echo(f"next window starts from {joined}")
    total = folder_bytes(dest.parent)
    if total > TRAVEL_LIMIT_BYTES:
        raise click.ClickException(f"{dest.parent} holds {total / 2**20:.1f} MiB, over the "
                                   f"{TRAVEL_LIMIT_BYTES / 2**20:.0f} MiB that may travel")
    click.echo(f"prepared {dest} ({size / 2**20:.1f} MiB; {dest.parent} {total / 2**20:.1f} MiB in all)")


@cli.command()
@click.option("--data", default=DEFAULT_WINDOW_DIR / "data", show_default=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path), help="The folder `prepare` made.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The returned folder ($OUT on the device): at most 8 files are written there.")
@click.option("--budget", default=540.0, show_default=True, type=click.FloatRange(min=10),
              help="Wall-clock seconds for the whole window.")
@click.option("--init", default="auto", show_default=True,
              help="Starting weights: auto (DATA/../init's float32 weights, else the shipped "
                   "dagl/weights/dagl-jpeg.safetensors, else none), none (from scratch) or a file.")
@click.option("--tiny", is_flag=True, help="Toy sizes on the CPU (2 crops of 16x16, one eval crop): the test.")
@click.option("--device", help="cpu or cuda  [default: cuda if present, else cpu]")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the data order and of scratch weights.")
@click.option("--snapshot-seconds", default=110.0, show_default=True, type=click.FloatRange(min=0),
              help="Write the latest float32 weights to OUT at least this often while training.")
def run(data: Path, out: Path, budget: float, init: str, tiny: bool, device: str | None, seed: int,
        snapshot_seconds: float) -> None:
    """Probe, train, evaluate, run the parity tests, time, and write the returned files."""
    device = device or ("cuda" if torch.cuda.is_available() and not tiny else "cpu")
    os.environ["DAGL_DATASETS"] = str(data.resolve())  # validation reads the window's copy of the sets
    start = resolve_init(init, data.parent)
    if start is not None and not start.is_file():
        raise click.ClickException(f"--init: no weights file at {start}")
    out.mkdir(parents=True, exist_ok=True)
    window = Window(data, out, budget, TINY if tiny else FULL, device, start, seed,
                    snapshot_seconds, shlex.join(["python", "-m", "dagl.train.window", *sys.argv[1:]]))
    say(f"window: {budget:.0f} s on {window.report['device']}, init {window.init or 'none (from scratch)'}")
    code = run_window(window)
    if code:
        raise SystemExit(code)


@cli.command()
@click.argument("parts", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The float32 safetensors to write (loadable by dagl.load and dagl-train --init).")
def join(parts: tuple[Path, ...], output: Path) -> None:
    """Rebuild the float32 weights from a window's dagl-jpeg-fp32.part*.safetensors."""
    try:
        click.echo(f"wrote {join_float32(list(parts), output)}")
    except WeightsError as exc:
        raise click.ClickException(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes are one line and exit status 2."""
    try:
        cli.main(args=argv, prog_name="python -m dagl.train.window", standalone_mode=False)
    except click.ClickException as exc:
        click.echo(f"dagl window: error: {exc.format_message()}", err=True)
        return 2
    except TrainingError as exc:
        click.echo(f"dagl window: error: {exc}", err=True)
        return 2
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
