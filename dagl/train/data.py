"""Training pairs made on the fly: random crops, the 8 flips/rotations, the task's degradation.

Every random choice of a sample (crop, transform, noise, JPEG quality) is drawn from a generator
seeded by ``(seed, epoch, position)``, its key in the epoch's shuffled order. A sample is then a
pure function of its key, whichever rank or DataLoader worker makes it, so:

* resuming needs only the iteration count (the sampler skips the keys already used), and is exact;
* N ranks fed by a :class:`~torch.utils.data.DistributedSampler` see, together, the very samples
  one process would see with the same global batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..images.io import ImageReadError, read_image, to_luma
from ..tasks.channels import ChannelError, split_alpha
from ..tasks.configs import TaskConfig
from .config import TrainingError
from .heldout import is_held_out
from .sources import pair_paths

#: Images are held as uint16 (k/255 -> k*257 exactly) to halve the memory of float32.
_STORE_SCALE = 65535.0
def to_task_channels(image: np.ndarray, config: TaskConfig, path: Path) -> np.ndarray:
    """(H, W, C) with C = the task's channels; an opaque alpha is dropped, colour becomes luma for gray tasks."""
    try:
        image, _ = split_alpha(image)
    except ChannelError as exc:
        raise TrainingError(f"{path}: {exc}") from None
    if config.is_gray:
        return (to_luma(image) if image.ndim == 3 else image)[..., None]
    if image.ndim == 2:
        raise TrainingError(f"task {config.name!r} trains on RGB images, but {path} is gray")
    return image


def _read(path: Path, config: TaskConfig) -> np.ndarray:
    try:
        image = to_task_channels(read_image(path), config, path)
    except ImageReadError as exc:
        raise TrainingError(str(exc)) from None
    return np.round(np.clip(image, 0.0, 1.0) * _STORE_SCALE).astype(np.uint16)


def load_images(folders: Sequence[Path], config: TaskConfig, patch: int, limit: int | None = None,
                held_out: bool = False) -> tuple[list[np.ndarray], list[np.ndarray] | None, list[Path]]:
    """Clean images (and their noisy twins for paired tasks) from ``folders``, held in memory.

    The files of the held-out split (:mod:`dagl.train.heldout`) are never among the training images;
    ``held_out=True`` loads those instead (the default validation set).

    A paired degradation (real noise) has nothing synthetic, so its folders must hold ``clean/`` and
    ``noisy/`` (or ``degraded/``) with the same file names (SIDD once its pairs are sorted so).
    """
    paired = config.degradation.paired
    every_clean, every_noisy = pair_paths(folders, config)
    chosen = [i for i, path in enumerate(every_clean) if is_held_out(path) == held_out]
    if not chosen:
        what = "held-out files (dagl.train.heldout)" if held_out else "images outside the held-out split"
        raise TrainingError(f"no {what} in {', '.join(str(f) for f in folders)}")
    clean_paths = [every_clean[i] for i in chosen]
    noisy_paths = [every_noisy[i] for i in chosen] if paired else []
    if limit is not None:
        clean_paths, noisy_paths = clean_paths[:limit], noisy_paths[:limit]
    clean_images = [_read(p, config) for p in clean_paths]
    noisy_images = [_read(p, config) for p in noisy_paths] if paired else None
    for i, (path, image) in enumerate(zip(clean_paths, clean_images)):
        if min(image.shape[:2]) < patch:
            raise TrainingError(f"{path} is {image.shape[1]}x{image.shape[0]}, smaller than the "
                                f"{patch}x{patch} training crops")
        if noisy_images is not None and noisy_images[i].shape != image.shape:
            raise TrainingError(f"{noisy_paths[i]} and {path} differ in size")
    return clean_images, noisy_images, clean_paths


def stored_to_float(image: np.ndarray) -> np.ndarray:
    """A loaded (uint16-stored) image as float32 in [0, 1]."""
    return image.astype(np.float32) / _STORE_SCALE


def augment(image: np.ndarray, transform: int) -> np.ndarray:
    """One of the 8 symmetries of the square: rotate by ``transform % 4`` quarter turns, then flip."""
    out = np.rot90(image, transform % 4, axes=(0, 1))
    return out[:, ::-1] if transform >= 4 else out


def describe_degradation(config: TaskConfig, sigma: int | None) -> str:
    """One sentence for logs and the model card, since JPEG and noise details change results."""
    return config.degradation.describe(sigma)


class TrainingPairs(Dataset):
    """``dataset[(epoch, position)]`` -> (degraded, clean), each (C, patch, patch) float32."""

    def __init__(self, clean: list[np.ndarray], noisy: list[np.ndarray] | None, config: TaskConfig,
                 sigma: int | None, patch: int, seed: int) -> None:
        self.clean = clean
        self.noisy = noisy
        self.config = config
        self.sigma = sigma
        self.patch = patch
        self.seed = seed

    def _crop(self, image: np.ndarray, top: int, left: int, transform: int) -> np.ndarray:
        crop = stored_to_float(image[top:top + self.patch, left:left + self.patch])
        return np.ascontiguousarray(augment(crop, transform))

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, position = key
        rng = np.random.default_rng([self.seed, epoch, position])
        index = position % len(self.clean)
        height, width = self.clean[index].shape[:2]
        top = int(rng.integers(0, height - self.patch + 1))
        left = int(rng.integers(0, width - self.patch + 1))
        transform = int(rng.integers(8))
        clean = self._crop(self.clean[index], top, left, transform)
        twin = None if self.noisy is None else self._crop(self.noisy[index], top, left, transform)
        degraded = self.config.degradation.degrade(clean, rng, self.sigma, twin)
        return _planes(degraded), _planes(clean)


def _planes(crop: np.ndarray) -> torch.Tensor:
    """An (H, W, C) crop as the (C, H, W) tensor the network takes."""
    return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).contiguous()


class EpochKeySampler(Sampler):
    """Endless ``(epoch, position)`` keys: each epoch, this rank's share of a shuffled order.

    An epoch holds ``epoch_iterations`` global batches; its positions index the image list
    repeated as often as needed (``position % n_images``), as the EDSR framework's epochs do.
    The shuffling and the split over ranks are a :class:`DistributedSampler`'s.
    """

    def __init__(self, epoch_iterations: int, global_batch: int, rank: int, world_size: int,
                 seed: int, start_iteration: int = 0) -> None:
        self.epoch_iterations = epoch_iterations
        self.per_rank_batch = global_batch // world_size
        self.start_iteration = start_iteration
        self.order = DistributedSampler(range(epoch_iterations * global_batch), num_replicas=world_size,
                                        rank=rank, shuffle=True, seed=seed, drop_last=True)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip = divmod(self.start_iteration, self.epoch_iterations)
        while True:
            self.order.set_epoch(epoch)
            positions = list(self.order)[skip * self.per_rank_batch:]
            yield from ((epoch, p) for p in positions)
            epoch, skip = epoch + 1, 0


def make_loader(dataset: TrainingPairs, sampler: EpochKeySampler, workers: int,
                pin_memory: bool) -> DataLoader:
    return DataLoader(dataset, batch_size=sampler.per_rank_batch, sampler=sampler, num_workers=workers,
                      pin_memory=pin_memory, persistent_workers=workers > 0, drop_last=True)
