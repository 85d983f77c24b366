"""Central crops of each task's real test inputs, for parity checks: the statistics the network sees in use.

Tests only (reporting, never a decision): the precision decisions calibrate on held-out training crops
(``dagl.calibration.samples``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dagl.data.datasets import add_protocol_noise, centre_crop, to_channels
from dagl.images.io import read_image
from dagl.tasks.configs import get_config

#: Per task: the test-set folder under the datasets root, and whether its clean images get protocol noise.
SOURCES: dict[str, tuple[str, bool]] = {"denoise": ("set12", True), "jpeg": ("classic5/jpeg_q10", False),
                                        "demosaic": ("mcmaster18/mosaic", False), "real-denoise": ("dnd_patches", False)}
#: The noise level of the crops of tasks whose inputs are noised.
SIGMA = 25


def task_crops(task: str, datasets_dir: str | Path, *, shape: tuple[int, int] = (96, 96),
               count: int = 3) -> list[tuple[str, np.ndarray]]:
    """``count`` central crops of ``shape`` from the first images of ``task``'s test inputs, as
    (file name, (C, H, W) float32 array) pairs."""
    folder_name, add_noise = SOURCES[task]
    folder = Path(datasets_dir) / folder_name
    files = sorted(p for p in folder.iterdir() if p.is_file())[:count]
    assert files, f"no images in {folder}"
    crops = []
    for path in files:
        image = to_channels(read_image(path), get_config(task).channels, path)
        if add_noise:
            image = add_protocol_noise(image, SIGMA)
        image = centre_crop(image, *shape)
        crops.append((f"{folder.name}/{path.name}",
                      np.ascontiguousarray(image[None] if image.ndim == 2 else image.transpose(2, 0, 1))))
    return crops
