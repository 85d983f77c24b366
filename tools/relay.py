"""``python tools/relay.py run --budget SECONDS``: continue the shipped weights on one core, keep them if better.

The relay is how this project trains DAGL without a GPU: every working session hands its spare core
to one run that continues the weights in ``dagl/weights/``, and the next session continues from
what this one shipped. One run:

1. pins itself (and everything it starts) to one core at the lowest priority, so it can run in the
   background while other work goes on;
2. times one network call on that core, to reserve the evaluation's time out of the budget;
3. trains with ``dagl-train --init <shipped> --time-budget <the rest>`` (its fastest CPU set-up, under
   torch.compile; batches of 4 64x64 crops, lr 1e-4, the moving average ships; the optimiser starts fresh,
   so the shipped weights alone always suffice);
4. stops there, shipping nothing, unless the trained weights beat the shipped ones on the held-out split
   of the training images (``dagl-train --init`` keeps the better of the two on ``--val held-out`` and
   writes the starting weights back, with their iteration count, when they win);
5. scores the trained weights with ``dagl-eval``'s default protocol (the release's chop in float32, no
   ensemble; computed by OpenVINO unless ``--backend torch``, :data:`PROTOCOL_BACKENDS`) on
   the full Classic5 q10 images, and LIVE1 q10 with ``--live1``, for the record only (a lower Classic5
   ships all the same), and ships them: it replaces the one weights file and its card in
   ``dagl/weights/`` and adds one row to the learning curve (``docs/learning-curve.csv``, the table in
   ``docs/training.md`` and ``docs/learning-curve.png``).

``run --track denoise-s25`` runs the same leg for the denoise sigma-25 model: its shipped weights, its own recipe
(:attr:`Track.recipe`: batches of 8 32x32 crops, lr 2e-4), its scoring time measured on the fast path (below)
and its bar.

``record RUN`` does steps 4-5 alone for a finished ``dagl-train --init`` run folder, and resumes a scoring that
a stop cut short; ``record-window FOLDER`` ships what a GPU window returned (tools/gpu_window.py) by the same
rule. Commit the three files afterwards. A run's or a window's task is read from it: a denoise sigma-25 one
ships ``dagl-denoise-s25`` by the same held-out rule and only when its BSD68 score beats BM3D's 28.57 dB, with a
learning curve of its own (``docs/learning-curve-denoise-s25.*``, :data:`DENOISE_S25`); on a CPU that bar is
checked on the fast path (:data:`FAST_PATH`: minutes where the protocol takes hours).

``score WEIGHTS --set NAME`` measures the protocol's figure of a set that takes longer than a session (LIVE1,
BSD68: about three hours of one core) in parts kept under ``docs/scores/``: commit them, and the same command
goes on in the next session (a session's checkout starts without ``runs/``); the figure lands on the curve row
of the weights' iteration count and, for the shipped file, on its card.
See docs/training.md ("The relay").
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import resource
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

REPO = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = REPO / "dagl" / "weights"
CURVE = REPO / "docs" / "learning-curve.csv"
CURVE_PLOT = REPO / "docs" / "learning-curve.png"
TRAINING_DOC = REPO / "docs" / "training.md"
TABLE_START, TABLE_END = "<!-- learning-curve:start -->", "<!-- learning-curve:end -->"
#: The paper's protocol on the full images: (dagl-eval dataset, quality, JPEG input PSNR, paper's PSNR with x8).
TEST_SETS = {"classic5": (10, 27.82, 30.08), "live1": (10, 27.77, 29.70)}
#: Tiles of the release's chop per image of Classic5 or LIVE1, in network calls of 76x76.
CHOP_CALLS_PER_IMAGE = 256
#: Images per ``dagl-eval`` call of the relay's scoring (:func:`dagl_eval`): what a stop can lose.
PART_IMAGES = 8
#: ``dagl-eval``'s fast CPU path: OpenVINO computing the float32 network in bfloat16 on grid tiles of 80 with an
#: overlap of 16. BSD68 takes it 11 to 29 minutes of one core, the release chop in float32 about three hours; on
#: BSD68's first eight images the two differ by 0.003 dB (docs/training.md). A track with a bar ships on it, and
#: the protocol's figure follows from ``score`` (:data:`SCORES`).
FAST_PATH = ["--tiling", "grid", "--backend", "openvino", "--precision", "bf16"]
#: The protocol's scorings of ``score``, one folder per weights file (its SHA-256) and test set, one CSV per part:
#: committed, so that a scoring longer than a session goes on in the next one.
SCORES = REPO / "docs" / "scores"
#: What can compute the relay's protocol (the release chop, float32, no ensemble): PyTorch, dagl-eval's default for
#: weights, or OpenVINO in float32 on the same tiles, the relay's default: the same figures within 1e-7 dB per image
#: in about 0.6x the CPU time on a CPU core (docs/training.md, "The protocol on OpenVINO float32"). A set's parts
#: may come from either.
PROTOCOL_BACKENDS = {"torch": [], "openvino": ["--backend", "openvino", "--precision", "fp32"]}
TRAIN_ARGS = ["--val", "held-out", "--val-every", "0",
              "--workers", "0", "--device", "cpu", "--log-every", "10", "--checkpoint-every", "50"]
#: Where the runs to start from lie (../shared/weights beside the checkout, README.md there).
SHARED_WEIGHTS = REPO.parent / "shared" / "weights"
#: Names in tables and plots.
SET_NAMES = {"classic5": "Classic5", "live1": "LIVE1", "bsd68": "BSD68"}


@dataclass(frozen=True)
class Recipe:
    """How ``run``'s CPU legs train a track: crops per iteration, crop side, peak learning rate (its cosine over
    the time budget); the moving average (``--ema``) and torch.compile are every track's."""

    batch_size: int
    patch: int
    lr: float


