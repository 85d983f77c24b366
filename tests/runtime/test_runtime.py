"""Restorer over the PyTorch and ONNX Runtime backends, engine compatibility, backend selection."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest
import torch

import dagl
from dagl.artefact import EngineSidecar, Profile
from dagl.images.io import read_image
from dagl.images.metrics import psnr
from dagl.runtime import Restorer, RuntimeLoadError, create_runner
from dagl.runtime.trt import EngineTarget, engine_mismatch
from onnx_models import add_metadata
from release_network import release_chop

HERE = EngineTarget("10.3.0.26", "NVIDIA H100 80GB HBM3", "9.0")


@pytest.fixture(scope="module")
def onnx_path(jpeg_onnx):
    return jpeg_onnx


@pytest.fixture(scope="module")
def model(official_checkpoint):
    return dagl.load("jpeg", weights=official_checkpoint("jpeg"))


def torch_forward(model):
    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)
    return forward


@pytest.mark.slow
def test_reference_tiling_through_onnxruntime_reproduces_the_release_chop(onnx_path, model, datasets_dir):
    """Acceptance: our chop on ONNX Runtime vs an independent chop running the PyTorch model."""
    image = read_image(datasets_dir / "classic5" / "jpeg_q10" / "barbara.jpeg")[..., 0]
    if not os.environ.get("DAGL_FULL_IMAGE"):  # the full image takes minutes on CPU; docs/tiling.md has it
        image = image[200:264, 300:372]  # 4 leaf tiles of 56x60
    with Restorer(onnx_path, tiling="reference") as restore:
        ours = restore(image)
        assert (restore.task, restore.channels, restore.backend) == ("jpeg", 1, "onnxruntime")
    theirs = release_chop(torch_forward(model), torch.from_numpy(image)[None, None])
    theirs = theirs.clamp(0, 1)[0, 0].numpy()
    print(f"reference chop, ONNX Runtime vs independent PyTorch chop on {image.shape}: "
          f"{psnr(ours, theirs):.2f} dB")
    assert psnr(ours, theirs) >= 60.0
    assert psnr(ours, image) < 60.0  # the network did change the image


@pytest.mark.slow
def test_torch_and_onnxruntime_backends_agree_untiled(onnx_path, official_checkpoint, model):
    image = np.random.default_rng(0).random((36, 44), dtype=np.float32)
    expected = model(torch.from_numpy(image)[None, None]).detach().clamp(0, 1)[0, 0].numpy()
    with Restorer(official_checkpoint("jpeg"), task="jpeg", tiling="none") as restore:
        np.testing.assert_allclose(restore(image), expected, atol=1e-5)
        assert restore.backend == "torch"
    restore = Restorer(onnx_path, tiling="none")  # without `with`: activates on first call
    np.testing.assert_allclose(restore(image), expected, atol=1e-4)
    restore.close()


@pytest.mark.slow
def test_restorer_keeps_the_input_layout(onnx_path):
    image = np.random.default_rng(1).random((40, 40, 1), dtype=np.float32)
    with Restorer(onnx_path, tiling="grid", tile=32, overlap=8) as restore:
        out = restore(image)
        assert out.shape == (40, 40, 1) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        with pytest.raises(ValueError, match="channel"):
            restore(np.zeros((40, 40, 3), np.float32))


@pytest.mark.slow
def test_ensemble_of_the_model_is_the_manual_average(onnx_path, model):
    image = np.random.default_rng(2).random((24, 20), dtype=np.float32)
    with Restorer(onnx_path, tiling="none", ensemble=True) as restore:
        ours = restore(image)
    x = torch.from_numpy(image)[None, None]
    outputs = []
    with torch.inference_mode():
        for flip in (False, True):
            for turns in range(4):
                xt = torch.rot90(x.flip(-1) if flip else x, turns, dims=(2, 3))
                yt = torch.rot90(model(xt), -turns, dims=(2, 3))
                outputs.append(yt.flip(-1) if flip else yt)
    manual = torch.stack(outputs).mean(0).clamp(0, 1)[0, 0].numpy()
    np.testing.assert_allclose(ours, manual, atol=1e-5)
    single = model(x).detach().clamp(0, 1)[0, 0].numpy()
    assert np.abs(ours - single).max() > 1e-3  # the ensemble is not a no-op on this network


@pytest.mark.slow
def test_task_conflicts_and_missing_task_are_refused(onnx_path, official_checkpoint, tmp_path):
    with pytest.raises(RuntimeLoadError, match="exported for task 'jpeg', not 'denoise'"):
        create_runner(onnx_path, task="denoise")
    with pytest.raises(RuntimeLoadError, match="pass --task"):
        create_runner(official_checkpoint("jpeg"))
    with pytest.raises(RuntimeLoadError, match="onnxruntime artefact; it cannot run with --backend torch"):
        create_runner(onnx_path, backend="torch")
    with pytest.raises(RuntimeLoadError, match="model expects"):
        create_runner(official_checkpoint("demosaic"), task="jpeg")
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(onnx_path.read_bytes())
    import onnx

    stripped = onnx.load(str(bare))
    del stripped.metadata_props[:]
    onnx.save(stripped, str(bare))
    with pytest.raises(RuntimeLoadError, match="does not say which task"):
        create_runner(bare)
    assert create_runner(add_metadata(bare, {"task": "jpeg"})).info.channels == 1


def test_a_task_name_runs_the_shipped_weights(tmp_path, monkeypatch, official_checkpoint):
    with pytest.raises(RuntimeLoadError, match="no trained weights ship for 'dagl-demosaic'"):
        create_runner("demosaic")  # no demosaic weights ship yet
    monkeypatch.setattr(dagl.weights.pretrained, "WEIGHTS_DIR", tmp_path)
    dagl.save_safetensors(dagl.load("jpeg", weights=official_checkpoint("jpeg")), tmp_path / "dagl-jpeg.safetensors")
    runner = create_runner("jpeg")
    assert (runner.name, runner.info.task) == ("torch", "jpeg")
    with pytest.raises(RuntimeLoadError, match="names a task, but --task is 'denoise'"):
        create_runner("jpeg", task="denoise")


def _sidecar(max_batch: int) -> EngineSidecar:
    return EngineSidecar(task="jpeg", channels=1, precision="fp16", sigma=None, tensorrt_version="10.3.0",
                         gpu_name="NVIDIA H100", compute_capability="9.0", min_shape=(1, 1, 16, 16),
                         opt_shape=(max_batch, 1, 80, 80), max_shape=(max_batch, 1, 256, 256))


def test_engine_compatibility_is_a_pure_comparison():
    built = EngineTarget("10.3.0", HERE.gpu_name, "9.0")
    hint = "dagl-export --task jpeg --precision fp16"
    assert engine_mismatch(built, HERE, hint) is None  # build number ignored
    message = engine_mismatch(replace(built, tensorrt_version="10.7.0"), HERE, hint)
    assert message == ("engine was built for TensorRT 10.7.0 (running 10.3.0.26); dagl supports TensorRT "
                       ">=10.12,<12; rebuild it here with: dagl-export --task jpeg --precision fp16")
    message = engine_mismatch(replace(built, gpu_name="NVIDIA A100-SXM4-80GB", compute_capability="8.0"),
                              HERE, hint)
    assert "compute capability 8.0 (this GPU has 9.0)" in message and "'NVIDIA A100-SXM4-80GB'" in message
    assert message.endswith(hint) and "\n" not in message
    assert "supports TensorRT" not in message  # same release: only the GPU differs


def test_tensorrt_backend_without_tensorrt_fails_in_one_line(tmp_path):
    pytest.importorskip("onnx")  # always present; TensorRT is what must be missing here
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here; this test covers machines without it")
    except ImportError:
        pass
    engine = tmp_path / "dagl-jpeg.plan"
    engine.write_bytes(b"not an engine")
    _sidecar(max_batch=4).write(engine)
    runner = create_runner(engine)
    assert (runner.name, runner.info.task, runner.info.precision) == ("tensorrt", "jpeg", "fp16")
    with pytest.raises(RuntimeLoadError) as excinfo:
        runner.activate()
    message = str(excinfo.value)
    assert "TensorRT backend is unavailable: tensorrt is not installed" in message and "\n" not in message


def test_restorer_batches_no_more_tiles_than_the_engine_takes(tmp_path):
    engine = tmp_path / "dagl-jpeg-fp16.plan"
    engine.write_bytes(b"not loaded before the first tile")
    _sidecar(max_batch=2).write(engine)
    assert Restorer(engine).options.batch == 2
    assert Restorer(engine, batch=1).options.batch == 1


def test_engine_without_sidecar_is_refused(tmp_path):
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"\0")
    with pytest.raises(RuntimeLoadError, match="sidecar x.engine.json is missing"):
        create_runner(engine)


@pytest.mark.gpu
def test_tensorrt_engine_matches_onnxruntime(onnx_path, tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (it needs an NVIDIA GPU machine)")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from dagl.artefact import EngineTask
    from dagl.export.tensorrt_build import build_engine

    plan = tmp_path / "dagl-jpeg.plan"
    build_engine(onnx_path, plan,
                 profile=Profile((1, 1, 16, 16), (4, 1, 32, 32), (4, 1, 64, 64)),
                 task=EngineTask(task="jpeg", channels=1, precision="fp32", sigma=None, weights={}))
    image = np.random.default_rng(3).random((40, 52), dtype=np.float32)
    with Restorer(onnx_path, tile=32, overlap=8) as restore:
        expected = restore(image)
    with Restorer(plan, tile=32, overlap=8) as restore:
        assert restore.backend == "tensorrt"
        assert psnr(restore(image), expected) > 60.0
