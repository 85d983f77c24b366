"""tools/relay.py ships a run only when its trained weights won on the held-out split (the test sets are
reported, never selected on), and then keeps the curve, card and weights in step."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import dagl
import relay  # tools/ is on pytest's pythonpath
from dagl.files import file_digest
from dagl.runtime.base import RuntimeLoadError
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
    torch.save({"config": {"init": str(start), "batch_size": 8, "patch": 32}, "iteration": 500, "train_seconds": 1800.0},
               run / "checkpoint.pt")
    return tmp_path


def fake_eval(psnr: float, track=relay.JPEG, name: str = "classic5", backend: str = "openvino"):
    def score(weights, asked_track, asked_name, folder, threads, asked_backend="torch"):
        assert (asked_track, asked_name, asked_backend) == (track, name, backend)
        assert weights.name == track.weights_name
        return psnr, track.sets[name][1]
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


@pytest.mark.parametrize("options, backend", [([], "openvino"), (["--backend", "torch"], "torch")])
def test_a_better_run_ships_weights_card_and_one_curve_row(repo, monkeypatch, options, backend):
    monkeypatch.setattr(relay, "dagl_eval", fake_eval(28.512, backend=backend))
    result = CliRunner().invoke(relay.main, ["record", str(repo / "run"), *options])
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
    assert rows[1]["note"] == "+500 it, batch 8 of 32x32"
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


# ---- record-window for denoise sigma 25: the held-out rule, then BM3D's BSD68 figure as the bar ------------
DENOISE_START_ROW = ("date,iterations,crops,train_hours,bsd68_s25,note\n"
                     "2026-12-04,11244,89952,7.04,,the CPU start\n")


def write_denoise_weights(path, iterations: int, seed: int = 0):
    torch.manual_seed(seed)
    return save_safetensors(dagl.create("denoise"), path, fp16=True,
                            metadata={"dagl.task": "denoise", "dagl.sigma": "25", "dagl.iterations": str(iterations),
                                      "dagl.trainer": "dagl-train"})


@pytest.fixture
def denoise_window(repo, monkeypatch):
    """The jpeg scratch files plus the denoise curve and its table, the sigma-25 start in a scratch
    ../shared/weights (11,244 iterations, no totals recorded: the curve's first row has them) and a window's
    folder as tools/gpu_window.py run --task denoise writes it; ``make(iterations, bsd68)`` fills it."""
    (repo / "docs" / "learning-curve-denoise-s25.csv").write_text(DENOISE_START_ROW)
    doc = repo / "docs" / "training.md"
    start_marker, end_marker = relay.DENOISE_S25.markers
    doc.write_text(doc.read_text() + f"denoise\n{start_marker}\nold denoise\n{end_marker}\nend\n")
    shared = repo / "shared"
    shared.mkdir()
    write_denoise_weights(shared / relay.DENOISE_S25.start, 11244)
    monkeypatch.setattr(relay, "SHARED_WEIGHTS", shared)
    folder = repo / "window-denoise"
    folder.mkdir()

    def make(iterations: int, bsd68: float | None):
        write_denoise_weights(folder / "dagl-denoise-s25.safetensors", iterations, seed=3)
        (folder / "dagl-denoise-s25.md").write_text(
            "# dagl-denoise-s25\n\n- File: `dagl-denoise-s25.safetensors` (safetensors,\n  stored as FP16)\n"
            "- SHA-256: `old`\n- Data: x\n")
        summary = {"task": "denoise", "sigma": 25, "budget_seconds": 540.0,
                   "device": {"torch": "2.11.0", "cuda": True, "gpu": "NVIDIA H200"},
                   "steps": [{"step": "train", "returncode": 0}],
                   "scores": {"bsd68 s25": bsd68, "bsd68 s25 x8": None}, "timing": None,
                   "training": {"iterations": 500, "train_seconds": 216.0, "batch_size": 32, "patch": 64,
                                "init": ".gpu-data/start/dagl-denoise-s25-cpu-start.safetensors"}}
        (folder / "gpu-window.json").write_text(json.dumps(summary))
        return folder
    return make


def _nothing_shipped(repo, output: str, why: str) -> None:
    assert why in output and "nothing shipped" in output
    assert not list((repo / "weights").iterdir())
    assert (repo / "docs" / "learning-curve-denoise-s25.csv").read_text() == DENOISE_START_ROW
    assert (repo / "docs" / "learning-curve.csv").read_text() == START_ROW
    assert "old denoise" in (repo / "docs" / "training.md").read_text()
    assert not list((repo / "docs").glob("*.png"))


def test_record_window_denoise_ships_nothing_when_its_weights_lost_on_the_held_out_split(repo, denoise_window):
    # dagl-train --init wrote the start back (its 11,244 iterations): the BSD68 score does not matter then.
    folder = denoise_window(11244, bsd68=29.0)
    result = CliRunner().invoke(relay.main, ["record-window", str(folder)])
    assert result.exit_code == 0, result.output
    _nothing_shipped(repo, result.output, "beat the shipped ones on the held-out split")


@pytest.mark.parametrize("bsd68", [28.40, 28.57, None])
def test_record_window_denoise_ships_nothing_unless_bsd68_beats_bm3d(repo, denoise_window, bsd68):
    """Won on the held-out split, but BSD68 sigma 25 at or below BM3D's 28.57 dB (or not measured): no ship."""
    folder = denoise_window(11744, bsd68=bsd68)
    result = CliRunner().invoke(relay.main, ["record-window", str(folder)])
    if bsd68 is None:  # the window's score step failed: nothing to decide on
        assert result.exit_code != 0 and "has no BSD68 σ25 score" in result.output
        assert not list((repo / "weights").iterdir())
        return
    assert result.exit_code == 0, result.output
    _nothing_shipped(repo, result.output, f"BSD68 σ25 {bsd68:.2f} dB does not beat BM3D's 28.57 dB")


@pytest.mark.slow
def test_record_window_denoise_ships_weights_card_and_its_own_curve_row(repo, denoise_window):
    folder = denoise_window(11744, bsd68=28.912)
    jpeg_table = (repo / "docs" / "training.md").read_text().split("denoise\n")[0]
    result = CliRunner().invoke(relay.main, ["record-window", str(folder)])
    assert result.exit_code == 0, result.output
    shipped = repo / "weights" / "dagl-denoise-s25.safetensors"
    assert sorted(p.name for p in (repo / "weights").iterdir()) == ["dagl-denoise-s25.md",
                                                                    "dagl-denoise-s25.safetensors"]
    meta = weights_metadata(shipped)
    # Totals: the curve's first row (the start records none: 89,952 crops, 7.04 h) plus 500 x 32 crops and 216 s.
    assert (meta["dagl.task"], meta["dagl.sigma"], meta["dagl.iterations"], meta["dagl.crops"],
            meta["dagl.train_seconds"]) == ("denoise", "25", "11744", "105952", "25560")
    _assert_same_weights(shipped, folder / "dagl-denoise-s25.safetensors")
    assert dagl.load("denoise", weights=shipped, sigma=25) is not None
    card = (repo / "weights" / "dagl-denoise-s25.md").read_text()
    assert f"- SHA-256: `{file_digest(shipped)}`" in card and "`old`" not in card
    assert "| test set (full images) | noisy input | these weights | these weights, x8 | paper (x8 ensemble) |" in card
    assert "| bsd68 s25 | 20.46 | 28.91 | — | 29.46 |" in card
    assert "`dagl-eval --task denoise --dataset bsd68 --sigma 25 --model dagl/weights/dagl-denoise-s25.safetensors`" \
        in card
    assert ("28.91 dB is above BM3D 28.57 and below DnCNN 29.23, DAGL (paper, x8) 29.46. These weights ship only "
            "when they beat BM3D's 28.57 dB") in card
    with (repo / "docs" / "learning-curve-denoise-s25.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["bsd68_s25"] for r in rows] == ["", "28.91"]
    assert {k: rows[1][k] for k in ("iterations", "crops", "train_hours", "note")} == {
        "iterations": "11744", "crops": "105952", "train_hours": "7.10",
        "note": "+500 it on 1 x NVIDIA H200 (3.6 min, GPU window), batch 32 of 64x64"}
    doc = (repo / "docs" / "training.md").read_text()
    assert doc.startswith(jpeg_table) and "old denoise" not in doc and doc.endswith("end\n")
    assert "| date | iterations | crops seen | training (h) | BSD68 σ25 (dB) | BSD68 σ25, fast path (dB) | note |" in doc
    assert f"| {rows[1]['date']} | 11,744 | 105,952 | 7.10 | 28.91 | — | {rows[1]['note']} |" in doc
    assert (repo / "docs" / "learning-curve-denoise-s25.png").read_bytes()[:8] == PNG
    # The jpeg curve is not disturbed.
    assert (repo / "docs" / "learning-curve.csv").read_text() == START_ROW
    assert not (repo / "docs" / "learning-curve.png").exists()


# ---- record for a denoise sigma-25 run on a CPU: the held-out rule, then BSD68 above BM3D ------------------
@pytest.fixture
def denoise_run(repo, denoise_window):
    """A finished dagl-train --task denoise --sigma 25 --init run folder continuing the sigma-25 start (11,244
    iterations): 500 iterations of batch 8 of 32x32 crops in 1,800 s; ``make(iterations)`` writes its weights."""
    denoise_window(11244, bsd68=None)  # the denoise curve, its table and the start in a scratch ../shared/weights
    run = repo / "run-denoise"
    run.mkdir()
    start = relay.SHARED_WEIGHTS / relay.DENOISE_S25.start
    torch.save({"config": {"task": "denoise", "sigma": 25, "init": str(start), "batch_size": 8, "patch": 32,
                           "compile": True}, "iteration": 500, "train_seconds": 1800.0}, run / "checkpoint.pt")

    def make(iterations: int):
        write_denoise_weights(run / "dagl-denoise-s25.safetensors", iterations, seed=4)
        (run / "dagl-denoise-s25.md").write_text(
            "# dagl-denoise-s25\n\n- File: `dagl-denoise-s25.safetensors`\n- SHA-256: `old`\n")
        return run
    return make


def test_record_denoise_ships_nothing_and_scores_nothing_when_its_weights_lost_on_the_held_out_split(
        repo, denoise_run, monkeypatch):
    monkeypatch.setattr(relay, "dagl_eval", no_eval)
    result = CliRunner().invoke(relay.main, ["record", str(denoise_run(11244))])
    assert result.exit_code == 0, result.output
    _nothing_shipped(repo, result.output, "validate worse than the starting ones on the held-out split")


def fake_fast_eval(psnr: float):
    def score(weights, track, name, folder, threads):
        assert (track, name, weights.name, folder.name) == (relay.DENOISE_S25, "bsd68", "dagl-denoise-s25.safetensors",
                                                            "fast-bsd68")
        return psnr
    return score


def test_record_denoise_ships_nothing_unless_bsd68_beats_bm3d_on_the_fast_path(repo, denoise_run, monkeypatch):
    monkeypatch.setattr(relay, "fast_eval", fake_fast_eval(28.57))
    monkeypatch.setattr(relay, "dagl_eval", no_eval)  # the protocol's hours are not spent on a ship decision
    result = CliRunner().invoke(relay.main, ["record", str(denoise_run(11744))])
    assert result.exit_code == 0, result.output
    assert "relay: BSD68 σ25 28.570 dB on the fast path" in result.output
    _nothing_shipped(repo, result.output, "BSD68 σ25 28.57 dB on the fast path does not beat BM3D's 28.57 dB")


def test_the_fast_path_is_dagl_evals_openvino_bf16_grid_on_the_full_set(tmp_path, monkeypatch):
    """fast_eval asks dagl-eval for the full set on the fast path and reads the model's mean from its report."""
    calls = []

    def fake_run(args, **kwargs):
        calls.append(args)
        report = Path(args[args.index("--report") + 1])
        report.mkdir(parents=True)
        (report / "bsd68-s25.csv").write_text(
            "dataset,image,model,psnr,ssim,max_abs_vs_base,psnr_vs_base,delta_psnr_vs_base\n"
            "bsd68-s25,mean,input,20.46,0.4,,,\nbsd68-s25,mean,w.safetensors (openvino),29.08,0.8,,,\n")

    monkeypatch.setattr(relay.subprocess, "run", fake_run)
    assert relay.fast_eval(Path("w.safetensors"), relay.DENOISE_S25, "bsd68", tmp_path / "fast") == 29.08
    assert calls == [["dagl-eval", "--task", "denoise", "--dataset", "bsd68", "--sigma", "25", "--model",
                      "w.safetensors", "--tiling", "grid", "--backend", "openvino", "--precision", "bf16",
                      "--threads", "1", "--report", str(tmp_path / "fast")]]


@pytest.mark.slow
def test_record_denoise_ships_on_the_fast_path_and_score_records_the_protocols_figure(repo, denoise_run, monkeypatch):
    monkeypatch.setattr(relay, "fast_eval", fake_fast_eval(29.081))
    monkeypatch.setattr(relay, "dagl_eval", no_eval)
    run = denoise_run(11744)
    result = CliRunner().invoke(relay.main, ["record", str(run)])
    assert result.exit_code == 0, result.output
    shipped = repo / "weights" / "dagl-denoise-s25.safetensors"
    # Totals: the curve's first row (89,952 crops, 7.04 h: the start records none) plus 500 x 8 crops and 1,800 s.
    meta = weights_metadata(shipped)
    assert (meta["dagl.sigma"], meta["dagl.iterations"], meta["dagl.crops"], meta["dagl.train_seconds"]) == (
        "25", "11744", "93952", "27144")
    _assert_same_weights(shipped, run / "dagl-denoise-s25.safetensors")
    card = (repo / "weights" / "dagl-denoise-s25.md").read_text()
    # The table holds the protocol's figures only: the fast path's is said apart, with the command to measure both.
    assert f"- SHA-256: `{file_digest(shipped)}`" in card and "| bsd68 s25 | 20.46 | — | — | 29.46 |" in card
    assert ("`dagl-eval --task denoise --dataset bsd68 --sigma 25 --model dagl/weights/dagl-denoise-s25.safetensors "
            "--tiling grid --backend openvino --precision bf16 --threads 1`") in card
    assert "BSD68 σ25: **29.08 dB**, the figure these weights shipped on" in card
    assert "`python tools/relay.py score dagl/weights/dagl-denoise-s25.safetensors --set bsd68`" in card
    assert ("29.08 dB on the fast path is above BM3D 28.57 and below DnCNN 29.23, DAGL (paper, x8) 29.46. These "
            "weights ship only when they beat BM3D's 28.57 dB") in card
    note = "+500 it, batch 8 of 32x32, torch.compile"  # the run's config says --compile (the jpeg run's does not)
    with (repo / "docs" / "learning-curve-denoise-s25.csv").open() as fh:  # the fast path has a column of its own
        assert [(r["bsd68_s25"], r["bsd68_s25_fast"], r["note"]) for r in csv.DictReader(fh)] == [
            ("", "", "the CPU start"), ("", "29.08", note)]
    assert (repo / "docs" / "learning-curve.csv").read_text() == START_ROW

    # `score` measures the protocol (in parts kept under docs/scores/) and writes it into the row and the card.
    scored = []

    def protocol(weights, track, name, folder, threads, backend):
        scored.append(folder.relative_to(repo / "scores"))
        return 29.094, 20.46

    monkeypatch.setattr(relay, "SCORES", repo / "scores")
    monkeypatch.setattr(relay, "dagl_eval", protocol)
    result = CliRunner().invoke(relay.main, ["score", str(shipped), "--set", "bsd68"])
    assert result.exit_code == 0, result.output
    assert scored == [Path(f"dagl-denoise-s25-{file_digest(shipped)[:12]}") / "bsd68-s25"]
    with (repo / "docs" / "learning-curve-denoise-s25.csv").open() as fh:
        assert [(r["bsd68_s25"], r["bsd68_s25_fast"], r["note"]) for r in csv.DictReader(fh)][1:] == [
            ("29.09", "29.08", note)]
    assert "| 29.09 | 29.08 | +500 it" in (repo / "docs" / "training.md").read_text()
    after = (repo / "weights" / "dagl-denoise-s25.md").read_text()
    assert "| bsd68 s25 | 20.46 | 29.09 | — | 29.46 |" in after and "**29.08 dB**, the figure these weights" in after
    assert ("29.09 dB is above BM3D 28.57 and below DnCNN 29.23, DAGL (paper, x8) 29.46. These weights ship only "
            "when they beat BM3D's 28.57 dB") in after
    assert after.replace("29.09 dB is", "29.08 dB on the fast path is").replace("| 29.09 |", "| — |") == card


def test_score_records_older_weights_on_their_curve_row_only(repo, monkeypatch):
    """Weights the relay has since replaced (their iteration count's row) leave the shipped card alone."""
    shipped = write_weights(repo / "weights" / "dagl-jpeg.safetensors", 1167, seed=1)
    (repo / "weights" / "dagl-jpeg.md").write_text("card\n| live1 q10 | 27.77 | — | — | 29.70 |\n")
    (repo / "older").mkdir()
    older = write_weights(repo / "older" / "dagl-jpeg.safetensors", 667)
    monkeypatch.setattr(relay, "SCORES", repo / "scores")
    monkeypatch.setattr(relay, "dagl_eval", fake_eval(28.9, relay.JPEG, "live1"))
    result = CliRunner().invoke(relay.main, ["score", str(older), "--set", "live1"])
    assert result.exit_code == 0, result.output
    assert (repo / "docs" / "learning-curve.csv").read_text() == START_ROW.replace("28.31,,start", "28.31,28.90,start")
    assert (repo / "weights" / "dagl-jpeg.md").read_text() == "card\n| live1 q10 | 27.77 | — | — | 29.70 |\n"
    assert weights_metadata(shipped)["dagl.iterations"] == "1167"


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "bsd68"], "dagl-jpeg is scored on classic5, live1, not 'bsd68'"),
    (["--set", "live1"], "no dagl.iterations in its metadata"),
])
def test_score_refuses_a_set_the_track_lacks_or_weights_dagl_train_did_not_write(repo, monkeypatch, args, message):
    weights = (write_weights(repo / "w.safetensors", 667) if args[1] == "bsd68" else
               save_safetensors(dagl.create("jpeg"), repo / "w.safetensors", fp16=True, metadata={"dagl.task": "jpeg"}))
    monkeypatch.setattr(relay, "dagl_eval", no_eval)
    result = CliRunner().invoke(relay.main, ["score", str(weights), *args])
    assert result.exit_code == 1 and message in result.output
    assert "Traceback" not in result.output