@dataclass(frozen=True)
class Track:
    """One shipped model and its record: its weights, the test sets it is scored on (dataset: (quality or
    sigma, degraded input's PSNR, the paper's x8 PSNR)), its learning curve (a CSV under docs/, a table
    between ``marker`` comments in docs/training.md, a plot), the published figures its scores must beat
    before it ships (``bars``, per test set; none for jpeg) and the others its card and plot show, and the
    start in ../shared/weights that a GPU window continues while none of its weights ship."""

    task: str
    sigma: int | None
    sets: dict[str, tuple[int, float, float]]
    curve_name: str
    marker: str
    degraded: str
    bars: dict[str, tuple[str, float]] = field(default_factory=dict)
    others: tuple[tuple[str, float], ...] = ()
    start: str | None = None
    #: Sets scored only on request (``--live1``): hours more than a session spares.
    optional: tuple[str, ...] = ()
    #: What ``run`` trains with: the set-up the track's last CPU legs paid with (docs/training.md).
    recipe: Recipe = Recipe(batch_size=4, patch=64, lr=1e-4)

    @property
    def name(self) -> str:
        """How ``run --track`` names it: ``jpeg``, ``denoise-s25``."""
        return Path(self.weights_name).stem.removeprefix("dagl-")

    @property
    def variant(self) -> str:
        """``q`` (a JPEG quality) or ``s`` (a noise sigma): the tag after a set's name (``classic5-q10``)."""
        return "q" if self.sigma is None else "s"

    @property
    def option(self) -> str:
        """How a set's variant is asked for: ``quality`` (dagl-eval's --quality) or ``sigma``."""
        return "quality" if self.sigma is None else "sigma"

    @property
    def weights_name(self) -> str:
        from dagl.artefact.naming import weights_name

        return weights_name(self.task, self.sigma)

    def column(self, name: str) -> str:
        """The curve's column for a set: ``classic5_q10``, ``bsd68_s25``."""
        return f"{name}_{self.variant}{self.sets[name][0]}"

    @property
    def columns(self) -> list[str]:
        """The curve's score columns: each set's protocol figure, then the :data:`FAST_PATH`'s figure of each set
        with a bar (``bsd68_s25_fast``: what such a track ships on, on a CPU)."""
        return [*(self.column(n) for n in self.sets), *(f"{self.column(n)}_fast" for n in self.bars)]

    def score_key(self, name: str) -> str:
        """How a GPU window's summary names a set's score: ``classic5 q10``, ``bsd68 s25``."""
        return f"{name} {self.variant}{self.sets[name][0]}"

    def images(self, name: str) -> list[str]:
        """The names of set ``name``'s images, in the order ``dagl-eval`` scores them."""
        from dagl.data.datasets import named_set

        return [image for image, _, _ in named_set(name, **{self.option: self.sets[name][0]}).pairs]

    def eval_command(self, name: str, model: str, program: str = "dagl-eval") -> list[str]:
        """The ``dagl-eval`` command (``program``: its path, where it must be named) that scores ``model`` on set
        ``name`` under the paper's protocol; a path, backend or report option follows it."""
        return [program, "--task", self.task, "--dataset", name, f"--{self.option}", str(self.sets[name][0]),
                "--model", model]

    def label(self, name: str) -> str:
        value = self.sets[name][0]
        return f"{SET_NAMES.get(name, name)} " + (f"q{value}" if self.sigma is None else f"σ{value}")

    @property
    def curve(self) -> Path:
        return CURVE.with_name(self.curve_name)

    @property
    def plot(self) -> Path:
        return CURVE_PLOT.with_name(Path(self.curve_name).with_suffix(".png").name)

    @property
    def markers(self) -> tuple[str, str]:
        return (TABLE_START, TABLE_END) if self.marker == "learning-curve" else (
            f"<!-- {self.marker}:start -->", f"<!-- {self.marker}:end -->")


JPEG = Track("jpeg", None, TEST_SETS, "learning-curve.csv", "learning-curve", "JPEG input", optional=("live1",))
#: Gaussian denoising, sigma 25 (issue 27): ships only above BM3D's BSD68 figure (paper Table 1); the noisy
#: input's PSNR is dagl-eval's "input" row for the protocol's seeded noise, the input clamped to [0, 1] as every
#: output is (20.462 dB; unclipped noise of std 25/255 would score 20 log10(255/25) = 20.17).
DENOISE_S25 = Track("denoise", 25, {"bsd68": (25, 20.46, 29.46)}, "learning-curve-denoise-s25.csv",
                    "learning-curve-denoise-s25", "noisy input", bars={"bsd68": ("BM3D", 28.57)},
                    others=(("BM3D", 28.57), ("DnCNN", 29.23)), start="dagl-denoise-s25-cpu-start.safetensors",
                    recipe=Recipe(batch_size=8, patch=32, lr=2e-4))
TRACKS = {JPEG.weights_name: JPEG, DENOISE_S25.weights_name: DENOISE_S25}


