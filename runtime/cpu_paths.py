"""Every CPU path of one network, measured side by side in one process (``dagl-bench --cpu-paths``'s library).

Which path ``--backend auto`` should take, and what each costs in quality, is only a fair question when the
paths run the same weights on the same image on the same machine at the same time: a row measured last week on
a quieter core says nothing against today's. :data:`PATHS` is the one list of those paths (one entry each, a
name registered once); :func:`compare_paths` times one call per (tile, batch) on each, restores one whole
image with each, and scores every output against PyTorch float32's and against the clean image (and, when
asked, on Classic5 q10 with ``dagl-eval``'s protocol).
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dagl.artefact.naming import onnx_name
from dagl.artefact.precision import BF16, FP32, INT8
from dagl.errors import DaglError, UserInputError
from dagl.images.metrics import psnr
from dagl.registry import by_name

from .benchmark import Measurement, cpu_seconds, measure
from .restorer import Restorer

#: What a path runs: the weights themselves, or the float32 or INT8 ONNX graph exported from them.
WEIGHTS = "weights"
MODELS = (WEIGHTS, FP32.name, INT8.name)


@dataclass(frozen=True)
class CpuPath:
    """One way to restore an image on a CPU: which model, on which backend, at which precision, how tiled."""

    name: str
    #: One of :data:`MODELS`.
    model: str
    #: A name of :data:`dagl.runtime.backends.REGISTRY`.
    backend: str
    #: The precision it computes at (a name of ``dagl/artefact/precision.py``).
    precision: str
    #: The Python module the backend needs; a path whose module does not import is skipped, not failed.
    library: str
    #: A name of :data:`dagl.runtime.tiling.TILINGS`: ``reference`` is the release's recursive chop.
    tiling: str = "grid"


#: The base every other output is compared with: the float32 network in PyTorch, dagl's grid.
BASE = "PyTorch fp32"
#: The path the speed-up column divides by (issue 23 states its goal against it).
SPEED_BASE = "ONNX Runtime fp32"

PATHS: Mapping[str, CpuPath] = by_name((
    CpuPath("release chop", WEIGHTS, "torch", FP32.name, "torch", tiling="reference"),
    CpuPath(BASE, WEIGHTS, "torch", FP32.name, "torch"),
    CpuPath(SPEED_BASE, FP32.name, "onnxruntime", FP32.name, "onnxruntime"),
    CpuPath("ONNX Runtime INT8", INT8.name, "onnxruntime", INT8.name, "onnxruntime"),
    CpuPath("OpenVINO fp32", FP32.name, "openvino", FP32.name, "openvino"),
    CpuPath("OpenVINO bf16", FP32.name, "openvino", BF16.name, "openvino"),
    # What dagl-infer's auto runs: the weights converted by OpenVINO, GFAM in its unfold form (docs/int8.md).
    CpuPath("OpenVINO bf16, weights (auto)", WEIGHTS, "openvino", BF16.name, "openvino"),
    CpuPath("OpenVINO INT8", INT8.name, "openvino", INT8.name, "openvino"),
), "CPU path")

#: ``dagl-bench --cpu-paths``'s default tile sides and batches: the 64 px tile, and the grid's 80 px.
DEFAULT_TILES = (64, 80)
DEFAULT_BATCHES = (1, 4)


@dataclass
class PathResult:
    """One path's figures; ``skipped`` (one line why) when it could not run here, and then nothing else."""

    path: CpuPath
    skipped: str | None = None
    #: One per (tile, batch); empty for the chop, whose calls are :data:`BASE`'s network on other tile sizes.
    calls: list[Measurement] = field(default_factory=list)
    #: Restoring the whole image (model load and compilation apart): the process's CPU time and wall time.
    cpu_s: float = float("nan")
    wall_s: float = float("nan")
    psnr_vs_base: float = float("nan")
    psnr_vs_clean: float = float("nan")
    #: Classic5 q10 mean PSNR (dagl-eval's protocol, full images), when asked for.
    classic5: float | None = None
    output: np.ndarray | None = field(default=None, repr=False)


#: Called with (path name, what) as a step starts or finishes: ``tile 64 batch 1``, ``whole image``, ``classic5``;
#: the export of the graphs first, as (``export``, which graphs).
Step = Callable[[str, str], None]


