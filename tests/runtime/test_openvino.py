"""The OpenVINO backend: parity with ONNX Runtime and PyTorch on the exported jpeg network, the precision
it is asked for (float32 really float32, bfloat16 really bfloat16), its options, and the guards every runner has.

The exported network (random official-format weights, and the shipped ones) runs on one 32x32 tile, batch 2:
seconds. The guards run on one-node graphs (tests/crafted.py).
"""

from __future__ import annotations

import os
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import dagl
from crafted import tiny_onnx
from dagl.artefact.precision import BF16, FP32
from dagl.network.gfam import GFAMHead, UnfoldGFAM
from dagl.runtime import Restorer, RuntimeLoadError, create_runner
from dagl.runtime.backends import REGISTRY, tolerance_for
from dagl.runtime.base import InferenceError, ModelInputError, RunnerRequest
from dagl.runtime.compare import compare, measure
from dagl.runtime.openvino import compile_config, create
from onnx_models import add_metadata

ov = pytest.importorskip("openvino", reason="pip install 'dagl[openvino]'")

FAST = {"tile": 16, "overlap": 4, "threads": 1, "backend": "openvino"}
IMAGE = np.full((20, 24), 0.5, np.float32)
BATCH = np.random.default_rng(7).random((2, 1, 32, 32), dtype=np.float32)
HAS_BF16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@pytest.fixture(scope="module")
def random_onnx(jpeg_onnx):
    return jpeg_onnx


@pytest.fixture(scope="module")
def shipped_onnx(tmp_path_factory):
    from dagl.export.onnx import export_onnx

    path = export_onnx(dagl.load("jpeg"), tmp_path_factory.mktemp("shipped") / "dagl-jpeg.onnx", channels=1)
    return add_metadata(path, {"task": "jpeg", "channels": "1", "precision": "fp32"})


def run(path, backend: str, tmp_path, precision: str | None = None) -> tuple[np.ndarray, str]:
    with create_runner(path, backend, threads=1, precision=precision, engine_cache=tmp_path / "cache") as runner:
        return runner.infer(BATCH), runner.info.precision


def torch_output(weights) -> np.ndarray:
    with torch.inference_mode():
        return dagl.load("jpeg", weights=weights)(torch.from_numpy(BATCH)).numpy()


@pytest.mark.parametrize("weights", ["random", "shipped"])
def test_float32_matches_onnx_runtime_and_pytorch(weights, random_onnx, shipped_onnx, official_checkpoint, tmp_path):
    path = random_onnx if weights == "random" else shipped_onnx
    baseline = torch_output(official_checkpoint("jpeg") if weights == "random" else None)
    openvino, precision = run(path, "openvino", tmp_path)
    onnxruntime, _ = run(path, "onnxruntime", tmp_path)
    assert precision == "fp32"
    max_abs, _ = measure(onnxruntime, openvino)
    assert max_abs < 2e-5  # measured 2.2e-6 (random) and 2.3e-6 (shipped) on a 64x64 tile
    verdict = compare(baseline, openvino, tolerance_for("openvino", "fp32"))
    assert verdict, verdict.summary


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no bfloat16 arithmetic (AVX512-BF16 or AMX)")
@pytest.mark.parametrize("weights", ["random", "shipped"])
def test_bfloat16_is_computed_in_bfloat16_within_its_bound(weights, random_onnx, shipped_onnx, official_checkpoint,
                                                           tmp_path):
    path = random_onnx if weights == "random" else shipped_onnx
    baseline = torch_output(official_checkpoint("jpeg") if weights == "random" else None)
    bf16, precision = run(path, "openvino", tmp_path, precision="bf16")
    assert precision == "bf16"
    verdict = compare(baseline, bf16, tolerance_for("openvino", "bf16"))
    assert verdict, verdict.summary
    # Really bfloat16: 8 mantissa bits put it far outside float32's bound (1e-4); measured 50.7 dB (random
    # weights) and 63.7 dB (shipped) against float32 on a 64x64 tile.
    assert verdict.max_abs > 1e-3 and verdict.psnr < 80


