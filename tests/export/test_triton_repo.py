"""The Triton model repository: every config field that must agree with its artefact is checked, and a
disagreement is one line with nothing written. Artefacts are tiny stand-ins (an Identity graph with
dagl's interface and metadata, an engine file with a real sidecar), so no export or GPU is needed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from dagl.artefact import EngineSidecar, Profile, onnx_metadata
from dagl.export.triton import (TritonConfigError, check_onnx_config, check_plan_config, check_repo_options,
                                onnx_configs, plan_configs, plan_filename, read_onnx_facts, write_triton_repo)

PROFILE = Profile(min=(1, 1, 16, 16), opt=(4, 1, 80, 80), max=(4, 1, 256, 256))


def write_graph(path: Path, *, name: str = "input", elem: int = TensorProto.FLOAT, batch: str | int = "N",
                channels: int = 1) -> Path:
    """An Identity graph with dagl-export's interface (or one field of it changed) and metadata."""
    shape = [batch, channels, "H", "W"]
    graph = helper.make_graph([helper.make_node("Identity", [name], ["output"])], "g",
                              [helper.make_tensor_value_info(name, elem, shape)],
                              [helper.make_tensor_value_info("output", elem, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in onnx_metadata("jpeg", 1, "fp32", None, "random (seeded)").items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def write_plan(path: Path, profile: Profile = PROFILE, capability: str = "9.0") -> Path:
    path.write_bytes(b"engine bytes")
    EngineSidecar(task="jpeg", channels=1, precision="fp16", sigma=None, tensorrt_version="11.4.0",
                  gpu_name="NVIDIA H200", compute_capability=capability, min_shape=profile.min,
                  opt_shape=profile.opt, max_shape=profile.max).write(path)
    return path


@pytest.fixture
def artefacts(tmp_path):
    return write_graph(tmp_path / "dagl-jpeg.onnx"), write_plan(tmp_path / "dagl-jpeg-fp16.plan")


def field_values(text: str) -> dict[str, str]:
    """``key: value`` pairs of a config, flattened (enough to read back what was written)."""
    return {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in text.splitlines() if ":" in line}


def test_repository_layout_and_fields(artefacts, tmp_path):
    onnx_path, plan = artefacts
    written = write_triton_repo(tmp_path / "repo", onnx_path, plan)
    assert [p.name for p in written] == ["dagl-jpeg-trt", "dagl-jpeg-trt-tile", "dagl-jpeg-onnx", "dagl-jpeg-onnx-tile"]
    repo = tmp_path / "repo"
    assert (repo / "dagl-jpeg-trt/1/model-cc9.0.plan").read_bytes() == plan.read_bytes()
    assert (repo / "dagl-jpeg-onnx-tile/1/model.onnx").read_bytes() == onnx_path.read_bytes()
    trt = (repo / "dagl-jpeg-trt/config.pbtxt").read_text()
    assert 'platform: "tensorrt_plan"' in trt and "max_batch_size: 4" in trt  # the profile's max batch
    assert "dims: [ 1, -1, -1 ]" in trt
    assert 'instance_group [ { kind: KIND_GPU count: 1 profile: [ "0" ] } ]' in trt
    assert 'cc_model_filenames { key: "9.0" value: "model-cc9.0.plan" }' in trt
    tile = (repo / "dagl-jpeg-trt-tile/config.pbtxt").read_text()
    assert "dims: [ 1, 80, 80 ]" in tile  # the profile's tuned tile
    assert "dynamic_batching { max_queue_delay_microseconds: 100 preferred_batch_size: [ 4 ] }" in tile
    ort = (repo / "dagl-jpeg-onnx/config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in ort
    assert "instance_group [ { kind: KIND_CPU count: 1 }, { kind: KIND_GPU count: 1 } ]" in ort
    assert "dims: [ 1, 80, 80 ]" in (repo / "dagl-jpeg-onnx-tile/config.pbtxt").read_text()


def test_configs_parse_as_tritons_model_config(artefacts, tmp_path):
    """Triton's own schema (the protobuf tritonclient ships) reads every config back, field for field."""
    text_format = pytest.importorskip("google.protobuf.text_format")
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    repo = tmp_path / "repo"
    write_triton_repo(repo, *artefacts)
    trt = text_format.Parse((repo / "dagl-jpeg-trt-tile/config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert (trt.platform, trt.max_batch_size, list(trt.input[0].dims)) == ("tensorrt_plan", 4, [1, 80, 80])
    assert list(trt.instance_group[0].profile) == ["0"] and dict(trt.cc_model_filenames) == {"9.0": "model-cc9.0.plan"}
    assert trt.dynamic_batching.max_queue_delay_microseconds == 100
    ort = text_format.Parse((repo / "dagl-jpeg-onnx/config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert [g.kind for g in ort.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU,
                                                   model_config_pb2.ModelInstanceGroup.KIND_GPU]


def test_onnx_only_repository_uses_dagl_infer_defaults(artefacts, tmp_path):
    written = write_triton_repo(tmp_path / "repo", artefacts[0])
    assert [p.name for p in written] == ["dagl-jpeg-onnx", "dagl-jpeg-onnx-tile"]
    values = field_values((tmp_path / "repo/dagl-jpeg-onnx-tile/config.pbtxt").read_text())
    assert values["max_batch_size"] == "4"


def sidecar(**changes) -> EngineSidecar:
    base = EngineSidecar(task="jpeg", channels=1, precision="fp16", sigma=None, tensorrt_version="11.4.0",
                         gpu_name="NVIDIA H200", compute_capability="9.0", min_shape=PROFILE.min,
                         opt_shape=PROFILE.opt, max_shape=PROFILE.max)
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(("change", "message"), [
    (dict(max_batch_size=5), "max_batch_size 5 is outside the engine profile's batch 1..4"),
    (dict(dims=(1, 300, 300)), "height 300 is outside the engine profile's 16..256"),
    (dict(dims=(1, 80, 8)), "width 8 is outside the engine profile's 16..256"),
    (dict(dims=(3, -1, -1)), "do not start with the engine's 1 channel(s)"),
    (dict(platform="onnxruntime_onnx"), "is not tensorrt_plan"),
    (dict(instance_groups=(("KIND_GPU", ("1",)),)), "profile 0 only"),
    (dict(instance_groups=(("KIND_CPU", ()),)), "profile 0 only"),
    (dict(cc_model_filenames={"8.9": "model-cc9.0.plan"}), "compute capability 9.0"),
    (dict(preferred_batch_size=8), "preferred_batch_size 8"),
])
def test_every_plan_field_that_must_agree_is_checked(change, message, tmp_path):
    good = plan_configs(sidecar())[1]
    check_plan_config(good, sidecar(), tmp_path / "x.plan")  # the derived config agrees
    with pytest.raises(TritonConfigError) as refused:
        check_plan_config(dataclasses.replace(good, **change), sidecar(), tmp_path / "x.plan")
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_profile_without_batch_one_is_refused(tmp_path):
    engine = sidecar(min_shape=(2, 1, 16, 16))
    with pytest.raises(TritonConfigError, match="smallest batch is 2"):
        check_plan_config(plan_configs(engine)[0], engine, tmp_path / "x.plan")


@pytest.mark.parametrize(("graph", "change", "message"), [
    (dict(name="x"), {}, "the graph's tensors are ['x']"),
    (dict(elem=TensorProto.FLOAT16), {}, "element types"),
    (dict(batch=1), dict(max_batch_size=4), "dynamic batch axis"),
    ({}, dict(max_batch_size=0), "dynamic batch axis"),
    ({}, dict(dims=(3, -1, -1)), "dims channels 3, the graph takes 1"),
    ({}, dict(platform="tensorrt_plan"), "is not onnxruntime_onnx"),
])
def test_every_onnx_field_that_must_agree_is_checked(graph, change, message, tmp_path):
    path = write_graph(tmp_path / "g.onnx", **graph)
    facts = read_onnx_facts(path)
    config = dataclasses.replace(onnx_configs(read_onnx_facts(write_graph(tmp_path / "ok.onnx")), 80, 4)[0], **change)
    with pytest.raises(TritonConfigError) as refused:
        check_onnx_config(config, facts, path)
    assert message in str(refused.value)


@pytest.mark.parametrize(("options", "message"), [
    (dict(tile=300), "height 300 is outside the engine profile's 16..256"),
    (dict(max_batch=8), "max_batch_size 8 is outside the engine profile's batch 1..4"),
])
def test_a_disagreeing_request_writes_nothing(artefacts, tmp_path, options, message):
    repo = tmp_path / "repo"
    with pytest.raises(TritonConfigError, match=message):
        write_triton_repo(repo, *artefacts, **options)
    assert not repo.exists()
    with pytest.raises(TritonConfigError, match=message):  # the same refusal before an export's minutes
        check_repo_options(PROFILE, 1, options.get("tile"), options.get("max_batch"))
    check_repo_options(PROFILE, 1, None, None)


def test_existing_models_are_refused_and_others_kept(artefacts, tmp_path):
    repo = tmp_path / "repo"
    (repo / "theirs").mkdir(parents=True)
    write_triton_repo(repo, artefacts[0])
    with pytest.raises(TritonConfigError, match="holds model.s. dagl-jpeg-onnx, dagl-jpeg-onnx-tile already"):
        write_triton_repo(repo, artefacts[0])
    assert sorted(p.name for p in repo.iterdir()) == ["dagl-jpeg-onnx", "dagl-jpeg-onnx-tile", "theirs"]


def test_engine_of_another_task_is_refused(tmp_path):
    plan = write_plan(tmp_path / "x.plan")
    engine = dataclasses.replace(EngineSidecar.read(plan), task="denoise")
    engine.write(plan)
    with pytest.raises(TritonConfigError, match="is a denoise engine"):
        write_triton_repo(tmp_path / "repo", write_graph(tmp_path / "g.onnx"), plan)


def test_plan_is_named_by_its_compute_capability():
    assert plan_filename(sidecar(compute_capability="8.6")) == "model-cc8.6.plan"
