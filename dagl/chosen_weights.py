"""The weights a user chose (a file, the shipped ones, or ``random``), loaded, and the record of which they were.

Every artefact names its weights by SHA-256 so that an engine on a server can be traced back to the
checkpoint it came from. ``random`` exists for smoke-testing a deployment pipeline before trained
weights are at hand; it is seeded (identical artefacts on every run) and labelled everywhere, since
a random-weight engine that looks like a real one is a trap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import dagl
from dagl.artefact.naming import WEIGHTS_KEY, is_random_label, random_label
from dagl.files import file_digest
from dagl.suggest import did_you_mean

RANDOM = "random"
RANDOM_SEED = 0


@dataclass(frozen=True)
class WeightsInfo:
    """What the metadata says about the weights; ``sha256`` is None for ``--weights random``.

    ``label`` is the ``dagl.weights`` text an exported graph carries: the digest, or the random label
    (a weights file that is labelled random itself, e.g. from a dagl-train run that trained nothing,
    keeps its own label, so the artefacts built from it say so too).
    """

    source: str
    sha256: str | None
    random: bool
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", random_label(RANDOM_SEED) if self.random else str(self.sha256))

    def as_dict(self) -> dict:
        """For the export summary and the sidecar: the label only where a weights file declared it."""
        record = asdict(self)
        if not (self.random and self.sha256):
            del record["label"]
        return record | ({"seed": RANDOM_SEED} if self.random and self.sha256 is None else {})


def chosen_path(task: str, weights: str | Path | None, sigma: int | None = None) -> Path | None:
    """The file ``weights`` names (``None`` for ``random``), checked to exist; nothing is read or imported.

    ``None`` means the weights shipped for ``task`` (:class:`dagl.WeightsError` if none ship); a file
    that is not there is refused in one line, with ``random`` suggested for a near miss of it.
    """
    if str(weights) == RANDOM:
        return None
    if weights is None:
        return dagl.shipped_weights(task, sigma)
    path = Path(weights)
    if not path.is_file():
        raise dagl.WeightsError(f"weights file not found: {path}{did_you_mean(str(weights), [RANDOM])}")
    return path


def load_chosen_weights(task: str, weights: str | Path | None, sigma: int | None = None) -> tuple[dagl.DAGL, WeightsInfo]:
    """An eval-mode batched-GFAM model plus its provenance.

    ``weights`` None means the shipped weights (a :class:`dagl.WeightsError` says if none ship);
    ``"random"`` a seeded random initialisation; anything else a weights file.
    """
    path = chosen_path(task, weights, sigma)  # before torch imports: a wrong name costs a moment
    import torch  # here, not at import: the export command's --help names RANDOM without loading torch

    from dagl.weights.checkpoints import weights_metadata

    if path is None:
        torch.manual_seed(RANDOM_SEED)
        return dagl.create(task).eval(), WeightsInfo(source=RANDOM, sha256=None, random=True)
    model = dagl.load(task, weights=path)
    label = weights_metadata(path).get(WEIGHTS_KEY, "")
    random = is_random_label(label)
    return model, WeightsInfo(source=str(path), sha256=file_digest(path), random=random, label=label if random else "")
