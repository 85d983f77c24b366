"""``dagl-serve``: a DAGL artefact behind NVIDIA Triton Inference Server, on this machine's loopback by default."""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

import click

from dagl.cli.common import Command, max_pixels_option, sigma_option, task_option
from dagl.cli.interrupt import Interrupted

from ..options import restoration_options
from .server import DEFAULT_MAX_BATCH, DEFAULT_MAX_QUEUE, DEFAULT_PORT, DEFAULT_QUEUE_DELAY_US, ServeOptions

PROG = "dagl-serve"
EXAMPLES = """
\b
Examples:
  dagl-serve jpeg                                   # the shipped jpeg weights on http://127.0.0.1:8000
  dagl-serve dagl-jpeg.onnx --port 8010 --max-queue 8
  dagl-infer jpeg photo.jpg -o clean.png --server http://127.0.0.1:8000
"""


@click.command(PROG, cls=Command, epilog=EXAMPLES)
@click.argument("model", type=click.Path(path_type=Path))
@task_option(help="Network task; read from the artefact's metadata when omitted (required for weights files).")
@sigma_option(help="Noise level of a denoising model (picks the shipped weights when MODEL is a task name).")
@restoration_options(ensemble_help="x8 flip/rotation self-ensemble on every request.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address Triton's HTTP endpoint listens on (loopback: this machine only).")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True, help="HTTP port.")
@click.option("--max-batch", type=click.IntRange(min=1), default=DEFAULT_MAX_BATCH, show_default=True,
              help="Most same-shaped requests Triton's dynamic batcher hands over at once.")
@click.option("--queue-delay-us", type=click.IntRange(min=0), default=DEFAULT_QUEUE_DELAY_US, show_default=True,
              help="Microseconds a request waits for batch-mates of its shape.")
@click.option("--max-queue", type=click.IntRange(min=1), default=DEFAULT_MAX_QUEUE, show_default=True,
              help="Requests queued before new ones are refused (the client reports the server busy).")
@max_pixels_option("Refuse a request whose image has more pixels than this (default: {default}); a request body "
                   "is bounded to one float32 image of that size before Triton reads it.")
@click.option("--log-file", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="Where Triton's log goes (default: a new dagl-serve-*.log in the temporary folder).")
@click.option("--verbose", is_flag=True, help="Show Triton's and PyTriton's log here instead of writing it to a file.")
def main(model: Path, task: str | None, sigma: int | None, backend: str, device: str, tiling: str, tile: int,
         overlap: int, batch: int, ensemble: bool, threads: int | None, precision: str | None, host: str, port: int,
         max_batch: int, queue_delay_us: int, max_queue: int, log_file: Path | None, verbose: bool) -> None:
    """Serve a DAGL MODEL (.plan/.engine, .onnx, weights, or a task name for the shipped weights) with
    NVIDIA Triton Inference Server, through nvidia-pytriton (pip install 'dagl[serve]').

    The served model is named like the artefacts (dagl-jpeg, dagl-denoise-s25): it takes an (H, W)
    float32 image in [0, 1] (gray tasks; (H, W, C) otherwise) named "image", restores it exactly as
    dagl-infer does with the same options (the same path for --backend auto: on a CPU, OpenVINO in
    bfloat16 where it is installed and the CPU has it), and returns it as "restored". Same-shaped requests are
    batched (--max-batch, --queue-delay-us); beyond --max-queue waiting requests new ones are refused.
    Requests are bounded before Triton reads them (size, JSON nesting) and images by --max-pixels, as
    files are. It prints one line when ready and one when stopped (Ctrl-C or SIGTERM, exit 0).
    """
    from ..auto import open_restorer
    from .server import check_port_free, require_pytriton, serve

    require_pytriton()  # the missing extra and a taken port in one line, before seconds of model loading
    check_port_free(host, port)
    restorer, line = open_restorer(model, backend=backend, precision=precision, device=device, task=task,
                                   sigma=sigma, note=lambda text: click.echo(f"{PROG}: note: {text}", err=True),
                                   tiling=tiling, tile=tile, overlap=overlap, batch=batch, ensemble=ensemble,
                                   threads=threads)
    if line:  # which path --backend auto took, and why: dagl-infer says the same
        click.echo(f"{PROG}: {line}", err=True)
    if not verbose and log_file is None:
        with tempfile.NamedTemporaryFile(prefix="dagl-serve-", suffix=".log", delete=False) as new:
            log_file = Path(new.name)
    options = ServeOptions(host=host, port=port, max_batch=max_batch, queue_delay_us=queue_delay_us,
                           max_queue=max_queue, log_file=None if verbose else log_file)

    def ready(url: str, name: str) -> None:
        log = "" if verbose else f"; Triton's log: {log_file}"
        click.echo(f"{PROG}: serving {name} ({restorer.backend}, {restorer.runner.device}, {tiling} tiling) at "
                   f"{url}; send images with: dagl-infer {restorer.task} IMAGE --server {url}{log}", err=True)

    try:
        serve(restorer, options, ready)
    except Interrupted as stop:  # Ctrl-C or SIGTERM: how a server is meant to end
        click.echo(f"{PROG}: stopped ({signal.Signals(stop.signum).name})", err=True)


if __name__ == "__main__":
    main()
