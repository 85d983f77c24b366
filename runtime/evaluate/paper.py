"""The paper's table cells, their target numbers, and where their weights are expected.

The targets are written once, on each task's record (``dagl/tasks/configs.py``, from the paper's Tables 1, 3
and 4, all with the x8 self-ensemble); ``dagl-eval paper`` runs every cell it finds weights for
and prints our number beside the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from dagl.artefact.naming import (CHECKPOINT_SUFFIXES, ENGINE_SUFFIXES, ONNX_SUFFIXES, WEIGHTS_SUFFIX, artefact_stem,
                                  lookup_names)
from dagl.tasks.configs import TASKS

from .report import fmt_db, fmt_delta, fmt_ssim, markdown_table
from .scoring import EvalResult

#: Artefact suffixes looked for, in this order: PyTorch weights (the float32 baseline), then ONNX, then engines.
ARTEFACT_SUFFIXES = (WEIGHTS_SUFFIX, *CHECKPOINT_SUFFIXES, *ONNX_SUFFIXES, *ENGINE_SUFFIXES)


@dataclass(frozen=True)
class PaperCell:
    table: str
    task: str
    dataset: str
    psnr: float
    sigma: int | None = None
    quality: int | None = None
    ssim: float | None = None
    #: Why the cell cannot be evaluated with the data here; None when it can.
    unavailable: str | None = None

    @property
    def setting(self) -> str:
        if self.sigma is not None:
            return f"sigma {self.sigma}"
        return f"q{self.quality}" if self.quality is not None else "-"

    @property
    def target(self) -> str:
        return f"{self.psnr:.2f}" + (f" / {fmt_ssim(self.ssim)}" if self.ssim is not None else "")


def _cells() -> tuple[PaperCell, ...]:
    """One cell per test set and variant of every task's record (:data:`dagl.tasks.configs.TASKS`), in task order."""
    return tuple(PaperCell(test.table, cfg.name, test.name, psnr, sigma=variant if cfg.sigmas else None,
                           quality=variant if cfg.qualities else None, ssim=test.paper_ssim,
                           unavailable=test.unavailable)
                 for cfg in TASKS.values() for test in cfg.test_sets for variant, psnr in test.paper_psnr)


PAPER_CELLS = _cells()


def find_artefact(weights_dir: Path, cell: PaperCell, suffixes: tuple[str, ...] = ARTEFACT_SUFFIXES) -> Path | None:
    """The first of ``cell``'s artefacts in ``weights_dir``, by suffix order: the names
    :func:`dagl.artefact.naming.lookup_names` gives (``dagl-<task>[-s<sigma>]<suffix>``, and the engines
    dagl-export writes), so whatever dagl-export or dagl-train wrote there is found."""
    candidates = (weights_dir / name for s in suffixes for name in lookup_names(cell.task, cell.sigma, s))
    return next((path for path in candidates if path.is_file()), None)


def expected_names(cell: PaperCell, suffixes: tuple[str, ...] = ARTEFACT_SUFFIXES) -> str:
    stem = artefact_stem(cell.task, cell.sigma)
    return f"{stem}.*" if len(suffixes) > 1 else stem + suffixes[0]


@dataclass(frozen=True)
class PaperRow:
    cell: PaperCell
    #: What happened: the artefact used, or why nothing ran.
    status: str
    result: EvalResult | None = None
    #: Images in the full test set (to flag a --limit run as partial).
    total_images: int | None = None
    #: True when the cell had weights but could not be evaluated.
    failed: bool = False

    def cells(self) -> list[str]:
        cell = self.cell
        ours = gap = images = ""
        if self.result is not None:
            score = self.result.mean_scores()[0]
            ours = fmt_db(score.psnr, 2) + (f" / {fmt_ssim(score.ssim)}" if cell.ssim is not None else "")
            gap = fmt_delta(score.psnr - cell.psnr)
            done = len(self.result.images)
            images = f"{done}" + (f" of {self.total_images} (partial)" if self.total_images
                                  and done < self.total_images else "")
        return [cell.table, cell.task, cell.dataset, cell.setting, cell.target, ours, gap, images, self.status]


PAPER_HEADER = ["table", "task", "test set", "setting", "paper PSNR (/SSIM)", "ours", "gap (dB)", "images",
                "weights"]
PAPER_ALIGN = "llllrrrrl"


def paper_markdown(rows: list[PaperRow], provenance: str) -> str:
    """``docs/paper-table.md``: the table and how it was made."""
    return "\n".join(["# DAGL: our numbers against the paper's", "", provenance + " Paper numbers: "
                      "docs/dagl-reference.md (the paper's Tables 1, 3, 4, with x8 self-ensemble). Gap = ours - paper.",
                      "", markdown_table(PAPER_HEADER, [row.cells() for row in rows], PAPER_ALIGN), ""])


def paper_terminal_table(rows: list[PaperRow]) -> Table:
    table = Table(title="DAGL: ours against the paper (PSNR dB; SSIM where the paper gives it)")
    for column in PAPER_HEADER:
        table.add_column(column)
    for row in rows:
        table.add_row(*row.cells())
    return table