# ---- the scoring in parts: a stop loses at most one part --------------------------------------------------
@pytest.fixture
def tiny_bsd68(tmp_path, monkeypatch):
    """A datasets root whose bsd68 holds five 24x24 gray images (one network call each), and random
    sigma-25 weights."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "datasets"
    (root / "bsd68").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(root / "bsd68" / f"test{i:03d}.png")
    monkeypatch.setenv("DAGL_DATASETS", str(root))
    return write_denoise_weights(tmp_path / "dagl-denoise-s25.safetensors", 10)


def whole_set_means(weights, report, run=subprocess.run):
    """(model, input) mean PSNR of one PyTorch dagl-eval call over the whole set: the scoring's independent
    reference (``run``: the real subprocess.run, bound when this module loads, before a test patches it)."""
    run(["dagl-eval", "--task", "denoise", "--dataset", "bsd68", "--sigma", "25", "--model", str(weights),
         "--threads", "1", "--report", str(report)], check=True)
    means = relay.report_means(report / "bsd68-s25.csv")
    return means[next(k for k in means if k != "input")], means["input"]


@pytest.mark.slow
def test_the_scoring_resumes_from_its_finished_parts_and_gives_the_whole_sets_mean(tiny_bsd68, tmp_path, monkeypatch):
    """Parts of two images: the second dagl-eval call is stopped, and the next scoring runs only the parts not
    finished; its means equal those of one dagl-eval over the whole set (the independent reference)."""
    monkeypatch.setattr(relay, "PART_IMAGES", 2)
    calls, real_run = [], relay.subprocess.run

    def stopped_second(args, **kwargs):
        calls.append(args[args.index("--images") + 1])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the session stops mid-part
        return real_run(args, **kwargs)

    monkeypatch.setattr(relay.subprocess, "run", stopped_second)
    folder = tmp_path / "eval-bsd68"
    with pytest.raises(KeyboardInterrupt):
        relay.dagl_eval(tiny_bsd68, relay.DENOISE_S25, "bsd68", folder)
    monkeypatch.setattr(relay.subprocess, "run", lambda args, **kwargs: (calls.append(
        args[args.index("--images") + 1]), real_run(args, **kwargs))[1])
    model, noisy = relay.dagl_eval(tiny_bsd68, relay.DENOISE_S25, "bsd68", folder)
    assert calls == ["test000,test001", "test002,test003", "test002,test003", "test004"]
    # Each part keeps its table and the weights' SHA-256 only: parts are committed (docs/scores/).
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == {
        f"part-{i:02d}/{name}" for i in range(3) for name in ("bsd68-s25.csv", "weights.sha256")}

    assert (model, noisy) == pytest.approx(whole_set_means(tiny_bsd68, tmp_path / "whole"), abs=1e-9)


def test_a_part_scored_for_other_weights_is_scored_again(tiny_bsd68, tmp_path, monkeypatch):
    """Each part carries the SHA-256 of the weights it scored: parts of other weights are not reused."""
    monkeypatch.setattr(relay, "PART_IMAGES", 5)
    calls = []

    def fake_dagl_eval(args, **kwargs):
        calls.append(args)
        images, report = args[args.index("--images") + 1].split(","), Path(args[args.index("--report") + 1])
        report.mkdir(parents=True, exist_ok=True)
        rows = [f"bsd68-s25,{image},{who},{value},0.5,,," for image in images
                for who, value in (("input", 20.0), ("model", 28.0 + len(calls)))]
        (report / "bsd68-s25.csv").write_text("dataset,image,model,psnr,ssim,max_abs_vs_base,psnr_vs_base,"
                                              "delta_psnr_vs_base\n" + "\n".join(rows) + "\n")

    monkeypatch.setattr(relay.subprocess, "run", fake_dagl_eval)
    folder = tmp_path / "eval-bsd68"
    assert relay.dagl_eval(tiny_bsd68, relay.DENOISE_S25, "bsd68", folder) == (29.0, 20.0)
    assert relay.dagl_eval(tiny_bsd68, relay.DENOISE_S25, "bsd68", folder) == (29.0, 20.0)  # reused
    other = write_denoise_weights(tmp_path / "other.safetensors", 10, seed=7)
    assert relay.dagl_eval(other, relay.DENOISE_S25, "bsd68", folder) == (30.0, 20.0)  # scored anew
    assert len(calls) == 2


@pytest.mark.slow
def test_parts_computed_by_openvino_in_float32_give_the_protocols_figure(tiny_bsd68, tmp_path, monkeypatch):
    """``score --backend openvino``: the first part on PyTorch, the rest on OpenVINO in float32 on the same chop;
    the mean is the one PyTorch gives over the whole set (one dagl-eval call, the independent reference)."""
    pytest.importorskip("openvino")
    monkeypatch.setattr(relay, "PART_IMAGES", 2)
    calls, real_run = [], relay.subprocess.run

    def recorded(args, **kwargs):
        calls.append(args)
        return real_run(args, **kwargs)

    monkeypatch.setattr(relay.subprocess, "run", recorded)
    folder = tmp_path / "eval-bsd68"
    relay.dagl_eval(tiny_bsd68, relay.DENOISE_S25, "bsd68", folder, backend="torch")
    shutil.rmtree(folder / "part-01")
    shutil.rmtree(folder / "part-02")
    model, noisy = relay.dagl_eval(tiny_bsd68, relay.DENOISE_S25, "bsd68", folder, backend="openvino")
    rerun = calls[3:]
    assert [call[call.index("--images") + 1] for call in rerun] == ["test002,test003", "test004"]
    for call in rerun:  # the protocol's tiling (dagl-eval's default chop), in float32
        assert "--tiling" not in call and call[call.index("--backend") + 1:call.index("--backend") + 4] == [
            "openvino", "--precision", "fp32"]
    reference, reference_noisy = whole_set_means(tiny_bsd68, tmp_path / "whole")
    assert model == pytest.approx(reference, abs=1e-4) and noisy == pytest.approx(reference_noisy, abs=1e-9)


def test_score_passes_its_backend_to_the_scoring_and_says_so(repo, monkeypatch):
    shipped = write_weights(repo / "weights" / "dagl-jpeg.safetensors", 667)
    (repo / "weights" / "dagl-jpeg.md").write_text("card\n| live1 q10 | 27.77 | — | — | 29.70 |\n")
    asked = []
    monkeypatch.setattr(relay, "SCORES", repo / "scores")
    monkeypatch.setattr(relay, "dagl_eval", lambda weights, track, name, folder, threads, backend: (
        asked.append(backend), (29.2, 27.77))[1])
    result = CliRunner().invoke(relay.main, ["score", str(shipped), "--set", "live1", "--backend", "openvino"])
    assert result.exit_code == 0, result.output
    assert asked == ["openvino"] and "LIVE1 q10 29.200 dB (dagl-eval's default protocol, full images, computed by " \
        "openvino)" in result.output
    result = CliRunner().invoke(relay.main, ["score", str(shipped), "--set", "live1", "--backend", "onnxruntime"])
    assert result.exit_code == 2 and asked == ["openvino"]
    assert (repo / "weights" / "dagl-jpeg.md").read_text() == "card\n| live1 q10 | 27.77 | 29.20 | — | 29.70 |\n"


# ---- run: a leg of either track, on its own recipe and its own scoring reserve --------------------------------
@pytest.mark.parametrize("track, options, reserve", [
    # The chop at 1 CPU s per call over 9 images (two parts of the scoring, each starting in 4 s).
    (relay.JPEG, {"--task": "jpeg", "--batch-size": "4", "--patch": "64", "--lr": "0.0001"},
     1.25 * (9 * relay.CHOP_CALLS_PER_IMAGE * 1.0 + 2 * 4.0) + 60),
    # The fast path at 25 s per image of the 9 and 5 s to start.
    (relay.DENOISE_S25, {"--task": "denoise", "--sigma": "25", "--batch-size": "8", "--patch": "32", "--lr": "0.0002"},
     60 + 1.25 * 25.0 * 9 + 5.0),
])
def test_run_continues_the_tracks_shipped_weights_on_its_recipe_after_keeping_its_scoring_time(
        repo, tiny_bsd68, monkeypatch, track, options, reserve):
    shipped = write_denoise_weights(repo / "weights" / track.weights_name, 13461) if track.sigma else \
        write_weights(repo / "weights" / track.weights_name, 16664)
    calls, shipped_runs = [], []
    monkeypatch.setattr(relay.Track, "images", lambda self, name: [f"image{i}" for i in range(9)])
    monkeypatch.setattr(relay, "pin_to_core", lambda core, niceness: calls.append(("pin", core, niceness)))
    monkeypatch.setattr(relay, "seconds_per_call", lambda weights, backend: (
        calls.append(("probed", weights, backend)), (1.0, 4.0))[1])
    monkeypatch.setattr(relay, "fast_path_seconds", lambda weights, asked, name: (
        calls.append(("timed", weights, asked, name)), (25.0, 5.0))[1])
    monkeypatch.setattr(relay.subprocess, "run", lambda args, **kwargs: calls.append(args))
    monkeypatch.setattr(relay.Run, "read", classmethod(lambda cls, folder: folder))
    monkeypatch.setattr(relay, "ship", lambda run, live1, backend: shipped_runs.append((run, live1, backend)))
    out = repo / "leg"
    result = CliRunner().invoke(relay.main, ["run", "--track", track.name, "--budget", "9000", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert calls[0] == ("pin", 1, 19)
    # The fast path, or the chop on the backend that will score (OpenVINO), timed on the weights the leg starts from.
    probe = ("timed", shipped, relay.DENOISE_S25, "bsd68") if track.bars else ("probed", shipped, "openvino")
    assert calls[1] == probe
    train = calls[-1]
    assert train[0] == "dagl-train" and "--compile" in train and ("--sigma" in train) == bool(track.sigma)
    assert {name: train[train.index(name) + 1] for name in options} == options
    assert (relay.REPO / train[train.index("--init") + 1]).resolve() == shipped.resolve()
    assert -0.5 <= 9000 - reserve - float(train[train.index("--time-budget") + 1]) <= 2  # seconds spent, rounded
    assert f"{reserve / 60:.0f} min kept for scoring" in result.output
    assert [(run.resolve(), live1, backend) for run, live1, backend in shipped_runs] == [
        (out.resolve(), False, "openvino")]


def test_run_refuses_a_backend_that_cannot_run_here_before_training(repo, monkeypatch):
    write_weights(repo / "weights" / relay.JPEG.weights_name, 16664)
    monkeypatch.setattr(relay, "pin_to_core", lambda core, niceness: None)

    def no_openvino(weights, backend):
        raise RuntimeLoadError("--backend openvino needs OpenVINO: pip install 'dagl[openvino]'")

    monkeypatch.setattr(relay, "seconds_per_call", no_openvino)
    monkeypatch.setattr(relay.subprocess, "run", lambda args, **kwargs: pytest.fail(f"ran {args}"))
    result = CliRunner().invoke(relay.main, ["run", "--budget", "9000", "--out", str(repo / "leg")])
    assert result.exit_code == 1 and result.output == \
        "Error: --backend openvino needs OpenVINO: pip install 'dagl[openvino]'\n"


@pytest.mark.slow
def test_the_chops_call_is_timed_on_the_backend_that_scores_with_its_conversion_apart(tmp_path):
    """OpenVINO converts the weights before its first call (seconds, once per scoring call: the reserve's start),
    PyTorch runs them as they are; a call's time is the same 76x76 tile's on either."""
    pytest.importorskip("openvino")
    weights = write_weights(tmp_path / "w.safetensors", 667)
    openvino_call, openvino_start = relay.seconds_per_call(weights, "openvino")
    torch_call, torch_start = relay.seconds_per_call(weights, "torch")
    assert 0 < openvino_call and 0 < torch_call
    assert openvino_start > torch_start + 2 * openvino_call


def test_run_refuses_live1_for_a_track_scored_on_bsd68_before_any_work(repo, monkeypatch):
    monkeypatch.setattr(relay, "pin_to_core", lambda core, niceness: pytest.fail("pinned before refusing"))
    result = CliRunner().invoke(relay.main, ["run", "--track", "denoise-s25", "--live1", "--budget", "9000"])
    assert result.exit_code == 2 and "--live1 is the jpeg track's; denoise-s25 is scored on BSD68" in result.output


def test_the_fast_paths_time_is_an_images_cpu_time_apart_from_a_calls_start(tiny_bsd68, monkeypatch):
    """fast_path_seconds reads the CPU time of real child processes: a first call (the weights' conversion),
    then one image and two; each child here burns 0.2 CPU s to start and 0.3 per image (the first 0.5 more)."""
    calls, real_run = [], relay.subprocess.run

    def burning_dagl_eval(args, **kwargs):
        images = args[args.index("--images") + 1].split(",")
        calls.append(images)
        burn = 0.2 + 0.3 * len(images) + (0.5 if len(calls) == 1 else 0)
        return real_run([sys.executable, "-c", f"import time\nwhile time.process_time() < {burn}: pass"], check=True)

    monkeypatch.setattr(relay.subprocess, "run", burning_dagl_eval)
    per_image, start = relay.fast_path_seconds(tiny_bsd68, relay.DENOISE_S25, "bsd68")
    assert calls == [["test000"], ["test000"], ["test000", "test001"]]
    assert per_image == pytest.approx(0.3, abs=0.05)
    assert start == pytest.approx(0.2, abs=0.15)  # and the interpreter's own start
