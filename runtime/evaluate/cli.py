"""``dagl-eval``: PSNR/SSIM of DAGL models on the paper's test sets, and parity between backends."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

import click
from click.core import ParameterSource
from rich.console import Console

from dagl.atomic import write_atomic
from dagl.cli.common import Group, device_option, max_pixels_option, sigma_option, task_option
from dagl.cli.progress import print_table, progress
from dagl.data.datasets import DATASETS, EvalSet, named_set, open_set
from dagl.device import resolve_device
from dagl.errors import DaglError, OutputError, UserInputError, output_error
from dagl.outputs import check_output_file, check_output_folder
from dagl.runtime import Restorer
from dagl.runtime.loader import choose_model
from dagl.runtime.options import backend_option, restoration_options, tiling_option
from dagl.weights.pretrained import WEIGHTS_DIR

from .paper import (ARTEFACT_SUFFIXES, PAPER_CELLS, PaperCell, PaperRow, expected_names, find_artefact, paper_markdown,
                    paper_terminal_table)
from .parity import check_parity, parity_verdicts
from .report import terminal_tables, write_report
from .scoring import EvalResult, evaluate

console = Console(stderr=True)


class ReportWriteError(OutputError):
    """The report folder or table file cannot be written (exit 2, or 1 for a full disk: dagl.errors' rule)."""


def _model_names(paths: Sequence[Path], restorers: Sequence[Restorer]) -> list[str]:
    """``file (backend)``, numbered when two models would otherwise read the same."""
    names = [f"{p.name} ({r.backend}{', RANDOM weights' if r.runner.info.random_weights else ''})"
             for p, r in zip(paths, restorers)]
    if len(set(names)) < len(names):
        names = [f"{i + 1}:{name}" for i, name in enumerate(names)]
    return names


def _run(restorers: Sequence[Restorer], names: Sequence[str], evalset: EvalSet, settings: dict[str, str]) -> EvalResult:
    """``evaluate`` with a progress bar over images and one over the network tiles of the current image."""
    with progress(console) as bars:
        images = bars.add_task(f"{evalset.tag}: images", total=len(evalset), unit="image")
        tiles = bars.add_task("network tiles of this image", total=None)

        def on_image(name: str) -> None:
            bars.advance(images)
            bars.reset(tiles, total=None)

        return evaluate(restorers, names, evalset, settings, on_tiles=lambda n: bars.advance(tiles, n),
                        on_image=on_image)


def _written(write: Callable[[], list[Path]]) -> list[Path]:
    """Run a report writer; a failed write is one line, its exit code by the one rule (dagl.errors)."""
    try:
        return write()
    except OSError as exc:
        raise output_error(exc.filename or "the report", exc, ReportWriteError, "cannot write the report") from None


def _command_line(ctx: click.Context) -> str:
    """The invocation, rebuilt from the options given on the command line (for reports).

    Asks click where each value came from (a public API) instead of comparing with defaults, which
    click 8.5 changed for flags.
    """
    words = ctx.command_path.split()
    for param in ctx.command.params:
        value = ctx.params.get(param.name) if param.name else None
        if (not isinstance(param, click.Option) or value is None or value == ()
                or ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE):
            continue
        if isinstance(value, bool):
            words += (param.opts if value else param.secondary_opts)[:1]
            continue
        for item in value if isinstance(value, tuple) else (value,):
            words += [param.opts[0], str(item)]
    return shlex.join(words)


def _settings(restorers: Sequence[Restorer], names: Sequence[str]) -> dict[str, str]:
    """What the report header records; read after activation, when each runner knows its real device."""
    first = restorers[0]
    settings = {"tiling": first.policy.describe(first.options), "x8 self-ensemble": "on" if first.ensemble else "off",
                "device": ", ".join(dict.fromkeys(r.runner.device for r in restorers))}
    random = [f"`{name}`" for name, r in zip(names, restorers) if r.runner.info.random_weights]
    if random:  # the scores of such a model mean nothing: the report must not look like a result
        settings["weights"] = (f"**RANDOM, untrained** ({', '.join(random)}: dagl-export --weights random); "
                               "its scores measure nothing but the pipeline")
    return settings | {"command": f"`{_command_line(click.get_current_context())}`"}


def _one_task(tasks: set[str]) -> str | None:
    """The one task of the models (``None`` if none is known yet); models of several tasks are refused."""
    if len(tasks) > 1:
        raise UserInputError(f"the models are for different tasks ({', '.join(sorted(tasks))})")
    return next(iter(tasks), None)


def _image_names(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    """``--images a,b``: the names, in order, without blanks or repeats; an empty list is a mistake."""
    if value is None:
        return ()
    names = tuple(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    if not names:
        raise click.BadParameter("name at least one image, e.g. --images barbara", ctx, param)
    return names


HELP = """Score DAGL models on the paper's test sets with the paper's protocol, and compare backends.

\b
  dagl-eval --task jpeg --dataset classic5 --quality 10 --model model_best.pt
  dagl-eval --dataset set12 --sigma 25 --model dagl-denoise-s25.onnx --compare dagl-denoise-s25-fp16.plan --report out/
  dagl-eval paper --weights-dir weights/          (the paper's table: see `dagl-eval paper --help`)

\b
DATASET is a test set by name or a folder:
  set12, bsd68, urban100   gray denoising (--sigma): clean / 255 plus noise drawn with
                           torch.manual_seed(1) per image, not clipped (the protocol)
  classic5, live1          JPEG artifact removal (--quality 10/20/30/40): the stored MATLAB JPEGs
  mcmaster18               demosaicing: the stored GRBG mosaics
Named sets are read from ../shared/datasets beside the checkout, or from $DAGL_DATASETS.
A FOLDER holds DIR/clean/<name>.<ext> (ground truth) and DIR/degraded/<name>.<ext> (the network's
inputs), matched by file name without extension (png, bmp, tif, jpg, npy...). Without degraded/,
--sigma adds the protocol noise to the clean images. Gray tasks accept 3-channel files whose
channels are identical.

\b
MODEL is a task name for the weights shipped in the package (--model jpeg; PyTorch), a
.pt/.pth/.safetensors weights file (PyTorch; needs --task), an .onnx file (ONNX Runtime) or a
.plan/.engine (TensorRT); every model runs through runtime.Restorer. With --compare, the first
model is the base and each other one is compared with it image by image: max abs difference,
PSNR of one output against the other, PSNR delta against ground truth.

\b
The README's headline, Classic5 q10 with the shipped jpeg weights (all 5 images, about 35
minutes on one CPU core, seconds on a GPU):
  dagl-eval --task jpeg --dataset classic5 --quality 10 --model jpeg
A quick check of the same protocol on one image (a subset, not the headline's mean; about 6
minutes of CPU time; barbara 25.79 -> 27.56 dB, on a CPU as in the H200 report):
  dagl-eval --task jpeg --dataset classic5 --quality 10 --model jpeg --images barbara

\b
Metrics: PSNR and SSIM (Wang et al., 11x11 Gaussian sigma 1.5; colour = mean over channels) of
the float output clamped to [0, 1], no border shave, mean over images. --report DIR writes
TAG.md, TAG.csv, TAG-crop.png (input / outputs / ground truth) and TAG-psnr.png (per image).
The default --tiling reference is the release's chop, i.e. the paper's numbers; they also use
--ensemble. On a CPU a 512x512 image takes minutes: try --limit and --crop first.
"""


@click.group("dagl-eval", cls=Group, invoke_without_command=True, no_args_is_help=True, help=HELP)
@task_option(help="Task of the model; needed for weights files, read from ONNX/engine metadata otherwise.")
@click.option("--dataset", metavar="NAME|DIR", help="Test set name or clean/degraded folder (see above).")
@sigma_option(help="Noise level for denoising sets (15, 25, 50 in the paper).")
@click.option("--quality", type=click.IntRange(1, 100), help="JPEG quality for classic5/live1 (10, 20, 30, 40).")
@click.option("--model", type=click.Path(path_type=Path), metavar="MODEL",
              help="The model to score (the base): a weights file, .onnx or .plan/.engine, or a task name "
                   "for the weights shipped for it (--model jpeg).")
@click.option("--compare", type=click.Path(path_type=Path), metavar="MODEL2", multiple=True,
              help="Another model to score and compare with the base; repeat for more. An ONNX graph or engine "
                   "compared with a float32 PyTorch base gets a parity verdict (dagl.runtime.compare: float32 "
                   "max |diff| <= 1e-4, FP16 PSNR >= 50 dB); the exit status is 1 when one is out of bounds.")
@click.option("--limit", type=click.IntRange(1), help="Only the first N images (sorted by name).")
@click.option("--images", metavar="NAME,...", callback=_image_names,
              help="Only these images, by file name without extension (e.g. barbara): a subset for a quick "
                   "check, labelled so; not the set's numbers.")
@click.option("--crop", type=click.IntRange(16), metavar="SIZE",
              help="Score the centre SIZE x SIZE crop of each image (quick checks; not the paper's numbers).")
@click.option("--report", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Write the Markdown/CSV report and the PNGs into DIR.")
@restoration_options(ensemble_help="x8 self-ensemble at each tile, as the paper's tables.", tiling="reference",
                     batch=None, precision_help="Precision to run every model at (default: each model's own); bf16 "
                                                "runs a float32 graph in bfloat16 (--backend openvino).")
@max_pixels_option()
@click.pass_context
def main(ctx: click.Context, task: str | None, dataset: str | None, sigma: int | None, quality: int | None,
         model: Path | None, compare: tuple[Path, ...], ensemble: bool, tiling: str, tile: int,
         overlap: int, batch: int | None, limit: int | None, images: tuple[str, ...], crop: int | None,
         report: Path | None, backend: str, device: str, threads: int | None, precision: str | None) -> None:
    if ctx.invoked_subcommand is not None:
        if dataset or model or compare:
            raise click.UsageError(f"options for `{ctx.invoked_subcommand}` go after it, not before")
        return
    if not dataset or not model:
        raise click.UsageError(f"--dataset and --model are required (or run `dagl-eval paper`); --model takes a "
                               f"file or a task name for the weights shipped for it (--model {task or 'jpeg'})")
    if report:
        check_output_folder(report)  # before minutes of evaluation, not after
    paths = [model, *compare]
    # Everything that needs no model comes first: names (a typo is refused at once), the set and its files.
    named = _one_task({choice.task for choice in (choose_model(p, backend, task, sigma) for p in paths)} - {None})
    set_options = {"sigma": sigma, "quality": quality, "limit": limit, "crop": crop, "images": images}
    early_task = named or (DATASETS[dataset].task if dataset in DATASETS else None)
    if early_task is not None:
        open_set(dataset, early_task, **set_options).check()
    restorers = [Restorer(p, task=task, sigma=sigma, backend=backend, device=device, tiling=tiling, tile=tile,
                          overlap=overlap, batch=batch, ensemble=ensemble, threads=threads, precision=precision)
                 for p in paths]
    _one_task({r.task for r in restorers})
    evalset = open_set(dataset, restorers[0].task, **set_options)
    if early_task is None:  # a folder scored with an artefact that names its own task: read now
        evalset.check()
    with ExitStack() as stack:
        for restorer in restorers:
            stack.enter_context(restorer)
        names = _model_names(paths, restorers)
        result = _run(restorers, names, evalset, _settings(restorers, names))
    out = Console()
    for table in terminal_tables(result):
        print_table(out, table)
    verdicts = parity_verdicts(result, restorers, names)
    for name, verdict, cause in verdicts:
        line = f"{name}: {verdict.summary}" + (f"; {cause}" if cause and not verdict.passed else "")
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    if report:
        written = _written(lambda: write_report(result, report))
        console.print("wrote " + ", ".join(str(p) for p in written))
    check_parity(verdicts)


def _paper_row(cell: PaperCell, weights_dir: Path, suffixes: tuple[str, ...], ensemble: bool, tiling: str,
               limit: int | None, backend: str, device: str, report: Path | None) -> PaperRow:
    """Evaluate one cell, or say why it has no number (a failing cell does not stop the others)."""
    artefact = None if cell.unavailable else find_artefact(weights_dir, cell, suffixes)
    if cell.unavailable or artefact is None:
        return PaperRow(cell, cell.unavailable or f"no weights: {expected_names(cell, suffixes)} not in {weights_dir}")
    try:
        total = len(named_set(cell.dataset, sigma=cell.sigma, quality=cell.quality))
        evalset = named_set(cell.dataset, sigma=cell.sigma, quality=cell.quality, limit=limit)
        with Restorer(artefact, task=cell.task, sigma=cell.sigma, backend=backend, device=device, tiling=tiling,
                      ensemble=ensemble) as restorer:
            names = _model_names([artefact], [restorer])
            result = _run([restorer], names, evalset, _settings([restorer], names))
    except DaglError as exc:
        return PaperRow(cell, f"FAILED: {exc}", failed=True)
    if report:
        _written(lambda: write_report(result, report))
    return PaperRow(cell, artefact.name, result, total)


@main.command()
@click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path), default=WEIGHTS_DIR,
              show_default="the weights shipped in the package",
              help="Folder of dagl-<task>[-s<sigma>].<ext> artefacts (the shipped-weights naming).")
@click.option("--suffix", type=click.Choice(ARTEFACT_SUFFIXES),
              help="Use only artefacts with this extension (default: the first found of "
                   + ", ".join(ARTEFACT_SUFFIXES) + ").")
@click.option("--ensemble/--no-ensemble", default=True, show_default=True,
              help="x8 self-ensemble, as the paper's tables.")
@tiling_option("reference")
@click.option("--limit", type=click.IntRange(1), help="Only the first N images of each set (partial numbers).")
@backend_option()
@device_option()
@click.option("--report", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Also write each evaluated cell's full report into DIR.")
@click.option("--table", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the table as Markdown to FILE (e.g. docs/paper-table.md).")
def paper(weights_dir: Path, suffix: str | None, ensemble: bool, tiling: str, limit: int | None,
          backend: str, device: str, report: Path | None, table: Path | None) -> None:
    """Every cell of the paper's tables we have weights for: our PSNR beside the paper's, with the gap.

    \b
    Weights are looked up per cell as WEIGHTS_DIR/dagl-denoise-s15|s25|s50.*, dagl-jpeg.*
    (one model for all qualities) and dagl-demosaic.*; cells without weights, and cells whose
    test data is not here (colour Urban100, DND), are listed with the reason. The paper's numbers
    use the x8 ensemble and the reference chop, the defaults here; on a CPU expect hours per set.
    """
    suffixes = (suffix,) if suffix else ARTEFACT_SUFFIXES
    if report:
        check_output_folder(report)
    if table:
        check_output_file(table)
    resolved = resolve_device(device)  # refused before any cell, and named as resolved in the table's provenance
    rows = []
    for index, cell in enumerate(PAPER_CELLS, 1):  # one line per cell: the run takes hours, a log must show where
        console.print(f"cell {index}/{len(PAPER_CELLS)}: {cell.dataset} {cell.setting}", highlight=False)
        rows.append(_paper_row(cell, weights_dir, suffixes, ensemble, tiling, limit, backend, device, report))
    print_table(Console(), paper_terminal_table(rows))
    missing = [row for row in rows if row.result is None]
    if missing:
        console.print(f"{len(missing)} of {len(rows)} cells have no number: see the weights column")
    if table:
        settings = (f"x8 self-ensemble {'on' if ensemble else 'off'}, tiling {tiling}, backend {backend}, "
                    f"device {resolved}" + (f", first {limit} images per set" if limit else ""))
        provenance = (f"Generated by `{_command_line(click.get_current_context())}` ({settings}) with the "
                      f"artefacts in `{weights_dir}`.")
        _written(lambda: [write_atomic(table, paper_markdown(rows, provenance))])
        console.print(f"wrote {table}")
    failed = [row.cell for row in rows if row.failed]
    if failed:
        raise DaglError(f"{len(failed)} cell(s) failed: "
                                   + ", ".join(f"{c.dataset} {c.setting}" for c in failed))
