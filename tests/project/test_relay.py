"""tools/relay.py ships a run only when its trained weights won on the held-out split (the test sets are
reported, never selected on), and then keeps the curve, card and weights in step."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import dagl
import relay  # tools/ is on pytest's pythonpath
from dagl.files import file_digest
from dagl.weights.checkpoints import save_safetensors, weights_metadata

PNG = b"\x89PNG\r\n\x1a\n"
START_ROW = ("date,iterations,crops,train_hours,classic5_q10,live1_q10,note\n"
             "2026-12-01,667,5336,1.83,28.31,,start\n")


def write_weights(path, iterations: int, seed: int = 0, **metadata: str):
    """Random jpeg weights stored as dagl-train ships them, recording ``iterations`` in all."""
    torch.manual_seed(seed)
    return save_safetensors(dagl.create("jpeg"), path, fp16=True,
                            metadata={"dagl.task": "jpeg", "dagl.iterations": str(iterations),
                                      "dagl.trainer": "dagl-train", **metadata})


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A scratch copy of the files the relay writes, and a finished dagl-train --init run folder whose
    weights record more iterations than its start's 667: the trained weights won on the held-out split."""
    docs, weights = tmp_path / "docs", tmp_path / "weights"
    docs.mkdir()
    weights.mkdir()
    (docs / "learning-curve.csv").write_text(START_ROW)
    (docs / "training.md").write_text(f"# T\n\nbefore\n{relay.TABLE_START}\nold\n{relay.TABLE_END}\nafter\n")
    monkeypatch.setattr(relay, "WEIGHTS_DIR", weights)
    monkeypatch.setattr(relay, "CURVE", docs / "learning-curve.csv")
    monkeypatch.setattr(relay, "CURVE_PLOT", docs / "learning-curve.png")
    monkeypatch.setattr(relay, "TRAINING_DOC", docs / "training.md")
    run = tmp_path / "run"
    run.mkdir()
    start = write_weights(tmp_path / "start.safetensors", 667, **{"dagl.crops": "5336", "dagl.train_seconds": "6600"})
    write_weights(run / "dagl-jpeg.safetensors", 1167, seed=1)
    (run / "dagl-jpeg.md").write_text("# dagl-jpeg\n\n- File: `dagl-jpeg.safetensors`\n- SHA-256: `old`\n")
    torch.save({"config": {"init": str(start), "batch_size": 8}, "iteration": 500, "train_seconds": 1800.0},
               run / "checkpoint.pt")
    return tmp_path


def fake_eval(psnr: float):
    def score(weights, dataset, quality, folder, threads):
        assert (dataset, quality) == ("classic5", 10) and weights.name == "dagl-jpeg.safetensors"
        return psnr, 27.82
    return score


def no_eval(*args, **kwargs):
    raise AssertionError("dagl-eval ran for weights that lost on the held-out split")


def test_a_run_whose_trained_weights_lost_on_the_held_out_split_ships_nothing_and_scores_nothing(repo, monkeypatch):
    # dagl-train --init wrote the starting weights back, with the start's iteration count.
    write_weights(repo / "run" / "dagl-jpeg.safetensors", 667)
    monkeypatch.setattr(relay, "dagl_eval", no_eval)
    result = CliRunner().invoke(relay.main, ["record", str(repo / "run")])
    assert result.exit_code == 0, result.output
    assert "validate worse than the starting ones on the held-out split; nothing shipped" in result.output
    assert not list((repo / "weights").iterdir())
    assert (repo / "docs" / "learning-curve.csv").read_text() == START_ROW
    assert not (repo / "docs" / "learning-curve.png").exists()


