"""Activation-range collection and the FP16 decision recorded in calibration/fp16_ranges.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import dagl
from dagl.calibration import ranges as calib
from dagl.calibration.cli import main as calibrate_main
from dagl.calibration.policy import RANGES_FILE, load_ranges
from sample_crops import task_crops

from dagl.calibration.samples import held_out_crops
from dagl.chosen_weights import RANDOM_SEED
from dagl.images.io import write_image
from dagl.train.heldout import HELD_OUT_FILES
from dagl.network.gfam import GFAMHead, pad_same


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    return dagl.create("jpeg").eval()


@pytest.fixture(scope="module")
def crop(datasets_dir):
    return task_crops("jpeg", datasets_dir, shape=(24, 28), count=1)[0][1]


def _scores_by_unfold(head: GFAMHead, features: torch.Tensor) -> torch.Tensor:
    """S computed the release's way (explicit patches and Linear layers), independent of BatchedGFAM."""
    g = head.g(features)
    queries = F.unfold(pad_same(g, head.ksize, head.stride), head.ksize, stride=head.stride)[0].T
    keys = F.unfold(pad_same(g, head.ksize, 1), head.ksize)[0].T
    return head.fc1(queries) @ head.fc2(keys).T


def test_ranges_match_independent_computations(model, crop):
    x = torch.from_numpy(crop)[None]
    captured = {}
    hook = model.body[8].c2_3.register_forward_pre_hook(lambda _m, args: captured.setdefault("in", args[0]))
    ranges = calib.measure(model, [crop])
    hook.remove()
    head = model.body[8].c2_3
    with torch.no_grad():
        residual = model(x) - x  # == tail(...), the last module's output
        scores = _scores_by_unfold(head, captured["in"])
        thr, bias = (t[0, :, None] for t in head.node_affine(captured["in"]))
        logits = 10 * scores * torch.relu(scores - scores.mean(dim=1, keepdim=True) * thr + bias)
    assert ranges["tail"]["min"] == pytest.approx(float(residual.min()), rel=1e-4, abs=1e-6)
    assert ranges["tail"]["max"] == pytest.approx(float(residual.max()), rel=1e-4, abs=1e-6)
    assert ranges["body.8.c2_3.scores"]["min"] == pytest.approx(float(scores.min()), rel=1e-3)
    assert ranges["body.8.c2_3.scores"]["max"] == pytest.approx(float(scores.max()), rel=1e-3)
    assert ranges["body.8.c2_3.logits"]["max"] == pytest.approx(float(logits.max()), rel=1e-3)
    assert ranges["body.8.c2_3.logits"]["min"] == pytest.approx(float(logits.min()), rel=1e-3, abs=1e-5)


def test_tracking_leaves_no_trace(model, crop):
    before = model(torch.from_numpy(crop)[None]).detach()
    calib.measure(model, [crop])
    assert all(not m._forward_hooks for m in model.modules())
    assert all("attention" not in m.__dict__ for m in model.modules() if isinstance(m, GFAMHead))
    assert torch.equal(model(torch.from_numpy(crop)[None]).detach(), before)


def test_decide_flags_modules_near_fp16_limit():
    ranges = {"head": {"min": -1.0, "max": 2.0, "absmax": 2.0},
              "body.3": {"min": -5000.0, "max": 10.0, "absmax": 5000.0},
              "body.8.c1_1.scores": {"min": 0.1, "max": 90.0, "absmax": 90.0},
              "body.8.c1_1.logits": {"min": 0.0, "max": 81000.0, "absmax": 81000.0}}
    decision = calib.decide(ranges)
    assert decision["keep_fp32_modules"] == ["body.3"]  # attention internals are always float32 anyway
    assert decision["peak_logits_absmax"] == 81000.0 and decision["peak_module_absmax"] == 5000.0
    assert decision["limit"] == calib.FP16_MAX / calib.HEADROOM


def _held_out_folder(tmp_path, count: int = 2):
    """A training folder holding ``count`` held-out files and one training file that must not be read."""
    folder = tmp_path / "train"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in sorted(HELD_OUT_FILES)[:count]:
        write_image(folder / name, rng.random((40, 40), dtype=np.float32), 8)
    (folder / "test_002.png").write_bytes(b"not an image: reading it would fail")
    return folder


def test_cli_rewrites_one_task_and_keeps_the_others(tmp_path):
    output = tmp_path / "ranges.json"
    output.write_text(json.dumps({"tasks": {"demosaic": {"keep_fp32_modules": ["tail.0"]}}}))
    result = CliRunner().invoke(calibrate_main, ["--task", "jpeg", "--weights", "random", "--images", "1", "--size", "24",
                                             "--data", str(_held_out_folder(tmp_path)), "--output", str(output)])
    assert result.exit_code == 0, result.output
    data = json.loads(output.read_text())
    assert data["tasks"]["demosaic"] == {"keep_fp32_modules": ["tail.0"]}
    jpeg = data["tasks"]["jpeg"]
    assert jpeg["weights"]["random"] and "caveat" in jpeg
    assert jpeg["data"] == "train: 1 held-out images, centred 24x24, q10, q20, q30, q40" and jpeg["crops"] == 4
    assert jpeg["peak_scores_absmax"] == max(v["absmax"] for k, v in jpeg["ranges"].items() if k.endswith(".scores"))


def test_calibration_measures_the_held_out_crops_and_nothing_else(tmp_path):
    """The ranges of a run are exactly those of the held-out crops, measured independently here."""
    folder = _held_out_folder(tmp_path)
    record = calib.calibrate("denoise", "random", folder, sigma=15, images=2, size=24)
    assert record["crops"] == 2 and record["sigma"] == 15
    assert record["data"] == "train: 2 held-out images, centred 24x24, noise sigma 15"
    crops, _ = held_out_crops("denoise", 15, folder, 24, 2)
    torch.manual_seed(RANDOM_SEED)  # the seeded random weights of --weights random
    expected = calib.measure(dagl.create("denoise").eval(), [c[0] for c in crops])
    assert record["ranges"]["tail"] == expected["tail"]


def test_cli_without_held_out_files_is_one_line(tmp_path):
    (tmp_path / "train").mkdir()
    result = CliRunner().invoke(calibrate_main, ["--task", "jpeg", "--weights", "random", "--data", str(tmp_path / "train"),
                                             "--output", str(tmp_path / "r.json")])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "r.json").exists()


def test_cli_bad_weights_is_one_line(tmp_path):
    result = CliRunner().invoke(calibrate_main, ["--task", "jpeg", "--weights", str(tmp_path / "x.pt"),
                                             "--output", str(tmp_path / "r.json")])
    assert result.exit_code == 2 and result.stderr.strip().startswith(
        "dagl-calibrate: error: weights file not found")
    assert not (tmp_path / "r.json").exists()


def test_committed_ranges_cover_the_exported_tasks():
    data = load_ranges(RANGES_FILE)
    assert data["fp16_max"] == 65504.0
    for task in ("jpeg", "denoise"):
        record = data["tasks"][task]
        assert record["keep_fp32_attention"] is True
        assert record["peak_logits_absmax"] > 0 and record["peak_scores_absmax"] > 0
        assert record["data"].startswith("bsd400: 8 held-out images") and record["crops"] >= 8
        assert record["weights"]["random"] == ("caveat" in record)
        assert np.isfinite([r["absmax"] for r in record["ranges"].values()]).all()
