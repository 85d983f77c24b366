"""``dagl-calibrate``: options and messages around :func:`dagl.calibration.ranges.calibrate`.

The measuring modules import torch and onnx; they are imported when the command runs, so ``--help`` is instant.
"""

from __future__ import annotations

from pathlib import Path

import click

from dagl.cli.common import Command, sigma_option, task_option


@click.command("dagl-calibrate", cls=Command, epilog="""\b
Example (measure your weights, then export with their ranges; --weights random for a smoke test):
  dagl-calibrate --task jpeg --weights model_best.pt && dagl-export --task jpeg --weights model_best.pt --precision fp16 --fp16-ranges fp16_ranges.json --onnx-only
""")
@task_option(required=True)
@click.option("--weights", default=None, metavar="PATH|random", help="Weights file, or 'random' (seeded; ranges then say little "
              "about trained weights). Default: the shipped weights.")
@sigma_option()
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Training folder whose held-out files (never trained on) are measured; never a test set.",
              show_default="$DAGL_DATASETS/train/bsd400")
@click.option("--images", default=8, show_default=True, type=click.IntRange(min=1),
              help="Held-out images to take one centred crop from (each JPEG quality of the task counts as one crop).")
@click.option("--size", default=96, show_default=True, type=click.IntRange(min=16), help="Crop side in pixels.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("fp16_ranges.json"),
              show_default=True, help="Ranges file to add the task's record to (other tasks' records are kept). "
              "The export reads it with --fp16-ranges FILE.")
def main(task: str, weights: str | None, sigma: int | None, data: Path | None, images: int, size: int,
         output: Path) -> None:
    """Measure activation ranges on held-out training crops and record which layers FP16 must not touch.

    Every module output and the two attention internals (similarities and logits) are measured on centred
    crops of the held-out training images (never trained on, never a test set), degraded as the task's
    validation degrades them; a module within a factor 16 of FP16's 65504 is kept in float32
    by the FP16 export that reads the file (docs/fp16-ranges.md)."""
    from .policy import load_ranges
    from .ranges import calibrate, write_record

    load_ranges(output)  # an existing file that is not a ranges file: refused before the minutes of measuring
    record = calibrate(task, weights, data, sigma=sigma, images=images, size=size)
    write_record(task, record, output)
    click.echo(f"{task}: scores |S| <= {record['peak_scores_absmax']}, logits <= {record['peak_logits_absmax']}, "
               f"other layers <= {record['peak_module_absmax']}; float32 modules beyond the attention path: "
               f"{record['keep_fp32_modules'] or 'none'} -> {output}")