def unavailable(path: CpuPath) -> str | None:
    """Why ``path`` cannot run on this machine (one line), or ``None``; a moment's look, no work. (A graph that
    cannot be exported here, INT8 without its calibration images, is found by :func:`export_graphs`.)"""
    try:
        importlib.import_module(path.library)
    except ImportError:
        extra = f" (pip install 'dagl[{path.library}]')" if path.library == "openvino" else ""
        return f"{path.library} is not installed{extra}"
    if path.precision == BF16.name:
        from .auto import cpu_capabilities

        if not cpu_capabilities().bf16:
            return "this CPU has no bfloat16 arithmetic (AVX512-BF16 or AMX)"
    return None


def restore_timed(restorer: Restorer, image: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``restorer(image)``, its CPU seconds and wall seconds (the backend already active)."""
    start_cpu, start = cpu_seconds(), time.perf_counter()
    out = restorer(image)
    return out, cpu_seconds() - start_cpu, time.perf_counter() - start


def step(name: str, what: str, work: Callable[[], None], starting: Step | None, finished: Step | None) -> None:
    """``work()``, announced to ``starting`` and ``finished`` as (``name``, ``what``)."""
    if starting:
        starting(name, what)
    work()
    if finished:
        finished(name, what)


class ExportFailedError(DaglError):
    """``dagl-export`` failed on the float32 graph, which every ONNX path needs."""


def export_graphs(task: str, weights: Path, needed: set[str], folder: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """The ONNX graphs of ``needed`` (names of :data:`MODELS` but weights) exported from ``weights`` into
    ``folder``, and why a graph the exporter refused could not be made (its one line: INT8 without its
    calibration images under ``$DAGL_DATASETS/train/bsd400``).

    Through the ``dagl-export`` command, in this interpreter: ``dagl.runtime`` never imports the exporter
    (docs/architecture.md), so a machine that only runs artefacts needs none of its dependencies.
    """
    graphs: dict[str, Path] = {}
    refused: dict[str, str] = {}
    for precision in [name for name in (INT8.name, FP32.name) if name in needed]:  # INT8's export writes fp32 too
        if precision in graphs:
            continue
        done = subprocess.run([sys.executable, "-m", "dagl.export.cli", "--task", task, "--weights", str(weights),
                               "--precision", precision, "--onnx-only", "--output-dir", str(folder)],
                              capture_output=True, text=True)
        if done.returncode == 0:
            graphs.update({name: folder / onnx_name(task, None, name) for name in {FP32.name, precision}})
            continue
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        line = lines[-1].removeprefix("dagl-export: error: ")
        if precision == FP32.name or done.returncode != UserInputError.exit_code:
            raise ExportFailedError(f"dagl-export --precision {precision}: {line}")
        refused[precision] = line
    return graphs, refused


class PathComparison:
    """The paths to measure, each checked for what it needs before any slow work.

    Made in a moment (imports and file checks only), so a missing Classic5 set is refused, and a missing
    library reported, before minutes of export and measuring; :meth:`run` does the work.
    """

    def __init__(self, weights: Path, task: str, *, tiles: Sequence[int] = DEFAULT_TILES,
                 batches: Sequence[int] = DEFAULT_BATCHES, repeats: int = 3, threads: int | None = 1,
                 classic5: bool = False, paths: Sequence[str] | None = None) -> None:
        from dagl.data.datasets import EvalSet, named_set

        self.weights, self.task = weights, task
        self.tiles, self.batches, self.repeats, self.threads = tuple(tiles), tuple(batches), repeats, threads
        self.results = [PathResult(PATHS[name], unavailable(PATHS[name])) for name in (paths or PATHS)]
        #: One step for the export, counted before it runs (INT8 may then be refused, and its paths skipped).
        self.export_steps = int(bool(self._graphs_needed()))
        self.classic5: EvalSet | None = None
        if classic5:
            self.classic5 = named_set("classic5", quality=10)
            self.classic5.check()

    @property
    def steps(self) -> int:
        """Steps :meth:`run` reports: the export of the ONNX graphs (when a path needs one), then per path
        that runs, each (tile, batch) (not for the chop), the whole image, and Classic5 if asked."""
        calls = len(self.tiles) * len(self.batches)
        per_path = [(0 if r.path.tiling == "reference" else calls) + 1 + (self.classic5 is not None)
                    for r in self.results if r.skipped is None]
        return self.export_steps + sum(per_path)

    def _graphs_needed(self) -> set[str]:
        """The graphs (names of :data:`MODELS` but weights) the paths that run need."""
        return {r.path.model for r in self.results if r.skipped is None and r.path.model != WEIGHTS}

    def run(self, image: np.ndarray, clean: np.ndarray, starting: Step | None = None,
            finished: Step | None = None) -> list[PathResult]:
        """Every path's figures on ``image`` (the network's layout, float in [0, 1]) against ``clean``.

        The weights are copied into a temporary folder first, and every path reads that copy: a weights file
        replaced while the run goes on (the relay ships into ``dagl/weights/``) cannot give one table two
        networks. The ONNX graphs are exported from the copy (INT8 calibrates then); each backend is active only
        while its path is measured.
        """
        needed = self._graphs_needed()
        with tempfile.TemporaryDirectory(prefix="dagl-cpu-paths-") as folder:
            weights = Path(folder) / "weights" / self.weights.name
            weights.parent.mkdir()
            shutil.copyfile(self.weights, weights)
            graphs: dict[str, Path] = {}
            if needed:

                def write() -> None:
                    made, refused = export_graphs(self.task, weights, needed, Path(folder))
                    graphs.update(made)
                    for result in self.results:
                        result.skipped = result.skipped or refused.get(result.path.model)

                step("export", f"{' and '.join(sorted(needed))} .onnx", write, starting, finished)
            for result in self.results:
                if result.skipped is None:
                    model = weights if result.path.model == WEIGHTS else graphs[result.path.model]
                    self._run_path(result, model, image, clean, starting, finished)
        base = next((r.output for r in self.results if r.path.name == BASE and r.output is not None), None)
        for result in self.results:
            if result.output is not None and base is not None:
                result.psnr_vs_base = psnr(result.output, base)
        return self.results

    def _run_path(self, result: PathResult, model: Path, image: np.ndarray, clean: np.ndarray,
                  starting: Step | None, finished: Step | None) -> None:
        """Fill ``result``; a backend that refuses to run here (a :class:`DaglError`) marks it skipped."""
        path = result.path

        def whole() -> None:
            result.output, result.cpu_s, result.wall_s = restore_timed(restorer, image)
            result.psnr_vs_clean = psnr(result.output, clean)

        def classic5() -> None:
            from .evaluate import evaluate

            assert self.classic5 is not None
            result.classic5 = evaluate([restorer], [path.name], self.classic5).mean_scores()[0].psnr

        try:
            restorer = Restorer(model, task=self.task, backend=path.backend, device="cpu", tiling=path.tiling,
                                threads=self.threads, precision=path.precision)
        except DaglError as exc:
            result.skipped = str(exc)
            return
        with restorer:
            for tile in (() if path.tiling == "reference" else self.tiles):  # the chop calls BASE's network
                for batch in self.batches:
                    step(path.name, f"tile {tile} batch {batch}", lambda: result.calls.append(
                        measure(restorer.runner, path.name, tile, batch, self.repeats)), starting, finished)
            step(path.name, "whole image", whole, starting, finished)
            if self.classic5 is not None:
                step(path.name, "classic5", classic5, starting, finished)


def compare_paths(weights: Path, task: str, image: np.ndarray, clean: np.ndarray, *,
                  tiles: Sequence[int] = DEFAULT_TILES, batches: Sequence[int] = DEFAULT_BATCHES, repeats: int = 3,
                  threads: int | None = 1, classic5: bool = False, paths: Sequence[str] | None = None,
                  starting: Step | None = None, finished: Step | None = None) -> list[PathResult]:
    """Measure each of ``paths`` (names of :data:`PATHS`; default all) on ``weights`` (a file for ``task``).

    Per path: the median of ``repeats`` timed calls on random tiles of each side in ``tiles`` at each batch
    in ``batches``, after a warm-up (:func:`~dagl.runtime.benchmark.measure`); ``image`` restored whole with
    the path's tiling and ``dagl-infer``'s batch (CPU and wall seconds); its PSNR against :data:`BASE`'s
    output and against ``clean``; with ``classic5``, the Classic5 q10 mean PSNR with ``dagl-eval``'s protocol
    (the eight paths together: 78 minutes on one shared CPU core). A path that cannot run here is returned with
    ``skipped`` set, not raised.
    """
    comparison = PathComparison(weights, task, tiles=tiles, batches=batches, repeats=repeats, threads=threads,
                                classic5=classic5, paths=paths)
    return comparison.run(image, clean, starting, finished)
