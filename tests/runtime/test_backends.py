"""The backend registry, ONNX Runtime's execution providers and the engine cache, on a CPU-only machine.

The provider lists and options are pure functions, checked here option by option; a provider this
onnxruntime lacks, or one ONNX Runtime silently replaces by the CPU, must be one line of error. The
engine cache runs against the TensorRT 11 fake (tests/fake_tensorrt.py): found again by its key,
rebuilt when any part of the key changes, one timing cache reused by every build.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

import fake_tensorrt
from dagl.artefact import DEFAULT_BATCH, GPU, EngineSidecar, PrecisionError, Profile, engine_build
from dagl.files import file_digest
from dagl.images.io import write_image
from dagl.runtime import ModelInfo, RuntimeLoadError, create_runner
from dagl.runtime import cli as infer_cli
from dagl.runtime.backends import REGISTRY, auto_backend, backends_for
from dagl.runtime.backends import tolerance_for
from dagl.runtime.base import CACHE_ENV, default_cache_dir
from dagl.runtime.compare import bounds_for
from dagl.runtime.loader import BACKEND_HELP, BACKENDS
from dagl.runtime.onnxrt import OnnxRuntimeRunner, OnnxRuntimeTensorRTRunner
from dagl.runtime.onnxrt.providers import (missing_provider, session_providers, tensorrt_options,
                                           tensorrt_session_providers)
from dagl.runtime.trt import OnnxEngineRunner, engine_key

HERE_GPU = GPU(fake_tensorrt.GPU_NAME, fake_tensorrt.GPU_CC)
PROFILE = Profile(min=(1, 1, 16, 16), opt=(4, 1, 80, 80), max=(4, 1, 256, 256))


def small_onnx(folder: Path, precision: str = "fp32", name: str | None = None) -> Path:
    """A dagl-shaped graph (float32 ``input``/``output``, N/H/W dynamic, dagl.* metadata): relu, inside FP16 for fp16."""
    inner = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.FLOAT
    nodes = [helper.make_node("Cast", ["input"], ["x"], to=inner), helper.make_node("Relu", ["x"], ["y"]),
             helper.make_node("Cast", ["y"], ["output"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, "H", "W"])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 1, "H", "W"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # every onnxruntime >= 1.18 reads it
    helper.set_model_props(model, {"dagl.task": "jpeg", "dagl.channels": "1", "dagl.precision": precision})
    path = folder / (name or f"dagl-jpeg{'-fp16' if precision == 'fp16' else ''}.onnx")
    onnx.save(model, str(path))
    return path


# --- the registry ------------------------------------------------------------------------------

def test_every_command_offers_auto_and_every_registered_backend():
    assert BACKENDS == ("auto", "tensorrt", "onnxruntime", "onnxruntime-tensorrt", "openvino", "torch")
    assert [auto_backend(kind).name for kind in ("engine", "onnx", "weights")] == ["tensorrt", "onnxruntime", "torch"]
    for kind in ("engine", "onnx", "weights"):  # exactly one auto backend per kind, and it takes the kind
        assert sum(kind in b.auto_for for b in REGISTRY.values()) == 1 and kind in auto_backend(kind).kinds
    assert backends_for("onnx") == ["tensorrt", "onnxruntime", "onnxruntime-tensorrt", "openvino"]
    assert "onnxruntime-tensorrt: ONNX Runtime's TensorRT execution provider" in BACKEND_HELP
    squeezed = "".join(CliRunner().invoke(infer_cli.main, ["--help"]).output.split())  # click wraps at hyphens
    assert "".join(BACKEND_HELP.split()) in squeezed


def test_parity_bounds_come_from_the_registry():
    # What each backend runs: every graph dagl-export writes; OpenVINO also bfloat16; PyTorch float32 weights.
    assert {name: tuple(backend.tolerances) for name, backend in REGISTRY.items()} == {
        "tensorrt": ("fp32", "fp16", "int8"), "onnxruntime": ("fp32", "fp16", "int8"),
        "onnxruntime-tensorrt": ("fp32", "fp16"), "openvino": ("fp32", "bf16", "int8"), "torch": ("fp32",)}
    for name, backend in REGISTRY.items():
        assert all(tolerance_for(name, p) is backend.tolerances[p] for p in backend.tolerances)
    assert tolerance_for("onnxruntime", "fp32") is bounds_for("ONNX")["fp32"]
    # TensorRT inside ONNX Runtime builds a TensorRT engine: held to the engine's bounds.
    assert (tolerance_for("onnxruntime-tensorrt", "fp32"), tolerance_for("onnxruntime-tensorrt", "fp16")) == \
        (bounds_for("TensorRT engine")["fp32"], bounds_for("TensorRT engine")["fp16"])
    with pytest.raises(ValueError, match="no parity tolerance for backend 'openvino' at precision 'fp16'"):
        tolerance_for("openvino", "fp16")


def test_the_float32_baseline_is_a_fact_of_its_entry():
    """dagl-eval's verdicts and dagl-bench's plain path ask the entry, never the name: PyTorch on weights at fp32."""
    baseline = [backend for backend in REGISTRY.values() if backend.baseline]
    assert [b.name for b in baseline] == ["torch"]
    assert baseline[0].kinds == ("weights",) and tuple(baseline[0].tolerances) == ("fp32",)


def test_a_backend_that_does_not_take_the_kind_names_those_that_do(tmp_path):
    engine = tmp_path / "dagl-jpeg.plan"
    engine.write_bytes(b"never read: the kind is refused first")
    with pytest.raises(RuntimeLoadError) as excinfo:
        create_runner(engine, backend="onnxruntime")
    assert str(excinfo.value) == ("dagl-jpeg.plan is a tensorrt artefact; it cannot run with --backend onnxruntime "
                                  "(backends for it: tensorrt)")
    onnx_path = small_onnx(tmp_path)
    with pytest.raises(RuntimeLoadError, match=r"cannot run with --backend torch \(backends for it: tensorrt, "
                                               r"onnxruntime, onnxruntime-tensorrt, openvino\)$"):
        create_runner(onnx_path, backend="torch")


def test_onnx_on_tensorrt_is_an_engine_runner_that_builds_nothing_until_activated(tmp_path):
    onnx_path = small_onnx(tmp_path)
    runner = create_runner(onnx_path, backend="tensorrt", engine_cache=tmp_path / "cache")
    assert isinstance(runner, OnnxEngineRunner) and runner.name == "tensorrt" and runner.device == "cuda"
    assert runner.max_batch == DEFAULT_BATCH and runner.profile == PROFILE
    assert (runner.info.task, runner.info.precision) == ("jpeg", "fp32")
    assert not (tmp_path / "cache").exists()


def test_default_engine_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "dagl" / "engines"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "volume"))
    assert default_cache_dir() == tmp_path / "volume"


# --- ONNX Runtime execution providers -----------------------------------------------------------

def test_tensorrt_provider_options_are_what_deployments_set(tmp_path):
    options = tensorrt_options("fp16", "cuda:1", tmp_path, PROFILE, 4 << 30)
    assert options == {
        "trt_fp16_enable": True, "trt_max_workspace_size": 4 << 30,
        "trt_engine_cache_enable": True, "trt_engine_cache_path": str(tmp_path),
        "trt_timing_cache_enable": True, "trt_timing_cache_path": str(tmp_path),
        "trt_profile_min_shapes": "input:1x1x16x16", "trt_profile_opt_shapes": "input:4x1x80x80",
        "trt_profile_max_shapes": "input:4x1x256x256", "device_id": 1,
    }
    fp32 = tensorrt_options("fp32", "cuda", tmp_path, PROFILE, 1 << 30)
    assert fp32["trt_fp16_enable"] is False and "device_id" not in fp32  # plain cuda: ONNX Runtime's GPU 0
    providers = tensorrt_session_providers("fp32", "cuda:1", tmp_path, PROFILE, 1 << 30)
    assert [p if isinstance(p, str) else p[0] for p in providers] == \
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers[1] == ("CUDAExecutionProvider", {"device_id": 1})
    assert session_providers("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]


def test_a_missing_provider_is_one_line_saying_what_to_install():
    assert missing_provider("CPUExecutionProvider", ["CPUExecutionProvider"]) is None
    assert missing_provider("CUDAExecutionProvider", ["AzureExecutionProvider", "CPUExecutionProvider"]) == (
        "this onnxruntime has no CUDAExecutionProvider (it has AzureExecutionProvider, CPUExecutionProvider); "
        "pip install onnxruntime-gpu (and its CUDA 12 and cuDNN 9 libraries)")


def test_onnxruntime_tensorrt_on_an_onnxruntime_without_it_is_refused(tmp_path):
    if "TensorrtExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the TensorRT execution provider")
    runner = create_runner(small_onnx(tmp_path), backend="onnxruntime-tensorrt", engine_cache=tmp_path / "cache")
    assert isinstance(runner, OnnxRuntimeTensorRTRunner) and runner.device == "cuda" and runner.max_batch == 4
    with pytest.raises(RuntimeLoadError) as excinfo:
        runner.activate()
    message = str(excinfo.value)
    assert message.startswith("dagl-jpeg.onnx: --backend onnxruntime-tensorrt on cuda: this onnxruntime has no "
                              "TensorrtExecutionProvider (it has ") and "\n" not in message
    assert not runner.is_active


@pytest.fixture
def no_cuda_provider(monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])


def test_explicit_cuda_without_the_cuda_provider_is_refused_auto_runs_on_the_cpu(tmp_path, no_cuda_provider,
                                                                                 caplog):
    path = small_onnx(tmp_path)
    info = ModelInfo(task="jpeg", channels=1)
    with pytest.raises(RuntimeLoadError, match=r"^dagl-jpeg.onnx: --backend onnxruntime on cuda:1: this onnxruntime "
                                               r"has no CUDAExecutionProvider \(it has CPUExecutionProvider\)"):
        OnnxRuntimeRunner(path, info, device="cuda:1").activate()
    batch = np.linspace(-1, 1, 2 * 20 * 24, dtype=np.float32).reshape(2, 1, 20, 24)
    with caplog.at_level(logging.WARNING), OnnxRuntimeRunner(path, info, device="cuda", cpu_fallback=True) as runner:
        np.testing.assert_array_equal(runner.infer(batch), np.maximum(batch, 0))
        assert runner.device == "cpu"
    assert "no CUDAExecutionProvider" in caplog.text and "--device auto runs dagl-jpeg.onnx on the CPU" in caplog.text


class _FallenBackSession:
    """An InferenceSession whose CUDA provider failed to start: ONNX Runtime then says only CPU in get_providers()."""

    def __init__(self, path: str, options: object, providers: list) -> None:
        self.asked = providers

    def get_providers(self) -> list[str]:
        return ["CPUExecutionProvider"]


def test_onnxruntimes_silent_fallback_to_the_cpu_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "InferenceSession", _FallenBackSession)
    runner = OnnxRuntimeRunner(small_onnx(tmp_path), ModelInfo(task="jpeg", channels=1), device="cuda")
    with pytest.raises(RuntimeLoadError) as excinfo:
        runner.activate()
    assert str(excinfo.value).startswith("dagl-jpeg.onnx: ONNX Runtime could not start its CUDAExecutionProvider "
                                         "and fell back to CPUExecutionProvider")
    assert str(excinfo.value).endswith("use --device cpu to run on the CPU") and not runner.is_active
    auto = OnnxRuntimeRunner(runner.path, runner.info, device="cuda", cpu_fallback=True).activate()
    assert auto.device == "cpu" and auto.session.asked == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_dagl_infer_with_a_provider_the_machine_lacks_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    image = write_image(tmp_path / "in.png", np.full((16, 16), 0.5, np.float32))
    out = tmp_path / "out.png"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    result = CliRunner().invoke(infer_cli.main, [str(small_onnx(tmp_path)), str(image), "-o", str(out),
                                                 "--backend", "onnxruntime-tensorrt"])
    assert result.exit_code == 1 and not out.exists()
    lines = result.output.strip().splitlines()
    assert lines == ["dagl-infer: error: dagl-jpeg.onnx: --backend onnxruntime-tensorrt on cuda: this onnxruntime "
                     "has no TensorrtExecutionProvider (it has CPUExecutionProvider); pip install onnxruntime-gpu and "
                     "TensorRT (pip install 'dagl[tensorrt]'), on an NVIDIA GPU"]


# --- the engine cache, against the TensorRT 11 fake --------------------------------------------

def test_engine_names_say_everything_the_engine_depends_on(tmp_path):
    path = small_onnx(tmp_path, "fp16")
    info = ModelInfo(task="denoise", channels=1, sigma=25, precision="fp16")
    key = engine_key(path, info, PROFILE, "11.4.0.106", HERE_GPU)
    assert key.onnx_sha256 == file_digest(path)
    assert key.file_name == (f"dagl-denoise-s25-fp16_1x1x16x16_4x1x80x80_4x1x256x256_trt11.4.0.106_Fake_H100_80GB_"
                             f"sm90_{key.onnx_sha256[:16]}.plan")
    assert key.timing_cache_name == "timing_trt11.4.0.106_Fake_H100_80GB_sm90.cache"
    others = [engine_key(path, info, PROFILE, "11.5.0.20", HERE_GPU), engine_key(path, info, PROFILE, "11.4.0.106",
              GPU("NVIDIA A100-SXM4-80GB", "8.0")), engine_key(small_onnx(tmp_path, "fp32", "b.onnx"), info, PROFILE,
              "11.4.0.106", HERE_GPU), engine_key(path, ModelInfo("denoise", 1, 50, "fp16"), PROFILE, "11.4.0.106",
              HERE_GPU), engine_key(path, info, Profile(PROFILE.min, PROFILE.opt, (2, 1, 128, 128)), "11.4.0.106",
              HERE_GPU)]
    assert len({key.file_name, *(other.file_name for other in others)}) == 6


def _run(onnx_path: Path, cache_dir: Path) -> tuple[Path, np.ndarray]:
    """Activate an engine runner for ``onnx_path`` on host buffers; (the engine it ran, its output)."""
    info = ModelInfo(task="jpeg", channels=1, precision="fp16" if "fp16" in onnx_path.name else "fp32")
    batch = np.random.default_rng(0).random((2, 1, 20, 24), dtype=np.float32)
    with OnnxEngineRunner(onnx_path, info, cache_dir, device="cpu") as runner:
        np.testing.assert_array_equal(out := runner.infer(batch), 1 - batch)  # the fake engine's 1 - x
        return runner.path, out


def test_an_onnx_file_is_built_once_then_found_again(fake_trt, tmp_path, monkeypatch):
    onnx_path, cache_dir = small_onnx(tmp_path), tmp_path / "cache"
    plan, _ = _run(onnx_path, cache_dir)
    assert plan.parent == cache_dir and plan.name.startswith("dagl-jpeg-fp32_1x1x16x16_4x1x80x80_4x1x256x256_trt11.4.0")
    sidecar = EngineSidecar.read(plan)
    assert sidecar.onnx_sha256 == file_digest(onnx_path) and sidecar.profile == PROFILE
    assert fake_tensorrt.read_plan(plan.read_bytes())["onnx"] == "dagl-jpeg.onnx"
    timing = cache_dir / "timing_trt11.4.0.106_Fake_H100_80GB_sm90.cache"
    assert timing.read_bytes() == b"+tuned"

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt an engine the cache holds")

    with monkeypatch.context() as patch:
        patch.setattr(engine_build, "build_engine", no_build)
        assert _run(onnx_path, cache_dir)[0] == plan
    # Another graph (the FP16 one) is another engine, built on the same timing cache.
    fp16_plan, _ = _run(small_onnx(tmp_path, "fp16"), cache_dir)
    assert fp16_plan != plan and "-fp16_" in fp16_plan.name and timing.read_bytes() == b"+tuned+tuned"
    # A changed ONNX file (same name) has another checksum: a new engine, the old one never run for it.
    small_onnx(tmp_path, "fp16", "dagl-jpeg.onnx")
    assert _run(onnx_path, cache_dir)[0] not in (plan, fp16_plan)
    assert len(list(cache_dir.glob("*.plan"))) == 3


def test_an_engine_whose_sidecar_does_not_match_its_name_is_rebuilt(fake_trt, tmp_path):
    onnx_path, cache_dir = small_onnx(tmp_path), tmp_path / "cache"
    plan, _ = _run(onnx_path, cache_dir)
    plan.with_name(plan.name + ".json").write_text("{}")
    assert _run(onnx_path, cache_dir)[0] == plan and EngineSidecar.read(plan).task == "jpeg"
    assert (cache_dir / "timing_trt11.4.0.106_Fake_H100_80GB_sm90.cache").read_bytes() == b"+tuned+tuned"


def test_onnx_on_tensorrt_without_tensorrt_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as if not installed
    runner = create_runner(small_onnx(tmp_path), backend="tensorrt", engine_cache=tmp_path / "cache")
    with pytest.raises(RuntimeLoadError) as excinfo:
        runner.activate()
    assert str(excinfo.value).startswith("the TensorRT backend is unavailable: tensorrt is not installed")
    assert "\n" not in str(excinfo.value) and not (tmp_path / "cache").exists()


# --- --precision: the artefact's graph and the backend's entry decide -----------------------------

def test_precision_defaults_to_the_graphs_own_and_is_checked_against_graph_and_backend(tmp_path):
    fp32, fp16 = small_onnx(tmp_path), small_onnx(tmp_path, "fp16")
    assert create_runner(fp32, "onnxruntime").info.precision == "fp32"
    assert create_runner(fp16, "onnxruntime", precision="fp16").info.precision == "fp16"
    assert create_runner(fp32, "openvino", precision="bf16").info.precision == "bf16"  # runs the float32 graph
    with pytest.raises(RuntimeLoadError, match=r"^dagl-jpeg.onnx holds the float32 graph; --precision fp16 runs the "
                                               r"FP16 graph \(dagl-export --precision fp16 writes it\)$"):
        create_runner(fp32, "onnxruntime", precision="fp16")
    with pytest.raises(RuntimeLoadError, match=r"^dagl-jpeg-fp16.onnx holds the FP16 graph; --precision bf16 runs the "
                                               r"float32 graph"):
        create_runner(fp16, "openvino", precision="bf16")
    with pytest.raises(RuntimeLoadError, match=r"^--backend onnxruntime does not run bfloat16 \(--precision "
                                               r"fp32\|fp16\|int8\); backends that do: openvino$"):
        create_runner(fp32, "onnxruntime", precision="bf16")
    with pytest.raises(RuntimeLoadError, match=r"^--backend openvino does not run FP16 \(--precision fp32\|bf16\|"
                                               r"int8\); backends that do: tensorrt, onnxruntime, onnxruntime-tensorrt$"):
        create_runner(fp16, "openvino")
    with pytest.raises(PrecisionError, match="unknown precision 'int4'"):
        create_runner(fp32, "onnxruntime", precision="int4")


def test_an_unsupported_precision_is_refused_before_the_weights_load(tmp_path, monkeypatch):
    from dagl.runtime.pyt import loader as torch_loader

    monkeypatch.setattr(torch_loader, "create", lambda request: pytest.fail("weights loaded before the refusal"))
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"never read")
    with pytest.raises(RuntimeLoadError, match=r"^--backend torch does not run bfloat16 \(--precision fp32\); "
                                               r"backends that do: openvino$"):
        create_runner(weights, precision="bf16", task="jpeg")


def test_a_backend_registry_refuses_a_second_entry_of_one_name():
    from dagl.registry import by_name

    with pytest.raises(ValueError, match="^backend 'onnxruntime' is registered twice$"):
        by_name((*REGISTRY.values(), REGISTRY["onnxruntime"]), "backend")
