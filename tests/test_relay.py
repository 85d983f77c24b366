"""tools/relay.py ships a run only when it scores better, and then keeps the curve, card and weights in step."""

from __future__ import annotations

import csv

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import dagl
import relay  # tools/ is on pytest's pythonpath
from dagl.weights import file_digest, save_safetensors, weights_metadata

PNG = b"\x89PNG\r\n\x1a\n"
START_ROW = ("date,iterations,crops,train_hours,classic5_q10,live1_q10,note\n"
             "2026-12-01,667,5336,1.83,28.31,,start\n")


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A scratch copy of the files the relay writes, and a finished dagl-train --init run folder."""
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
    torch.manual_seed(0)
    start = save_safetensors(dagl.create("jpeg"), tmp_path / "start.safetensors", fp16=True,
                             metadata={"dagl.iterations": "667", "dagl.crops": "5336", "dagl.train_seconds": "6600"})
    save_safetensors(dagl.create("jpeg"), run / "dagl-jpeg.safetensors", fp16=True,
                     metadata={"dagl.task": "jpeg", "dagl.iterations": "1167", "dagl.trainer": "dagl-train"})
    (run / "dagl-jpeg.md").write_text("# dagl-jpeg\n\n- File: `dagl-jpeg.safetensors`\n- SHA-256: `old`\n")
    torch.save({"config": {"init": str(start), "batch_size": 8}, "iteration": 500, "train_seconds": 1800.0},
               run / "checkpoint.pt")
    return tmp_path


def fake_eval(psnr: float):
    def score(weights, dataset, quality, folder, threads):
        assert (dataset, quality) == ("classic5", 10) and weights.name == "dagl-jpeg.safetensors"
        return psnr, 27.82
    return score


def test_a_run_that_scores_worse_ships_nothing(repo, monkeypatch):
    monkeypatch.setattr(relay, "dagl_eval", fake_eval(28.30))
    result = CliRunner().invoke(relay.main, ["record", str(repo / "run")])
    assert result.exit_code == 0, result.output
    assert "nothing shipped" in result.output
    assert not list((repo / "weights").iterdir())
    assert (repo / "docs" / "learning-curve.csv").read_text() == START_ROW


def test_a_better_run_ships_weights_card_and_one_curve_row(repo, monkeypatch):
    monkeypatch.setattr(relay, "dagl_eval", fake_eval(28.512))
    result = CliRunner().invoke(relay.main, ["record", str(repo / "run")])
    assert result.exit_code == 0, result.output
    shipped = repo / "weights" / "dagl-jpeg.safetensors"
    meta = weights_metadata(shipped)
    # Totals: the start's recorded crops/seconds plus this run's 500 iterations of batch 8 and 1800 s.
    assert (meta["dagl.iterations"], meta["dagl.crops"], meta["dagl.train_seconds"]) == ("1167", "9336", "8400")
    assert all(v.dtype == torch.float16 for v in load_file(shipped).values())
    with (repo / "docs" / "learning-curve.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["classic5_q10"] for r in rows] == ["28.31", "28.51"]
    assert (rows[1]["iterations"], rows[1]["crops"], rows[1]["train_hours"]) == ("1167", "9336", "2.33")
    card = (repo / "weights" / "dagl-jpeg.md").read_text()
    assert f"- SHA-256: `{file_digest(shipped)}`" in card and "`old`" not in card
    assert "| classic5 q10 | 27.82 | 28.51 | 30.08 |" in card
    doc = (repo / "docs" / "training.md").read_text()
    assert "old" not in doc and doc.startswith("# T\n\nbefore\n") and doc.endswith("after\n")
    assert "| 2026-12-01 | 667 | 5,336 | 1.83 | 28.31 | — | start |" in doc
    assert (repo / "docs" / "learning-curve.png").read_bytes()[:8] == PNG
    assert dagl.load("jpeg", weights=shipped) is not None
