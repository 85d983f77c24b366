"""dagl.runtime.cpu_paths: the registry of CPU paths, one real run on a tiny image, skipped paths, the report."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from dagl.registry import by_name
from dagl.runtime import Restorer
from dagl.runtime.backends import REGISTRY
from dagl.runtime.benchmark import Measurement
from dagl.runtime.cpu_paths import BASE, MODELS, PATHS, SPEED_BASE, CpuPath, PathComparison, PathResult, compare_paths
from dagl.runtime.cpu_paths_report import markdown, write_figures
from dagl.runtime.tiling import TILINGS


def test_every_path_names_a_backend_a_tiling_and_a_model_that_exist():
    assert list(PATHS) == ["release chop", BASE, SPEED_BASE, "ONNX Runtime INT8", "OpenVINO fp32", "OpenVINO bf16",
                           "OpenVINO bf16, weights (auto)", "OpenVINO INT8"]
    # The auto row is what dagl-infer's --backend auto takes on a CPU with OpenVINO and bfloat16.
    auto_row = PATHS["OpenVINO bf16, weights (auto)"]
    assert (auto_row.model, auto_row.backend, auto_row.precision) == (MODELS[0], "openvino", "bf16")
    for path in PATHS.values():
        assert path.backend in REGISTRY and path.tiling in TILINGS and path.model in MODELS
        assert path.precision in REGISTRY[path.backend].tolerances


def test_the_registry_refuses_a_second_path_of_one_name():
    twice = (CpuPath("ONNX Runtime fp32", "fp32", "onnxruntime", "fp32", "onnxruntime"),
             CpuPath("ONNX Runtime fp32", "int8", "onnxruntime", "int8", "onnxruntime"))
    with pytest.raises(ValueError, match="CPU path 'ONNX Runtime fp32' is registered twice"):
        by_name(twice, "CPU path")


def test_a_path_whose_library_is_missing_is_reported_skipped_not_raised(monkeypatch, official_checkpoint):
    monkeypatch.setitem(sys.modules, "openvino", None)  # ``import openvino`` now raises ImportError
    image = np.full((40, 40), 0.5, np.float32)
    results = compare_paths(official_checkpoint("jpeg"), "jpeg", image, image, tiles=(16,), batches=(1,),
                            repeats=1, paths=["OpenVINO fp32", "OpenVINO bf16"])
    assert [(r.path.name, r.skipped) for r in results] == [
        ("OpenVINO fp32", "openvino is not installed (pip install 'dagl[openvino]')"),
        ("OpenVINO bf16", "openvino is not installed (pip install 'dagl[openvino]')")]
    assert all(r.output is None and not r.calls for r in results)


def test_int8_without_its_calibration_images_is_skipped_with_the_exporters_one_line(monkeypatch, tmp_path,
                                                                                   official_checkpoint):
    monkeypatch.setenv("DAGL_DATASETS", str(tmp_path))  # dagl-export refuses INT8 before any work
    image = np.full((40, 40), 0.5, np.float32)
    [result] = compare_paths(official_checkpoint("jpeg"), "jpeg", image, image, paths=["ONNX Runtime INT8"])
    assert result.skipped is not None and result.output is None
    assert result.skipped.startswith("INT8 calibration reads the held-out training images ($DAGL_DATASETS/train/"
                                     "bsd400)") and "\n" not in result.skipped


def test_every_path_reads_one_copy_of_the_weights_taken_when_the_run_starts(monkeypatch, tmp_path,
                                                                           official_checkpoint):
    weights = tmp_path / "dagl-jpeg.pt"
    weights.write_bytes(official_checkpoint("jpeg").read_bytes())
    read: list[bytes] = []

    def run_path(self, result, model, image, clean, starting, finished):
        read.append(model.read_bytes())
        weights.write_bytes(b"replaced while the run goes on")  # as the relay ships a new file

    monkeypatch.setattr(PathComparison, "_run_path", run_path)
    image = np.full((40, 40), 0.5, np.float32)
    PathComparison(weights, "jpeg", paths=["release chop", BASE]).run(image, image)
    assert read == [official_checkpoint("jpeg").read_bytes()] * 2


@pytest.mark.slow
def test_a_tiny_run_scores_onnx_runtime_against_pytorch_and_the_chop_row_is_the_release_chop(official_checkpoint):
    weights = official_checkpoint("jpeg")
    yy, xx = np.mgrid[0:40, 0:40]
    clean = (0.5 + 0.4 * np.sin(xx / 5.0) * np.cos(yy / 7.0)).astype(np.float32)
    image = np.clip(clean + np.random.default_rng(0).normal(0, 0.05, clean.shape), 0, 1).astype(np.float32)
    seen: list[tuple[str, str]] = []
    results = compare_paths(weights, "jpeg", image, clean, tiles=(16,), batches=(1,), repeats=1,
                            paths=["release chop", BASE, SPEED_BASE],
                            finished=lambda name, what: seen.append((name, what)))
    chop, base, onnx = results
    assert onnx.psnr_vs_base >= 80  # ONNX Runtime runs the exported graph; PyTorch the weights themselves
    with Restorer(weights, task="jpeg", backend="torch", tiling="reference", threads=1) as release:
        np.testing.assert_array_equal(chop.output, release(image))
    assert chop.calls == [] and [(m.tile, m.batch) for m in onnx.calls] == [(16, 1)]
    assert base.psnr_vs_base == float("inf") and all(r.skipped is None and r.cpu_s > 0 for r in results)
    assert seen == [("export", "fp32 .onnx"), ("release chop", "whole image"), (BASE, "tile 16 batch 1"),
                    (BASE, "whole image"), (SPEED_BASE, "tile 16 batch 1"), (SPEED_BASE, "whole image")]


def _result(name: str, cpu_s: float, psnr_vs_clean: float, skipped: str | None = None) -> PathResult:
    path = PATHS[name]
    if skipped:
        return PathResult(path, skipped)
    calls = [] if path.tiling == "reference" else [Measurement(name, path.backend, 64, 4, 10.0, 1.0, 100.0, 40.0)]
    return PathResult(path, None, calls, cpu_s, cpu_s * 2, 60.0, psnr_vs_clean)


def test_the_report_writes_the_plot_and_one_markdown_row_per_path(tmp_path):
    results = [_result("release chop", 8.0, 27.0), _result(BASE, 4.0, 27.1), _result(SPEED_BASE, 2.0, 27.1),
               _result("OpenVINO INT8", 0.0, 0.0, skipped="openvino is not installed")]
    plot, table = tmp_path / "paths.png", tmp_path / "paths.md"
    write_figures(results, "title", plot, table)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert table.read_text() == markdown(results) + "\n"
    rows = [line.split(" | ") for line in markdown(results).splitlines()[2:]]
    assert [row[0].lstrip("| ") for row in rows] == ["release chop", BASE, SPEED_BASE, "OpenVINO INT8"]
    assert rows[0][2:6] == [f"(= {BASE})", "8.0", "16.0", "0.25x"]
    assert rows[1][2] == "40.0" and rows[1][5] == "0.50x" and rows[1][6] == "base"  # CPU ms per call
    assert rows[3][1] == "skipped: openvino is not installed"
