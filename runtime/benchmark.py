"""Per-tile latency, throughput and peak memory of an artefact vs the plain PyTorch path (``dagl-bench``'s library).

The plain column is ``dagl.create(task, gfam="plain")``: docs/dagl-reference.md transcribed step by step,
run by PyTorch on the same device and tile sizes, so the table shows what the export bought.
Timing excludes the first (warm-up) call of each shape, where ONNX Runtime and TensorRT allocate.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.table import Table

from dagl.artefact.precision import FP32
from dagl.atomic import atomic_path, write_atomic
from dagl.device import is_cuda, resolve_device
from dagl.errors import output_error
from dagl.memory import check_memory

from .backends import REGISTRY
from .base import BaseRunner, ModelInfo
from .loader import choose_model, create_runner

if TYPE_CHECKING:
    from .pyt import TorchRunner

DEFAULT_TILES = (32, 48, 64, 80, 96)
#: Formats --plot writes (matplotlib picks the format from the suffix).
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


@dataclass
class Measurement:
    path: str  # "artefact" or "plain"
    backend: str
    tile: int
    batch: int
    latency_ms: float  # per tile
    megapixels_per_s: float
    peak_mib: float
    #: CPU time (user + system, every thread of the process) per call, mean of the timed calls: the figure that
    #: holds on a core shared with other jobs, where the wall-clock latency grows with their load.
    cpu_ms_per_call: float = float("nan")


def cpu_seconds() -> float:
    """User plus system time of this process, every thread."""
    times = os.times()
    return times.user + times.system


class PeakMemory:
    """Peak memory over a block: resident set on the CPU, device memory in use on CUDA.

    On Linux the kernel's resident-set high-water mark (VmHWM) can be reset per process by
    writing 5 to /proc/self/clear_refs, which gives a true per-measurement peak that includes
    memory ONNX Runtime allocates outside Python. On CUDA, memory in use on the device after the
    block (torch's view of the whole GPU) covers TensorRT's and ONNX Runtime's own allocations.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.peak_mib = float("nan")

    def __enter__(self) -> PeakMemory:
        if is_cuda(self.device):
            import torch

            torch.cuda.synchronize(self.device)
            free, total = torch.cuda.mem_get_info(self.device)
            self._baseline = total - free
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass  # not Linux, or not allowed: VmHWM then holds the process-lifetime peak
        return self

    def __exit__(self, *exc_info: object) -> None:
        if is_cuda(self.device):
            import torch

            free, total = torch.cuda.mem_get_info(self.device)
            self.peak_mib = (total - free - self._baseline) / 2**20
            return
        status = Path("/proc/self/status")
        if status.exists():
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            self.peak_mib = int(fields["VmHWM"].split()[0]) / 1024
        else:
            import resource

            self.peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(runner: BaseRunner, path: str, tile: int, batch: int, repeats: int) -> Measurement:
    """Median over ``repeats`` timed calls on a random (batch, C, tile, tile) input, after one warm-up; and
    their mean CPU time."""
    tiles = np.random.default_rng(0).random((batch, runner.info.channels, tile, tile), dtype=np.float32)
    runner.infer(tiles)
    times = []
    start_cpu = cpu_seconds()
    with PeakMemory(runner.device) as memory:
        for _ in range(repeats):
            runner.infer(tiles)
            times.append(runner.last_inference_time)
    cpu_ms = 1e3 * (cpu_seconds() - start_cpu) / repeats
    seconds = float(np.median(times))
    return Measurement(path, runner.name, tile, batch, 1e3 * seconds / batch,
                       batch * tile * tile / 1e6 / seconds, memory.peak_mib, cpu_ms)


def plain_runner(info: ModelInfo, device: str, threads: int | None, weights: Path | None) -> TorchRunner:
    """The plain path's step-by-step network (``PlainGFAM``); weights only if given (timing does not depend on
    them)."""
    import dagl  # torch: imported by the command's body, not by its --help
    from dagl.weights.checkpoints import load_into

    from .pyt import TorchRunner

    model = dagl.create(info.task, gfam="plain").eval()
    if weights is not None:
        load_into(model, weights)
    return TorchRunner(model, info, device, threads)


def table(results: list[Measurement], title: str) -> Table:
    out = Table(title=title)
    for column in ("path", "backend", "tile", "batch", "ms / tile", "MP/s", "peak MiB"):
        out.add_column(column, justify="left" if column in ("path", "backend") else "right")
    for r in results:
        out.add_row(r.path, r.backend, str(r.tile), str(r.batch), f"{r.latency_ms:.1f}",
                    f"{r.megapixels_per_s:.4f}", f"{r.peak_mib:.0f}")
    return out


def markdown(results: list[Measurement]) -> str:
    lines = ["| path | backend | tile | batch | ms / tile | MP/s | peak MiB |", "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.path} | {r.backend} | {r.tile} | {r.batch} | {r.latency_ms:.1f} | "
              f"{r.megapixels_per_s:.4f} | {r.peak_mib:.0f} |" for r in results]
    return "\n".join(lines)


def plot(results: list[Measurement], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(r.path for r in results):
        mine = [r for r in results if r.path == name]
        label = f"{name} ({mine[0].backend})"
        left.plot([r.tile for r in mine], [r.latency_ms for r in mine], "o-", label=label)
        right.plot([r.tile for r in mine], [r.megapixels_per_s for r in mine], "o-", label=label)
    left.set(xlabel="tile side (px)", ylabel="latency per tile (ms)", yscale="log")
    right.set(xlabel="tile side (px)", ylabel="throughput (MP/s)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as temp:
        fig.savefig(temp, dpi=120, format=path.suffix.lower().lstrip("."))
    plt.close(fig)


#: Called with (path, backend, tile) as a measurement starts or finishes (``dagl-bench``'s progress).
Step = Callable[[str, str, int], None]


class Benchmark:
    """MODEL's runner, and the plain path's, ready to measure at each of ``tiles``.

    Made before any measuring, so an unfit model or an over-budget tile is refused in a moment,
    not after minutes; ``device`` is resolved after the runner is made, since ``auto`` may fall back.
    """

    def __init__(self, model: Path, task: str | None, backend: str, device: str, tiles: tuple[int, ...],
                 batch: int, repeats: int, threads: int | None, precision: str | None, plain: bool) -> None:
        for tile in tiles:
            check_memory(tile, tile, batch)  # the estimate and budget dagl-infer applies
        # device unresolved: auto may fall back
        runner = create_runner(model, backend, device, task, threads=threads, precision=precision)
        self.device = resolve_device(device)
        self.tiles, self.batch, self.repeats = sorted(tiles), batch, repeats
        self.runners: list[tuple[str, BaseRunner]] = [("artefact", runner)]
        if plain:
            # MODEL may be a task name: the plain path loads the weights file it names
            weights = choose_model(model, backend, task).path if REGISTRY[runner.name].baseline else None
            plain_info = replace(runner.info, precision=FP32.name)  # the plain path is float32 PyTorch
            self.runners.append(("plain", plain_runner(plain_info, self.device, threads, weights)))
        #: The table's and the plot's title.
        self.title = (f"dagl-bench {model.name} ({runner.info.task}, {runner.info.precision}, {self.device}, "
                      f"batch {batch}, threads {threads or 'default'})")

    @property
    def steps(self) -> int:
        """Measurements :meth:`run` makes."""
        return len(self.runners) * len(self.tiles)

    def run(self, starting: Step | None = None, finished: Step | None = None) -> list[Measurement]:
        """Every measurement, each runner active only while it is measured."""
        results = []
        for name, each in self.runners:
            with each:
                for tile in self.tiles:
                    if starting:
                        starting(name, each.name, tile)
                    results.append(measure(each, name, tile, self.batch, self.repeats))
                    if finished:
                        finished(name, each.name, tile)
        return results


def write_figures(results: list[Measurement], title: str, plot_path: Path, markdown_path: Path | None) -> None:
    """The plot, and the markdown table if asked; a failed write is one line (dagl.errors' rule)."""
    save_figures(lambda path: plot(results, title, path), markdown(results), plot_path, markdown_path)


def save_figures(draw: Callable[[Path], None], text: str, plot_path: Path, markdown_path: Path | None) -> None:
    """``draw(plot_path)``, and ``text`` into ``markdown_path`` if given; a failed write is one line."""
    try:
        for path in (plot_path, markdown_path):
            if path:
                path.parent.mkdir(parents=True, exist_ok=True)
        draw(plot_path)
        if markdown_path:
            write_atomic(markdown_path, text + "\n")
    except OSError as exc:
        raise output_error(exc.filename or plot_path, exc) from None
