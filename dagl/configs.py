"""Registry of the paper's four tasks: four configurations of one DAGL network (timm-style).

A task fixes what a checkpoint's tensors look like (image channels, ResBlock count); everything
else about the network is shared. Code that needs to know "how many channels does jpeg take"
asks here instead of hard-coding it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UserInputError


class TaskError(UserInputError, ValueError):
    """A task name or task variant (sigma) that does not exist.

    Also a ``ValueError`` so library callers that validated names before this class existed keep working.
    """


@dataclass(frozen=True)
class TaskConfig:
    """One named DAGL configuration."""

    name: str
    channels: int
    n_resblocks: int
    description: str
    #: Noise levels the paper trains one model each for (gray denoising only).
    sigmas: tuple[int, ...] = field(default=())
    #: JPEG qualities the single CAR model covers.
    qualities: tuple[int, ...] = field(default=())

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


TASKS: dict[str, TaskConfig] = {
    cfg.name: cfg
    for cfg in (
        TaskConfig(
            name="denoise",
            channels=1,
            n_resblocks=16,
            description="Gaussian denoising of gray images, one model per sigma (15, 25, 50).",
            sigmas=(15, 25, 50),
        ),
        TaskConfig(
            name="jpeg",
            channels=1,
            n_resblocks=16,
            description="JPEG compression-artifact removal of gray images, one model for q 10-40.",
            qualities=(10, 20, 30, 40),
        ),
        TaskConfig(
            name="demosaic",
            channels=3,
            n_resblocks=32,
            description="Demosaicing of GRBG Bayer mosaics into RGB.",
        ),
        TaskConfig(
            name="real-denoise",
            channels=3,
            n_resblocks=16,
            description="Real-camera noise removal of sRGB images (trained on SIDD).",
        ),
    )
}


def get_config(task: str) -> TaskConfig:
    """Look a task up by name; the error lists the valid names, since users type these."""
    try:
        return TASKS[task]
    except KeyError:
        raise TaskError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}") from None
