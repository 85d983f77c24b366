"""Time every CPU path of the README's first job, back to back in one process: which one ``auto`` should take.

    taskset -c 0 nice -n 5 python tools/cpu_paths.py                 # barbara q10, the whole image
    taskset -c 0 nice -n 5 python tools/cpu_paths.py --crop 256      # its centred 256x256 crop

The job is ``dagl-infer jpeg barbara.jpeg --reference barbara.bmp``: the shipped jpeg weights, ``dagl-infer``'s
default grid tiling (80 px tiles, 16 px overlap, 4 tiles a call), one thread. Each path restores the same
image through :class:`dagl.runtime.Restorer` (the PyTorch bfloat16 row wraps the PyTorch runner in CPU
autocast, which the ``torch`` backend does not offer); the table gives the process's CPU time (user+sys) and
the wall time of the restore (model load and compilation apart, in their own column), the PSNR against the
clean image and against the PyTorch float32 output. Paths whose library is missing are skipped with a line.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np

from dagl.images.io import read_image
from dagl.images.metrics import psnr
from dagl.runtime import Restorer
from dagl.runtime.channels import to_network
from dagl.runtime.clean import load_clean

DATASETS = Path(os.environ.get("DAGL_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
IMAGE = DATASETS / "classic5" / "jpeg_q10" / "barbara.jpeg"
CLEAN = DATASETS / "classic5" / "barbara.bmp"
#: (label, model: "weights" or "onnx", backend, precision); torch-bf16 is the PyTorch runner under autocast.
PATHS = (
    ("PyTorch float32 (today's auto)", "weights", "torch", None),
    ("PyTorch bfloat16 autocast", "weights", "torch-bf16", None),
    ("ONNX Runtime float32 (.onnx)", "onnx", "onnxruntime", None),
    ("OpenVINO float32 (.onnx)", "onnx", "openvino", "fp32"),
    ("OpenVINO bfloat16 (.onnx)", "onnx", "openvino", "bf16"),
    ("OpenVINO bfloat16 (weights: dagl-infer's auto)", "weights", "openvino", "bf16"),
)


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def autocast_bf16(restorer: Restorer) -> None:
    """Run the PyTorch runner's network under CPU bfloat16 autocast (AMX/oneDNN on a CPU that has it)."""
    import torch

    runner = restorer.runner
    plain = runner.infer_impl

    def infer_impl(batch: np.ndarray) -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return plain(batch)

    runner.infer_impl = infer_impl


def run_path(model: str | Path, backend: str, precision: str | None, image: np.ndarray, threads: int,
             batch: int | None, cache: Path) -> tuple[np.ndarray, dict[str, float], str]:
    start_cpu, start = cpu_seconds(), time.perf_counter()
    os.environ["DAGL_ENGINE_CACHE"] = str(cache)
    restorer = Restorer(model, task="jpeg", backend="torch" if backend == "torch-bf16" else backend,
                        threads=threads, precision=precision, batch=batch)
    if backend == "torch-bf16":
        autocast_bf16(restorer)
    restorer.runner.activate()
    load_cpu, load = cpu_seconds() - start_cpu, time.perf_counter() - start
    start_cpu, start = cpu_seconds(), time.perf_counter()
    with restorer:
        out = restorer(image)
    times = {"load_cpu": load_cpu, "load_wall": load, "cpu": cpu_seconds() - start_cpu,
             "wall": time.perf_counter() - start}
    ran = "torch bf16 autocast" if backend == "torch-bf16" else f"{restorer.backend} {restorer.runner.info.precision}"
    return out, times, ran


@click.command()
@click.option("--crop", type=int, default=None, help="Restore the centred CROPxCROP part only.")
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--batch", type=int, default=None, help="Tiles per call (default: dagl-infer's).")
@click.option("--onnx", "onnx_path", type=click.Path(path_type=Path), default=None,
              help="The float32 jpeg .onnx (default: exported from the shipped weights into a temporary folder).")
@click.option("--only", multiple=True, help="Run only the paths whose label contains this (repeatable).")
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="Model cache folder (default: a fresh temporary one, so compilation is in the load column).")
def main(crop: int | None, threads: int, batch: int | None, onnx_path: Path | None, only: tuple[str, ...],
         cache: Path | None) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    source = read_image(IMAGE)
    network = to_network(source, "jpeg")
    image = network.array
    clean = load_clean(CLEAN, network.to_file(image).shape)
    if crop:
        top, left = (image.shape[0] - crop) // 2, (image.shape[1] - crop) // 2
        image, clean = image[top:top + crop, left:left + crop], clean[top:top + crop, left:left + crop]
    work = Path(tempfile.mkdtemp(prefix="dagl-cpu-paths-"))
    if onnx_path is None and any("onnx" in label.lower() for label, *_ in PATHS):
        from dagl.export import export

        onnx_path = export("jpeg", output_dir=work / "onnx", engine=False).graphs["fp32"]
    paths: list[tuple[str, str | Path, str, str | None]] = [
        (label, "jpeg" if kind == "weights" else onnx_path, backend, precision)
        for label, kind, backend, precision in PATHS if not only or any(o.lower() in label.lower() for o in only)]
    print(f"barbara q10{f' centred {crop}x{crop} crop' if crop else ''} ({image.shape[1]}x{image.shape[0]}), "
          f"grid tiling, {threads} thread(s), batch {batch or 'default'}; JPEG input PSNR "
          f"{psnr(np.clip(image, 0, 1), clean):.3f} dB", flush=True)
    rows = []
    base: np.ndarray | None = None
    for label, model, backend, precision in paths:
        try:
            out, times, ran = run_path(model, backend, precision, image, threads, batch,
                                       cache or work / f"cache-{len(rows)}")
        except Exception as exc:  # a missing library or a CPU without bf16: say so, go on
            print(f"{label}: skipped ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                  flush=True)
            continue
        if base is None and backend == "torch":
            base = out
        versus = psnr(out, base) if base is not None and out is not base else float("inf")
        rows.append((label, ran, times, psnr(out, clean), versus))
        print(f"{label}: ran {ran}; load {times['load_cpu']:.1f} CPU s / {times['load_wall']:.1f} s, restore "
              f"{times['cpu']:.1f} CPU s / {times['wall']:.1f} s; PSNR {rows[-1][3]:.3f} dB, "
              f"vs PyTorch float32 {versus:.1f} dB", flush=True)
    reference = next((r for r in rows if r[0].startswith("ONNX Runtime")), None)
    print("\n| path | ran as | restore CPU s | restore wall s | load CPU s | vs ONNX Runtime fp32 (CPU) "
          "| PSNR (dB) | vs PyTorch fp32 output (dB) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, ran, times, score, versus in rows:
        ratio = f"{reference[2]['cpu'] / times['cpu']:.2f}x" if reference else "—"
        print(f"| {label} | {ran} | {times['cpu']:.1f} | {times['wall']:.1f} | {times['load_cpu']:.1f} | {ratio} "
              f"| {score:.3f} | {versus:.1f} |")


if __name__ == "__main__":
    main()