def test_a_better_run_ships_weights_card_and_one_curve_row(repo, monkeypatch):
    monkeypatch.setattr(relay, "dagl_eval", fake_eval(28.512))
    result = CliRunner().invoke(relay.main, ["record", str(repo / "run")])
    assert result.exit_code == 0, result.output
    shipped = repo / "weights" / "dagl-jpeg.safetensors"
    meta = weights_metadata(shipped)
    # Totals: the start's recorded crops/seconds plus this run's 500 iterations of batch 8 and 1800 s.
    assert (meta["dagl.iterations"], meta["dagl.crops"], meta["dagl.train_seconds"]) == ("1167", "9336", "8400")
    assert all(v.dtype == torch.float16 for v in load_file(shipped).values())
    _assert_same_weights(shipped, repo / "run" / "dagl-jpeg.safetensors")
    with (repo / "docs" / "learning-curve.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["classic5_q10"] for r in rows] == ["28.31", "28.51"]
    assert (rows[1]["iterations"], rows[1]["crops"], rows[1]["train_hours"]) == ("1167", "9336", "2.33")
    card = (repo / "weights" / "dagl-jpeg.md").read_text()
    assert f"- SHA-256: `{file_digest(shipped)}`" in card and "`old`" not in card
    assert "| classic5 q10 | 27.82 | 28.51 | — | 30.08 |" in card
    assert "| live1 q10 | 27.77 | — | — | 29.70 |" in card
    doc = (repo / "docs" / "training.md").read_text()
    assert "old" not in doc and doc.startswith("# T\n\nbefore\n") and doc.endswith("after\n")
    assert "| 2026-12-01 | 667 | 5,336 | 1.83 | 28.31 | — | start |" in doc
    assert (repo / "docs" / "learning-curve.png").read_bytes()[:8] == PNG
    assert dagl.load("jpeg", weights=shipped) is not None


@pytest.mark.slow
def test_the_ship_decision_does_not_depend_on_classic5(repo, monkeypatch):
    """Classic5 is reported, never selected on: a run that won on the held-out split ships even when its
    Classic5 q10 is below the curve's last row (28.31 dB), and the lower figure is what the curve shows."""
    monkeypatch.setattr(relay, "dagl_eval", fake_eval(28.004))
    result = CliRunner().invoke(relay.main, ["record", str(repo / "run")])
    assert result.exit_code == 0, result.output
    shipped = repo / "weights" / "dagl-jpeg.safetensors"
    assert weights_metadata(shipped)["dagl.iterations"] == "1167"
    _assert_same_weights(shipped, repo / "run" / "dagl-jpeg.safetensors")
    with (repo / "docs" / "learning-curve.csv").open() as fh:
        assert [r["classic5_q10"] for r in csv.DictReader(fh)] == ["28.31", "28.00"]
    assert "| classic5 q10 | 27.82 | 28.00 | — | 30.08 |" in (repo / "weights" / "dagl-jpeg.md").read_text()


def _assert_same_weights(shipped, trained) -> None:
    got, want = load_file(shipped), load_file(trained)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


# ---- record-window: what a GPU window returned (tools/gpu_window.py run) ----------------------------------
WINDOW_SCORES = {"classic5 q10": 29.381, "live1 q10": 29.187, "classic5 q10 x8": 29.434, "live1 q10 x8": None}


def _window(repo, iterations: int):
    """The shipped start (667 iterations) and a window's folder as tools/gpu_window.py writes it: 500 iterations
    of batch 32 of 64x64 crops in 216 s, the card, and the scores measured there (LIVE1's x8 ran out of time)."""
    write_weights(repo / "weights" / "dagl-jpeg.safetensors", 667,
                  **{"dagl.crops": "5336", "dagl.train_seconds": "6600"})
    folder = repo / "window"
    folder.mkdir()
    write_weights(folder / "dagl-jpeg.safetensors", iterations, seed=2)
    (folder / "dagl-jpeg.md").write_text(  # the File item runs over two lines, as dagl-train writes it
        "# dagl-jpeg\n\n- File: `dagl-jpeg.safetensors` (safetensors,\n  stored as FP16)\n- SHA-256: `old`\n- Data: x\n")
    summary = {"budget_seconds": 540.0, "device": {"torch": "2.13.0", "cuda": True, "gpu": "NVIDIA H200"},
               "steps": [{"step": "train", "returncode": 0}], "scores": WINDOW_SCORES, "timing": None,
               "training": {"iterations": 500, "train_seconds": 216.0, "batch_size": 32, "patch": 64,
                            "init": "dagl/weights/dagl-jpeg.safetensors"}}
    (folder / "gpu-window.json").write_text(json.dumps(summary))
    return folder


@pytest.mark.slow
def test_record_window_ships_the_windows_weights_with_the_scores_measured_there(repo):
    folder = _window(repo, iterations=1167)
    result = CliRunner().invoke(relay.main, ["record-window", str(folder)])
    assert result.exit_code == 0, result.output
    shipped = repo / "weights" / "dagl-jpeg.safetensors"
    meta = weights_metadata(shipped)
    # Totals: the shipped start's 5,336 crops and 6,600 s, plus the window's 500 x 32 crops and 216 s.
    assert (meta["dagl.iterations"], meta["dagl.crops"], meta["dagl.train_seconds"]) == ("1167", "21336", "6816")
    assert all(v.dtype == torch.float16 for v in load_file(shipped).values())
    _assert_same_weights(shipped, folder / "dagl-jpeg.safetensors")
    card = (repo / "weights" / "dagl-jpeg.md").read_text()
    # The digest follows the whole File item (its continuation line included), not its first line.
    assert (f"- File: `dagl-jpeg.safetensors` (safetensors,\n  stored as FP16)\n- SHA-256: `{file_digest(shipped)}`\n"
            f"- Data: x\n") in card and "`old`" not in card
    assert "| test set (full images) | JPEG input | these weights | these weights, x8 | paper (x8 ensemble) |" in card
    assert "| classic5 q10 | 27.82 | 29.38 | 29.43 | 30.08 |" in card
    assert "| live1 q10 | 27.77 | 29.19 | — | 29.70 |" in card
    with (repo / "docs" / "learning-curve.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    assert {k: rows[1][k] for k in ("iterations", "crops", "train_hours", "classic5_q10", "live1_q10", "note")} == {
        "iterations": "1167", "crops": "21336", "train_hours": "1.89", "classic5_q10": "29.38", "live1_q10": "29.19",
        "note": "+500 it on 1 x NVIDIA H200 (3.6 min, GPU window), batch 32 of 64x64"}
    doc = (repo / "docs" / "training.md").read_text()
    assert "| date | iterations | crops seen | training (h) | Classic5 q10 (dB) | LIVE1 q10 (dB) | note |" in doc
    assert f"| {rows[1]['date']} | 1,167 | 21,336 | 1.89 | 29.38 | 29.19 | {rows[1]['note']} |" in doc
    assert (repo / "docs" / "learning-curve.png").read_bytes()[:8] == PNG


@pytest.mark.slow
@pytest.mark.parametrize("iterations", [667, 500])
def test_record_window_ships_nothing_unless_its_weights_continued_the_shipped_ones(repo, iterations):
    """Weights recording no more iterations than the shipped start's are the start written back (they
    validated better on the held-out split) or not a continuation of it: nothing ships."""
    folder = _window(repo, iterations=iterations)
    before = (repo / "weights" / "dagl-jpeg.safetensors").read_bytes()
    result = CliRunner().invoke(relay.main, ["record-window", str(folder)])
    assert result.exit_code == 0, result.output
    assert "nothing shipped" in result.output
    assert (repo / "weights" / "dagl-jpeg.safetensors").read_bytes() == before
    assert sorted(p.name for p in (repo / "weights").iterdir()) == ["dagl-jpeg.safetensors"]
    assert (repo / "docs" / "learning-curve.csv").read_text() == START_ROW
