"""Measure what grid tiling costs in PSNR and saves in time against the release's chop.

    python tools/tiling_study.py            # writes docs/tiling-tradeoff.png, prints the table
    python tools/tiling_study.py --held-out 10 --config 64/16 --config 80/16   # chosen on held-out images

Each image is restored once with ``--tiling reference`` and once per (tile, overlap) grid
configuration, all with ONNX Runtime on one CPU thread; the table reports each grid output's
PSNR against the chop's output (not against ground truth: the point is how far tiling moves
the result) and the CPU time. The network is the shipped jpeg model (``--weights``: another weights
file, or ``random`` for the seeded random network the first study used).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch

import dagl
from dagl.export.onnx import export_onnx
from dagl.images.io import read_image
from dagl.images.metrics import psnr
from dagl.runtime import Restorer

DATASETS = Path(os.environ.get("DAGL_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
DEFAULT_IMAGES = (DATASETS / "classic5" / "jpeg_q10" / "barbara.jpeg", DATASETS / "classic5" / "jpeg_q10" / "lena.jpeg")
DEFAULT_CONFIGS = ("48/8", "48/16", "64/8", "64/16", "64/32", "80/16", "96/16", "96/32")


def jpeg_onnx(folder: Path, weights: str, seed: int = 0) -> Path:
    """ONNX of the CAR network with ``weights`` (a file, the shipped ones, or ``random``: seeded)."""
    if weights == "random":
        torch.manual_seed(seed)
        model = dagl.create("jpeg").eval()
    else:
        model = dagl.load("jpeg", weights=None if weights == "shipped" else weights)
    return export_onnx(model, folder / "dagl-jpeg.onnx", channels=1)


def timed(restorer: Restorer, image: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Output, CPU seconds and wall seconds of one restoration.

    CPU time of this process is the figure compared: on a shared machine wall time mostly
    measures the neighbours, while one-thread CPU time measures the work.
    """
    restorer.runner.activate()  # session creation is not part of the tiling's cost
    cpu, wall = time.process_time(), time.perf_counter()
    out = restorer(image)
    return out, time.process_time() - cpu, time.perf_counter() - wall


def gray(path: Path, crop: int | None) -> np.ndarray:
    image = read_image(path)
    image = image[..., 0] if image.ndim == 3 else image
    return image[:crop, :crop] if crop else image


def test_set_cases(images: tuple[Path, ...], crop: int | None) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """``(name, JPEG input, clean image or None)`` of test images (Classic5's layout: <set>/jpeg_q10/x.jpeg,
    <set>/x.bmp): what the time is measured on and the chop parity reported on, never chosen on."""
    cases = []
    for path in images:
        clean_file = path.parent.parent / f"{path.stem}.bmp"
        cases.append((path.name, gray(path, crop), gray(clean_file, crop) if clean_file.is_file() else None))
    return cases


