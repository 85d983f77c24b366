"""Which files a batch restores and where each output goes: ``dagl-infer``'s plan, callable by any program.

Inputs are files, folders and globs; each becomes a :class:`Job` with its output, its side-by-side
picture and clean image if asked, or the reason it will be skipped (a missing input, an output
that exists or would be written twice, an unfit file). Everything here is decided before the model loads.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dagl.errors import DaglError, shown_path
from dagl.images.io import IMAGE_SUFFIXES, WRITE_BIT_DEPTHS, ImageWriteError, check_writable, read_image
from dagl.outputs import check_output_folder, check_output_name

from .channels import DEFAULT_CHROMA, NetworkImage, to_network
from .clean import find_clean, load_clean

DEFAULT_OUTPUT_DIR = Path("restored")


@dataclass
class Job:
    """One input file and where its output goes; ``error`` set means it will be skipped."""

    source: Path
    target: Path | None = None
    error: str | None = None
    #: Where ``--side-by-side`` puts this image's before/after picture (``None``: not asked for).
    side_by_side: Path | None = None
    #: The clean image ``--reference`` gives for this input, to print the PSNR gain against.
    clean: Path | None = None


def expand_inputs(patterns: tuple[str, ...]) -> list[Job]:
    """Files, directories (their image files) and globs, in order; unmatched ones become failed jobs."""
    jobs: list[Job] = []
    for pattern in patterns:
        path = Path(pattern)
        try:
            path.exists()
        except OSError as exc:  # ENAMETOOLONG: a name over the filesystem's limit, a path over PATH_MAX
            jobs.append(Job(Path(shown_path(path)), error=f"{exc.strerror} ({len(os.fsencode(pattern)):,} bytes)"))
            continue
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            jobs += [Job(p) for p in found] or [Job(path, error="folder holds no image files")]
        elif path.exists() or not glob.has_magic(pattern):
            jobs.append(Job(path) if path.exists() else Job(path, error="no such file"))
        else:
            matches = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
            jobs += [Job(p) for p in matches] or [Job(path, error="no file matches this pattern")]
    return jobs


def output_suffix(source: Path) -> str:
    """Keep the input's format when it can be written back, else PNG (e.g. JPEG in, PNG out)."""
    return source.suffix.lower() if source.suffix.lower() in WRITE_BIT_DEPTHS else ".png"


def plan_outputs(jobs: list[Job], output: Path | None, overwrite: bool, bit_depth: int = 8,
                 as_folder: bool = False) -> None:
    """Set each job's target: ``output`` itself for one input with a file name, else ``output/<name>``.

    ``as_folder``: the user wrote ``output`` with a trailing slash (``-o out/v1.0/``), so it is a
    folder whatever its name looks like.
    """
    if output is not None:
        check_output_name(output)  # a name the filesystem refuses would raise from is_dir()/exists()
    single_file = (output is not None and not as_folder and len(jobs) == 1 and output.suffix
                   and not output.is_dir())
    folder = None if single_file else (output or DEFAULT_OUTPUT_DIR)
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.error:
            continue
        target = output if single_file else folder / (job.source.stem + output_suffix(job.source))
        resolved = target.resolve()
        if resolved in seen:
            job.error = f"would write the same output {target} as {seen[resolved]}"
        elif resolved == job.source.resolve() and not overwrite:
            job.error = f"output {target} is the input itself; pass --overwrite to replace it"
        elif target.exists() and not overwrite:
            job.error = f"output {target} exists; pass --overwrite to replace it"
        else:
            try:
                check_writable(target, bit_depth)
            except ImageWriteError as exc:
                job.error = str(exc)
        seen[resolved] = job.source
        job.target = target


def plan_side_by_side(jobs: list[Job], folder: Path, overwrite: bool) -> None:
    """Set each job's ``FOLDER/<output stem>-side-by-side.png``; an existing one needs --overwrite."""
    for job in jobs:
        if job.error or job.target is None:
            continue
        job.side_by_side = folder / f"{job.target.stem}-side-by-side.png"
        if job.side_by_side.exists() and not overwrite:
            job.error = f"side-by-side picture {job.side_by_side} exists; pass --overwrite to replace it"


@dataclass
class Prepared:
    """One input read and split for the network, with its clean image if ``--reference`` gave one."""

    source: np.ndarray
    image: NetworkImage
    clean: np.ndarray | None


def prepare(job: Job, task: str, bit_depth: int, chroma: str = DEFAULT_CHROMA) -> Prepared:
    """Read ``job``'s input (and clean image) and check it against ``task`` and its output: all but the network.

    ``chroma``: what a gray task does with a colour input's chroma (:func:`~dagl.runtime.channels.to_network`).
    """
    source = read_image(job.source)
    image = to_network(source, task, chroma)
    check_writable(job.target, bit_depth, image.file_channels)
    clean = load_clean(job.clean, image.to_file(image.array).shape) if job.clean else None
    return Prepared(source, image, clean)


def check_inputs(jobs: list[Job], task: str | None, bit_depth: int, chroma: str = DEFAULT_CHROMA) -> None:
    """Read every input before the model loads, so an unfit file costs seconds, not a model load.

    Each file is decoded once here and again when its turn comes (only one image is held at a time):
    its signature, size and pixels are checked by :func:`dagl.images.io.read_image`, and when the task is
    already known (MODEL is a task name, or ``--task``), its channels, output and clean image too.
    """
    for job in jobs:
        if job.error:
            continue
        try:
            if task is None:
                read_image(job.source)
            else:
                prepare(job, task, bit_depth, chroma)
        except DaglError as exc:  # ChannelError and the readers' errors included
            job.error = str(exc).removeprefix(f"{job.source}: ")


def plan_batch(inputs: tuple[str, ...], output: str | None, overwrite: bool, bit_depth: int = 8,
               side_by_side: Path | None = None, clean: Path | None = None) -> list[Job]:
    """Every input's job: its output (``output`` as ``-o`` takes it: a trailing slash makes it a folder),
    its ``side_by_side`` picture and clean image from ``clean`` (``--reference``: a file, or a folder) when
    given (``None`` where none is found), or why it will be skipped."""
    jobs = expand_inputs(inputs)
    as_folder = output is not None and output.endswith(("/", os.sep))  # Path() would drop the slash
    plan_outputs(jobs, Path(output) if output is not None else None, overwrite, bit_depth, as_folder)
    if side_by_side is not None:
        plan_side_by_side(jobs, side_by_side, overwrite)
    if clean is not None:
        runnable = [job for job in jobs if not job.error]
        for job in runnable:
            job.clean = find_clean(clean, job.source, len(runnable))
    return jobs


def check_batch(jobs: list[Job], task: str | None, bit_depth: int, chroma: str = DEFAULT_CHROMA) -> None:
    """Refuse an output folder that cannot be written, and mark the jobs whose input is unfit: before the
    model loads."""
    folders = {path.parent for job in jobs if not job.error for path in (job.target, job.side_by_side) if path}
    for folder in sorted(folders):
        check_output_folder(folder)
    check_inputs(jobs, task, bit_depth, chroma)
