"""Network inputs calibration measures on: centred crops of the held-out training images, degraded.

Every precision decision (the FP16 ranges, the INT8 scales) is taken on the held-out split of the training
folder (:mod:`dagl.train.heldout`: training files never trained on, degraded reproducibly as validation
degrades them), never on a paper test set. The crops carry what the network really sees (each CAR quality,
the task's noise), because activation ranges depend on the input statistics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dagl.data.datasets import datasets_root

#: The training folder whose held-out files calibrate (``$DAGL_DATASETS/train/bsd400``), as dagl-train's examples.
DEFAULT_DATA = Path("train") / "bsd400"


def held_out_crops(task: str, sigma: int | None, data: Path | None = None, crop: int = 48,
                   images: int = 8) -> tuple[list[np.ndarray], str]:
    """(1, C, crop, crop) degraded centred crops of the first ``images`` held-out files (fewer where fewer are there) of ``data``, and a
    line saying what they are.

    Only the held-out split is read (:func:`dagl.train.data.load_images` with ``held_out=True``): a
    calibration run touches no file of a paper test set. Raises the training loader's one-line errors
    (a folder without the held-out files, an image too small for ``crop``).
    """
    from dagl.tasks.configs import get_config
    from dagl.train.heldout import HELD_OUT
    from dagl.train.validation import load_validation_set

    folder = data if data is not None else datasets_root() / DEFAULT_DATA
    items = load_validation_set(HELD_OUT, get_config(task), sigma, crop, limit=images, data=[folder])
    crops = [np.ascontiguousarray(item.degraded.transpose(2, 0, 1)[None], dtype=np.float32) for item in items]
    labels = sorted({item.label for item in items if item.label})
    return crops, (f"{folder.name}: {len(items) // max(len(labels), 1)} held-out images, centred {crop}x{crop}"
                   + (f", {', '.join(labels)}" if labels else "") + (f", noise sigma {sigma}" if sigma else ""))
