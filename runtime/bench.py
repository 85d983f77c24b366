"""``dagl-bench``: per-tile latency, throughput and peak memory of an artefact vs the plain PyTorch path; with
``--cpu-paths``, every CPU path of one network side by side.

Options and messages over :mod:`dagl.runtime.benchmark` and :mod:`dagl.runtime.cpu_paths`, which measure,
and their report modules, which write the figures.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource
from rich.console import Console

from dagl.cli.common import Command, device_option, precision_option, task_option, threads_option
from dagl.cli.progress import print_table, progress
from dagl.errors import UserInputError
from dagl.outputs import check_output_file

from .benchmark import DEFAULT_TILES, PLOT_SUFFIXES, Benchmark, table, write_figures
from .cpu_paths import DEFAULT_BATCHES as PATHS_BATCHES
from .cpu_paths import DEFAULT_TILES as PATHS_TILES
from .options import backend_option

#: Options of one mode only: given to the other, they are refused rather than ignored.
ARTEFACT_ONLY = ("backend", "device", "precision", "plain")
CPU_PATHS_ONLY = ("image", "clean", "crop", "classic5")


@click.command("dagl-bench", cls=Command)
@click.argument("model", type=click.Path(path_type=Path))
@task_option(help="Task of a weights file (artefacts carry their own).")
@backend_option()
@device_option()
@click.option("--tile", "tiles", type=click.IntRange(min=8), multiple=True,
              help=f"Square tile sides to measure (repeatable; default: {' '.join(map(str, DEFAULT_TILES))}; with "
                   f"--cpu-paths {' '.join(map(str, PATHS_TILES))}).")
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True,
              help=f"Tiles per call (default: 1; with --cpu-paths repeatable, default "
                   f"{' '.join(map(str, PATHS_BATCHES))}).")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed calls per tile size (the median is reported).")
@threads_option()
@precision_option()
@click.option("--plain/--no-plain", default=True, show_default=True,
              help="Also measure the plain PyTorch reference path.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=Path("dagl-bench.png"),
              show_default=True, help="Where to write the plot (.png, .pdf or .svg).")
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path),
              help="Also write the table as markdown here.")
@click.option("--cpu-paths", is_flag=True,
              help="Measure every CPU path of MODEL (weights or a task name) side by side: the release's chop, "
                   "PyTorch, ONNX Runtime fp32/INT8, OpenVINO fp32/bf16/INT8 (the graphs exported from MODEL into "
                   "a temporary folder).")
@click.option("--image", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="--cpu-paths: the image to restore whole (default: Classic5 q10 barbara from the datasets "
                   "folder, $DAGL_DATASETS).")
@click.option("--clean", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="--cpu-paths: its clean original, for the PSNR column (default: barbara.bmp; needed with "
                   "--image).")
@click.option("--crop", type=click.IntRange(min=16), help="--cpu-paths: restore the centred CROPxCROP part only "
                                                           "(a quick run).")
@click.option("--classic5/--no-classic5", default=False, show_default=True,
              help="--cpu-paths: also score every path on the whole Classic5 q10 set with dagl-eval's protocol "
                   "(the eight paths together: 78 minutes on one shared CPU core).")
@click.pass_context
def main(ctx: click.Context, model: Path, task: str | None, backend: str, device: str, tiles: tuple[int, ...],
         batches: tuple[int, ...], repeats: int, threads: int | None, precision: str | None, plain: bool,
         plot_path: Path, markdown_path: Path | None, cpu_paths: bool, image: Path | None, clean: Path | None,
         crop: int | None, classic5: bool) -> None:
    """Latency per tile, throughput (MP/s) and peak memory of MODEL for several tile sizes,
    side by side with the plain PyTorch reference (dagl.create(task, gfam="plain")).

    MODEL is a .plan/.engine, an .onnx file, a weights file (with --task), or a task name for
    the weights shipped in the package (dagl-bench jpeg).

    With --cpu-paths, MODEL is weights (or a task name) and every CPU path runs them, one after
    the other in this process: ms per call at each --tile and --batch, one whole image restored
    (CPU and wall seconds; on a shared core read the CPU time), its PSNR against PyTorch float32's
    output and against the clean image, and with --classic5 the Classic5 q10 PSNR. A path whose
    library is missing is listed as skipped, with the reason.

    \b
    Examples:
      dagl-bench dagl-jpeg.onnx --tile 48 --tile 64 --threads 1 --plot bench.png
      dagl-bench jpeg --cpu-paths --crop 256 --threads 1 --plot paths.png
      dagl-bench model_best.pt --task jpeg --cpu-paths --image photo.jpg --clean photo.png --tile 32 --batch 1
    """
    given = {name for name in ctx.params if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
    wrong = sorted(given & set(CPU_PATHS_ONLY if not cpu_paths else ARTEFACT_ONLY))
    if wrong:
        option = "--" + wrong[0].replace("_", "-")
        raise UserInputError(f"{option} {'needs' if not cpu_paths else 'does not apply with'} --cpu-paths"
                             + ("" if not cpu_paths else " (it runs every CPU path)"))
    check_output_file(plot_path, PLOT_SUFFIXES)  # before minutes of measuring, not after
    if markdown_path:
        check_output_file(markdown_path)
    if cpu_paths:
        run_cpu_paths(model, task, tiles or PATHS_TILES, batches or PATHS_BATCHES, repeats, threads, image, clean,
                      crop, classic5, plot_path, markdown_path)
        return
    if len(batches) > 1:
        raise UserInputError("--batch is given once without --cpu-paths (it measures one batch size)")
    console = Console()
    bench = Benchmark(model, task, backend, device, tiles or DEFAULT_TILES, batches[0] if batches else 1, repeats,
                      threads, precision, plain)
    with progress(Console(stderr=True)) as bars:  # lines off a terminal: a CI log sees each measurement
        steps = bars.add_task("measuring", total=bench.steps, unit="measurement")
        results = bench.run(
            starting=lambda name, backend, tile: bars.update(steps, description=f"{name} ({backend}): tile {tile}"),
            finished=lambda name, backend, tile: bars.update(steps, advance=1,
                                                             outcome=f"done ({name}, {backend}, tile {tile})"))
    print_table(console, table(results, bench.title))
    write_figures(results, bench.title, plot_path, markdown_path)
    console.print(f"plot: {plot_path}")


def run_cpu_paths(model: Path, task: str | None, tiles: tuple[int, ...], batches: tuple[int, ...], repeats: int,
                  threads: int | None, image: Path | None, clean: Path | None, crop: int | None, classic5: bool,
                  plot_path: Path, markdown_path: Path | None) -> None:
    """``--cpu-paths``: every input checked in a moment, then the minutes of :class:`PathComparison`."""
    from dagl.data.datasets import centre_crop, datasets_root
    from dagl.images.io import read_image

    from .channels import to_network
    from .clean import load_clean
    from .cpu_paths import PathComparison
    from .cpu_paths_report import table as paths_table
    from .cpu_paths_report import write_figures as write_paths
    from .loader import choose_model

    choice = choose_model(model, "auto", task)
    if choice.kind != "weights":
        raise UserInputError(f"{model}: --cpu-paths runs weights (a .pt, .pth or .safetensors file, or a task name "
                             f"such as jpeg) and exports the ONNX graphs from them itself; got an {choice.kind} file")
    task = choice.task or task
    if task is None:
        raise UserInputError(f"{model}: give --task for a weights file")
    if image is not None and clean is None:
        raise UserInputError("--image needs --clean, the clean original its PSNR is measured against")
    if image is None:
        classic5_dir = datasets_root() / "classic5"
        image, clean = classic5_dir / "jpeg_q10" / "barbara.jpeg", clean or classic5_dir / "barbara.bmp"
        for default in (image, clean):
            if not default.is_file():
                raise UserInputError(f"{default}: not found (the default image; set DAGL_DATASETS to the datasets "
                                     f"folder, or give --image and --clean)")
    assert clean is not None
    array = to_network(read_image(image), task).array
    reference = load_clean(clean, array.shape)
    if crop:
        array, reference = centre_crop(array, crop), centre_crop(reference, crop)
    comparison = PathComparison(choice.path, task, tiles=sorted(tiles), batches=sorted(batches), repeats=repeats,
                                threads=threads, classic5=classic5)
    console = Console()
    for result in comparison.results:
        if result.skipped:
            console.print(f"dagl-bench: {result.path.name}: skipped ({result.skipped})", highlight=False)
    with progress(Console(stderr=True)) as bars:
        steps = bars.add_task("measuring", total=comparison.steps, unit="step")
        results = comparison.run(
            array, reference,
            starting=lambda name, what: bars.update(steps, description=f"{name}: {what}"),
            finished=lambda name, what: bars.update(steps, total=comparison.steps, advance=1,  # INT8 may drop out
                                                    outcome=f"done ({name}, {what})"))
    height, width = array.shape[:2]
    title = (f"dagl-bench {model.name} --cpu-paths: {image.name}{f' centred {crop}x{crop}' if crop else ''} "
             f"({width}x{height}), threads {threads or 'default'}, {repeats} repeats")
    print_table(console, paths_table(results, title))
    write_paths(results, title, plot_path, markdown_path)
    console.print(f"plot: {plot_path}")


if __name__ == "__main__":
    main()