def track_for(task: str, sigma: int | None = None) -> Track:
    from dagl.artefact.naming import weights_name

    name = weights_name(task, sigma)
    if name not in TRACKS:
        raise click.ClickException(f"no relay track for {Path(name).stem}: one of {', '.join(TRACKS)}")
    return TRACKS[name]


@dataclass
class CurveRow:
    """One shipped model of the relay: cumulative training and its full-image PSNR per test set (``scores``,
    by curve column; ``None``: not measured)."""

    date: str
    iterations: int
    crops: int
    train_hours: float
    scores: dict[str, float | None]
    note: str

    @classmethod
    def from_csv(cls, row: dict[str, str], track: Track = JPEG) -> CurveRow:
        scores = {column: float(row[column]) if row.get(column) else None for column in track.columns}
        return cls(row["date"], int(row["iterations"]), int(row["crops"]), float(row["train_hours"]), scores,
                   row["note"])

    def to_csv(self) -> dict[str, str]:
        return {"date": self.date, "iterations": str(self.iterations), "crops": str(self.crops),
                "train_hours": f"{self.train_hours:.2f}", **{k: _csv(v) for k, v in self.scores.items()},
                "note": self.note}


def _csv(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def read_curve(track: Track = JPEG) -> list[CurveRow]:
    with track.curve.open(newline="") as fh:
        return [CurveRow.from_csv(row, track) for row in csv.DictReader(fh)]


def write_curve(rows: list[CurveRow], track: Track = JPEG) -> None:
    columns = ["date", "iterations", "crops", "train_hours", *track.columns, "note"]
    with track.curve.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(row.to_csv() for row in rows)
    _write_table(rows, track)
    _write_plot(rows, track)


def _write_table(rows: list[CurveRow], track: Track) -> None:
    heads = " | ".join([*(f"{track.label(n)} (dB)" for n in track.sets),
                        *(f"{track.label(n)}, fast path (dB)" for n in track.bars)])
    lines = [f"| date | iterations | crops seen | training (h) | {heads} | note |",
             "|---|---:|---:|---:|" + "---:|" * len(track.columns) + "---|"]
    for r in rows:
        cells = " | ".join(_cell(r.scores[column]) for column in track.columns)
        lines.append(f"| {r.date} | {r.iterations:,} | {r.crops:,} | {r.train_hours:.2f} | {cells} | {r.note} |")
    start_marker, end_marker = track.markers
    text = TRAINING_DOC.read_text()
    start, end = text.index(start_marker) + len(start_marker), text.index(end_marker)
    TRAINING_DOC.write_text(text[:start] + "\n" + "\n".join(lines) + "\n" + text[end:])


def _write_plot(rows: list[CurveRow], track: Track) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for (name, (_, degraded, paper)), colour in zip(track.sets.items(), ("tab:blue", "tab:orange")):
        label = track.score_key(name)
        points = [(r.crops, r.scores[track.column(name)]) for r in rows if r.scores[track.column(name)] is not None]
        if points:
            ax.plot(*zip(*points), "o-", color=colour, label=f"{label}, shipped weights")
        fast = [(r.crops, r.scores[f"{track.column(name)}_fast"]) for r in rows
                if r.scores.get(f"{track.column(name)}_fast") is not None]
        if fast:
            ax.plot(*zip(*fast), "o--", color=colour, mfc="white",
                    label=f"{label}, shipped weights, fast path (OpenVINO bf16, grid)")
        ax.axhline(degraded, color=colour, ls=":", lw=1, label=f"{label}, {track.degraded} ({degraded:.2f})")
        ax.axhline(paper, color=colour, ls="--", lw=1, label=f"{label}, paper x8 ({paper:.2f})")
        for (other, value), style in zip(track.others, ("-.", (0, (1, 3)))):
            ax.axhline(value, color="gray", ls=style, lw=1, label=f"{label}, {other} ({value:.2f}, paper)")
    ax.set_xscale("log")
    ax.set_xlabel("training crops seen (32x32 and up)")
    ax.set_ylabel("PSNR, full images, no ensemble (dB)")
    ax.set_title(f"DAGL {track.name}: the relay's learning curve "
                 f"(dagl-eval, full images)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(track.plot, dpi=110)
    plt.close(fig)


def pin_to_core(core: int, niceness: int) -> None:
    """This process and its children: one core, lowest priority, one thread per library."""
    os.sched_setaffinity(0, {core})
    os.nice(niceness)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"


def seconds_per_call(weights: Path, backend: str) -> tuple[float, float]:
    """(CPU seconds of one 76x76 network call, the chop's tile, CPU seconds of a scoring call's start) of
    ``weights`` in float32 on ``backend`` (:data:`PROTOCOL_BACKENDS`) on this core, as ``dagl-eval`` runs them.

    The start is the backend's preparation of the weights (OpenVINO converts them: about 8 CPU s; PyTorch
    nothing), measured with an empty engine cache since the trained weights to be scored are not converted yet.
    A call is the least CPU time of three after a warm-up: a neighbour's burst on the core when the relay starts
    must not make the scoring reserve eat the training time.
    """
    import numpy as np

    from dagl.runtime.benchmark import cpu_seconds
    from dagl.runtime.loader import create_runner

    tile = np.random.default_rng(0).random((1, 1, 76, 76), dtype=np.float32)
    with tempfile.TemporaryDirectory() as cache:
        runner = create_runner(weights, backend=backend, threads=1, engine_cache=Path(cache), precision="fp32")
        began = cpu_seconds()
        with runner:
            runner.infer(tile)
            first = cpu_seconds() - began
            times = []
            for _ in range(3):
                began = cpu_seconds()
                runner.infer(tile)
                times.append(cpu_seconds() - began)
    per_call = min(times)
    return per_call, max(first - per_call, 0.0)


def scoring_reserve(track: Track, weights: Path, live1: bool, backend: str) -> tuple[float, str]:
    """Seconds of a leg's budget to keep for its scoring on this core, and how they were found (one line).

    A track with a bar is scored on the :data:`FAST_PATH` (:func:`fast_path_seconds`), jpeg with the release's
    chop on ``backend`` (:func:`seconds_per_call`: its calls, and a start per part); either way 1.25 x the
    measured time, and a minute to write.
    """
    if not track.bars:
        per_call, start = seconds_per_call(weights, backend)
        images = [len(track.images(name)) for name in track.sets if live1 or name not in track.optional]
        calls, parts = CHOP_CALLS_PER_IMAGE * sum(images), sum(-(-count // PART_IMAGES) for count in images)
        return 1.25 * (calls * per_call + parts * start) + 60, f"{per_call:.2f} s per 76x76 call on {backend}"
    reserve, said = 60.0, []
    for name in track.bars:
        per_image, start = fast_path_seconds(weights, track, name)
        reserve += 1.25 * per_image * len(track.images(name)) + start
        said.append(f"{per_image:.1f} s per {SET_NAMES.get(name, name)} image on the fast path")
    return reserve, "; ".join(said)


def fast_path_seconds(weights: Path, track: Track, name: str) -> tuple[float, float]:
    """(CPU seconds per image, CPU seconds of starting a call) of :func:`fast_eval` on set ``name`` on this core.

    Three ``dagl-eval`` calls on the set's first images: one to convert the weights into OpenVINO's engine cache
    (the trained weights' conversion is in the reserve's minute), then one image and two: their difference is an
    image, the rest a call's start (imports, compiling a tile's shape).
    """
    first, second = track.images(name)[:2]

    def cpu_seconds(images: list[str]) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([*track.eval_command(name, str(weights)), *FAST_PATH, "--threads", "1",
                            "--images", ",".join(images), "--report", tmp], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

    cpu_seconds([first])
    one, two = cpu_seconds([first]), cpu_seconds([first, second])
    per_image = max(two - one, 0.0)
    return per_image, max(one - per_image, 0.0)


def dagl_eval(weights: Path, track: Track, name: str, folder: Path, threads: int = 1,
              backend: str = "torch") -> tuple[float, float]:
    """(model PSNR, input PSNR) of ``dagl-eval``'s default protocol on the full images of set ``name``, computed
    by ``backend`` (:data:`PROTOCOL_BACKENDS`).

    The set is scored in parts of :data:`PART_IMAGES` images, one ``dagl-eval --report`` each under ``folder``
    with the weights' SHA-256 beside it: BSD68 takes about three hours on one core, more than a session can
    spare, so a scoring that was stopped continues from its finished parts when ``record`` runs again, and a
    part scored for other weights is scored anew.
    """
    from dagl.files import file_digest

    value, names = track.sets[name][0], track.images(name)
    digest = file_digest(weights)
    per_image: dict[str, dict[str, float]] = {}
    for first in range(0, len(names), PART_IMAGES):
        part, chosen = folder / f"part-{first // PART_IMAGES:02d}", names[first:first + PART_IMAGES]
        stamp, table = part / "weights.sha256", part / f"{name}-{track.variant}{value}.csv"
        if not (stamp.is_file() and stamp.read_text().strip() == digest and table.is_file()):
            stamp.unlink(missing_ok=True)
            subprocess.run([*track.eval_command(name, str(weights)), *PROTOCOL_BACKENDS[backend],
                            "--threads", str(threads), "--images", ",".join(chosen), "--report", str(part)], check=True)
            for other in part.iterdir():  # the means are all a part is kept for (committed, under SCORES)
                if other != table:
                    other.unlink()
            stamp.write_text(digest + "\n")
        with table.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if row["image"] in chosen:
                    per_image.setdefault("input" if row["model"] == "input" else "model", {})[row["image"]] = \
                        float(row["psnr"])
    if any(len(scores) != len(names) for scores in per_image.values()) or len(per_image) != 2:
        raise click.ClickException(f"{folder}: the parts' reports do not cover the {len(names)} images of {name}")
    return tuple(sum(per_image[who].values()) / len(names) for who in ("model", "input"))


def fast_eval(weights: Path, track: Track, name: str, folder: Path, threads: int = 1) -> float:
    """Model PSNR of ``dagl-eval`` on the :data:`FAST_PATH` on the full images of set ``name`` (one call)."""
    subprocess.run([*track.eval_command(name, str(weights)), *FAST_PATH, "--threads", str(threads),
                    "--report", str(folder)], check=True)
    means = report_means(folder / f"{name}-{track.variant}{track.sets[name][0]}.csv")
    return next(psnr for model, psnr in means.items() if model != "input")


def report_means(table: Path) -> dict[str, float]:
    """Mean PSNR per model (the degraded input as ``"input"``) of a ``dagl-eval --report`` CSV."""
    with table.open(newline="") as fh:
        return {row["model"]: float(row["psnr"]) for row in csv.DictReader(fh) if row["image"] == "mean"}


@dataclass(frozen=True)
class Run:
    """What a finished ``dagl-train --init`` run folder says about itself."""

    folder: Path
    init: Path
    iterations: int
    batch: int
    patch: int
    train_seconds: float
    track: Track = JPEG
    #: Trained under torch.compile (``dagl-train --compile``): the curve's note says so, as steps cost less.
    compiled: bool = False

    @classmethod
    def read(cls, folder: Path) -> Run:
        import torch

        state = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
        config = state["config"]
        init = Path(config["init"])  # relative to the checkout, where ``run`` starts dagl-train
        return cls(folder, init if init.is_absolute() else REPO / init, int(state["iteration"]),
                   int(config["batch_size"]), int(config["patch"]), float(state["train_seconds"]),
                   track_for(config.get("task", "jpeg"), config.get("sigma")), bool(config.get("compile", False)))


def trained_won(trained: Path, init: Path) -> bool:
    """Whether ``trained`` holds a run's trained weights: ``dagl-train --init`` writes the starting weights
    back (with their iteration count) when they validate better on the held-out split."""
    from dagl.weights.checkpoints import weights_metadata

    done = int(weights_metadata(trained)["dagl.iterations"])
    return done > int(weights_metadata(init).get("dagl.iterations", 0))


def ship(run: Run, live1: bool, threads: int = 1, backend: str = "openvino") -> None:
    """If the run's weights beat its starting ones on the held-out split, score them on the track's test
    sets (reported, never selected on; a track with a bar, denoise sigma 25, ships only above it; the protocol
    computed by ``backend``), ship them and add the curve's row."""
    track = run.track
    trained = run.folder / track.weights_name
    if not trained_won(trained, run.init):
        click.echo("relay: the trained weights validate worse than the starting ones on the held-out split; "
                   "nothing shipped", err=True)
        return
    compiled = ", torch.compile" if run.compiled else ""
    note = f"+{run.iterations} it, batch {run.batch} of {run.patch}x{run.patch}{compiled}"
    if track.bars:  # the protocol takes hours per set on a core: the bar is checked on the fast path
        fast = {name: fast_eval(trained, track, name, run.folder / f"fast-{name}", threads) for name in track.bars}
        for name, value in fast.items():
            click.echo(f"relay: {track.label(name)} {value:.3f} dB on the fast path", err=True)
        if not clears_bars(track, fast, " on the fast path"):
            return
        publish(trained, trained.with_suffix(".md").read_text(), run.init, run.iterations * run.batch,
                run.train_seconds, {}, note, track=track, fast=fast)
        return
    previous = read_curve(track)[-1]
    scores = {}
    for name in (n for n in track.sets if live1 or n not in track.optional):
        scores[name], _ = dagl_eval(trained, track, name, run.folder / f"eval-{name}", threads, backend)
        click.echo(f"relay: {track.label(name)} {scores[name]:.3f} dB (shipped: "
                   f"{previous.scores[track.column(name)] or float('nan'):.3f} dB)", err=True)
    publish(trained, trained.with_suffix(".md").read_text(), run.init, run.iterations * run.batch,
            run.train_seconds, scores, note, track=track)


def clears_bars(track: Track, scores: dict[str, float | None], path: str = "") -> bool:
    """Whether every score the track must beat to ship (:attr:`Track.bars`) is beaten; says which one is not
    (``path``: how the scores were measured, when not on the protocol)."""
    for name, (who, bar) in track.bars.items():
        if scores.get(name) is None or scores[name] <= bar:
            click.echo(f"relay: {track.label(name)} {_cell(scores.get(name))} dB{path} does not beat {who}'s "
                       f"{bar:.2f} dB, the bar to ship; nothing shipped", err=True)
            return False
    return True


def publish(trained: Path, card: str, init: Path, crops: int, train_seconds: float, scores: dict[str, float],
            note: str, x8: dict[str, float] | None = None, track: Track = JPEG,
            fast: dict[str, float] | None = None) -> None:
    """Replace the shipped weights by ``trained`` (FP16, cumulative totals in the metadata), write its card
    with the full-image ``scores`` (and ``x8`` ensemble scores, where measured, and the :data:`FAST_PATH`'s
    ``fast`` scores a track with a bar shipped on), add the curve's row."""
    import dagl
    from dagl.weights.checkpoints import save_safetensors, weights_metadata

    rows = read_curve(track)
    previous = rows[-1]
    meta = weights_metadata(init)
    crops += int(meta.get("dagl.crops", previous.crops))
    seconds = float(meta.get("dagl.train_seconds", previous.train_hours * 3600)) + train_seconds
    iterations = int(weights_metadata(trained)["dagl.iterations"])
    row = CurveRow(dt.date.today().isoformat(), iterations, crops, seconds / 3600,
                   {track.column(name): scores.get(name) for name in track.sets}
                   | {f"{track.column(name)}_fast": (fast or {}).get(name) for name in track.bars}, note)
    target = WEIGHTS_DIR / trained.name
    sigma = {} if track.sigma is None else {"dagl.sigma": str(track.sigma)}
    save_safetensors(dagl.load(track.task, weights=trained, sigma=track.sigma), target, fp16=True, metadata={
        "dagl.task": track.task, **sigma, "dagl.iterations": str(iterations), "dagl.crops": str(crops),
        "dagl.train_seconds": f"{seconds:.0f}", "dagl.trainer": "dagl-train"})
    target.with_suffix(".md").write_text(card_with_protocol(card, row, target, x8 or {}, track, fast or {}))
    write_curve([*rows, row], track)
    click.echo(f"relay: shipped {target} and its card, and added the curve's row: commit "
               f"dagl/weights/, docs/{Path(track.curve_name).stem}.* and docs/training.md", err=True)


def card_with_protocol(card: str, row: CurveRow, weights: Path, x8: dict[str, float], track: Track = JPEG,
                       fast: dict[str, float] | None = None) -> str:
    """The run's card, with the shipped file's digest and the full-image figures appended (and those of the
    :data:`FAST_PATH` in ``fast``, for the sets whose protocol figure :func:`score` has yet to measure)."""
    from dagl.files import file_digest

    lines = [line for line in card.splitlines() if not line.startswith("- SHA-256:")]
    after = next(i for i, line in enumerate(lines) if line.startswith("- File:")) + 1
    while after < len(lines) and lines[after].startswith("  "):  # the File item's continuation lines
        after += 1
    lines.insert(after, f"- SHA-256: `{file_digest(weights)}`")
    table = [f"| test set (full images) | {track.degraded} | these weights | these weights, x8 | paper (x8 ensemble) |",
             "|---|---:|---:|---:|---:|"]
    for name, (_, degraded, paper) in track.sets.items():
        value, ensemble = row.scores[track.column(name)], x8.get(name)
        table.append(f"| {track.score_key(name)} | {degraded:.2f} | {_cell(value)} | {_cell(ensemble)} | "
                     f"{paper:.2f} |")
    first = next(iter(track.sets))
    model = track.task if track.sigma is None else f"dagl/weights/{track.weights_name}"
    example = " ".join(track.eval_command(first, model))
    so_far = ("across the relay's CPU legs and GPU windows" if track is JPEG else
              "the jpeg training it started from included, across CPU legs and GPU windows")
    return "\n".join(lines) + f"""

## The paper's protocol (`dagl-eval`)

All training so far, {so_far}: {row.iterations:,} iterations,
{row.crops:,} crops, {row.train_hours:.2f} h of training (docs/training.md, the learning curve, says where each
ran). PSNR of the float output clamped to [0, 1] on the full images with the release's chop
(`{example}`, and `--ensemble` for x8; `—`: not measured for
these weights). The weights were chosen on the held-out split of the training images (above), never on
these test sets:

{chr(10).join(table)}
""" + "".join(f"\n{_fast_path(track, name, value)}\n" for name, value in (fast or {}).items()) + "".join(
        f"\n{_standing(track, name, row.scores[track.column(name)], (fast or {}).get(name))}\n"
        for name in track.bars)


def _fast_path(track: Track, name: str, value: float) -> str:
    """The card's paragraph on a figure of the :data:`FAST_PATH`, and on the command that measures the protocol's."""
    command = " ".join([*track.eval_command(name, f"dagl/weights/{track.weights_name}"), *FAST_PATH, "--threads", "1"])
    return (f"On the fast path (`{command}`: OpenVINO computing the float32 network in bfloat16 on grid tiles, "
            f"minutes for BSD68: 11 on a Xeon core with AMX, 29 on an AMD EPYC core without, where the release chop "
            f"in float32 takes about three hours), "
            f"{track.label(name)}: **{value:.2f} dB**, the figure these weights shipped on. The table's figure is "
            f"the release chop's, from `python tools/relay.py score dagl/weights/{track.weights_name} --set {name}`: "
            f"it scores in parts of {PART_IMAGES} images kept under docs/scores/, so that it goes on across "
            f"sessions, and writes the figure here and on the learning curve once every image is scored.")


def _standing(track: Track, name: str, value: float | None, fast: float | None = None) -> str:
    """Where a score stands against the published figures (the shipping bar first, then the paper's); the
    :data:`FAST_PATH`'s ``fast`` figure stands in while the protocol's ``value`` is not measured."""
    path = " on the fast path" if value is None and fast is not None else ""
    value = fast if path else value
    figures = sorted([*track.others, ("DAGL (paper, x8)", track.sets[name][2])], key=lambda item: item[1])
    above = [f"{who} {figure:.2f}" for who, figure in figures if value is not None and value > figure]
    below = [f"{who} {figure:.2f}" for who, figure in figures if value is None or value <= figure]
    who, bar = track.bars[name]
    return (f"Against the paper's {track.label(name)} figures (Table 1, dB): {_cell(value)} dB{path} is above "
            f"{', '.join(above) or 'none of them'} and below {', '.join(below) or 'none of them'}. "
            f"These weights ship only when they beat {who}'s {bar:.2f} dB (issue 27).")


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def window_start(track: Track) -> Path:
    """The weights a GPU window of ``track`` continued: the shipped ones, or for a track that ships none
    yet its start in ../shared/weights (whose metadata is all the held-out rule reads)."""
    shipped = WEIGHTS_DIR / track.weights_name
    if shipped.is_file() or track.start is None:
        return shipped
    start = SHARED_WEIGHTS / track.start
    if not start.is_file():
        raise click.ClickException(f"no {track.weights_name} ships and its start {start} is missing")
    return start


def _recipes(field_name: str) -> str:
    """Each track's value of a :class:`Recipe` field, for ``run --help``: ``jpeg 4, denoise-s25 8``."""
    return ", ".join(f"{track.name} {getattr(track.recipe, field_name):g}" for track in TRACKS.values())


backend_option = click.option(
    "--backend", default="openvino", show_default=True, type=click.Choice(list(PROTOCOL_BACKENDS)),
    help="What computes the protocol's float32 network on the release's chop: openvino (OpenVINO in float32: "
         "dagl-eval's PyTorch figures within 1e-7 dB per image, in about 0.6x the CPU time; pip install "
         "'dagl[openvino]', part of the test extra) or torch (dagl-eval's default for weights). Denoise's bar is "
         "checked on the fast path, OpenVINO in bfloat16, either way.")


@click.group()
def main() -> None:
    """The CPU relay that continues the shipped weights of a track (jpeg; denoise sigma 25), and the shipping of
    GPU windows (see docs/training.md)."""


@main.command()
@click.option("--track", "track_name", default=JPEG.name, show_default=True,
              type=click.Choice([track.name for track in TRACKS.values()]),
              help="Which shipped model to continue: jpeg (its bar: none; Classic5 q10 scored with the release's "
                   "chop), denoise-s25 (ships only above BM3D's BSD68 sigma-25 figure, checked on the fast path).")
@click.option("--budget", required=True, type=click.FloatRange(min=600), metavar="SECONDS",
              help="Wall-clock seconds for everything: training, evaluation, writing.")
@click.option("--core", default=1, show_default=True, type=click.IntRange(min=0), help="The CPU core to run on.")
@click.option("--nice", "niceness", default=19, show_default=True, type=click.IntRange(0, 19))
@click.option("--live1", is_flag=True, help="Also score LIVE1 q10 (the jpeg track; about 5.7x Classic5's time).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder  [default: runs/relay-<UTC time>]")
@click.option("--start", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Weights to continue  [default: the track's shipped file, dagl/weights/dagl-<track>.safetensors]")
@click.option("--ema", default=0.999, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              metavar="DECAY", help="dagl-train's --ema DECAY: the moving average validates and ships.")
@click.option("--batch-size", "batch", type=click.IntRange(min=1),
              help=f"Crops per iteration.  [default: the track's: {_recipes('batch_size')}]")
@click.option("--patch", type=click.IntRange(min=16),
              help=f"Crop side in pixels.  [default: the track's: {_recipes('patch')}]")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help=f"Peak learning rate of the budget's cosine.  [default: the track's: {_recipes('lr')}]")
@click.option("--compile/--no-compile", "compiled", default=True, show_default=True,
              help="Train under torch.compile (dagl-train --compile): a minute or two to compile, then each step "
                   "in 0.64x the CPU time (docs/training.md, the fast set-up).")
@backend_option
def run(track_name: str, budget: float, core: int, niceness: int, live1: bool, out: Path | None,
        start: Path | None, ema: float, batch: int | None, patch: int | None, lr: float | None,
        compiled: bool, backend: str) -> None:
    """Train, score, and ship if better: one session's leg of the relay (the jpeg track unless --track says)."""
    from dagl.data.datasets import datasets_root
    from dagl.errors import DaglError

    began = time.monotonic()
    track = next(track for track in TRACKS.values() if track.name == track_name)
    if live1 and "live1" not in track.optional:
        raise click.UsageError(f"--live1 is the jpeg track's; {track.name} is scored on "
                               f"{', '.join(SET_NAMES.get(name, name) for name in track.sets)}")
    start = start or WEIGHTS_DIR / track.weights_name
    if not start.is_file():
        raise click.ClickException(f"no weights to continue at {start}: pass --start")
    out = out or REPO / "runs" / f"relay-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M}"
    pin_to_core(core, niceness)
    try:
        reserve, measured = scoring_reserve(track, start, live1, backend)
    except DaglError as exc:  # the backend cannot run here (OpenVINO not installed): before any training
        raise click.ClickException(str(exc)) from None
    train_budget = budget - reserve - (time.monotonic() - began)
    click.echo(f"relay: {measured}; {reserve / 60:.0f} min kept for scoring, {train_budget / 60:.0f} min to train",
               err=True)
    if train_budget < 600:
        raise click.ClickException(f"a budget of {budget:.0f} s leaves {train_budget:.0f} s to train: give more")
    # Paths relative to the checkout, run from it: the card records the command, and a card that ships
    # must not carry one machine's absolute paths.
    data, start, out = (Path(os.path.relpath(path.resolve(), REPO))
                        for path in (datasets_root() / "train" / "bsd400", start, out))
    sigma = [] if track.sigma is None else ["--sigma", str(track.sigma)]
    recipe = track.recipe
    subprocess.run(["dagl-train", "--task", track.task, *sigma, "--data", str(data), "--init", str(start),
                    "--time-budget", f"{train_budget:.0f}", "--out", str(out), *TRAIN_ARGS,
                    "--batch-size", str(batch or recipe.batch_size), "--patch", str(patch or recipe.patch),
                    "--lr", str(lr or recipe.lr),
                    "--ema", str(ema), *(["--compile"] if compiled else [])], check=True, cwd=REPO)
    out = REPO / out
    ship(Run.read(out), live1, backend=backend)


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--live1", is_flag=True, help="Also score LIVE1 q10.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="CPU threads for the scoring (the run's own scoring uses its one core).")
@backend_option
def record(folder: Path, live1: bool, threads: int, backend: str) -> None:
    """Score a finished dagl-train --init run folder and ship it if better (steps 4-5 of ``run``): a jpeg run,
    or a denoise sigma-25 run, which ships only above BM3D's BSD68 figure. The scoring keeps its finished
    parts in the folder: run it again after a stop and it goes on where it was."""
    ship(Run.read(folder), live1, threads, backend)


@main.command()
@click.argument("weights", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--set", "name", required=True, metavar="NAME",
              help="A test set of the weights' track: classic5 or live1 (jpeg), bsd68 (denoise sigma 25).")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="CPU threads for the scoring.")
@backend_option
def score(weights: Path, name: str, threads: int, backend: str) -> None:
    """Score WEIGHTS (a file dagl-train or the relay wrote) with dagl-eval's default protocol on the full images
    of a test set, and record the figure: on the learning-curve row of the same iteration count and, when
    WEIGHTS are the shipped file, on its card.

    The scoring runs in parts of 8 images, each part's CSV kept under docs/scores/<weights>-<SHA-256>/: commit
    them, and the same command in a later session goes on from the finished parts, whichever backend computed
    them (LIVE1 and BSD68 take about three hours of one core). Weights the relay has since replaced come back
    with `git show REV:dagl/weights/dagl-jpeg.safetensors > FILE`.
    """
    from dagl.files import file_digest
    from dagl.weights.checkpoints import weights_metadata

    meta = weights_metadata(weights)
    if "dagl.iterations" not in meta:
        raise click.ClickException(f"{weights}: no dagl.iterations in its metadata: not a file dagl-train wrote")
    track = track_for(meta.get("dagl.task", "jpeg"), int(meta["dagl.sigma"]) if "dagl.sigma" in meta else None)
    if name not in track.sets:
        raise click.ClickException(f"{Path(track.weights_name).stem} is scored on {', '.join(track.sets)}, "
                                   f"not {name!r}")
    stem = f"{Path(track.weights_name).stem}-{file_digest(weights)[:12]}"
    value, _ = dagl_eval(weights, track, name, SCORES / stem / f"{name}-{track.variant}{track.sets[name][0]}",
                         threads, backend)
    by = "" if backend == "torch" else f", computed by {backend}"
    click.echo(f"relay: {track.label(name)} {value:.3f} dB (dagl-eval's default protocol, full images{by})", err=True)
    record_score(track, weights, name, value)


def record_score(track: Track, weights: Path, name: str, value: float) -> None:
    """Write a protocol figure of ``weights`` on set ``name`` into the curve row of their iteration count and,
    if they are the shipped weights, into their card (its table and its standing against the published
    figures)."""
    from dagl.files import file_digest
    from dagl.weights.checkpoints import weights_metadata

    iterations = int(weights_metadata(weights)["dagl.iterations"])
    rows = read_curve(track)
    row = next((r for r in rows if r.iterations == iterations), None)
    if row is None:
        click.echo(f"relay: no row of docs/{track.curve_name} records {iterations:,} iterations; the figure is "
                   f"not recorded there", err=True)
    else:
        row.scores[track.column(name)] = value
        write_curve(rows, track)
    shipped = WEIGHTS_DIR / track.weights_name
    if shipped.is_file() and file_digest(shipped) == file_digest(weights):
        card = shipped.with_suffix(".md")
        card.write_text(_card_with_score(card.read_text(), track, name, value))
        click.echo(f"relay: recorded on {card.name} and the learning curve: commit them and docs/scores/", err=True)


def _card_with_score(card: str, track: Track, name: str, value: float) -> str:
    """``card`` with the protocol's figure for set ``name`` in its table and in its standing line."""
    lines = card.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"| {track.score_key(name)} |"):
            cells = line.split(" | ")
            cells[2] = _cell(value)
            lines[i] = " | ".join(cells)
        elif name in track.bars and line.startswith(f"Against the paper's {track.label(name)} "):
            lines[i] = _standing(track, name, value)
    return "\n".join(lines) + "\n"


@main.command("record-window")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
def record_window(folder: Path) -> None:
    """Ship what a GPU window returned (tools/gpu_window.py run: gpu-window.json, the weights and card),
    with the scores it measured there, if its weights beat the shipped ones on the held-out split (for
    denoise sigma 25, also only if its BSD68 score beats BM3D's 28.57 dB)."""
    import json

    summary = json.loads((folder / "gpu-window.json").read_text())
    track = track_for(summary.get("task", "jpeg"), summary.get("sigma"))
    trained, start = folder / track.weights_name, window_start(track)
    facts = summary.get("training")
    if facts is None or not trained.is_file() or not trained_won(trained, start):
        click.echo("relay: the window shipped no trained weights that beat the shipped ones on the held-out "
                   "split; nothing shipped", err=True)
        return
    scores = {name: summary["scores"].get(track.score_key(name)) for name in track.sets}
    first = next(iter(track.sets))
    if scores[first] is None:
        raise click.ClickException(f"{folder / 'gpu-window.json'} has no {track.label(first)} score: score the "
                                   f"weights with dagl-eval" + (" and record them with `relay.py record`"
                                                                if track is JPEG else ""))
    if not clears_bars(track, scores):
        return
    x8 = {name: summary["scores"].get(f"{track.score_key(name)} x8") for name in track.sets}
    gpu = summary["device"].get("gpu", "GPU")
    note = (f"+{facts['iterations']} it on 1 x {gpu} ({facts['train_seconds'] / 60:.1f} min, GPU window), "
            f"batch {facts['batch_size']} of {facts['patch']}x{facts['patch']}")
    publish(trained, trained.with_suffix(".md").read_text(), start, facts["iterations"] * facts["batch_size"],
            facts["train_seconds"], {k: v for k, v in scores.items() if v is not None}, note,
            {k: v for k, v in x8.items() if v is not None}, track)


if __name__ == "__main__":
    main()
