"""Restore a colour JPEG's chroma with the gray model too, or keep it: RGB PSNR and CPU time on McMaster18.

    OMP_NUM_THREADS=1 python tools/chroma_study.py --log chroma-study.jsonl --table docs/colour-study.md

For each clean image and Pillow JPEG quality, the FULL image is JPEG-encoded (Pillow's default 4:2:0
subsampling, as a user's JPEG would be) and decoded, so the 8x8 / 16x16 block grid is the real one;
then the decoded and the clean image are cropped alike, ``--crop`` (80x144 by default: two grid tiles
per plane) near the centre with an offset that is a multiple of 16 (whole chroma MCUs), to bound the
CPU time. The crop goes the library's way: ``dagl.runtime.channels.to_network(..., chroma="restore")``
gives the Y, Cb, Cr planes, one ``Restorer`` of the shipped jpeg weights with dagl-infer's default grid
tiling restores each, and ``NetworkImage.to_file`` builds both outputs: restored Y with the decoded
Cb, Cr (``--chroma keep``) and with the restored ones (``--chroma restore``). Both are rounded to 8 bits
and scored against the clean crop: RGB PSNR over all three channels, per image, then averaged. The
luma is restored once for both paths (the same plane through the same network), so the chroma path's
CPU time is the luma's plus the two chroma planes'. Results go to ``--log``, one JSON line per (image,
quality) as they come (a rerun with the same crop skips those already there); the markdown tables are
printed, and written to ``--table`` if given.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import click
import numpy as np
from PIL import Image

DATASETS = Path(os.environ.get("DAGL_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
DEFAULT_IMAGES = DATASETS / "mcmaster18"
QUALITIES = (10, 20, 30, 40)
#: Crop offsets are multiples of this: a 4:2:0 JPEG's MCU, so the crop keeps its block grid.
MCU = 16


def rgb_psnr(output: np.ndarray, clean: np.ndarray) -> float:
    """PSNR in dB of two 8-bit (uint8) images over all their samples (peak 255)."""
    mse = float(np.mean((output.astype(np.float64) - clean.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def to_8bit(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] samples as an 8-bit file holds them (rounded, as dagl-infer writes a PNG)."""
    return np.uint8(np.clip(np.round(image * 255), 0, 255))


