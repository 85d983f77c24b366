"""An evaluation's numbers as a terminal table, and as Markdown, CSV and two PNGs in a folder.

Every file is written to a temporary name and renamed into place, so an interrupted run never
leaves a half-written report that looks complete.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.table import Table

from dagl.atomic import atomic_path, write_atomic

from .scoring import EvalResult, Parity, Score

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn, not by dagl-eval --help
    from matplotlib.figure import Figure

METRICS_NOTE = ("PSNR (dB, data range 1) and SSIM (Wang et al.: 11x11 Gaussian window, sigma 1.5, K1 0.01, "
                "K2 0.03; colour: mean over the three channels) of the float output clamped to [0, 1], no "
                "border shave, averaged per image. \"input\" scores the degraded input (clamped to [0, 1]).")
PARITY_NOTE = ("Parity against the base model: max |difference| of the outputs (summary row: the worst "
               "image), PSNR of the output taking the base output as reference, and the PSNR delta against "
               "ground truth (this model minus the base).")


def fmt_db(value: float, digits: int = 3) -> str:
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def fmt_ssim(value: float) -> str:
    return f"{value:.4f}"


def fmt_abs(value: float) -> str:
    return f"{value:.2e}"


def fmt_delta(value: float) -> str:
    return f"{value:+.4f}"


# --- tables shared by the terminal and Markdown ------------------------------------------------

def short_names(result: EvalResult) -> list[str]:
    """``#1``, ``#2``... for column headers: model names are too long for a table this wide."""
    return [f"#{i + 1}" for i in range(len(result.models))]


def legend(result: EvalResult) -> str:
    return "; ".join(f"{short} = {name}" for short, name in zip(short_names(result), result.models))


def _lines(result: EvalResult) -> list[tuple[str, Score, tuple[Score, ...], tuple[Parity, ...]]]:
    """(name, input score, model scores, parity) per image, then the summary line ``mean``."""
    lines = [(r.name, r.degraded, r.scores, r.parity) for r in result.images]
    return lines + [("mean", result.mean_degraded(), result.mean_scores(), result.summary_parity())]