def test_options_threads_streams_and_precision_hint():
    assert compile_config("f32", 1) == {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT",
                                        "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "1"}
    assert compile_config("bf16", 2)["NUM_STREAMS"] == "2"
    # Streams beyond a default batch would idle: 16 threads run 4 streams of 4 threads.
    assert (compile_config("bf16", 16)["NUM_STREAMS"], compile_config("bf16", 16)["INFERENCE_NUM_THREADS"]) == ("4", "16")
    assert (FP32.compute, BF16.compute, BF16.graph) == ("f32", "bf16", "fp32")


def test_threads_default_to_the_cores_this_process_may_use(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert create_runner(tiny_onnx(tmp_path / "id.onnx"), "openvino").threads == 3
    assert create_runner(tiny_onnx(tmp_path / "id.onnx"), "openvino", threads=1).threads == 1


def compile_spy(monkeypatch) -> list[dict]:
    """Every ``compile_model`` call's device, properties and input shape."""
    seen: list[dict] = []
    real = ov.Core.compile_model

    def spy(self, model, device, config):
        seen.append(dict(device=device, shape=tuple(model.inputs[0].get_shape()), **config))
        return real(self, model, device, config)

    monkeypatch.setattr(ov.Core, "compile_model", spy)
    return seen


def test_compiled_per_tile_shape_from_the_default_tile_on(tmp_path, monkeypatch):
    """Activation compiles one tile of the default size (a model or precision OpenVINO refuses fails before any
    image); each new tile shape compiles once, the batch's tiles spread over the streams; nothing is written."""
    from dagl.artefact import DEFAULT_TILE

    seen = compile_spy(monkeypatch)
    cache = tmp_path / "c"
    with create_runner(tiny_onnx(tmp_path / "id.onnx"), "openvino", threads=2, engine_cache=cache) as runner:
        assert seen == [{"device": "CPU", "shape": (1, 1, DEFAULT_TILE, DEFAULT_TILE), "INFERENCE_PRECISION_HINT": "f32",
                         "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": "2", "INFERENCE_NUM_THREADS": "2"}]
        five = np.random.default_rng(3).random((5, 1, 8, 12), dtype=np.float32)  # an odd count over 2 streams
        assert np.array_equal(runner.infer(five), five)
        assert np.array_equal(runner.infer(five[:1]), five[:1])
        assert [call["shape"] for call in seen] == [(1, 1, DEFAULT_TILE, DEFAULT_TILE), (1, 1, 8, 12)]
        for side in range(9, 9 + runner.MAX_SHAPES):  # older shapes are dropped, not kept without bound
            runner.infer(five[:, :, :side, :side])
        assert len(runner._compiled) == runner.MAX_SHAPES
    assert not cache.exists()  # compiling takes under a second: no compiled blobs on disk per shape


# --- guards: the same as ONNX Runtime's -----------------------------------------------------------

@pytest.mark.parametrize("options,message", [
    ({"input_name": "x"}, "graph inputs are ['x'], expected one named 'input'"),
    ({"elem_type": 11}, "input 'input' has ONNX element type 11, expected float32"),
    ({"metadata": {"dagl.channels": "3"}}, "takes 3 channels but task 'jpeg' needs 1"),
])
def test_interface_mismatch_is_refused_in_one_line_before_any_work(tmp_path, options, message):
    with pytest.raises(RuntimeLoadError) as excinfo:
        Restorer(tiny_onnx(tmp_path / "m.onnx", **options), **FAST)
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_output_shape_and_nan_are_checked_on_every_batch(tmp_path):
    with pytest.raises(InferenceError, match=r"returned shape \(4, 1, 1, 1\) for a batch of shape \(4, 1, 16, 16\)"):
        Restorer(tiny_onnx(tmp_path / "pool.onnx", "hidden-pool"), **FAST)(IMAGE)
    restore = Restorer(tiny_onnx(tmp_path / "div.onnx", "divide"), **FAST)
    assert np.array_equal(restore(IMAGE), np.ones_like(IMAGE))
    with_zero = IMAGE.copy()
    with_zero[3, 3] = 0.0
    with pytest.raises(InferenceError, match="produced 1 NaN or infinite value"):
        restore(with_zero)


def test_unreadable_file_is_the_users_error_in_one_line(tmp_path):
    path = tmp_path / "dagl-jpeg.onnx"
    path.write_bytes(b"\x08\x07not a protobuf at all")
    with pytest.raises(ModelInputError, match="not a readable ONNX file") as excinfo:
        create_runner(path, "openvino")
    assert excinfo.value.exit_code == 2


def test_missing_openvino_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    runner = create_runner(tiny_onnx(tmp_path / "id.onnx"), "openvino")
    with pytest.raises(RuntimeLoadError, match=r"^--backend openvino needs OpenVINO: pip install 'dagl\[openvino\]'$"):
        runner.activate()


def test_a_cpu_that_quietly_computes_in_float32_is_refused(tmp_path, monkeypatch):
    """OpenVINO ignores a bfloat16 hint on a CPU without bfloat16: refused, as ONNX Runtime's silent fallback."""
    f32 = types.SimpleNamespace(get_type_name=lambda: "f32")
    compiled = types.SimpleNamespace(get_property=lambda name: f32)
    model = types.SimpleNamespace(inputs=[None], reshape=lambda shapes: None)
    model.clone = lambda: model
    core = types.SimpleNamespace(read_model=lambda path: model, compile_model=lambda *args: compiled)
    fake = types.SimpleNamespace(Core=lambda: core, Type=types.SimpleNamespace(f32=f32, bf16=object()))
    monkeypatch.setitem(sys.modules, "openvino", fake)
    runner = create_runner(tiny_onnx(tmp_path / "id.onnx"), "openvino", precision="bf16", engine_cache=tmp_path)
    with pytest.raises(RuntimeLoadError, match=r"OpenVINO computes in f32 on this CPU, not bf16 as --precision bf16 "
                                               r"asks \(bfloat16 needs AVX512-BF16 or AMX\); use --precision fp32$"):
        runner.activate()
    assert not runner.is_active


def test_an_explicit_gpu_is_refused_and_auto_means_the_cpu(tmp_path):
    path = tiny_onnx(tmp_path / "id.onnx")
    with pytest.raises(ModelInputError, match=r"^--backend openvino runs on the CPU only, not --device cuda"):
        create(RunnerRequest(path, "onnx", "cuda"))
    assert create(RunnerRequest(path, "onnx", "cuda", device_is_auto=True)).device == "cpu"


def test_threads_sharing_one_runner_take_turns(tmp_path):
    restore = Restorer(tiny_onnx(tmp_path / "id.onnx"), **FAST)
    images = [np.full((20, 24), v, np.float32) for v in (0.1, 0.3, 0.6, 0.9)]
    results: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, restore(images[i]))) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # Each its own image back (the grid's blending rounds in the last bit; another thread's image is >= 0.2 off).
    assert all(np.allclose(results[i], images[i], rtol=0, atol=1e-6) for i in range(4))


