"""One stem per (task, sigma): what dagl-export writes is what dagl-eval paper and the weights lookup find."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dagl.artefact.naming import (artefact_stem, engine_name, lookup_names, manifest_name, onnx_name, sidecar_path,
                                  weights_name)
from dagl.export.cli import main as export_main
from dagl.runtime.evaluate.paper import PAPER_CELLS, expected_names, find_artefact
from dagl.tasks.configs import TaskError
from dagl.weights.pretrained import WEIGHTS_DIR, shipped_weights


def test_names_carry_the_noise_level_for_denoise_only():
    assert artefact_stem("denoise", 25) == "dagl-denoise-s25" and artefact_stem("jpeg") == "dagl-jpeg"
    assert onnx_name("denoise", 50) == "dagl-denoise-s50.onnx"
    assert onnx_name("jpeg", None, "fp16") == "dagl-jpeg-fp16.onnx"
    assert engine_name("denoise", 15, "fp16") == "dagl-denoise-s15-fp16.plan"
    assert engine_name("demosaic") == "dagl-demosaic-fp32.plan"
    assert manifest_name("denoise", 25) == "dagl-denoise-s25.json"
    assert weights_name("real-denoise") == "dagl-real-denoise.safetensors"
    assert sidecar_path(WEIGHTS_DIR / "x.plan").name == "x.plan.json"
    assert lookup_names("jpeg", None, ".plan") == ("dagl-jpeg.plan", "dagl-jpeg-fp32.plan", "dagl-jpeg-fp16.plan",
                                                   "dagl-jpeg-int8.plan")
    assert lookup_names("jpeg", None, ".onnx") == ("dagl-jpeg.onnx",)


@pytest.mark.parametrize("task, sigma, message", [("denoise", None, "pass --sigma"), ("denoise", 30, "(15, 25, 50)"),
                                                  ("jpeg", 25, "--task denoise only")])
def test_no_name_for_a_variant_that_does_not_exist(task, sigma, message):
    with pytest.raises(TaskError, match=message):
        artefact_stem(task, sigma)


def test_the_shipped_weights_are_found_by_their_name():
    assert shipped_weights("jpeg") == WEIGHTS_DIR / weights_name("jpeg") == WEIGHTS_DIR / "dagl-jpeg.safetensors"


@pytest.mark.slow
def test_what_dagl_export_writes_is_what_dagl_eval_paper_finds(tmp_path):
    """``dagl-export --task denoise --sigma 25 --weights random --onnx-only``, then the paper table's lookup."""
    result = CliRunner().invoke(export_main, ["--task", "denoise", "--sigma", "25", "--weights", "random",
                                              "--onnx-only", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dagl-denoise-s25.json", "dagl-denoise-s25.onnx"]
    denoise = {(cell.dataset, cell.sigma): cell for cell in PAPER_CELLS if cell.task == "denoise"}
    for dataset in ("set12", "bsd68", "urban100"):
        assert find_artefact(tmp_path, denoise[(dataset, 25)]) == tmp_path / "dagl-denoise-s25.onnx"
        assert find_artefact(tmp_path, denoise[(dataset, 25)], (".onnx",)) == tmp_path / "dagl-denoise-s25.onnx"
        for sigma in (15, 50):  # another noise level's model is not this one
            assert find_artefact(tmp_path, denoise[(dataset, sigma)]) is None
    assert find_artefact(tmp_path, denoise[("set12", 25)], (".safetensors", ".plan")) is None
    assert expected_names(denoise[("set12", 15)]) == "dagl-denoise-s15.*"


def test_dagl_eval_paper_finds_the_engines_dagl_export_names(tmp_path):
    """Engines are written as ``-fp32.plan``/``-fp16.plan``: the lookup tries those, float32 first."""
    cell = next(cell for cell in PAPER_CELLS if cell.task == "jpeg")
    (tmp_path / engine_name("jpeg", None, "fp16")).write_bytes(b"")
    assert find_artefact(tmp_path, cell, (".plan",)) == tmp_path / "dagl-jpeg-fp16.plan"
    (tmp_path / engine_name("jpeg", None, "fp32")).write_bytes(b"")
    assert find_artefact(tmp_path, cell, (".plan",)) == tmp_path / "dagl-jpeg-fp32.plan"
