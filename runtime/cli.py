"""``dagl-infer``: restore image files with a DAGL artefact (TensorRT engine, ONNX file or weights)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click
from rich.console import Console

from dagl import TASKS, get_config
from dagl.cli.common import Command, error_line, max_pixels_option, sigma_option, task_option
from dagl.cli.progress import progress
from dagl.errors import DaglError, UserInputError, output_error
from dagl.images.io import ImageWriteError, check_writable, write_image
from dagl.memory import MemoryBudgetError
from dagl.suggest import did_you_mean

from . import auto
from .base import InferenceError
from .batch import Job, check_batch, plan_batch, prepare
from .channels import DEFAULT_CHROMA, ChannelError
from .clean import gain_line
from .loader import choose_model
from .options import chroma_option, restoration_options
from .restorer import InputArrayError, Restorer
from .side_by_side import GAIN, side_by_side

PROG = "dagl-infer"
EXAMPLES = """
\b
Examples:
  dagl-infer jpeg photo.jpg -o clean.png          (a task name: the weights shipped for it)
  dagl-infer dagl-jpeg.onnx photo.jpg -o clean.png
  dagl-infer dagl-jpeg-fp16.plan 'scans/*.png' -o out/ --bit-depth 16
  dagl-infer model_best.pt --task denoise --sigma 25 noisy.png --tiling reference --ensemble
  dagl-infer dagl-jpeg.onnx photo.jpg -o clean.png --side-by-side compare/
  dagl-infer jpeg photo.jpg -o clean.png --server http://127.0.0.1:8000
"""
#: What a dagl-serve server decides for every request: refused beside --server rather than ignored.
SERVER_SIDE = ("backend", "device", "tiling", "tile", "overlap", "batch", "ensemble", "threads", "precision")


class Reporter:
    """One-line messages on stderr, kept apart from the progress bar; errors in the shared CLI shape."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.failures = 0
        #: 2 while every failure was something the user gave (a missing or unfit file), 1 once any
        #: failed while working: the exit status of the whole run, as the other commands decide it.
        self.exit_code = 0

    def error(self, message: str, exit_code: int = UserInputError.exit_code) -> None:
        self.failures += 1
        self.exit_code = exit_code if self.exit_code == 0 else min(self.exit_code, exit_code)
        self.console.print(error_line(PROG, message), markup=False, highlight=False, soft_wrap=True)

    def note(self, message: str) -> None:
        self.console.print(f"{PROG}: note: {message}", markup=False, highlight=False, soft_wrap=True)

    def result(self, message: str) -> None:
        self.console.print(f"{PROG}: {message}", markup=False, highlight=False, soft_wrap=True)