def test_registry_entry():
    backend = REGISTRY["openvino"]
    assert backend.kinds == ("onnx", "weights") and backend.auto_for == ()
    assert set(backend.tolerances) == {"fp32", "bf16", "int8"}
    assert backend.tolerances["bf16"].min_psnr == BF16.min_psnr and backend.tolerances["fp32"].max_abs == FP32.max_abs


# --- a weights file: the PyTorch network converted to OpenVINO, kept as IR in the engine cache -------------

@pytest.mark.slow
def test_weights_are_converted_once_and_match_pytorch_at_every_shape(official_checkpoint, tmp_path, monkeypatch):
    """Random official-format weights: float32 within float32's bound of PyTorch at two shapes of one model
    (dynamic N, H, W), bfloat16 within its bound; the second runner reads the IR the first one wrote."""
    from dagl.runtime.openvino import weights

    weights_file = official_checkpoint("jpeg")
    model = dagl.load("jpeg", weights=weights_file)
    batches = [BATCH, np.random.default_rng(8).random((1, 1, 44, 60), dtype=np.float32)]
    with torch.inference_mode():
        references = [model(torch.from_numpy(batch)).numpy() for batch in batches]
    cache = tmp_path / "cache"
    with create_runner(weights_file, "openvino", task="jpeg", threads=1, engine_cache=cache) as runner:
        assert (runner.name, runner.info.precision, runner.info.task) == ("openvino", "fp32", "jpeg")
        # Converted in the unfold form (no one-hot convolutions for OpenVINO to reorder), checked against the
        # batched form PyTorch runs above.
        heads = [m for m in runner.model.modules() if isinstance(m, GFAMHead)]
        assert len(heads) == 12 and all(type(m) is UnfoldGFAM for m in heads)
        for batch, reference in zip(batches, references):
            verdict = compare(reference, runner.infer(batch), tolerance_for("openvino", "fp32"))
            assert verdict, verdict.summary
    [xml] = (cache / "openvino" / "ir").glob("*.xml")
    assert xml.with_suffix(".bin").stat().st_size > 4 * 1_000_000  # float32 weights, not compressed to float16
    monkeypatch.setattr(weights, "convert", lambda *args: pytest.fail("converted again despite the cached IR"))
    if HAS_BF16:
        with create_runner(weights_file, "openvino", task="jpeg", threads=1, precision="bf16",
                           engine_cache=cache) as runner:
            assert runner.info.precision == "bf16"
            verdict = compare(references[0], runner.infer(BATCH), tolerance_for("openvino", "bf16"))
            assert verdict, verdict.summary
            assert verdict.max_abs > 1e-3  # really bfloat16
    assert list((cache / "openvino" / "ir").glob("*.xml")) == [xml]


def test_the_ir_key_names_everything_the_conversion_depends_on():
    from dagl.runtime.openvino.weights import ir_key

    key = ir_key("ab" * 32, "jpeg", None, "2026.4.1")
    assert key == ir_key("ab" * 32, "jpeg", None, "2026.4.1") and key.startswith("dagl-")
    assert len({key, ir_key("cd" * 32, "jpeg", None, "2026.4.1"), ir_key("ab" * 32, "denoise", 25, "2026.4.1"),
                ir_key("ab" * 32, "jpeg", None, "2026.5.0")}) == 4


def test_a_weights_file_on_openvino_needs_its_task_and_refuses_a_gpu(official_checkpoint):
    with pytest.raises(ModelInputError, match="pass --task"):
        create_runner(official_checkpoint("jpeg"), "openvino")
    with pytest.raises(ModelInputError, match="runs on the CPU only"):
        create(RunnerRequest(official_checkpoint("jpeg"), "weights", "cuda", task="jpeg"))
