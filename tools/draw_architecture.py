"""Draw docs/architecture.png: the layers of the toolkit and which way imports may point.

    python tools/draw_architecture.py            # rewrites docs/architecture.png

The picture is data below (LAYERS, ARROWS); change it here when a layer changes, not in an editor.
"""

from __future__ import annotations

from pathlib import Path

import click

#: (label, folder/what it owns, x, y, width): rows from the bottom (y=0) to the top.
LAYERS = [
    ("dagl core", "dagl/: network/, tasks/, weights/, images/, data/, errors,\natomic "
     "writes, train/", 0.0, 0.0, 9.0),
    ("dagl.artefact", "dagl/artefact/: ONNX I/O names, dagl.* metadata, engine sidecar,\ntile and profile defaults, "
     "GPU / TensorRT probes", 0.0, 1.5, 9.0),
    ("dagl.export", "export/: ONNX, FP16,\nTensorRT check and build", 0.0, 3.0, 2.8),
    ("dagl.calibration", "calibration/: FP16 ranges,\nprecision policy", 3.1, 3.0, 2.8),
    ("dagl.runtime", "runtime/: runners (one folder a backend),\ntiling, ensemble, Restorer, compare", 6.2, 3.0, 2.8),
    ("commands and tools", "dagl-export · dagl-infer · dagl-bench · dagl-eval · dagl-train\n"
     "shared options, errors, progress, signals: dagl/cli/ · tools/: benchmarks, studies, the test command", 0.0, 4.5, 9.0),
]
HEIGHT = 1.0
#: (from label, to label, text): an allowed import direction that is not simply "downwards".
ARROWS = [("dagl.export", "dagl.calibration", "allowed")]
COLOURS = {"dagl core": "#dbe9f6", "dagl.artefact": "#cfe3d4", "dagl.export": "#f6e3c8",
           "dagl.calibration": "#f6e3c8", "dagl.runtime": "#f6e3c8", "commands and tools": "#e7dcf2"}


def draw(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(10, 6.6))
    boxes = {}
    for label, text, x, y, width in LAYERS:
        ax.add_patch(FancyBboxPatch((x, y), width, HEIGHT, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=COLOURS[label], edgecolor="#444444"))
        ax.text(x + width / 2, y + HEIGHT - 0.22, label, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(x + width / 2, y + 0.38, text, ha="center", va="center", fontsize=8)
        boxes[label] = (x, y, width)
    for label, target, text in ARROWS:
        (x0, y0, w0), (x1, y1, _) = boxes[label], boxes[target]
        ax.annotate("", xy=(x1, y1 + HEIGHT / 2), xytext=(x0 + w0, y0 + HEIGHT / 2),
                    arrowprops={"arrowstyle": "->", "color": "#2a7a2a", "lw": 1.6})
        ax.text((x0 + w0 + x1) / 2, y0 + HEIGHT / 2 + 0.1, text, ha="center", fontsize=7, color="#2a7a2a")
    ax.annotate("", xy=(9.35, 0.2), xytext=(9.35, 5.3), arrowprops={"arrowstyle": "->", "lw": 1.6})
    ax.text(9.5, 2.75, "imports point down", rotation=90, va="center", fontsize=9)
    ax.text(4.5, 2.72, "no imports between dagl.runtime and dagl.export (either way), none from "
            "dagl.calibration into dagl.export", ha="center", fontsize=8, color="#a02020")
    ax.set_xlim(-0.2, 9.9)
    ax.set_ylim(-0.2, 5.7)
    ax.axis("off")
    ax.set_title("dagl: layers and import directions", fontsize=13)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


@click.command()
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path(__file__).resolve().parents[1] / "docs" / "architecture.png", show_default="docs/architecture.png")
def main(output: Path) -> None:
    """Draw the architecture picture (PNG)."""
    draw(output)
    click.echo(f"wrote {output}")


if __name__ == "__main__":
    main()
