"""The table (terminal and markdown) and the plot of :func:`dagl.runtime.cpu_paths.compare_paths`'s results.

One row per path: CPU milliseconds per call at each (tile, batch), the whole image's CPU and wall seconds, CPU time
against ONNX Runtime float32's, and the quality columns. Times are CPU time (every thread of the process) where
both are measured: on a core shared with other jobs wall time grows with their load, CPU time does not.
"""

from __future__ import annotations

import math
from pathlib import Path

from rich.table import Table

from dagl.atomic import atomic_path

from .benchmark import save_figures
from .cpu_paths import BASE, SPEED_BASE, WEIGHTS, PathResult


def _calls(results: list[PathResult]) -> list[tuple[int, int]]:
    """The (tile, batch) pairs measured, in order."""
    return list(dict.fromkeys((m.tile, m.batch) for r in results for m in r.calls))


def _runs(result: PathResult) -> str:
    path = result.path
    model = "weights" if path.model == WEIGHTS else f"{path.model} .onnx"
    tiling = "release chop" if path.tiling == "reference" else "grid"
    return f"{model}, {path.backend} {path.precision}, {tiling}"


def _db(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return "exact" if math.isinf(value) else f"{value:.3f}"


def header(results: list[PathResult]) -> list[str]:
    calls = [f"CPU ms/call {tile}x{tile} b{batch}" for tile, batch in _calls(results)]
    return ["path", "runs", *calls, "image CPU s", "image wall s", f"vs {SPEED_BASE} (CPU)",
            f"PSNR vs {BASE} (dB)", "PSNR vs clean (dB)", "Classic5 q10 (dB)"]


def rows(results: list[PathResult]) -> list[list[str]]:
    """Cells of :func:`header`'s columns; a skipped path's row says why in its second cell."""
    calls = _calls(results)
    speed = next((r.cpu_s for r in results if r.path.name == SPEED_BASE and r.skipped is None), math.nan)
    out = []
    for r in results:
        if r.skipped is not None:
            out.append([r.path.name, f"skipped: {r.skipped}"] + [""] * (len(calls) + 6))
            continue
        per_call = {(m.tile, m.batch): m.cpu_ms_per_call for m in r.calls}
        cells = [f"{per_call[c]:.1f}" if c in per_call else f"(= {BASE})" for c in calls]
        ratio = "—" if math.isnan(speed) else f"{speed / r.cpu_s:.2f}x"
        out.append([r.path.name, _runs(r), *cells, f"{r.cpu_s:.1f}", f"{r.wall_s:.1f}", ratio,
                    "base" if r.path.name == BASE else _db(r.psnr_vs_base), _db(r.psnr_vs_clean), _db(r.classic5)])
    return out


def table(results: list[PathResult], title: str) -> Table:
    out = Table(title=title)
    names = header(results)
    for column in names:
        out.add_column(column, justify="left" if column in ("path", "runs") else "right")
    for cells in rows(results):
        out.add_row(*cells)
    return out


def markdown(results: list[PathResult]) -> str:
    names = header(results)
    lines = ["| " + " | ".join(names) + " |", "|" + "|".join("---" if n in ("path", "runs") else "---:"
                                                           for n in names) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows(results)]
    return "\n".join(lines)


def plot(results: list[PathResult], title: str, path: Path) -> None:
    """Left: CPU ms per call at each (tile, batch), bars per path. Right: whole-image CPU seconds against the PSNR
    change from :data:`BASE`'s on the clean image (dB; below zero: a cost). A path keeps its colour in both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ran = [r for r in results if r.skipped is None]
    colour = {r.path.name: f"C{index}" for index, r in enumerate(results)}
    calls = _calls(ran)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    timed = [r for r in ran if r.calls]
    width = 0.8 / max(len(timed), 1)
    for index, r in enumerate(timed):
        per_call = {(m.tile, m.batch): m.cpu_ms_per_call for m in r.calls}
        left.bar([c + index * width for c in range(len(calls))], [per_call.get(c, math.nan) for c in calls],
                 width, label=r.path.name, color=colour[r.path.name])
    left.set_xticks([c + 0.4 - width / 2 for c in range(len(calls))],
                    [f"{tile}x{tile}\nbatch {batch}" for tile, batch in calls])
    left.set(ylabel="CPU ms per call", yscale="log", title="one call per tile size and batch")
    base = next((r.psnr_vs_clean for r in ran if r.path.name == BASE), math.nan)
    for r in ran:  # a legend, not labels by the points: paths of one speed and quality sit on each other
        right.scatter(r.cpu_s, r.psnr_vs_clean - base, color=colour[r.path.name], label=r.path.name)
    right.axhline(0, color="gray", lw=0.8)
    right.set(xlabel="CPU seconds", ylabel=f"PSNR change vs {BASE} (dB; below 0: a cost)",
              title="the whole image: time against quality")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as temp:
        fig.savefig(temp, dpi=120, format=path.suffix.lower().lstrip("."))
    plt.close(fig)


def write_figures(results: list[PathResult], title: str, plot_path: Path, markdown_path: Path | None) -> None:
    """The plot, and the markdown table if asked (:func:`~dagl.runtime.benchmark.save_figures`)."""
    save_figures(lambda where: plot(results, title, where), markdown(results), plot_path, markdown_path)
