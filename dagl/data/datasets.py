"""The paper's test sets by name, read the way the protocol obtains each one's degraded inputs.

The evaluation protocol (``docs/dagl-reference.md``, "The paper's evaluation protocol") fixes the degraded inputs: CAR uses the
stored MATLAB JPEGs (never a re-encoding), demosaicing the stored GRBG mosaics, denoising seeded
Gaussian noise made at test time. Each task's record (:data:`dagl.tasks.configs.TASKS`) lists its test
sets and how their inputs are obtained (:mod:`dagl.tasks.testsets`); this module reads them, so every
caller stays on the protocol. Any other folder can be evaluated too, with the layout of :func:`folder_set`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserInputError
from ..images.io import IMAGE_SUFFIXES, ImageReadError, has_gray_content, read_image
from ..images.metrics import SSIM_WINDOW
from ..suggest import did_you_mean
from ..tasks.channels import ChannelError, split_alpha
from ..tasks.configs import TASKS, get_config
from ..tasks.degradations import protocol_noise
from ..tasks.testsets import SetInputs, StoredInputs

#: Refusing an unknown ``--images`` name lists the set's images up to this many (LIVE1's 29 would not fit a line).
MAX_NAMES_LISTED = 12
#: Where the test sets live unless ``DAGL_DATASETS`` says otherwise: ``../shared/datasets`` beside the checkout.
DEFAULT_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


class DatasetError(UserInputError):
    """A dataset that cannot be evaluated as asked; the message is one line meant for the user."""


@dataclass(frozen=True)
class DatasetSpec:
    """One named test set that can be run here: where its clean images are and how its inputs are obtained."""

    name: str
    task: str
    inputs: SetInputs
    description: str


#: Every task's runnable test sets (those with ``inputs``) by name, in task order.
DATASETS: dict[str, DatasetSpec] = {
    paper_set.name: DatasetSpec(paper_set.name, cfg.name, paper_set.inputs, paper_set.description)
    for cfg in TASKS.values() for paper_set in cfg.test_sets if paper_set.inputs is not None
}


@dataclass(frozen=True)
class Sample:
    """One test image in the network's layout: (H, W) gray or (H, W, 3) colour, float32."""

    name: str
    clean: np.ndarray
    degraded: np.ndarray


def datasets_root() -> Path:
    """The folder holding the named test sets: ``$DAGL_DATASETS`` or ``../shared/datasets``."""
    return Path(os.environ.get("DAGL_DATASETS", DEFAULT_ROOT))


def to_channels(image: np.ndarray, channels: int, path: Path) -> np.ndarray:
    """``image`` in the layout of a network with ``channels`` inputs, or a one-line DatasetError.

    An opaque alpha is dropped (:func:`dagl.tasks.channels.split_alpha`, the rule of every reader). Colour
    files with three identical channels (the stored CAR JPEGs) become gray; anything else that does
    not fit is refused rather than converted, so that no silent colour conversion can change the numbers.
    """
    try:
        image, _ = split_alpha(image)
    except ChannelError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    if channels == 1:
        if image.ndim == 2:
            return image
        if has_gray_content(image):
            return np.ascontiguousarray(image[..., 0])
        raise DatasetError(f"{path}: colour image, but the task takes gray images; convert it first")
    if image.ndim == 3 and image.shape[2] == channels:
        return image
    raise DatasetError(f"{path}: image of shape {image.shape}, but the task takes {channels}-channel images")


def add_protocol_noise(clean: np.ndarray, sigma: float) -> np.ndarray:
    """The protocol's seeded noisy input for ``clean`` (gray or colour), not clipped."""
    import torch

    planes = clean[None] if clean.ndim == 2 else clean.transpose(2, 0, 1)
    noisy = protocol_noise(torch.from_numpy(np.ascontiguousarray(planes))[None], sigma)[0].numpy()
    return noisy[0] if clean.ndim == 2 else np.ascontiguousarray(noisy.transpose(1, 2, 0))


