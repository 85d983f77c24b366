"""``--precision`` in every command that chooses one (dagl-export, dagl-infer, dagl-eval, dagl-bench):
the registry's names offered, what a backend does not run refused in one line with exit 2, before any work."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

import dagl.export.cli
from crafted import tiny_onnx
from dagl.artefact import PRECISIONS
from dagl.export.pipeline import ExportResult
from dagl.images.io import write_image
from dagl.runtime import bench
from dagl.runtime import cli as infer_cli
from dagl.runtime.evaluate import cli as eval_cli

pytest.importorskip("openvino", reason="pip install 'dagl[openvino]'")


@pytest.fixture()
def exported(monkeypatch):
    """dagl-export's library call, recorded instead of run."""
    calls = []

    def export(task, weights, **options):
        calls.append(options["precision"])
        out = options["output_dir"]
        return ExportResult(out, {}, None, None, out / "dagl-jpeg.json", None)

    monkeypatch.setattr(dagl.export.cli, "export", export)
    return calls


@pytest.mark.parametrize("args, precision", [
    ([], "fp32"), (["--precision", "fp16"], "fp16"), (["--fp16"], "fp16"), (["--fp16", "--precision", "fp16"], "fp16"),
])
def test_export_precision_and_the_old_fp16_spelling(exported, args, precision, tmp_path):
    result = CliRunner().invoke(dagl.export.cli.main, ["--task", "jpeg", "--output-dir", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    assert exported == [precision]


def test_export_offers_every_precision_and_refuses_one_without_a_graph_in_one_line(tmp_path):
    help_text = CliRunner().invoke(dagl.export.cli.main, ["--help"]).output
    assert f"[{'|'.join(PRECISIONS)}]" in help_text
    assert re.search(r"--fp16(?![\w-])", help_text) is None  # the old spelling is hidden (--fp16-ranges is not it)
    out = tmp_path / "out"
    result = CliRunner().invoke(dagl.export.cli.main, ["--task", "jpeg", "--weights", "random", "--precision", "bf16",
                                                       "--output-dir", str(out)])
    assert result.exit_code == 2 and not out.exists()
    assert result.stderr.splitlines() == [
        "dagl-export: error: bf16 is not a graph of its own: it runs the float32 graph (export --precision fp32) on "
        "a backend that computes in bfloat16 (dagl-infer --precision bf16)"]
    result = CliRunner().invoke(dagl.export.cli.main, ["--task", "jpeg", "--fp16", "--precision", "bf16"])
    assert result.exit_code == 2 and "--fp16 is the old spelling of --precision fp16" in result.stderr


@pytest.fixture()
def image(tmp_path):
    path = tmp_path / "in.png"
    write_image(path, np.full((20, 24), 0.5, np.float32), 8)
    return path


def test_infer_runs_bfloat16_on_openvino_and_refuses_it_on_onnx_runtime(tmp_path, image):
    model = tiny_onnx(tmp_path / "dagl-jpeg.onnx")
    result = CliRunner().invoke(infer_cli.main, [str(model), str(image), "-o", str(tmp_path / "out.npy"),
                                                 "--backend", "openvino", "--precision", "bf16", "--tile", "16",
                                                 "--overlap", "4", "--threads", "1"])
    assert result.exit_code == 0, result.output
    # The identity graph gives the 8-bit input (128/255) back, to bfloat16's rounding (2^-9) at worst.
    assert np.allclose(np.load(tmp_path / "out.npy"), 128 / 255, rtol=0, atol=2e-3)
    result = CliRunner().invoke(infer_cli.main, [str(model), str(image), "-o", str(tmp_path / "o2.npy"),
                                                 "--precision", "bf16"])
    assert result.exit_code == 2 and not (tmp_path / "o2.npy").exists()
    assert result.stderr.strip().splitlines() == [
        "dagl-infer: error: --backend onnxruntime does not run bfloat16 (--precision fp32|fp16|int8); backends that "
        "do: openvino"]


def test_infer_precision_is_the_servers_setting_with_server(image):
    result = CliRunner().invoke(infer_cli.main, ["jpeg", str(image), "--server", "http://127.0.0.1:9",
                                                 "--precision", "bf16"])
    assert result.exit_code == 2
    assert "--precision is the server's setting (give it to dagl-serve), not with --server" in result.stderr


def test_eval_refuses_a_precision_the_graph_is_not_before_scoring(tmp_path):
    model = tiny_onnx(tmp_path / "dagl-jpeg.onnx")
    clean = tmp_path / "set"
    result = CliRunner().invoke(eval_cli.main, ["--dataset", str(clean), "--model", str(model), "--precision", "fp16"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "dagl-eval: error: dagl-jpeg.onnx holds the float32 graph; --precision fp16 runs the FP16 graph "
        "(dagl-export --precision fp16 writes it)"]


def test_bench_measures_at_the_precision_asked_for(tmp_path):
    model = tiny_onnx(tmp_path / "dagl-jpeg.onnx")
    result = CliRunner().invoke(bench.main, [str(model), "--backend", "openvino", "--precision", "bf16", "--tile", "8",
                                             "--repeats", "1", "--threads", "1", "--no-plain",
                                             "--plot", str(tmp_path / "b.png")])
    assert result.exit_code == 0, result.output
    assert "(jpeg, bf16, cpu, batch 1" in " ".join(result.output.split())
    result = CliRunner().invoke(bench.main, [str(model), "--precision", "bf16", "--plot", str(tmp_path / "c.png")])
    assert result.exit_code == 2 and "--backend onnxruntime does not run bfloat16" in result.stderr
