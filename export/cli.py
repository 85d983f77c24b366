"""``dagl-export``: a DAGL task's weights -> checked ONNX (float32, FP16) -> TensorRT engine."""

from __future__ import annotations

import json
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from dagl.artefact import (DEFAULT_BATCH, DEFAULT_MAX_TILE, DEFAULT_MIN_TILE, DEFAULT_TILE, EngineUnavailable, Profile,
                           artefact_stem, current_gpu, import_tensorrt, onnx_metadata)
from dagl.atomic import write_atomic
from dagl.cli_common import Command, sigma_option, task_option
from dagl.configs import TaskConfig, get_config
from dagl.outputs import check_output_folder
from dagl.chosen_weights import RANDOM, RANDOM_SEED, WeightsInfo, load_chosen_weights
from dagl.errors import DaglError, WeightsError, output_error

if TYPE_CHECKING:  # onnx, torch and the exporter modules are imported in the command's body, so --help is instant
    import onnx
    from torch import nn

#: Spinners for the long steps; messages go through click.echo as single lines.
_STDERR = Console(stderr=True)
_PACKAGES = ("dagl", "torch", "onnx", "onnxruntime", "onnxconverter-common", "tensorrt")


class GraphRefusedError(DaglError):
    """An exported graph failed onnx.checker or the TensorRT check; nothing is written."""


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


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _onnx_metadata(task: str, channels: int, precision: str, sigma: int | None, weights: WeightsInfo) -> dict:
    return onnx_metadata(task, channels, precision, sigma, weights.label)


def _check(model: onnx.ModelProto, label: str) -> None:
    """onnx.checker and the TensorRT 11 rules; a failure names the graph and the node."""
    import onnx

    from .trt_check import TensorRTCompatibilityError, assert_tensorrt_compatible

    try:
        onnx.checker.check_model(model)
        assert_tensorrt_compatible(model)
    except (onnx.checker.ValidationError, TensorRTCompatibilityError) as exc:
        raise GraphRefusedError(f"{label} graph refused, nothing written: {exc}") from None


def _validate_options(config: TaskConfig, sigma: int | None, onnx_only: bool, engine_required: bool,
                      shapes: tuple[tuple[int, int], ...]) -> None:
    """Every refusal that needs no model: cheap, before minutes of export."""
    config.check_sigma(sigma)
    if onnx_only and engine_required:
        raise click.UsageError("--onnx-only and --engine-required contradict each other")
    lo, opt, hi = shapes
    if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
        raise click.UsageError(f"shapes must satisfy min <= opt <= max per axis, got "
                               f"{lo[0]}x{lo[1]}, {opt[0]}x{opt[1]}, {hi[0]}x{hi[1]}")
    if engine_required:
        try:
            import_tensorrt()
            current_gpu()
        except EngineUnavailable as exc:
            raise EngineUnavailable(f"--engine-required, but no engine can be built here: {exc}") from None


def _export_graphs(model: nn.Module, task: str, sigma: int | None, info: WeightsInfo, fp16: bool,
                   output_dir: Path) -> tuple[dict[str, onnx.ModelProto], set[str]]:
    """The checked, labelled graphs by file name (nothing written yet) and the float32 node set."""
    import onnx

    from dagl.calibration.policy import fp32_nodes

    from .fp16 import to_fp16
    from .onnx import DEFAULT_OPSET, export_onnx, set_metadata

    channels = get_config(task).channels
    stem = artefact_stem(task)
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".dagl-export-") as tmp:
        with _STDERR.status(f"exporting {task} to float32 ONNX (opset {DEFAULT_OPSET})"):
            fp32 = onnx.load(str(export_onnx(model, Path(tmp) / "fp32.onnx", channels=channels)))
    set_metadata(fp32, _onnx_metadata(task, channels, "fp32", sigma, info))
    _check(fp32, "float32")
    graphs = {f"{stem}.onnx": fp32}
    keep = fp32_nodes(fp32.graph, task)
    if fp16:
        with _STDERR.status("converting to FP16 (attention path kept in float32)"):
            half = set_metadata(to_fp16(fp32, keep), _onnx_metadata(task, channels, "fp16", sigma, info))
        _check(half, "FP16")
        graphs[f"{stem}-fp16.onnx"] = half
    return graphs, keep


@click.command("dagl-export", cls=Command)
@task_option(required=True)
@click.option("--weights", default=None, metavar="PATH|random",
              help="Official DAGL checkpoint or .safetensors. Default: the weights shipped for the task. "
                   f"'{RANDOM}' = seeded random weights, for smoke-testing a deployment pipeline only.")
