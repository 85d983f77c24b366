"""Export as a library: a task's weights -> checked ONNX graphs -> TensorRT engine -> manifest, in one call.

``dagl-export`` is this call plus options and messages, as ``dagl-infer`` is ``dagl.runtime.Restorer``
plus options. Every file name comes from :mod:`dagl.artefact.naming`, every precision from its entry in
:mod:`dagl.artefact.precision`. onnx, torch and the exporter modules are imported inside the calls,
so importing this module (and so ``dagl-export --help``) stays instant.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from importlib import import_module, metadata
from pathlib import Path
from typing import TYPE_CHECKING

from dagl.artefact import (DEFAULT_BATCH, DEFAULT_MAX_TILE, DEFAULT_MIN_TILE, DEFAULT_TILE, EngineTask,
                           EngineUnavailable, Precision, Profile, current_gpu, import_tensorrt, onnx_metadata,
                           sidecar_path)
from dagl.artefact.naming import engine_name, manifest_name, onnx_name
from dagl.artefact.precision import FP32, get_graph_precision
from dagl.atomic import write_atomic
from dagl.chosen_weights import WeightsInfo, load_chosen_weights
from dagl.errors import DaglError, UserInputError, output_error
from dagl.outputs import check_output_folder
from dagl.tasks.configs import TaskConfig, get_config

from .triton import check_repo_options, write_triton_repo

if TYPE_CHECKING:
    import onnx
    from torch import nn

#: What the manifest records the versions of.
_PACKAGES = ("dagl", "torch", "onnx", "onnxruntime", "onnxconverter-common", "tensorrt")
#: The engine note when no engine was asked for (the manifest's ``engine``; the CLI's option name).
ENGINE_SKIPPED = "skipped (--onnx-only)"

Tile = tuple[int, int]
#: ``status(text)`` is entered around each long step (a spinner in the CLI, nothing by default).
Status = Callable[[str], AbstractContextManager]


class GraphRefusedError(DaglError):
    """An exported graph failed onnx.checker or the TensorRT check; nothing is written."""


class ExportOptionError(UserInputError):
    """Options that contradict each other or are out of order; refused before anything loads."""


@dataclass(frozen=True)
class ExportResult:
    """What one :func:`export` wrote, all in ``output_dir``."""

    output_dir: Path
    #: Precision name -> its ONNX graph (float32 always, then the asked precision's, if another).
    graphs: dict[str, Path]
    #: The engine and its sidecar, or ``None`` when none was asked for or none could be built here.
    engine: Path | None
    sidecar: Path | None
    #: ``dagl-<stem>.json``: what was exported, from which weights, with which tools.
    manifest: Path
    weights: WeightsInfo
    #: Why no engine was built although one was asked for (no tensorrt, no GPU); ``None`` otherwise.
    engine_unavailable: str | None = None
    #: The Triton model folders written into ``triton_repo`` (none without one).
    triton_models: tuple[Path, ...] = ()

    @property
    def files(self) -> list[Path]:
        """Every file written, in the order written (the manifest last)."""
        engine = [self.engine, self.sidecar] if self.engine and self.sidecar else []
        return [*self.graphs.values(), *engine, self.manifest]


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _named(target: str) -> Callable:
    """The function a registry entry names as ``"module:function"``: the registry cannot import it itself."""
    module, _, function = target.partition(":")
    return getattr(import_module(module), function)


def _maker(entry: Precision) -> Callable[[onnx.ModelProto, set[str]], onnx.ModelProto]:
    """The function ``entry.make`` names."""
    return _named(str(entry.make))


def _check(model: onnx.ModelProto, entry: Precision) -> None:
    """onnx.checker and the TensorRT 11 rules for ``entry``'s graphs; a failure names the graph and the node."""
    import onnx

    from .trt_check import TensorRTCompatibilityError, assert_tensorrt_compatible

    try:
        onnx.checker.check_model(model)
        assert_tensorrt_compatible(model, entry.operators)
    except (onnx.checker.ValidationError, TensorRTCompatibilityError) as exc:
        raise GraphRefusedError(f"{entry.title} graph refused, nothing written: {exc}") from None