def score_table(result: EvalResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of PSNR/SSIM per image: the input, then every model."""
    header = ["image", "input PSNR", "input SSIM"]
    for short in short_names(result):
        header += [f"{short} PSNR", f"{short} SSIM"]
    rows = []
    for name, degraded, scores, _ in _lines(result):
        rows.append([name, fmt_db(degraded.psnr), fmt_ssim(degraded.ssim)]
                    + [text for s in scores for text in (fmt_db(s.psnr), fmt_ssim(s.ssim))])
    return header, rows


def parity_table(result: EvalResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of each compared model against #1 per image (summary: worst max abs diff)."""
    header = ["image"]
    for short in short_names(result)[1:]:
        header += [f"{short} max abs diff", f"{short} PSNR vs #1", f"{short} dPSNR"]
    rows = [[name] + [text for p in parity for text in (fmt_abs(p.max_abs), fmt_db(p.psnr_vs_base),
                                                          fmt_delta(p.delta_psnr))]
            for name, _, _, parity in _lines(result)]
    return header, rows


def _rich(title: str, header: list[str], rows: list[list[str]], caption: str) -> Table:
    table = Table(title=title, caption=caption)
    for index, column in enumerate(header):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows[:-1]:
        table.add_row(*row)
    table.add_section()
    table.add_row(*rows[-1], style="bold")
    return table


def terminal_tables(result: EvalResult) -> list[Table]:
    """The score table and, with compared models, the parity table, for ``rich`` to print."""
    evalset = result.evalset
    title = f"{evalset.tag} ({len(result.images)} images" + (f" of {evalset.total}: a subset, not the set's numbers)"
                                                             if evalset.is_subset else ")")
    tables = [_rich(title, *score_table(result), legend(result))]
    if len(result.models) > 1:
        tables.append(_rich(f"{title}: parity against #1", *parity_table(result),
                            "summary row: worst max abs diff, mean of the others"))
    return tables


# --- files ----------------------------------------------------------------------------------------

def markdown_table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A GitHub table; ``align`` has one letter per column, l or r (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(result: EvalResult, crop_png: str, plot_png: str) -> str:
    evalset = result.evalset
    lines = [f"# dagl-eval: {evalset.tag}", "", evalset.description + ".", "",
             f"- task: {evalset.task}; images: {len(result.images)}",
             f"- models: {', '.join(f'`{m}`' for m in result.models)}" + (" (the first is the base)"
                                                                         if len(result.models) > 1 else "")]
    lines += [f"- {key}: {value}" for key, value in result.settings.items()]
    per_image = ", ".join(f"`{m}` {s / max(len(result.images), 1):.1f} s" for m, s in zip(result.models,
                                                                                           result.seconds))
    lines += [f"- restore time per image: {per_image}", "", METRICS_NOTE]
    if len(result.models) > 1:
        lines += ["", PARITY_NOTE]
    lines += ["", "## Mean", "", markdown_table(["", "PSNR", "SSIM"], [
        [name, fmt_db(score.psnr), fmt_ssim(score.ssim)]
        for name, score in zip(("input",) + result.models, (result.mean_degraded(),) + result.mean_scores())])]
    if len(result.models) > 1:
        lines += ["", f"## Parity against `{result.models[0]}`", "", markdown_table(
            ["model", "max abs diff (worst image)", "PSNR vs base (mean)", "dPSNR vs ground truth (mean)"],
            [[name, fmt_abs(p.max_abs), fmt_db(p.psnr_vs_base), fmt_delta(p.delta_psnr)]
             for name, p in zip(result.models[1:], result.summary_parity())])]
    lines += ["", "## Per image", "", legend(result) + ".", "", markdown_table(*score_table(result))]
    if len(result.models) > 1:
        lines += ["", markdown_table(*parity_table(result))]
    lines += ["", f"![input, outputs and ground truth]({crop_png})", "", f"![per-image PSNR]({plot_png})", ""]
    return "\n".join(lines)


def csv_text(result: EvalResult) -> str:
    """One row per (image, model) at full precision, the degraded input as model ``input``.

    The last rows (image ``mean``) are the summary; their ``max_abs_vs_base`` is the worst image's.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["dataset", "image", "model", "psnr", "ssim", "max_abs_vs_base", "psnr_vs_base",
                     "delta_psnr_vs_base"])
    tag = result.evalset.tag
    for image, degraded, scores, parity in _lines(result):
        writer.writerow([tag, image, "input", repr(degraded.psnr), repr(degraded.ssim), "", "", ""])
        for index, (name, score) in enumerate(zip(result.models, scores)):
            against = [] if index == 0 else [parity[index - 1]]
            extra = [repr(v) for p in against for v in (p.max_abs, p.psnr_vs_base, p.delta_psnr)] or ["", "", ""]
            writer.writerow([tag, image, name, repr(score.psnr), repr(score.ssim)] + extra)
    return buffer.getvalue()


def _save_figure(figure: Figure, path: Path) -> Path:
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png", dpi=110, bbox_inches="tight")
    return path


def crop_figure(result: EvalResult) -> Figure:
    """Input, each output and ground truth of the first image's centre crop, side by side."""
    from matplotlib.figure import Figure

    show = result.showcase
    scores = result.images[0]
    panels = [("input", show.degraded, scores.degraded.psnr)]
    panels += [(name, out, score.psnr) for name, out, score in zip(result.models, show.outputs, scores.scores)]
    panels += [("ground truth", show.clean, None)]
    scope = "crop" if result.evalset.crop else "whole image"  # --crop scores the crop itself
    figure = Figure(figsize=(2.6 * len(panels), 3.0))
    for axes, (title, image, value) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        axes.imshow(np.clip(image, 0, 1), cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1,
                    interpolation="nearest")
        axes.set_title(title if value is None else f"{title}\n{fmt_db(value, 2)} dB ({scope})", fontsize=8)
        axes.set_axis_off()
    height, width = show.clean.shape[:2]
    random = " (RANDOM, untrained weights)" if "weights" in result.settings else ""
    figure.suptitle(f"{result.evalset.tag}: {show.name}, centre {height}x{width} crop{random}", fontsize=9)
    return figure


def psnr_figure(result: EvalResult) -> Figure:
    """Per-image PSNR of the input and of every model."""
    from matplotlib.figure import Figure

    names = [r.name for r in result.images]
    x = np.arange(len(names))
    figure = Figure(figsize=(max(6.0, 0.22 * len(names) + 2), 3.6))
    axes = figure.subplots()
    axes.plot(x, [r.degraded.psnr for r in result.images], "o:", color="0.5", label="input")
    for index, name in enumerate(result.models):
        axes.plot(x, [r.scores[index].psnr for r in result.images], "sx^v"[index % 4] + "-", label=name,
                  alpha=0.85, linewidth=2.0 if index == 0 else 1.0)
    axes.set_xticks(x, names, rotation=90, fontsize=7)
    axes.set_ylabel("PSNR (dB)")
    axes.set_title(f"{result.evalset.tag}: PSNR per image", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    return figure


def write_report(result: EvalResult, folder: Path) -> list[Path]:
    """``TAG.md``, ``TAG.csv``, ``TAG-crop.png`` and ``TAG-psnr.png`` in ``folder`` (created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    tag = result.evalset.tag
    crop_png, plot_png = folder / f"{tag}-crop.png", folder / f"{tag}-psnr.png"
    return [_save_figure(crop_figure(result), crop_png), _save_figure(psnr_figure(result), plot_png),
            write_atomic(folder / f"{tag}.csv", csv_text(result)),
            write_atomic(folder / f"{tag}.md", markdown(result, crop_png.name, plot_png.name))]