@sigma_option(help="Noise level of the denoise model: 15, 25 or 50 (required for --task denoise).")
@click.option("--fp16", is_flag=True, help="Also write the FP16 ONNX and build an FP16 engine "
              "(the GFAM attention stays float32, see docs/fp16-ranges.md).")
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
def main(task: str, weights: str | None, sigma: int | None, fp16: bool, output_dir: Path, onnx_only: bool,
         min_shape: tuple[int, int], opt_shape: tuple[int, int], max_shape: tuple[int, int], batch: int,
         engine_required: bool, triton_repo: Path | None, triton_tile: int | None,
         triton_max_batch: int | None) -> None:
    """Export a DAGL task to ONNX and build a strongly typed TensorRT engine (10.12+ or 11.x).

    \b
    Writes into --output-dir:
      dagl-<task>.onnx          float32, dynamic N/H/W, checked for TensorRT 11
      dagl-<task>-fp16.onnx     with --fp16 (float32 I/O, attention kept float32)
      dagl-<task>-fp16.plan     the engine from the FP16 ONNX (-fp32.plan from the float32
                                ONNX without --fp16) + .plan.json
      dagl-<task>.json          what was exported, from which weights, with which tools
    Without tensorrt or a GPU the ONNX files are kept and the command still succeeds
    (unless --engine-required).

    \b
    Example (no trained weights needed):
      dagl-export --task jpeg --weights random --onnx-only
    """
    from dagl.calibration.policy import RANGES_FILE

    from .onnx import DEFAULT_OPSET, save_atomic
    from .tensorrt_build import EngineTask, build_engine
    from .triton import check_repo_options, write_triton_repo

    config = get_config(task)
    _validate_options(config, sigma, onnx_only, engine_required, (min_shape, opt_shape, max_shape))
    shapes = Profile(min=(1, config.channels, *min_shape), opt=(batch, config.channels, *opt_shape),
                     max=(batch, config.channels, *max_shape))
    if triton_repo is not None and not onnx_only:  # a tile model the engine would refuse: before the minutes
        check_repo_options(shapes, config.channels, triton_tile, triton_max_batch)
    check_output_folder(output_dir)  # before the export's minutes, not after
    try:
        model, info = load_chosen_weights(task, weights, sigma)
    except WeightsError as exc:
        if weights:
            raise
        raise WeightsError(f"{exc}; use --weights PATH, or --weights random for a smoke test") from None
    if info.random:
        what = (f"--weights random: seeded random weights (seed {RANDOM_SEED})" if info.sha256 is None
                else f"{info.source}: {info.label}")
        click.secho(f"WARNING: {what}; the artefacts restore nothing and are labelled so in their metadata",
                    fg="yellow", bold=True, err=True)

    stem = artefact_stem(task)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(output_dir, exc, what="cannot create the output folder") from None
    graphs, keep = _export_graphs(model, task, sigma, info, fp16, output_dir)
    for name, graph in graphs.items():
        save_atomic(graph, output_dir / name)
    written = list(graphs)

    channels = config.channels
    precision = "fp16" if fp16 else "fp32"
    engine_note = "skipped (--onnx-only)"
    plan: Path | None = None
    if not onnx_only:
        plan = output_dir / f"{stem}-{precision}.plan"
        facts = EngineTask(task=task, channels=channels, precision=precision, sigma=sigma, weights=info.as_dict())
        try:
            with _STDERR.status(f"building the TensorRT {precision} engine (minutes)"):
                # Strongly typed: the engine's precision is its ONNX graph's (FP16 graph -> FP16 engine).
                source = f"{stem}-fp16.onnx" if fp16 else f"{stem}.onnx"
                build_engine(output_dir / source, plan, profile=shapes, task=facts)
            written += [plan.name, plan.name + ".json"]
            engine_note = plan.name
        except EngineUnavailable as exc:  # only reachable without --engine-required (checked upfront)
            engine_note, plan = f"not built: {exc}", None
            click.echo(f"no TensorRT engine built: {exc}; ONNX files kept in {output_dir}", err=True)

    models = [] if triton_repo is None else [
        folder.name for folder in write_triton_repo(triton_repo, output_dir / f"{stem}.onnx", plan,
                                                    tile=triton_tile, max_batch=triton_max_batch)]
    summary = {
        "task": task, "channels": channels, "sigma": sigma, "opset": DEFAULT_OPSET, "precision": precision,
        "shapes": {"min": list(shapes.min), "opt": list(shapes.opt), "max": list(shapes.max)},
        "weights": info.as_dict(), "fp32_nodes_in_fp16": len(keep) if fp16 else 0,
        "fp16_policy": RANGES_FILE.name, "engine": engine_note, "versions": _versions(),
        "files": written + [f"{stem}.json"], "triton_models": models,
    }
    write_atomic(output_dir / f"{stem}.json", json.dumps(summary, indent=2) + "\n")
    click.echo(f"wrote {', '.join(summary['files'])} to {output_dir}")
    if models:
        click.echo(f"wrote Triton models {', '.join(models)} to {triton_repo}")