def _validate(config: TaskConfig, sigma: int | None, engine: bool, engine_required: bool,
              tiles: tuple[Tile, Tile, Tile]) -> None:
    """Every refusal that needs no model: cheap, before minutes of export."""
    config.check_sigma(sigma)
    if not engine and engine_required:
        raise ExportOptionError("--onnx-only and --engine-required contradict each other")
    lo, opt, hi = tiles
    if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
        raise ExportOptionError(f"shapes must satisfy min <= opt <= max per axis, got "
                                f"{lo[0]}x{lo[1]}, {opt[0]}x{opt[1]}, {hi[0]}x{hi[1]}")
    if engine_required:
        try:
            import_tensorrt()
            current_gpu()
        except EngineUnavailable as exc:
            raise EngineUnavailable(f"--engine-required, but no engine can be built here: {exc}") from None


def _export_graphs(model: nn.Module, task: str, sigma: int | None, info: WeightsInfo, entry: Precision,
                   output_dir: Path, ranges: dict, status: Status) -> tuple[dict[str, onnx.ModelProto], set[str]]:
    """The checked, labelled graphs by precision name (nothing written yet) and the float32 node set."""
    import onnx

    from dagl.calibration.policy import fp32_nodes

    from .onnx import DEFAULT_OPSET, export_onnx, set_metadata

    channels = get_config(task).channels
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".dagl-export-") as tmp:
        with status(f"exporting {task} to {FP32.title} ONNX (opset {DEFAULT_OPSET})"):
            fp32_graph = onnx.load(str(export_onnx(model, Path(tmp) / "fp32.onnx", channels=channels)))
    set_metadata(fp32_graph, onnx_metadata(task, channels, FP32.name, sigma, info.label))
    _check(fp32_graph, FP32)
    graphs = {FP32.name: fp32_graph}
    keep = fp32_nodes(fp32_graph.graph, task, ranges)
    if entry is not FP32:
        with status(entry.making):
            graph = set_metadata(_maker(entry)(fp32_graph, keep),
                                 onnx_metadata(task, channels, entry.name, sigma, info.label))
        _check(graph, entry)
        graphs[entry.name] = graph
    return graphs, keep


def export(task: str, weights: str | Path | None = None, *, sigma: int | None = None,
           precision: str = FP32.name, output_dir: str | Path = ".", engine: bool = True,
           engine_required: bool = False, min_tile: Tile = (DEFAULT_MIN_TILE, DEFAULT_MIN_TILE),
           opt_tile: Tile = (DEFAULT_TILE, DEFAULT_TILE), max_tile: Tile = (DEFAULT_MAX_TILE, DEFAULT_MAX_TILE),
           batch: int = DEFAULT_BATCH, triton_repo: str | Path | None = None, triton_tile: int | None = None,
           triton_max_batch: int | None = None, fp16_ranges: str | Path | None = None,
           on_weights: Callable[[WeightsInfo], None] | None = None,
           status: Status = lambda text: nullcontext()) -> ExportResult:
    """Export ``task`` (``weights``: a file, ``None`` for the shipped ones, ``"random"``) into ``output_dir``.

    Writes the float32 ONNX graph, the ``precision`` graph if it is another one (made from the
    float32 one as its entry in :mod:`dagl.artefact.precision` says), the strongly typed TensorRT
    engine of the ``precision`` graph with its sidecar (if ``engine``: without tensorrt or a GPU the
    ONNX files are kept and :attr:`ExportResult.engine_unavailable` says why, unless
    ``engine_required``), and the manifest. The engine's profile spans ``min_tile`` (batch 1) to
    ``max_tile``, tuned for ``opt_tile``; both at ``batch``. ``on_weights`` is called once the weights
    are loaded, before the minutes of export (the CLI warns about random weights there).
    ``triton_repo``: also a Triton model repository of what was built (:func:`dagl.export.triton.write_triton_repo`;
    ``triton_tile``/``triton_max_batch`` for its tile models, checked against the engine's profile up front).
    ``fp16_ranges``: a ranges file from ``dagl-calibrate`` for these weights (default: the package's record,
    made for the shipped weights); the modules it keeps in float32 stay so in the FP16 graph.

    Every refusal comes before the first file: options and the output folder before the weights
    load, a graph that fails a check before any graph is saved. A TensorRT build that fails (an
    :class:`~dagl.artefact.engine_build.EngineBuildError`) leaves the saved graphs, without a manifest.
    """
    entry = get_graph_precision(precision)
    config = get_config(task)
    output_dir = Path(output_dir)
    _validate(config, sigma, engine, engine_required, (min_tile, opt_tile, max_tile))
    shapes = Profile(min=(1, config.channels, *min_tile), opt=(batch, config.channels, *opt_tile),
                     max=(batch, config.channels, *max_tile))
    if triton_repo is not None and engine:  # a tile model the engine would refuse: before the minutes
        check_repo_options(shapes, config.channels, triton_tile, triton_max_batch)
    check_output_folder(output_dir)  # before the export's minutes, not after
    from dagl.calibration.policy import RANGES_FILE, RangesError, load_ranges

    ranges_file = RANGES_FILE if fp16_ranges is None else Path(fp16_ranges)
    if fp16_ranges is not None and not ranges_file.is_file():
        raise RangesError(f"{ranges_file}: no such ranges file; make one with dagl-calibrate --task {task}")
    ranges = load_ranges(ranges_file)
    if fp16_ranges is not None and task not in ranges["tasks"]:
        raise RangesError(f"{ranges_file}: has no record for task {task!r}; "
                          f"make one with dagl-calibrate --task {task}")
    if entry.check is not None:  # what the precision's maker needs (INT8: its calibration images)
        _named(entry.check)(task, sigma)
    model, info = load_chosen_weights(task, weights, sigma)
    if on_weights is not None:
        on_weights(info)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(output_dir, exc, what="cannot create the output folder") from None
    graphs, keep = _export_graphs(model, task, sigma, info, entry, output_dir, ranges, status)
    triton = None if triton_repo is None else (Path(triton_repo), triton_tile, triton_max_batch)
    return _write(task, sigma, config, info, entry, output_dir, graphs, keep, ranges_file, engine, shapes, triton,
                  status)


