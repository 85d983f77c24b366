"""Progress lines with an ETA off a terminal, and result tables that no 80-column log cuts."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from dagl.cli.progress import LineProgress, format_eta, print_table


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(buffer: io.StringIO) -> list[str]:
    return buffer.getvalue().splitlines()


def test_eta_is_the_remaining_items_at_the_mean_rate_so_far():
    buffer, clock = io.StringIO(), Clock()
    bars = LineProgress(Console(file=buffer, width=80), clock=clock)
    images = bars.add_task("images", total=12, unit="image")
    tiles = bars.add_task("tiles", total=40)
    for seconds in (10, 20, 5):  # 35 s for 3 images: 9 more at 35/3 s each = 105 s
        clock.now += seconds
        bars.advance(tiles, 4)  # silent: no unit
        bars.advance(images)
    assert lines(buffer) == ["image 1/12 done, eta 0:01:50", "image 2/12 done, eta 0:02:30",
                             "image 3/12 done, eta 0:01:45"]
    clock.now += 3600 * 2
    bars.update(images, advance=9, outcome="failed")
    assert lines(buffer)[-1] == "image 12/12 failed"  # the last one has nothing left to wait for


def test_reset_restarts_the_eta_clock_and_unknown_totals_have_none():
    buffer, clock = io.StringIO(), Clock()
    bars = LineProgress(Console(file=buffer, width=80), clock=clock)
    cells = bars.add_task("cells", total=4, unit="cell")
    clock.now += 1000
    bars.reset(cells, total=4)
    clock.now += 30
    bars.advance(cells)
    steps = bars.add_task("steps", total=None, unit="step")
    clock.now += 5
    bars.advance(steps)
    assert lines(buffer) == ["cell 1/4 done, eta 0:01:30", "step 1 done"]


@pytest.mark.parametrize("seconds,text", [(0, "0:00:00"), (59.6, "0:01:00"), (3725, "1:02:05"), (-3, "0:00:00")])
def test_eta_format_is_rich_s(seconds, text):
    assert format_eta(seconds) == text


def wide_table() -> Table:
    table = Table(title="a wide result")
    for header in ("table", "task", "test set", "setting", "paper PSNR (/SSIM)", "ours", "gap (dB)", "weights"):
        table.add_column(header)
    table.add_row("Table 1", "denoise", "set12", "sigma 25", "30.93", "30.871", "-0.059",
                  "dagl-denoise-s25.safetensors (sha 1f2e3d4c5b6a)")
    return table


def test_a_table_too_wide_for_a_log_is_printed_as_records_nothing_cut():
    buffer = io.StringIO()
    print_table(Console(file=buffer, width=80), wide_table())
    text = buffer.getvalue()
    assert "…" not in text and "30.871" in text and "-0.059" in text
    assert "  weights: dagl-denoise-s25.safetensors (sha 1f2e3d4c5b6a)" in text.splitlines()
    assert text.splitlines()[:3] == ["a wide result", "table: Table 1", "  task: denoise"]


def test_a_table_that_fits_stays_a_table_and_a_terminal_folds_instead_of_cutting():
    buffer = io.StringIO()
    print_table(Console(file=buffer, width=200), wide_table())
    assert "┃ table" in buffer.getvalue() and "30.871" in buffer.getvalue()
    buffer = io.StringIO()
    print_table(Console(file=buffer, width=76, force_terminal=True, color_system=None), wide_table())
    text = buffer.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 76
    assert "30.871" in text  # folded columns keep short numbers whole