def held_out_cases(quality: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The held-out split of BSD400 (never trained on: dagl.train.heldout), whole 180x180 images encoded at
    ``quality`` with Pillow as training encodes: where a tiling is chosen on PSNR against the clean image."""
    from dagl.tasks.degradations import jpeg_pil
    from dagl.train.heldout import HELD_OUT_FILES

    folder = DATASETS / "train" / "bsd400"
    cases = []
    for name in sorted(HELD_OUT_FILES):
        clean = gray(folder / name, None)
        cases.append((name, jpeg_pil(clean, quality), clean))
    return cases


def plot(rows: list[dict], chop_seconds: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for overlap in sorted({r["overlap"] for r in rows}):
        # Joined in tile order, so each line shows what a bigger tile buys at that overlap.
        points = sorted(((r["seconds"], r["psnr"], r["tile"]) for r in rows if r["overlap"] == overlap),
                        key=lambda p: p[2])
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=f"overlap {overlap}")
        for seconds, value, tile in points:
            ax.annotate(f"{tile}", (seconds, value), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axvline(chop_seconds, color="gray", linestyle="--", label="reference chop time")
    ax.set_xlabel("CPU seconds per image (ONNX Runtime, 1 thread)")
    ax.set_ylabel("PSNR vs reference chop output (dB)")
    ax.set_title("Grid tiling: tile size (labels) and overlap vs the release's chop")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _mean(values: list[float | None]) -> float | None:
    """The mean, or None where any image had no clean original."""
    return None if any(v is None for v in values) else sum(values) / len(values)


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


@click.command()
@click.option("--image", "images", multiple=True, type=click.Path(exists=True, path_type=Path),
              default=DEFAULT_IMAGES, show_default=True, help="Gray test images (repeatable).")
@click.option("--crop", type=int, default=192, show_default=True, help="Top-left crop side (0: full image).")
@click.option("--config", "configs", multiple=True, default=DEFAULT_CONFIGS, show_default=True,
              help="Grid configurations TILE/OVERLAP (repeatable).")
@click.option("--held-out", "held_out", type=int, default=None, metavar="QUALITY",
              help="Instead of --image: the 24 held-out BSD400 training images, whole, JPEG at QUALITY (Pillow).")
@click.option("--threads", type=int, default=1, show_default=True, help="torch/ONNX Runtime threads.")
@click.option("--weights", default="shipped", show_default=True,
              help="jpeg weights: 'shipped', a .safetensors/official checkpoint, or 'random' (seed 0).")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path),
              default=Path("docs/tiling-tradeoff.png"), show_default=True)
def main(images: tuple[Path, ...], crop: int, configs: tuple[str, ...], held_out: int | None, threads: int,
         weights: str, plot_path: Path) -> None:
    """Grid tiling vs the reference chop: PSNR cost and time, as a table and a plot."""
    torch.set_num_threads(threads)
    pairs = [tuple(int(v) for v in c.split("/")) for c in configs]
    rows: list[dict] = []
    chop_total = chop_clean_total = 0.0
    with tempfile.TemporaryDirectory() as folder:
        model = jpeg_onnx(Path(folder), weights)
        cases = held_out_cases(held_out) if held_out else test_set_cases(images, crop or None)
        for name, image, clean in cases:
            with Restorer(model, task="jpeg", tiling="reference", threads=threads) as restore:
                chopped, seconds, wall = timed(restore, image)
            chop_total += seconds
            chop_clean_total += psnr(chopped, clean) if clean is not None else 0.0
            chop_clean = f", {psnr(chopped, clean):.3f} dB vs clean" if clean is not None else ""
            click.echo(f"{name} {image.shape}: reference chop {seconds:.1f} s CPU ({wall:.1f} s wall){chop_clean}")
            for tile, overlap in pairs:
                with Restorer(model, task="jpeg", tiling="grid", tile=tile, overlap=overlap,
                              threads=threads) as restore:
                    out, seconds, wall = timed(restore, image)
                    tiles = restore.tiles_for(*image.shape)
                rows.append({"image": name, "tile": tile, "overlap": overlap, "tiles": tiles,
                             "seconds": seconds, "psnr": psnr(out, chopped),
                             "clean": psnr(out, clean) if clean is not None else None})
                versus_clean = f", {psnr(out, clean):.3f} dB vs clean" if clean is not None else ""
                click.echo(f"  grid {tile}/{overlap}: {tiles} tiles, {seconds:.1f} s CPU ({wall:.1f} s wall), "
                           f"{rows[-1]['psnr']:.2f} dB vs reference{versus_clean}")
    summary = []
    for tile, overlap in pairs:
        mine = [r for r in rows if (r["tile"], r["overlap"]) == (tile, overlap)]
        summary.append({"tile": tile, "overlap": overlap, "tiles": mine[0]["tiles"],
                        "seconds": sum(r["seconds"] for r in mine) / len(mine),
                        "psnr": sum(r["psnr"] for r in mine) / len(mine),
                        "clean": _mean([r["clean"] for r in mine])})
    chop_mean = chop_total / len(cases)
    chop_clean = chop_clean_total / len(cases) if all(clean is not None for _, _, clean in cases) else None
    click.echo("\n| tile | overlap | tiles/image | CPU s/image | speed-up vs chop | PSNR vs chop (dB) | PSNR vs clean (dB) |")
    click.echo("|---:|---:|---:|---:|---:|---:|---:|")
    for r in summary:
        click.echo(f"| {r['tile']} | {r['overlap']} | {r['tiles']} | {r['seconds']:.1f} | "
                   f"{chop_mean / r['seconds']:.2f}x | {r['psnr']:.2f} | {_cell(r['clean'])} |")
    click.echo(f"| reference chop | | | {chop_mean:.1f} | 1.00x | (itself) | {_cell(chop_clean)} |")
    plot(summary, chop_mean, plot_path)
    click.echo(f"plot: {plot_path}")


if __name__ == "__main__":
    main()