def _make_folder(target: Path) -> None:
    """Create ``target``'s folder now that there is something to put in it."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(target, exc, ImageWriteError, "cannot create its folder") from None


def restore_all(restorer: Restorer, jobs: list[Job], bit_depth: int, reporter: Reporter,
                console: Console, overwrite: bool = False, chroma: str = DEFAULT_CHROMA) -> tuple[list[Path], float]:
    """Run every job; returns (the files written, megapixels restored)."""
    written: list[Path] = []
    megapixels = 0.0
    with progress(console) as bars:
        images_bar = bars.add_task("images", total=len(jobs), unit="image")
        tiles_bar = bars.add_task("tiles", total=0)
        for job in jobs:
            failures = reporter.failures
            if job.error:
                reporter.error(f"{job.source}: {job.error}")
            else:
                try:
                    prepared = prepare(job, restorer.task, bit_depth, chroma)
                    source, image, clean = prepared.source, prepared.image, prepared.clean
                    array = image.array
                    if image.note:
                        reporter.note(f"{job.source}: {image.note}")
                    bars.update(tiles_bar, total=len(image.planes) * restorer.tiles_for(*array.shape[:2]),
                                completed=0, description=job.source.name)
                    restored = image.restore(restorer, progress=lambda n: bars.advance(tiles_bar, n))
                    _make_folder(job.target)
                    write_image(job.target, restored, bit_depth, overwrite=overwrite)
                    if job.side_by_side:
                        _make_folder(job.side_by_side)
                        write_image(job.side_by_side, side_by_side(source, restored), 8, overwrite=overwrite)
                    if clean is not None:
                        reporter.result(gain_line(job.source.name, image.to_file(array), restored, clean,
                                                  job.clean.name))
                except (ChannelError, InferenceError, InputArrayError, MemoryBudgetError) as exc:
                    reporter.error(f"{job.source}: {exc}", exc.exit_code)  # nothing was written for this image
                except DaglError as exc:
                    reporter.error(str(exc), exc.exit_code)
                else:
                    written.append(job.target)
                    megapixels += array.shape[0] * array.shape[1] / 1e6
            bars.update(images_bar, advance=1, outcome="failed" if reporter.failures > failures else "done")
    return written, megapixels


def served_task(model: str, task: str | None) -> str:
    """With ``--server``, MODEL names the task the server serves (its artefact stem is the model)."""
    if model not in TASKS or task not in (None, model):
        raise click.UsageError(f"with --server, MODEL is the task the server serves ({', '.join(TASKS)}), "
                               f"got {model!r}{did_you_mean(model, TASKS)}")
    return model


def _remote(server: str, task: str, sigma: int | None):
    """The client of a dagl-serve server for ``task``."""
    from .serve.client import RemoteRestorer

    return RemoteRestorer(server, task, sigma)


def check_chroma(task: str | None, chroma_given: bool) -> None:
    """``--chroma`` given for a task whose network takes colour itself: refused, it would do nothing."""
    if chroma_given and task is not None and get_config(task).channel_policy.channels != 1:
        raise click.UsageError(f"--chroma is for gray tasks given a colour image; task {task!r} restores colour "
                               f"itself")


def where_written(written: list[Path]) -> str:
    """The end of the summary line: the file, or the folder, a user goes to next."""
    if not written:
        return "nothing written"
    if len(written) == 1:
        return f"wrote {written[0]}"
    folders = sorted({str(path.parent) for path in written})
    return f"wrote {len(written)} files to {folders[0] if len(folders) == 1 else ', '.join(folders)}"


@click.command(PROG, cls=Command, epilog=EXAMPLES)
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(),
              help="Output file (one input) or folder (several). Format follows the extension: "
                   ".png (8/16-bit), .tif (8/16-bit or float32), .npy (float32, exact). [default: ./restored/]")
@task_option(help="Network task; read from the artefact's metadata when omitted (required for weights files).")
@sigma_option(help="Noise level of a denoising model: checked against an artefact's metadata, picks the shipped "
                   "weights when MODEL is a task name.")
@restoration_options(ensemble_help="x8 flip/rotation self-ensemble (8x slower; the paper's tables).")
@chroma_option()
@click.option("--bit-depth", type=click.Choice(["8", "16", "32"]), default="8", show_default=True,
              help="Output sample depth; 32 = float32 (TIFF). 16-bit inputs are always read at full precision.")
@max_pixels_option()
@click.option("--side-by-side", "side_by_side_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help=f"Also write DIR/<name>-side-by-side.png per image: input | output | |output - input| x{GAIN} "
                   f"(8-bit PNG), to see what the network changed.")
@click.option("--reference", "clean", type=click.Path(path_type=Path), metavar="CLEAN",
              help="The clean original (one input), or a folder of them named like the inputs: prints each "
                   "image's PSNR before and after against it, scored as dagl-eval scores.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (including an input given as output).")
@click.option("--server", metavar="URL", help="Restore through a dagl-serve Triton server at URL "
              "(http://HOST:PORT); MODEL is then the task it serves, and the server's options apply.")
def main(model: Path, inputs: tuple[str, ...], output: str | None, task: str | None, sigma: int | None,
         backend: str, device: str, tiling: str, tile: int, overlap: int, batch: int, ensemble: bool, chroma: str,
         bit_depth: str, threads: int | None, precision: str | None, side_by_side_dir: Path | None,
         clean: Path | None,
         overwrite: bool, server: str | None) -> None:
    """Restore images with a DAGL MODEL (.plan/.engine, .onnx or a weights file).

    MODEL may also be a task name (jpeg, denoise with --sigma, ...) to use the weights shipped
    in the package for it.

    INPUTS are image files, folders or glob patterns. Gray tasks (denoise, jpeg) restore gray images,
    and a colour image's luma and chroma (BT.601 YCbCr, as JPEG codes it), each as a gray plane
    (--chroma keep: the luma only, keeping the decoded colour, a third of the time); demosaic takes a
    3-channel GRBG mosaic or a one-channel raw Bayer frame; real-denoise takes RGB. An opaque alpha
    channel is carried through; transparent images are refused.
    Outputs are written atomically and never replace a file unless --overwrite is given.
    """
    if server is not None:
        ctx = click.get_current_context()
        given = [name for name in SERVER_SIDE
                 if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"--{given[0]} is the server's setting (give it to dagl-serve), not with --server")
    # What MODEL names is settled first: a typo costs a moment, not the seconds a model takes to load.
    choice = None if server is not None else choose_model(model, backend, task, sigma)
    known_task = served_task(str(model), task) if choice is None else choice.task
    chroma_given = click.get_current_context().get_parameter_source("chroma") is not click.core.ParameterSource.DEFAULT
    check_chroma(known_task, chroma_given)
    console = Console(stderr=True)
    reporter = Reporter(console)
    depth = int(bit_depth)
    logging.basicConfig(format="warning: %(message)s", level=logging.WARNING, stream=sys.stderr)
    jobs = plan_batch(inputs, output, overwrite, depth, side_by_side_dir, clean)
    if clean is not None:
        for job in jobs:
            if not job.error and job.clean is None:
                reporter.note(f"{job.source}: no clean image named {job.source.stem}.* in {clean}; no PSNR")
    check_batch(jobs, known_task, depth, chroma)
    for job in jobs:  # every refusal so far, before the model loads
        if job.error:
            reporter.error(f"{job.source}: {job.error}")
    jobs = [job for job in jobs if not job.error]
    if not jobs:  # nothing can run: do not spend seconds loading the model
        raise click.exceptions.Exit(reporter.exit_code)
    if server is not None:
        restorer = _remote(server, known_task, sigma)
    else:
        restorer, line = auto.open_restorer(
            model, backend=backend, precision=precision, device=device, task=task, sigma=sigma,
            check=lambda made: check_chroma(made.task, chroma_given),  # MODEL's metadata named the task only now
            note=reporter.note, tiling=tiling, tile=tile, overlap=overlap, batch=batch, ensemble=ensemble,
            threads=threads)
        if line:  # once it runs: which path, and why
            reporter.result(line)
    for job in jobs:  # now the output's channels are known: a 16-bit colour PNG is refused before inference
        if job.target is not None and not job.error:
            try:
                check_writable(job.target, depth, restorer.channels)
            except ImageWriteError as exc:
                job.error = str(exc)
    start = time.perf_counter()
    with restorer:
        written, megapixels = restore_all(restorer, jobs, depth, reporter, console, overwrite, chroma)
    seconds = time.perf_counter() - start
    failed = f", {reporter.failures} failed" if reporter.failures else ""
    where = server if server is not None else f"{restorer.runner.device}, {tiling} tiling"
    console.print(f"{len(written)} image(s), {megapixels:.2f} MP in {seconds:.1f} s with {restorer.backend} "
                  f"({where}){failed}; {where_written(written)}",
                  highlight=False, soft_wrap=True)
    if reporter.failures:
        raise click.exceptions.Exit(reporter.exit_code)
