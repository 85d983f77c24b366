"""``dagl-bench``: per-tile latency, throughput and peak memory of an artefact vs the plain PyTorch path.

Options and messages over :mod:`dagl.runtime.benchmark`, which measures and writes the figures.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from dagl.cli.common import Command, device_option, precision_option, task_option, threads_option
from dagl.cli.progress import print_table, progress
from dagl.outputs import check_output_file

from .benchmark import DEFAULT_TILES, PLOT_SUFFIXES, Benchmark, table, write_figures
from .options import backend_option


@click.command("dagl-bench", cls=Command)
@click.argument("model", type=click.Path(path_type=Path))
@task_option(help="Task of a weights file (artefacts carry their own).")
@backend_option()
@device_option()
@click.option("--tile", "tiles", type=click.IntRange(min=8), multiple=True, default=DEFAULT_TILES,
              show_default=True, help="Square tile sides to measure (repeatable).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Tiles per call.")
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
def main(model: Path, task: str | None, backend: str, device: str, tiles: tuple[int, ...], batch: int,
         repeats: int, threads: int | None, precision: str | None, plain: bool, plot_path: Path,
         markdown_path: Path | None) -> None:
    """Latency per tile, throughput (MP/s) and peak memory of MODEL for several tile sizes,
    side by side with the plain PyTorch reference (dagl.create(task, gfam="plain")).

    MODEL is a .plan/.engine, an .onnx file, a weights file (with --task), or a task name for
    the weights shipped in the package (dagl-bench jpeg).

    \b
    Example:
      dagl-bench dagl-jpeg.onnx --tile 48 --tile 64 --threads 1 --plot bench.png
    """
    console = Console()
    check_output_file(plot_path, PLOT_SUFFIXES)  # before minutes of measuring, not after
    if markdown_path:
        check_output_file(markdown_path)
    bench = Benchmark(model, task, backend, device, tiles, batch, repeats, threads, precision, plain)
    with progress(Console(stderr=True)) as bars:  # lines off a terminal: a CI log sees each measurement
        steps = bars.add_task("measuring", total=bench.steps, unit="measurement")
        results = bench.run(
            starting=lambda name, backend, tile: bars.update(steps, description=f"{name} ({backend}): tile {tile}"),
            finished=lambda name, backend, tile: bars.update(steps, advance=1,
                                                             outcome=f"done ({name}, {backend}, tile {tile})"))
    print_table(console, table(results, bench.title))
    write_figures(results, bench.title, plot_path, markdown_path)
    console.print(f"plot: {plot_path}")


if __name__ == "__main__":
    main()