def jpeg_roundtrip(clean: np.ndarray, quality: int) -> np.ndarray:
    """``clean`` (uint8 RGB) encoded by Pillow at ``quality`` (default subsampling) and decoded, uint8 RGB."""
    buffer = io.BytesIO()
    Image.fromarray(clean).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def centred_crop(height: int, width: int, size: tuple[int, int]) -> tuple[slice, slice]:
    """A ``size`` (rows, columns) window near the centre whose corner is on the :data:`MCU` grid."""
    top = max(0, (height - size[0]) // 2) // MCU * MCU
    left = max(0, (width - size[1]) // 2) // MCU * MCU
    return slice(top, top + size[0]), slice(left, left + size[1])


def parse_crop(text: str) -> tuple[int, int] | None:
    """``HxW`` or ``N`` (square) as (rows, columns); ``0``: no crop."""
    try:
        sides = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        sides = ()
    if len(sides) not in (1, 2) or min(sides) < 0 or (min(sides) == 0 and max(sides) > 0):
        raise click.BadParameter(f"{text!r}: give HEIGHTxWIDTH (e.g. 80x144), a side (128), or 0 for whole images")
    return None if max(sides) == 0 else (sides[0], sides[-1])


def timed(restorer, plane: np.ndarray) -> tuple[np.ndarray, float]:
    """The restored plane and the CPU seconds this process spent on it."""
    start = time.process_time()
    out = restorer(plane)
    return out, time.process_time() - start


def study_one(restorer, clean: np.ndarray, quality: int, crop: tuple[int, int] | None) -> dict:
    """Both paths on one clean uint8 RGB image at one quality: PSNRs (dB) and CPU seconds."""
    from dagl.runtime.channels import to_network

    decoded = jpeg_roundtrip(clean, quality)
    rows, cols = centred_crop(*clean.shape[:2], crop) if crop else (slice(None), slice(None))
    clean, decoded = clean[rows, cols], decoded[rows, cols]
    image = to_network(decoded.astype(np.float32) / 255, "jpeg", chroma="restore")
    planes = image.planes
    luma, luma_s = timed(restorer, planes[0])
    chroma = [timed(restorer, plane) for plane in planes[1:]]
    keep = image.to_file(luma)
    restore = image.to_file(luma, np.dstack([c for c, _ in chroma]))
    return {"quality": quality, "size": list(clean.shape[:2]), "jpeg": rgb_psnr(decoded, clean),
            "keep": rgb_psnr(to_8bit(keep), clean), "restore": rgb_psnr(to_8bit(restore), clean),
            "keep_cpu_s": luma_s, "restore_cpu_s": luma_s + sum(s for _, s in chroma)}


def tables(results: list[dict]) -> str:
    """Markdown: a summary over qualities, then one table per quality with every image."""
    lines = ["| quality | images | JPEG input (dB) | luma only (dB) | chroma restored too (dB) | difference (dB) "
             "| chroma wins | CPU s/image luma only | CPU s/image chroma too |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    qualities = sorted({r["quality"] for r in results})
    for q in qualities:
        mine = [r for r in results if r["quality"] == q]
        mean = {k: float(np.mean([r[k] for r in mine]))
                for k in ("jpeg", "keep", "restore", "keep_cpu_s", "restore_cpu_s")}
        wins = sum(r["restore"] > r["keep"] for r in mine)
        lines.append(f"| {q} | {len(mine)} | {mean['jpeg']:.2f} | {mean['keep']:.2f} | {mean['restore']:.2f} | "
                     f"{mean['restore'] - mean['keep']:+.3f} | {wins}/{len(mine)} | {mean['keep_cpu_s']:.1f} | "
                     f"{mean['restore_cpu_s']:.1f} |")
    for q in qualities:
        lines += ["", f"Quality {q}:", "",
                  "| image | JPEG input (dB) | luma only (dB) | chroma restored too (dB) | difference (dB) |",
                  "|---|---:|---:|---:|---:|"]
        mine = sorted((r for r in results if r["quality"] == q), key=lambda r: r["image"])
        for r in mine:
            lines.append(f"| {r['image']} | {r['jpeg']:.2f} | {r['keep']:.2f} | {r['restore']:.2f} | "
                         f"{r['restore'] - r['keep']:+.3f} |")
        means = [float(np.mean([r[k] for r in mine])) for k in ("jpeg", "keep", "restore")]
        lines.append(f"| mean | {means[0]:.2f} | {means[1]:.2f} | {means[2]:.2f} | {means[2] - means[1]:+.3f} |")
    return "\n".join(lines) + "\n"


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@click.command()
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path), default=DEFAULT_IMAGES,
              show_default=True, help="Folder of clean RGB images (its *.tif, *.png; not sub-folders).")
@click.option("--quality", "qualities", type=click.IntRange(1, 95), multiple=True, default=QUALITIES,
              show_default=True, help="Pillow JPEG quality (repeatable).")
@click.option("--crop", "crop_text", default="80x144", show_default=True,
              help=f"HEIGHTxWIDTH (or one side) of the centred crop scored, its corner on the {MCU}-pixel MCU grid "
                   f"(0: whole images). 80x144 is two 80-pixel grid tiles (overlap 16) per plane.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images (a timing trial).")
@click.option("--model", default="jpeg", show_default=True,
              help="What dagl-infer's MODEL takes: 'jpeg' (the shipped weights), or a gray jpeg artefact.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="CPU threads of the backend.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("chroma-study.jsonl"),
              show_default=True, help="One JSON line per (image, quality); a rerun skips the ones already there.")
@click.option("--table", "table_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the markdown tables to this file.")
def main(images: Path, qualities: tuple[int, ...], crop_text: str, limit: int | None, model: str, threads: int,
         log_path: Path, table_path: Path | None) -> None:
    """Measure restoring a colour JPEG's Cb and Cr with the gray jpeg model too (--chroma restore) against
    restoring its luma only (--chroma keep): RGB PSNR against the clean image, per image and quality, and
    the CPU seconds each path takes; prints markdown tables."""
    from dagl.images.io import read_image
    from dagl.runtime import Restorer

    crop = parse_crop(crop_text)
    paths = sorted(p for p in images.iterdir() if p.suffix.lower() in (".tif", ".tiff", ".png") and p.is_file())
    paths = paths[:limit] if limit else paths
    if not paths:
        raise click.UsageError(f"{images} holds no .tif or .png images")
    crop_key = "x".join(map(str, crop)) if crop else "0"
    done = {(r["image"], r["quality"]) for r in read_log(log_path) if r.get("crop") == crop_key}
    with Restorer(model, task="jpeg", threads=threads) as restorer:
        for path in paths:
            clean = to_8bit(read_image(path))
            if clean.ndim != 3:
                raise click.UsageError(f"{path} is not an RGB image")
            for quality in qualities:
                if (path.name, quality) in done:
                    continue
                wall = time.perf_counter()
                row = {"image": path.name, "crop": crop_key, **study_one(restorer, clean[..., :3], quality, crop),
                       "wall_s": time.perf_counter() - wall}
                with log_path.open("a") as log:
                    log.write(json.dumps(row) + "\n")
                click.echo(f"{path.name} q{quality}: JPEG {row['jpeg']:.2f} dB, luma only {row['keep']:.2f}, "
                           f"chroma too {row['restore']:.2f} ({row['restore'] - row['keep']:+.3f}); CPU "
                           f"{row['keep_cpu_s']:.1f} / {row['restore_cpu_s']:.1f} s, wall {row['wall_s']:.1f} s",
                           err=True)
    names = {p.name for p in paths}
    results = [r for r in read_log(log_path)
               if r["image"] in names and r["quality"] in qualities and r.get("crop") == crop_key]
    text = tables(results)
    click.echo(text)
    if table_path is not None:
        table_path.write_text(text)


if __name__ == "__main__":
    main()
