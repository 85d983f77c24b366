"""The files a training run reads and writes, checked before torch imports, a process group forms or a
network is built: a missing --data folder, --init file or an unwritable --out costs a moment, not the
seconds (or, with torchrun, the minutes) of a start-up.

Nothing here imports torch, so ``dagl-train`` can call :func:`check_sources` first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..data.datasets import DATASETS
from ..images.io import IMAGE_SUFFIXES
from ..outputs import check_output_folder
from ..suggest import did_you_mean
from ..tasks.configs import TaskConfig, get_config
from .config import HELD_OUT, NO_VALIDATION, TrainConfig, TrainingError

#: Paired (real-noise) training folders hold clean/ and, with the same file names, noisy/ (or
#: degraded/, the layout :func:`dagl.data.datasets.folder_set` evaluates).
PAIRED_DEGRADED = ("noisy", "degraded")


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted so every rank lists them in the same order."""
    if not folder.is_dir():
        raise TrainingError(f"data folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TrainingError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def pair_paths(folders: Sequence[Path], config: TaskConfig) -> tuple[list[Path], list[Path]]:
    """The clean files of ``folders`` and, for paired tasks, their noisy twins (same order)."""
    paired = config.degradation.paired
    clean_paths: list[Path] = []
    noisy_paths: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if paired:
            twins = [folder / d for d in PAIRED_DEGRADED if (folder / d).is_dir()]
            if not (folder / "clean").is_dir() or not twins:
                raise TrainingError(f"task {config.name!r} trains on pairs: {folder} must hold clean/ "
                                    f"and noisy/ folders with the same file names (e.g. SIDD)")
            clean = list_images(folder / "clean")
            noisy = {p.name: p for p in list_images(twins[0])}
            missing = [p.name for p in clean if p.name not in noisy]
            if missing:
                raise TrainingError(f"{twins[0]} has no twin for clean image {missing[0]}")
            clean_paths += clean
            noisy_paths += [noisy[p.name] for p in clean]
        else:
            clean_paths += list_images(folder)
    return clean_paths, noisy_paths


def check_sources(config: TrainConfig) -> None:
    """Refuse, from names and listings alone, the files a run could not use: the training folders and
    their images, the ``--init`` weights, a ``--val`` that is no set nor folder, and the run folder."""
    pair_paths(config.data, get_config(config.task))
    if config.init is not None and not Path(config.init).is_file():
        raise TrainingError(f"--init {config.init}: no such weights file")
    if config.val not in (None, HELD_OUT) and config.val not in DATASETS and not Path(config.val).is_dir():
        names = [HELD_OUT, NO_VALIDATION, *DATASETS]
        raise TrainingError(f"--val {config.val}: neither {HELD_OUT}, {NO_VALIDATION}, a test set "
                            f"({', '.join(DATASETS)}) nor a folder{did_you_mean(config.val, names)}")
    check_output_folder(config.out)
