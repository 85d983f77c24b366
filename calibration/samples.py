"""Network inputs cut from the paper's test sets, for range collection, parity tests and benchmarks.

Each task gets what its network really sees (stored MATLAB JPEGs, stored GRBG mosaics, protocol
noise, real noisy crops), because activation ranges and FP16 error depend on the input statistics:
clean images or uniform noise would under- or over-state both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dagl.data.datasets import add_protocol_noise, centre_crop, to_channels
from dagl.errors import UserInputError
from dagl.images.io import read_image
from dagl.tasks.configs import TaskConfig, get_config


class SamplesError(UserInputError):
    """The test images calibration measures on are missing or too small."""

#: The noise level of the crops of tasks calibrated on noisy inputs (the task's record says which).
DEFAULT_SIGMA = 25


def _network_input(config: TaskConfig, path: Path, sigma: int, shape: tuple[int, int]) -> np.ndarray:
    """(C, H, W) float32 input of the network for ``config``'s task: the central ``shape`` window of one file,
    read as the test sets are (noise, where the task adds it, drawn over the whole image first)."""
    image = to_channels(read_image(path), config.channels, path)  # the stored JPEGs: 3 identical channels -> gray
    if config.calibration.add_noise:
        image = add_protocol_noise(image, sigma)
    if image.shape[0] < shape[0] or image.shape[1] < shape[1]:
        raise SamplesError(f"image of {image.shape[0]}x{image.shape[1]} is smaller than {shape[0]}x{shape[1]}")
    image = centre_crop(image, *shape)
    return np.ascontiguousarray(image[None] if image.ndim == 2 else image.transpose(2, 0, 1))


def task_crops(task: str, datasets_dir: str | Path, *, shape: tuple[int, int] = (96, 96), count: int = 3,
               sigma: int = DEFAULT_SIGMA) -> list[tuple[str, np.ndarray]]:
    """``count`` central crops of ``shape`` from the first images of ``task``'s test set.

    Returns (file name, (C, H, W) float32 array) pairs; names go into recorded results so that a
    figure can be traced back to its image.
    """
    config = get_config(task)
    folder = Path(datasets_dir) / config.calibration.folder
    files = sorted(p for p in folder.iterdir() if p.is_file())[:count] if folder.is_dir() else []
    if not files:
        raise SamplesError(f"no images in {folder} (pass --datasets DIR or set DAGL_DATASETS)")
    return [(f"{folder.name}/{path.name}", _network_input(config, path, sigma, shape))
            for path in files]
