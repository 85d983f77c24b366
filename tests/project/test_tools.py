"""The scripts in tools/ run end to end on tiny inputs (their full runs take minutes to hours)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import draw_architecture  # tools/ is on pytest's pythonpath
import tiling_study

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_tiling_study_runs_through_the_restorer_and_writes_its_plot(datasets_dir, tmp_path):
    image = datasets_dir / "classic5" / "jpeg_q10" / "lena.jpeg"
    plot = tmp_path / "tradeoff.png"
    result = CliRunner().invoke(tiling_study.main, ["--image", str(image), "--crop", "48", "--config", "32/8",
                                                    "--weights", "random", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    [row] = [line for line in result.output.splitlines() if line.startswith("| 32 | 8 |")]
    assert row.split("|")[3].strip() == "4"  # a 48x48 crop takes 2x2 tiles of 32 with overlap 8
    assert plot.read_bytes()[:8] == PNG


def test_architecture_drawing_is_a_png(tmp_path):
    result = CliRunner().invoke(draw_architecture.main, ["--output", str(tmp_path / "a.png")])
    assert result.exit_code == 0 and (tmp_path / "a.png").read_bytes()[:8] == PNG
