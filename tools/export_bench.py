"""``python tools/export_bench.py``: one tile through ONNX Runtime (CPU) vs the two PyTorch GFAMs.

Each backend runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is its own
and not the high-water mark of whatever ran before; tracemalloc would miss torch's native
allocations entirely. All three use the same thread count and the same seeded random weights, and
run through dagl.runtime's runners: what is timed is exactly what dagl-infer executes.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import numpy as np

from dagl.runtime import BaseRunner, ModelInfo, create_runner
from dagl.tasks.configs import TASKS, get_config

BACKENDS = {
    "onnxruntime": "ONNX Runtime CPU, exported float32 graph",
    "torch-batched": "PyTorch, BatchedGFAM (the exported formulation)",
    "torch-plain": "PyTorch, PlainGFAM (the release's step-by-step formulation)",
}


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _runner(backend: str, task: str, onnx_path: str | None, threads: int) -> BaseRunner:
    """The dagl.runtime runner of one benchmarked path (CPU, ``threads`` threads), not yet activated."""
    if backend == "onnxruntime":
        return create_runner(str(onnx_path), "onnxruntime", "cpu", task, threads=threads)
    import torch

    import dagl
    from dagl.chosen_weights import RANDOM_SEED
    from dagl.runtime.pyt import TorchRunner

    torch.manual_seed(RANDOM_SEED)
    model = dagl.create(task, gfam=backend.removeprefix("torch-")).eval()
    return TorchRunner(model, ModelInfo(task=task, channels=get_config(task).channels), "cpu", threads)


def worker(backend: str, task: str, onnx_path: str | None, tile: int, threads: int, repeats: int) -> dict:
    """Time ``repeats`` runs after one warm-up; memory is the peak RSS of this process."""
    x = np.random.default_rng(0).random((1, get_config(task).channels, tile, tile), dtype=np.float32)
    with _runner(backend, task, onnx_path, threads) as runner:
        rss_loaded = _maxrss_mib()
        runner.infer(x)
        times = []
        for _ in range(repeats):
            runner.infer(x)
            times.append(runner.last_inference_time)
    return {"backend": backend, "median_s": float(np.median(times)), "min_s": float(min(times)),
            "peak_rss_mib": _maxrss_mib(), "rss_loaded_mib": rss_loaded}


def _spawn(backend: str, task: str, onnx_path: Path, tile: int, threads: int, repeats: int) -> dict:
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--task", task, "--tile", str(tile), "--threads", str(threads),
           "--repeats", str(repeats), "--onnx", str(onnx_path), "--worker", backend]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{backend} run failed: {result.stderr.strip().splitlines()[-1]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@click.command()
@click.option("--task", type=click.Choice(list(TASKS)), default="jpeg", show_default=True)
@click.option("--tile", default=96, show_default=True, help="Side of the square tile.")
@click.option("--threads", default=2, show_default=True, help="Threads for every backend.")
@click.option("--repeats", default=3, show_default=True, help="Timed runs after one warm-up.")
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Float32 ONNX to time (default: export the task with seeded random weights).")
@click.option("--worker", "worker_backend", type=click.Choice(list(BACKENDS)), default=None, hidden=True)
def main(task: str, tile: int, threads: int, repeats: int, onnx_path: Path | None,
         worker_backend: str | None) -> None:
    """Time one tile on ONNX Runtime CPU vs plain and batched PyTorch, with peak memory."""
    if worker_backend:  # the child side of _spawn
        print(json.dumps(worker(worker_backend, task, str(onnx_path), tile, threads, repeats)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if onnx_path is None:
            from dagl.chosen_weights import RANDOM, load_chosen_weights
            from dagl.export.onnx import export_onnx

            model, _ = load_chosen_weights(task, RANDOM)
            onnx_path = export_onnx(model, Path(tmp) / f"dagl-{task}.onnx", channels=get_config(task).channels)
        rows = [_spawn(backend, task, onnx_path, tile, threads, repeats) for backend in BACKENDS]
    click.echo(f"task {task}, one {tile}x{tile} tile, batch 1, {threads} threads, median of {repeats} runs")
    click.echo("| backend | median s | min s | peak RSS MiB | RSS after loading MiB |")
    click.echo("|---|---:|---:|---:|---:|")
    for row in rows:
        click.echo(f"| {BACKENDS[row['backend']]} | {row['median_s']:.3f} | {row['min_s']:.3f} | "
                   f"{row['peak_rss_mib']:.0f} | {row['rss_loaded_mib']:.0f} |")


if __name__ == "__main__":
    main()