def centre_crop(image: np.ndarray, size: int, width: int | None = None) -> np.ndarray:
    """The central ``size`` x ``size`` window of an (H, W[, C]) image (``size`` x ``width`` if given;
    smaller if the image is), at even offsets.

    Even offsets keep a GRBG mosaic's phase, so a cropped mosaic is still GRBG.
    """
    height, wide = image.shape[:2]
    width = size if width is None else width
    top = (max(height - size, 0) // 2) & ~1
    left = (max(wide - width, 0) // 2) & ~1
    return image[top:top + size, left:left + width]


#: (name, clean file, degraded file or None when the degradation is protocol noise).
Pair = tuple[str, Path, Path | None]


def _images(folder: Path) -> dict[str, Path]:
    """Image files of ``folder`` by stem; two files of one stem (a.png, a.bmp) are ambiguous: refused."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in found:
                raise DatasetError(f"{folder}: {found[path.stem].name} and {path.name} share the name "
                                   f"{path.stem!r}; pairs are matched by name, so keep one")
            found[path.stem] = path
    return found


@dataclass(frozen=True)
class EvalSet:
    """The (clean, degraded) pairs of one evaluation, read lazily one image at a time."""

    #: Short name for file names and tables, e.g. ``classic5-q10``, ``set12-s25``.
    tag: str
    description: str
    task: str
    pairs: tuple[Pair, ...]
    sigma: float | None = None
    crop: int | None = None
    #: Images in the whole set before ``--images``/``--limit`` chose some (0: as many as ``pairs``).
    total: int = 0

    @property
    def is_subset(self) -> bool:
        """Whether images were left out, so the means are not the set's."""
        return len(self.pairs) < self.total

    def __len__(self) -> int:
        return len(self.pairs)

    def _read(self, pair: Pair) -> tuple[np.ndarray, np.ndarray | None]:
        """One pair's clean and stored degraded image (``None``: protocol noise), checked; DatasetError if unfit."""
        channels = get_config(self.task).channels
        _, clean_path, degraded_path = pair
        try:
            clean = to_channels(read_image(clean_path), channels, clean_path)
            degraded = None if degraded_path is None else \
                to_channels(read_image(degraded_path), channels, degraded_path)
        except ImageReadError as exc:
            raise DatasetError(str(exc)) from None
        if min(clean.shape[:2]) < SSIM_WINDOW:  # the protocol scores SSIM, whose window must fit
            raise DatasetError(f"{clean_path}: {clean.shape[1]}x{clean.shape[0]} px is smaller than SSIM's "
                               f"{SSIM_WINDOW}x{SSIM_WINDOW} window; the protocol needs images of at least "
                               f"{SSIM_WINDOW}x{SSIM_WINDOW} px")
        if degraded is not None and degraded.shape != clean.shape:
            raise DatasetError(f"{degraded_path}: shape {degraded.shape} differs from its clean image's "
                               f"{clean.shape}")
        return clean, degraded

    def check(self) -> None:
        """Read every file of the set once, as iterating will: an unfit file is refused before a model
        loads and before hours of scoring, not when its turn comes (one image in memory at a time)."""
        for pair in self.pairs:
            self._read(pair)

    def __iter__(self) -> Iterator[Sample]:
        for pair in self.pairs:
            name = pair[0]
            clean, degraded = self._read(pair)
            if self.crop:
                clean = centre_crop(clean, self.crop)
                degraded = None if degraded is None else centre_crop(degraded, self.crop)
            if degraded is None:
                degraded = add_protocol_noise(clean, self.sigma)
            yield Sample(name, clean, degraded)


def _check_sigma_quality(spec: DatasetSpec, sigma: float | None, quality: int | None) -> None:
    """The variant options a named set takes: --sigma for protocol noise, --quality for stored JPEGs."""
    config, inputs = get_config(spec.task), spec.inputs
    if inputs.takes_sigma and sigma is None:
        raise DatasetError(f"{spec.name}: denoising needs --sigma (the paper uses {', '.join(map(str, config.sigmas))})")
    if not inputs.takes_sigma and sigma is not None:
        raise DatasetError(f"{spec.name}: --sigma applies to denoising sets only; its inputs are stored files")
    if inputs.takes_quality and quality is None:
        raise DatasetError(f"{spec.name}: JPEG artifact removal needs --quality (the paper uses "
                           f"{', '.join(map(str, config.qualities))})")
    if not inputs.takes_quality and quality is not None:
        by_quality = sorted(name for name, other in DATASETS.items() if other.inputs.takes_quality)
        raise DatasetError(f"{spec.name}: --quality applies to the JPEG sets ({', '.join(by_quality)}) only")


def _subset_note(chosen: Sequence[Pair], total: int) -> str:
    """What a description adds when ``--images`` or ``--limit`` left out images: their means are not the set's."""
    if len(chosen) == total:
        return ""
    listed = f" ({', '.join(name for name, _, _ in chosen)})" if len(chosen) <= MAX_NAMES_LISTED else ""
    return f"; a subset, not the set's numbers: {len(chosen)} of {total} images{listed}"


def _limited(pairs: list[Pair], limit: int | None, where: Path,
             images: Sequence[str] = ()) -> tuple[Pair, ...]:
    """The pairs named in ``images`` (all when empty), then the first ``limit`` (sorted by name); an
    empty set is an error, not a zero-image report."""
    if not pairs:
        raise DatasetError(f"{where}: no images found (readable: {', '.join(sorted(IMAGE_SUFFIXES))})")
    names = [name for name, _, _ in pairs]
    unknown = [name for name in images if name not in names]
    if unknown:
        listed = f" (its images: {', '.join(names)})" if len(names) <= MAX_NAMES_LISTED else ""
        raise DatasetError(f"{where}: no image named {unknown[0]!r}{did_you_mean(unknown[0], names)}{listed}")
    chosen = [pair for pair in pairs if not images or pair[0] in images]
    return tuple(chosen[:limit] if limit else chosen)


def named_set(name: str, *, sigma: float | None = None, quality: int | None = None, limit: int | None = None,
              crop: int | None = None, root: Path | None = None, images: Sequence[str] = ()) -> EvalSet:
    """One of :data:`DATASETS` with its protocol degradation; ``images``: only these (file stems)."""
    spec = DATASETS[name]
    _check_sigma_quality(spec, sigma, quality)
    folder = (root or datasets_root()) / name
    if not folder.is_dir():
        raise DatasetError(f"{folder}: test set {name!r} not found (set DAGL_DATASETS to the datasets folder)")
    clean = _images(folder)
    inputs = spec.inputs
    tag, where = inputs.tag(name, sigma, quality), inputs.describe(sigma, quality)
    degraded: dict[str, Path] = {}
    if isinstance(inputs, StoredInputs):
        sub = inputs.subfolder(quality)
        if not (folder / sub).is_dir():
            stored = sorted(p.name for p in folder.glob(f"{inputs.folder}*")) if inputs.by_quality else []
            raise DatasetError(f"{folder / sub}: not found" + (f"; stored qualities: {', '.join(stored)}"
                                                               if stored else ""))
        degraded = _images(folder / sub)
        missing = sorted(set(clean) - set(degraded))
        if missing:
            raise DatasetError(f"{folder / sub}: no degraded input for {', '.join(missing)}")
    pairs = [(stem, path, degraded.get(stem)) for stem, path in clean.items()]
    chosen = _limited(pairs, limit, folder, images)
    description = f"{spec.description}; {where}" + (f"; centre {crop}x{crop} crops" if crop else "")
    return EvalSet(tag, description + _subset_note(chosen, len(pairs)), spec.task, chosen, sigma, crop, len(pairs))


def folder_set(folder: Path, task: str, *, sigma: float | None = None, limit: int | None = None,
               crop: int | None = None, images: Sequence[str] = ()) -> EvalSet:
    """A folder laid out as ``FOLDER/clean/*`` and ``FOLDER/degraded/*``, matched by file stem.

    Without ``degraded/``, the inputs are the protocol's seeded noise of ``sigma`` added to the
    clean images (so a folder of clean images is a denoising set).
    """
    clean_dir, degraded_dir = folder / "clean", folder / "degraded"
    if not clean_dir.is_dir():
        raise DatasetError(f"{folder}: expected a clean/ subfolder (and degraded/ unless --sigma is given)")
    clean = _images(clean_dir)
    if degraded_dir.is_dir():
        if sigma is not None:
            raise DatasetError(f"{folder}: has degraded/ inputs, so --sigma does not apply")
        degraded = _images(degraded_dir)
        missing = sorted(set(clean) - set(degraded))
        if missing:
            raise DatasetError(f"{degraded_dir}: no degraded input for {', '.join(missing)}")
        where = "degraded inputs from degraded/"
    elif sigma is None:
        raise DatasetError(f"{folder}: no degraded/ subfolder; give --sigma to add the protocol noise instead")
    else:
        degraded, where = {}, f"Gaussian noise sigma {sigma:g}, torch seed 1"
    pairs = [(stem, path, degraded.get(stem)) for stem, path in clean.items()]
    tag = folder.resolve().name + (f"-s{sigma:g}" if sigma is not None else "")
    chosen = _limited(pairs, limit, clean_dir, images)
    description = f"folder {folder}; {where}" + (f"; centre {crop}x{crop} crops" if crop else "")
    return EvalSet(tag, description + _subset_note(chosen, len(pairs)), task, chosen, sigma, crop, len(pairs))


def open_set(source: str, task: str, *, sigma: float | None = None, quality: int | None = None,
             limit: int | None = None, crop: int | None = None, images: Sequence[str] = ()) -> EvalSet:
    """A named test set or a folder (see :func:`folder_set`), checked against ``task``."""
    if source in DATASETS:
        spec = DATASETS[source]
        if spec.task != task:
            raise DatasetError(f"{source} is a {spec.task} test set, but the model is for {task!r}")
        return named_set(source, sigma=sigma, quality=quality, limit=limit, crop=crop, images=images)
    folder = Path(source)
    if not folder.is_dir():
        raise DatasetError(f"{source!r} is neither a test set ({', '.join(DATASETS)}) nor a folder"
                           f"{did_you_mean(source, DATASETS)}")
    if quality is not None:
        raise DatasetError(f"{source}: --quality applies to the named JPEG sets only")
    return folder_set(folder, task, sigma=sigma, limit=limit, crop=crop, images=images)
