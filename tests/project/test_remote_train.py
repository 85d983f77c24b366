"""tools/remote_train.py: a budgeted dagl-train run, scored with dagl-eval, returned within output limits.

Nothing here depends on how fast the machine is: the training is capped at 2 iterations inside a budget
far larger than they need, the scoring's hang guard is minutes for a few forward passes, and every
assertion is on files, limits and numbers, never on time.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

import dagl
import remote_train  # tools/ is on pytest's pythonpath
from remote_train import SUMMARY_NAME, SUMMARY_RESERVE_BYTES, Limits, deliver, priority
from scoring import CROP, independent_psnr

MIB = 2**20
TINY_TRAIN = ["--n-images", "8", "--batch-size", "2", "--patch", "16", "--iterations", "2", "--workers", "0",
              "--val-crop", "16", "--val-limit", "1", "--val-every", "0", "--log-every", "1"]


def _file(folder: Path, name: str, size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(bytes(i % 251 for i in range(size)))
    return path


@pytest.mark.slow
def test_deliver_copies_in_order_what_fits_each_limit_and_says_why_the_rest_does_not(tmp_path):
    source, out = tmp_path / "run", tmp_path / "out"
    _file(out, "host.log", 1000)  # already in the output: it counts against the limits
    files = [_file(source, "w.safetensors", 3 * MIB), _file(source, "w.md", 2000), _file(source, "big.pt", 5 * MIB),
             _file(source, "train.log", 3000), _file(source / "again", "w.md", 10), _file(source, "c.png", MIB),
             _file(source, "d.csv", 100)]
    limits = Limits(max_files=6, max_file_bytes=4 * MIB, max_total_bytes=4 * MIB)
    done = deliver(files, out, limits)
    assert [f["name"] for f in done.kept] == ["w.safetensors", "w.md", "train.log", "d.csv"]
    reasons = {f["name"]: f["reason"] for f in done.left_out}
    assert reasons["big.pt"] == "5.0 MiB is over the 4 MiB a file may have"
    assert reasons["w.md"] == "a file of that name is already there (not replaced)"
    assert reasons["c.png"].startswith("1.0 MiB would take the output past its 4 MiB")
    for name in ("w.safetensors", "w.md", "train.log", "d.csv"):
        assert (out / name).read_bytes() == (source / name).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["d.csv", "host.log", "train.log", "w.md", "w.safetensors"]
    used = sum(p.stat().st_size for p in out.iterdir())
    assert used + SUMMARY_RESERVE_BYTES <= limits.max_total_bytes
    # One slot is the summary's: of 5 files allowed, 4 are left for the rest.
    done = deliver([_file(source, f"x{i}.csv", 10) for i in range(6)], tmp_path / "out2", Limits(max_files=5))
    assert len(done.kept) == 4 and done.left_out[0]["reason"] == "the output already holds the 5 files it may have"


def test_priority_puts_the_shipped_weights_and_card_first_and_plots_last():
    names = ["c.png", "checkpoint.pt", "train.log", "classic5-q10.md", "dagl-jpeg.md", "dagl-jpeg.safetensors"]
    ordered = sorted((Path(n) for n in names), key=lambda p: priority(p, "dagl-jpeg"))
    assert [p.name for p in ordered] == ["dagl-jpeg.md", "dagl-jpeg.safetensors", "classic5-q10.md", "train.log",
                                         "checkpoint.pt", "c.png"]


@pytest.mark.parametrize("extra, message", [
    (["--data", "no-such-folder"], "--data: no folder at "),
    (["--data", "train/bsd400", "--max-output-mib", "0.01"], f"leave no room for {SUMMARY_NAME}: "),
    (["--data", "train/bsd400", "--score", "--dataset classic5", "--score-seconds", "100"],
     "--budget 60 leaves no time for training after 1 x --score-seconds 100"),
    (["--data", "train/bsd400", "--init", "missing.safetensors"], "--init: no weights file at "),
])
def test_user_mistakes_are_one_line_and_exit_2_before_anything_runs(datasets_dir, tmp_path, capsys, extra, message):
    code = remote_train.main(["--task", "jpeg", "--budget", "60", "--input", str(datasets_dir),
                              "--output", str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith("remote_train: error: ") and message in err
    assert not (tmp_path / "out").exists()


def test_options_dagl_train_refuses_are_the_users_mistake_exit_2_with_the_summary(datasets_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = remote_train.main(["--task", "jpeg", "--budget", "300", "--input", str(datasets_dir), "--data",
                              "train/bsd400", "--output", str(out), "--score", "--dataset classic5", "--",
                              "--patch", "4"])  # dagl-train refuses the patch: exit 2, nothing trained
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("remote_train: error: train, score 1 failed")
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert [s["step"] for s in summary["steps"]] == ["train", "score 1"] and summary["steps"][0]["returncode"] == 2
    assert summary["steps"][1]["skipped"] == "dagl-train wrote no dagl-jpeg.safetensors"
    assert not summary["ok"] and summary["returned"] == [] and [p.name for p in out.iterdir()] == [SUMMARY_NAME]


def test_a_training_that_fails_while_working_still_returns_what_it_wrote_and_exits_1(datasets_dir, tmp_path,
                                                                                      capsys, monkeypatch):
    def failing_train(argv, env, timeout=None):  # dagl-train that wrote its log, then failed (e.g. out of memory)
        _file(Path(argv[argv.index("--out") + 1]), "train.log", 500)
        return {"command": " ".join(argv), "returncode": 1}

    monkeypatch.setattr(remote_train, "run_step", failing_train)
    out = tmp_path / "out"
    code = remote_train.main(["--task", "jpeg", "--budget", "300", "--input", str(datasets_dir), "--data",
                              "train/bsd400", "--output", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == f"remote_train: error: train failed; what there was is in {out} (see {SUMMARY_NAME})"
    assert sorted(p.name for p in out.iterdir()) == [SUMMARY_NAME, "train.log"]
    assert json.loads((out / SUMMARY_NAME).read_text())["returned"] == [{"name": "train.log", "bytes": 500}]


@pytest.mark.slow
def test_a_tiny_run_trains_from_init_scores_and_returns_only_what_fits(datasets_dir, tmp_path, capsys):
    torch.manual_seed(3)
    init = dagl.save_safetensors(dagl.create("jpeg"), tmp_path / "init.safetensors", fp16=True,
                                 metadata={"dagl.iterations": "5"})
    out, work = tmp_path / "out", tmp_path / "work"
    code = remote_train.main(["--task", "jpeg", "--budget", "1200", "--input", str(datasets_dir), "--data",
                              "train/bsd400", "--init", str(init), "--output", str(out), "--work", str(work),
                              "--max-files", "6", "--max-file-mib", "20", "--max-output-mib", "40",
                              "--score", f"--dataset classic5 --quality 10 --limit 1 --crop {CROP}",
                              "--score-seconds", "600", "--device", "cpu", "--", *TINY_TRAIN])
    err = capsys.readouterr().err
    assert code == 0, err[-3000:]
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["ok"] and summary["train_budget_seconds"] == 600
    assert "--time-budget 600" in summary["steps"][0]["command"] and f"--init {init}" in summary["steps"][0]["command"]
    # The checkpoint (float32 state and Adam's moments, ~66 MiB) is over the file limit; the plots come last
    # and find no slot: 6 files, the summary's included.
    returned = sorted(p.name for p in out.iterdir())
    assert returned == sorted([SUMMARY_NAME, "dagl-jpeg.safetensors", "dagl-jpeg.md", "classic5-q10.md",
                               "classic5-q10.csv", "train.log"])
    reasons = {f["name"]: f["reason"] for f in summary["left_out"]}
    assert set(reasons) == {"checkpoint.pt", "classic5-q10-crop.png", "classic5-q10-psnr.png"}
    assert reasons["checkpoint.pt"].endswith("over the 20 MiB a file may have")
    assert reasons["classic5-q10-crop.png"] == "the output already holds the 6 files it may have"
    assert f"left out checkpoint.pt: {reasons['checkpoint.pt']}" in err
    sizes = [p.stat().st_size for p in out.iterdir()]
    assert max(sizes) <= 20 * MIB and sum(sizes) <= 40 * MIB
    # What came back is what dagl-train shipped, continuing the init's 5 iterations.
    weights = out / "dagl-jpeg.safetensors"
    assert weights.read_bytes() == (work / "run" / "dagl-jpeg.safetensors").read_bytes()
    log = (out / "train.log").read_text()
    assert "done: 2 iterations this session" in log
    assert f"Started from: `{init}` (5 iterations recorded)" in (out / "dagl-jpeg.md").read_text()
    # dagl-eval scored those weights: its numbers, recomputed independently.
    rows = {row["model"]: row for row in csv.DictReader((out / "classic5-q10.csv").open()) if row["image"] == "mean"}
    input_psnr, restored_psnr = independent_psnr(weights, datasets_dir / "classic5")
    assert float(rows["input"]["psnr"]) == pytest.approx(input_psnr, abs=1e-3)
    assert float(rows["dagl-jpeg.safetensors (torch)"]["psnr"]) == pytest.approx(restored_psnr, abs=1e-3)
