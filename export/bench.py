"""``python -m dagl.export.bench``: one tile through ONNX Runtime (CPU) vs the two PyTorch GFAMs.

Each backend runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is its own
and not the high-water mark of whatever ran before; tracemalloc would miss torch's native
allocations entirely. All three use the same thread count and the same seeded random weights.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from dagl.configs import TASKS, get_config

BACKENDS = {
    "onnxruntime": "ONNX Runtime CPU, exported float32 graph",
    "torch-batched": "PyTorch, BatchedGFAM (the exported formulation)",
    "torch-plain": "PyTorch, PlainGFAM (the release's step-by-step formulation)",
}


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _runner(backend: str, task: str, onnx_path: str | None, threads: int):
    """A callable mapping a (1, C, H, W) float32 array to the output array."""
    if backend == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"input": x})[0]
    import torch

    import dagl
    from dagl.source import RANDOM_SEED

    torch.set_num_threads(threads)
    torch.manual_seed(RANDOM_SEED)
    model = dagl.create(task, gfam=backend.removeprefix("torch-")).eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return run


def worker(backend: str, task: str, onnx_path: str | None, tile: int, threads: int, repeats: int) -> dict:
    """Time ``repeats`` runs after one warm-up; memory is the peak RSS of this process."""
    run = _runner(backend, task, onnx_path, threads)
    x = np.random.default_rng(0).random((1, get_config(task).channels, tile, tile), dtype=np.float32)
    rss_loaded = _maxrss_mib()
    run(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return {"backend": backend, "median_s": float(np.median(times)), "min_s": float(min(times)),
            "peak_rss_mib": _maxrss_mib(), "rss_loaded_mib": rss_loaded}


def _spawn(backend: str, task: str, onnx_path: Path, tile: int, threads: int, repeats: int) -> dict:
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "dagl.export.bench", "--task", task, "--tile", str(tile), "--threads", str(threads),
           "--repeats", str(repeats), "--onnx", str(onnx_path), "--worker", backend]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise click.ClickException(f"{backend} run failed: {result.stderr.strip().splitlines()[-1]}")
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
            from dagl.export.onnx import export_onnx
            from dagl.source import RANDOM, load_model

            model, _ = load_model(task, RANDOM)
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