def _write(task: str, sigma: int | None, config: TaskConfig, info: WeightsInfo, entry: Precision, output_dir: Path,
           graphs: dict[str, onnx.ModelProto], keep: set[str], ranges_file: Path, engine: bool, shapes: Profile,
           triton: tuple[Path, int | None, int | None] | None, status: Status) -> ExportResult:
    """Save the checked graphs, build the engine if asked and possible, the Triton models if asked, and write
    the manifest last."""
    from .onnx import DEFAULT_OPSET, save_atomic
    from dagl.artefact.engine_build import build_engine

    paths = {name: save_atomic(graph, output_dir / onnx_name(task, sigma, name)) for name, graph in graphs.items()}
    plan = sidecar = unavailable = None
    engine_note = ENGINE_SKIPPED
    if engine:
        target = output_dir / engine_name(task, sigma, entry.name)
        facts = EngineTask(task=task, channels=config.channels, precision=entry.name, sigma=sigma,
                           weights=info.as_dict())
        try:
            with status(f"building the TensorRT {entry.name} engine (minutes)"):
                # Strongly typed: the engine's precision is its ONNX graph's (FP16 graph -> FP16 engine).
                build_engine(paths[entry.name], target, profile=shapes, task=facts)
            plan, sidecar, engine_note = target, sidecar_path(target), target.name
        except EngineUnavailable as exc:  # only reachable without engine_required (checked upfront)
            unavailable, engine_note = str(exc), f"not built: {exc}"
    models: tuple[Path, ...] = ()
    if triton is not None:
        repo, tile, max_batch = triton
        models = tuple(write_triton_repo(repo, paths[FP32.name], plan, tile=tile, max_batch=max_batch))
    result = ExportResult(output_dir, paths, plan, sidecar, output_dir / manifest_name(task, sigma), info, unavailable,
                          models)
    summary = {
        "task": task, "channels": config.channels, "sigma": sigma, "opset": DEFAULT_OPSET, "precision": entry.name,
        "shapes": {"min": list(shapes.min), "opt": list(shapes.opt), "max": list(shapes.max)},
        "weights": info.as_dict(), "fp32_nodes_in_fp16": len(keep) if entry is not FP32 else 0,
        "fp16_policy": ranges_file.name, "engine": engine_note, "versions": _versions(),
        "files": [path.name for path in result.files], "triton_models": [model.name for model in models],
    }
    write_atomic(result.manifest, json.dumps(summary, indent=2) + "\n")
    return result
