"""``dagl-export``: options and messages around :func:`dagl.export.export` (weights -> ONNX -> TensorRT engine)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from dagl.artefact import DEFAULT_BATCH, DEFAULT_MAX_TILE, DEFAULT_MIN_TILE, DEFAULT_TILE
from dagl.artefact.precision import FP16, FP32
from dagl.chosen_weights import RANDOM, RANDOM_SEED, WeightsInfo
from dagl.cli.common import Command, precision_option, sigma_option, task_option
from dagl.errors import WeightsError

from .pipeline import export

#: Spinners for the long steps; messages go through click.echo as single lines.
_STDERR = Console(stderr=True)


class ShapeType(click.ParamType):
    """``HxW`` -> (H, W), both positive."""

    name = "HxW"

    def convert(self, value, param, ctx) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        parts = str(value).lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
            self.fail(f"{value!r} is not HEIGHTxWIDTH with positive integers, e.g. 96x96", param, ctx)
        return int(parts[0]), int(parts[1])


def _warn_if_random(info: WeightsInfo) -> None:
    """Untrained weights are said loudly, before the minutes of export."""
    if info.random:
        what = (f"--weights random: seeded random weights (seed {RANDOM_SEED})" if info.sha256 is None
                else f"{info.source}: {info.label}")
        click.secho(f"WARNING: {what}; the artefacts restore nothing and are labelled so in their metadata",
                    fg="yellow", bold=True, err=True)


@click.command("dagl-export", cls=Command)
@task_option(required=True)
@click.option("--weights", default=None, metavar="PATH|random",
              help="Official DAGL checkpoint or .safetensors. Default: the weights shipped for --task (as "
                   "--model jpeg / MODEL jpeg in the other commands; jpeg ships). "
                   f"'{RANDOM}' = seeded random weights, for smoke-testing a deployment pipeline only.")
@sigma_option(help="Noise level of the denoise model: 15, 25 or 50 (required for --task denoise).")
@precision_option(default=FP32.name, help="Precision of the engine, and of a second ONNX graph beside the "
                  "float32 one: fp16 keeps the GFAM attention float32 (docs/fp16-ranges.md). bf16 has no graph "
                  "of its own (it runs the float32 graph).")
@click.option("--fp16", is_flag=True, hidden=True, help="Old spelling of --precision fp16.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Folder for the .onnx/.plan/.json files (created if missing).")
@click.option("--onnx-only", is_flag=True, help="Stop after the ONNX files; no TensorRT engine.")
@click.option("--min-shape", type=ShapeType(), default=f"{DEFAULT_MIN_TILE}x{DEFAULT_MIN_TILE}", show_default=True,
              help="Smallest tile HxW the engine accepts.")
@click.option("--opt-shape", type=ShapeType(), default=f"{DEFAULT_TILE}x{DEFAULT_TILE}", show_default=True,
              help="Tile HxW TensorRT tunes kernels for (dagl-infer's default grid tile).")
@click.option("--max-shape", type=ShapeType(), default=f"{DEFAULT_MAX_TILE}x{DEFAULT_MAX_TILE}", show_default=True,
              help="Largest tile HxW (attention memory grows with (H*W)^2/16: keep tiles modest).")
@click.option("--batch", type=click.IntRange(min=1), default=DEFAULT_BATCH, show_default=True,
              help="Largest batch of tiles per engine call (also the tuned one; dagl-infer's default).")
@click.option("--engine-required", is_flag=True, help="Exit non-zero if no engine can be built here.")
@click.option("--triton-repo", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Also write a Triton Inference Server model repository for what was built (docs/serving.md).")
@click.option("--triton-tile", type=click.IntRange(min=8), default=None,
              help="Tile side of the Triton tile models. Default: the engine's --opt-shape tile.")
@click.option("--triton-max-batch", type=click.IntRange(min=1), default=None,
              help="max_batch_size of the Triton models. Default: the engine's --batch.")
@click.option("--fp16-ranges", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Activation ranges of these weights from dagl-calibrate: modules it finds near FP16's limit stay "
                   "float32 too. Default: the package's record, measured for the shipped weights.")
def main(task: str, weights: str | None, sigma: int | None, precision: str, fp16: bool, output_dir: Path,
         onnx_only: bool, min_shape: tuple[int, int], opt_shape: tuple[int, int], max_shape: tuple[int, int],
         batch: int, engine_required: bool, triton_repo: Path | None, triton_tile: int | None,
         triton_max_batch: int | None, fp16_ranges: Path | None) -> None:
    """Export a DAGL task to ONNX and build a strongly typed TensorRT engine (10.12+ or 11.x).

    \b
    Writes into --output-dir (STEM: dagl-<task>, dagl-denoise-s<sigma> for denoise):
      STEM.onnx                 float32, dynamic N/H/W, checked for TensorRT 11
      STEM-fp16.onnx            with --precision fp16 (float32 I/O, attention kept float32)
      STEM-fp16.plan            the engine from the FP16 ONNX (-fp32.plan from the float32
                                ONNX at --precision fp32) + .plan.json
      STEM.json                 what was exported, from which weights, with which tools
    Without tensorrt or a GPU the ONNX files are kept and the command still succeeds
    (unless --engine-required).

    \b
    Example (no trained weights needed):
      dagl-export --task jpeg --weights random --onnx-only
    """
    if fp16:
        if precision not in (FP32.name, FP16.name):
            raise click.UsageError(f"--fp16 is the old spelling of --precision {FP16.name}; it contradicts "
                                   f"--precision {precision}")
        precision = FP16.name
    try:
        result = export(task, weights, sigma=sigma, precision=precision, output_dir=output_dir,
                        engine=not onnx_only, engine_required=engine_required, min_tile=min_shape,
                        opt_tile=opt_shape, max_tile=max_shape, batch=batch, triton_repo=triton_repo,
                        triton_tile=triton_tile, triton_max_batch=triton_max_batch, fp16_ranges=fp16_ranges,
                        on_weights=_warn_if_random,
                        status=_STDERR.status)
    except WeightsError as exc:
        if weights:
            raise
        raise WeightsError(f"{exc}; use --weights PATH, or --weights random for a smoke test") from None
    if result.engine_unavailable:
        click.echo(f"no TensorRT engine built: {result.engine_unavailable}; ONNX files kept in {output_dir}", err=True)
    click.echo(f"wrote {', '.join(path.name for path in result.files)} to {output_dir}")
    if result.triton_models:
        click.echo(f"wrote Triton models {', '.join(model.name for model in result.triton_models)} to {triton_repo}")


if __name__ == "__main__":  # dagl.runtime.cpu_paths runs the exporter as a command, never by import
    main()
