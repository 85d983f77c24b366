"""Registry of the paper's four tasks: four configurations of one DAGL network (timm-style).

A task fixes what a checkpoint's tensors look like (image channels, ResBlock count); everything
else about the network is shared. The record also carries the task's behaviour, as plain data and
objects defined in ``dagl/``: its channel policy, its training degradation and the paper's test sets. Code that needs to know "how many channels does jpeg take" or
"how is a demosaic training crop degraded" asks here instead of branching on the name, so a task
variant is one entry below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .channels import ChannelPolicy, RawFrame
from .degradations import (PairedNoise, TrainingDegradation, TrainingJpeg, TrainingMosaic, TrainingNoise,
                           raw_to_mosaic)
from ..errors import UserInputError
from .testsets import PaperSet, ProtocolNoise, StoredInputs


class TaskError(UserInputError, ValueError):
    """A task name or task variant (sigma) that does not exist.

    Also a ``ValueError`` so library callers that validated names before this class existed keep working.
    """


@dataclass(frozen=True)
class TaskConfig:
    """One named DAGL configuration."""

    name: str
    n_resblocks: int
    description: str
    #: The network's planes and the image files its readers accept (:mod:`dagl.tasks.channels`).
    channel_policy: ChannelPolicy
    #: How a clean training crop becomes the network's input.
    degradation: TrainingDegradation
    #: The paper's test sets, in the order of its tables.
    test_sets: tuple[PaperSet, ...] = field(default=())
    #: Noise levels the paper trains one model each for (gray denoising only).
    sigmas: tuple[int, ...] = field(default=())
    #: JPEG qualities the single CAR model covers.
    qualities: tuple[int, ...] = field(default=())

    @property
    def channels(self) -> int:
        return self.channel_policy.channels

    @property
    def is_gray(self) -> bool:
        return self.channels == 1

    def check_sigma(self, sigma: int | None) -> int | None:
        """The one rule for a task's variant: ``sigma`` iff the task has one model per noise level.

        dagl-export, dagl-train and the shipped-weights lookup all pick a model by (task, sigma), so
        they all ask here; the messages name the CLI option because that is where users type it.
        """
        choices = ", ".join(map(str, self.sigmas))
        if not self.sigmas:
            if sigma is not None:
                noisy = "/".join(name for name, cfg in TASKS.items() if cfg.sigmas)
                raise TaskError(f"--sigma applies to --task {noisy} only, not {self.name!r}")
            return None
        if sigma is None:
            raise TaskError(f"task {self.name!r} has one model per noise level: pass --sigma ({choices})")
        if sigma not in self.sigmas:
            raise TaskError(f"sigma {sigma} is not one the paper trains for {self.name!r}: pass --sigma ({choices})")
        return sigma


#: The JPEG qualities of the paper's CAR experiments (one model for all of them).
CAR_QUALITIES = (10, 20, 30, 40)
#: The noise levels of the paper's gray denoising experiments (one model each).
DENOISE_SIGMAS = (15, 25, 50)

TASKS: dict[str, TaskConfig] = {
    cfg.name: cfg
    for cfg in (
        TaskConfig(
            name="denoise",
            n_resblocks=16,
            description="Gaussian denoising of gray images, one model per sigma (15, 25, 50).",
            channel_policy=ChannelPolicy(1),
            degradation=TrainingNoise(),
            test_sets=(
                PaperSet("set12", "Set12, 12 gray images (Table 1)", "Table 1",
                         tuple(zip(DENOISE_SIGMAS, (33.28, 30.93, 27.81))), ProtocolNoise()),
                PaperSet("bsd68", "BSD68, 68 gray images (Table 1)", "Table 1",
                         tuple(zip(DENOISE_SIGMAS, (31.93, 29.46, 26.51))), ProtocolNoise()),
                PaperSet("urban100", "Urban100 converted to gray, 100 images (Table 1)", "Table 1",
                         tuple(zip(DENOISE_SIGMAS, (33.79, 31.39, 27.97))), ProtocolNoise()),
            ),
            sigmas=DENOISE_SIGMAS,
        ),
        TaskConfig(
            name="jpeg",
            n_resblocks=16,
            description="JPEG compression-artifact removal of gray images, one model for q 10-40.",
            channel_policy=ChannelPolicy(1),
            degradation=TrainingJpeg(CAR_QUALITIES),
            test_sets=(
                PaperSet("live1", "LIVE1, 29 gray images, MATLAB JPEGs (Table 3)", "Table 3",
                         tuple(zip(CAR_QUALITIES, (29.70, 32.12, 33.54, 34.53))),
                         StoredInputs("jpeg_q", "stored MATLAB JPEG q", by_quality=True)),
                PaperSet("classic5", "Classic5, 5 gray images, MATLAB JPEGs (Table 3)", "Table 3",
                         tuple(zip(CAR_QUALITIES, (30.08, 32.35, 33.59, 34.41))),
                         StoredInputs("jpeg_q", "stored MATLAB JPEG q", by_quality=True)),
            ),
            qualities=CAR_QUALITIES,
        ),
        TaskConfig(
            name="demosaic",
            n_resblocks=32,
            description="Demosaicing of GRBG Bayer mosaics into RGB.",
            channel_policy=ChannelPolicy(3, RawFrame(raw_to_mosaic, "read as a one-channel GRBG raw frame")),
            degradation=TrainingMosaic(),
            test_sets=(
                PaperSet("mcmaster18", "McMaster18, 18 RGB images, GRBG mosaics (Table 4)", "Table 4",
                         ((None, 39.84),), StoredInputs("mosaic", "stored GRBG mosaic"), paper_ssim=0.9735),
                PaperSet("urban100 (colour)", "Urban100, 100 RGB images (Table 4)", "Table 4",
                         ((None, 40.20),), unavailable="colour Urban100 is not in the datasets folder"),
            ),
        ),
        TaskConfig(
            name="real-denoise",
            n_resblocks=16,
            description="Real-camera noise removal of sRGB images (trained on SIDD).",
            channel_policy=ChannelPolicy(3),
            degradation=PairedNoise(),
            test_sets=(
                PaperSet("dnd", "DND, 50 real noisy sRGB images", "DND", ((None, 39.83),),
                         unavailable="DND is scored on the benchmark's server (no public ground truth)"),
            ),
        ),
    )
}


def get_config(task: str) -> TaskConfig:
    """Look a task up by name; the error lists the valid names, since users type these."""
    try:
        return TASKS[task]
    except KeyError:
        raise TaskError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}") from None
