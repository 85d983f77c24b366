"""A Triton Inference Server model repository for the artefacts ``dagl-export`` built.

Triton refuses a request whose shape its model config does not allow, and a TensorRT plan refuses
one outside its optimisation profile, so a config that disagrees with its plan fails only under
traffic, with a message about shapes (Triton users' most common mistake). Here every config is
derived from the artefact it describes (the ONNX graph's interface, the engine sidecar's profile and
compute capability) and checked against it again before anything is written; a disagreement is one
line (:class:`TritonConfigError`) and the repository is left as it was.

Per artefact, two models (``dagl-<task>-onnx[-tile]``, ``dagl-<task>-trt[-tile]``):

* the whole-image model, ``dims: [C, -1, -1]``: any size the artefact takes, one request at a time
  in practice, since Triton's dynamic batcher only batches requests of one shape;
* the tile model, ``dims: [C, T, T]`` with ``dynamic_batching``: clients that send tiles of the
  engine's tile size get them batched across requests, up to ``max_batch_size``.

The ONNX models run on ONNX Runtime (``onnxruntime_onnx``) with a CPU and a GPU instance group;
the plan models on TensorRT (``tensorrt_plan``), GPU only, profile ``"0"``, the plan named per
compute capability in ``cc_model_filenames``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dagl.artefact import DEFAULT_BATCH, DEFAULT_TILE, INPUT_NAME, OUTPUT_NAME, EngineSidecar, Profile, artefact_stem
from dagl.artefact.onnx_graph import ONNX_FLOAT, OnnxFileError, graph_inputs, graph_outputs, load_onnx
from dagl.errors import UserInputError, output_error

#: How long the dynamic batcher holds a request for batch-mates (microseconds): a tile costs
#: milliseconds on a GPU, so a tenth of a millisecond costs nothing and fills batches under load.
DEFAULT_QUEUE_DELAY_US = 100
#: The one version directory Triton loads (``<model>/1/``).
VERSION = "1"


class TritonConfigError(UserInputError):
    """A model config that would not agree with the artefact it describes; nothing is written."""


@dataclass(frozen=True)
class ModelConfig:
    """The fields of one ``config.pbtxt`` dagl writes (a subset of Triton's ModelConfig)."""

    name: str
    platform: str
    max_batch_size: int
    dims: tuple[int, int, int]
    #: ``[(kind, profiles)]``: ``("KIND_GPU", ("0",))`` binds a plan's instance to profile 0.
    instance_groups: tuple[tuple[str, tuple[str, ...]], ...]
    #: Artefact file name inside ``<model>/1/`` (Triton's default_model_filename).
    filename: str
    cc_model_filenames: dict[str, str] = field(default_factory=dict)
    queue_delay_us: int | None = None
    preferred_batch_size: int | None = None

    def pbtxt(self) -> str:
        """The config in Triton's protobuf text format."""
        dims = ", ".join(str(d) for d in self.dims)
        lines = [f'name: "{self.name}"', f'platform: "{self.platform}"', f"max_batch_size: {self.max_batch_size}",
                 f'default_model_filename: "{self.filename}"']
        for role, tensor in (("input", INPUT_NAME), ("output", OUTPUT_NAME)):
            lines.append(f'{role} [ {{ name: "{tensor}" data_type: TYPE_FP32 dims: [ {dims} ] }} ]')
        groups = []
        for kind, profiles in self.instance_groups:
            quoted = ", ".join(f'"{p}"' for p in profiles)
            profile = f" profile: [ {quoted} ]" if profiles else ""
            groups.append(f"{{ kind: {kind} count: 1{profile} }}")
        lines.append(f"instance_group [ {', '.join(groups)} ]")
        for capability, filename in self.cc_model_filenames.items():
            lines.append(f'cc_model_filenames {{ key: "{capability}" value: "{filename}" }}')
        if self.queue_delay_us is not None:
            preferred = (f" preferred_batch_size: [ {self.preferred_batch_size} ]"
                         if self.preferred_batch_size else "")
            lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {self.queue_delay_us}{preferred} }}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class OnnxFacts:
    """What an ONNX file says about its interface: the only facts a config of it may use."""

    task: str
    channels: int
    sigma: int | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    elem_types: tuple[int, ...]
    #: (N, C, H, W) with ``-1`` for a dynamic axis.
    dims: tuple[int, ...]


def read_onnx_facts(path: Path) -> OnnxFacts:
    """The task and interface of an ONNX file ``dagl-export`` wrote; one line if it is not one."""
    try:
        model, declared = load_onnx(path)
    except OnnxFileError as exc:
        raise TritonConfigError(str(exc)) from None
    if "task" not in declared or "channels" not in declared:
        raise TritonConfigError(f"{path}: declares no dagl.task/dagl.channels (export it with dagl-export)")
    inputs, outputs = graph_inputs(model.graph), graph_outputs(model.graph)
    dims = tuple(dim if isinstance(dim, int) else -1 for dim in inputs[0].dims or ()) if inputs else ()
    sigma = declared.get("sigma")
    return OnnxFacts(task=str(declared["task"]), channels=int(declared["channels"]),
                     sigma=None if sigma is None else int(sigma),
                     inputs=tuple(v.name for v in inputs), outputs=tuple(v.name for v in outputs),
                     elem_types=tuple(v.elem_type for v in (*inputs, *outputs)), dims=dims)


def onnx_configs(facts: OnnxFacts, tile: int, max_batch: int, filename: str = "model.onnx") -> list[ModelConfig]:
    """The whole-image and tile models of one ONNX file, on ONNX Runtime (CPU and GPU instances)."""
    stem = f"{artefact_stem(facts.task, facts.sigma)}-onnx"
    groups = (("KIND_CPU", ()), ("KIND_GPU", ()))
    common = dict(platform="onnxruntime_onnx", max_batch_size=max_batch, instance_groups=groups, filename=filename)
    return [ModelConfig(name=stem, dims=(facts.channels, -1, -1), **common),
            ModelConfig(name=f"{stem}-tile", dims=(facts.channels, tile, tile), queue_delay_us=DEFAULT_QUEUE_DELAY_US,
                        **common)]


def plan_filename(sidecar: EngineSidecar) -> str:
    """``model-cc9.0.plan``: one plan per compute capability can sit in one version folder."""
    return f"model-cc{sidecar.compute_capability}.plan"


def plan_configs(sidecar: EngineSidecar, tile: int | None = None, max_batch: int | None = None) -> list[ModelConfig]:
    """The whole-image and tile models of one engine: dims and batch from its profile (the tuned tile by default)."""
    profile = sidecar.profile
    tile = profile.opt[2] if tile is None else tile
    max_batch = profile.max[0] if max_batch is None else max_batch
    stem = f"{artefact_stem(sidecar.task, sidecar.sigma)}-trt"
    filename = plan_filename(sidecar)
    common = dict(platform="tensorrt_plan", max_batch_size=max_batch, instance_groups=(("KIND_GPU", ("0",)),),
                  filename=filename, cc_model_filenames={sidecar.compute_capability: filename})
    return [ModelConfig(name=stem, dims=(sidecar.channels, -1, -1), **common),
            ModelConfig(name=f"{stem}-tile", dims=(sidecar.channels, tile, tile), queue_delay_us=DEFAULT_QUEUE_DELAY_US,
                        preferred_batch_size=min(profile.opt[0], max_batch), **common)]


def _refuse(config: ModelConfig, source: Path, message: str) -> TritonConfigError:
    return TritonConfigError(f"Triton model {config.name} disagrees with {source.name}: {message}")


def check_onnx_config(config: ModelConfig, facts: OnnxFacts, source: Path) -> None:
    """Every field of an ONNX Runtime config that must agree with the graph it serves."""
    if config.platform != "onnxruntime_onnx":
        raise _refuse(config, source, f"platform {config.platform!r} is not onnxruntime_onnx")
    if facts.inputs != (INPUT_NAME,) or facts.outputs != (OUTPUT_NAME,):
        raise _refuse(config, source, f"the graph's tensors are {list(facts.inputs)} -> {list(facts.outputs)}, "
                                      f"the config's {INPUT_NAME!r} -> {OUTPUT_NAME!r}")
    if any(t != ONNX_FLOAT for t in facts.elem_types):
        raise _refuse(config, source, f"the graph's I/O element types are {list(facts.elem_types)}, the config's "
                                      f"TYPE_FP32 (ONNX type {ONNX_FLOAT})")
    if len(facts.dims) != 4 or len(config.dims) != 3:
        raise _refuse(config, source, f"input shape {list(facts.dims)} is not (N, C, H, W)")
    if config.max_batch_size < 1 or facts.dims[0] not in (-1, config.max_batch_size):
        raise _refuse(config, source, f"max_batch_size {config.max_batch_size} needs a dynamic batch axis of at "
                                      f"least 1, the graph's is {facts.dims[0]}")
    if config.dims[0] != facts.channels or facts.dims[1] not in (-1, facts.channels):
        raise _refuse(config, source, f"dims channels {config.dims[0]}, the graph takes {facts.channels}")
    for axis, (want, have) in enumerate(zip(config.dims[1:], facts.dims[2:])):
        if want != -1 and (want < 1 or have not in (-1, want)):
            raise _refuse(config, source, f"dims {list(config.dims)} axis {axis + 1} is {want}, the graph's is {have}")


def profile_mismatch(dims: tuple[int, ...], max_batch: int, profile: Profile, channels: int) -> str | None:
    """Why ``dims`` (C, H, W) and ``max_batch`` do not fit an engine's profile, or ``None`` if they do."""
    if profile.min[0] != 1:
        return (f"its profile's smallest batch is {profile.min[0]}; Triton sends any batch from 1 to "
                f"max_batch_size (rebuild with a min batch of 1)")
    if not 1 <= max_batch <= profile.max[0]:
        return f"max_batch_size {max_batch} is outside the engine profile's batch 1..{profile.max[0]}"
    if len(dims) != 3 or dims[0] != channels:
        return f"dims {list(dims)} do not start with the engine's {channels} channel(s)"
    for axis, name in ((1, "height"), (2, "width")):
        low, high = profile.min[axis + 1], profile.max[axis + 1]
        if dims[axis] != -1 and not low <= dims[axis] <= high:
            return f"dims {list(dims)}: {name} {dims[axis]} is outside the engine profile's {low}..{high}"
    return None


def check_plan_config(config: ModelConfig, sidecar: EngineSidecar, source: Path) -> None:
    """Every field of a TensorRT config that must agree with the engine's profile and build target."""
    if config.platform != "tensorrt_plan":
        raise _refuse(config, source, f"platform {config.platform!r} is not tensorrt_plan")
    mismatch = profile_mismatch(config.dims, config.max_batch_size, sidecar.profile, sidecar.channels)
    if mismatch:
        raise _refuse(config, source, mismatch)
    if config.preferred_batch_size and not 1 <= config.preferred_batch_size <= config.max_batch_size:
        raise _refuse(config, source, f"preferred_batch_size {config.preferred_batch_size} is outside "
                                      f"1..max_batch_size {config.max_batch_size}")
    if [g for g in config.instance_groups if g != ("KIND_GPU", ("0",))]:
        raise _refuse(config, source, "a plan runs on a GPU with its profile 0 only (instance_group KIND_GPU, "
                                      "profile [\"0\"])")
    if config.cc_model_filenames != {sidecar.compute_capability: config.filename}:
        raise _refuse(config, source, f"cc_model_filenames {config.cc_model_filenames} does not map the engine's "
                                      f"compute capability {sidecar.compute_capability} to {config.filename}")


def check_repo_options(profile: Profile, channels: int, tile: int | None, max_batch: int | None) -> None:
    """Refuse, before an export's minutes, a tile or batch that the engine about to be built will not take."""
    dims = (channels, profile.opt[2] if tile is None else tile, profile.opt[3] if tile is None else tile)
    mismatch = profile_mismatch(dims, profile.max[0] if max_batch is None else max_batch, profile, channels)
    if mismatch:
        raise TritonConfigError(f"the Triton tile model would disagree with the engine: {mismatch}")


def _free_names(repo: Path, names: list[str]) -> None:
    taken = [name for name in names if (repo / name).exists()]
    if taken:
        raise TritonConfigError(f"{repo}: holds model(s) {', '.join(taken)} already; remove them or choose "
                                f"another --triton-repo")


def _place(source: Path, target: Path) -> None:
    """Hard-link (the whole-image and tile models share one file) or copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_triton_repo(repo: str | Path, onnx: str | Path, plan: str | Path | None = None, *,
                      tile: int | None = None, max_batch: int | None = None) -> list[Path]:
    """Write Triton models for ``onnx`` (and the engine ``plan`` with its sidecar) into ``repo``.

    ``tile`` (side of the tile model) and ``max_batch`` default to the engine profile's tuned tile
    and largest batch, or dagl-infer's defaults without an engine. Every config is checked against
    its artefact first; a model folder already in ``repo`` is refused, others there are kept.
    Each model appears whole (built in a temporary folder, then renamed). Returns the model folders.
    """
    repo, onnx = Path(repo), Path(onnx)
    facts = read_onnx_facts(onnx)
    sidecar = EngineSidecar.read(Path(plan)) if plan is not None else None
    if sidecar is not None and sidecar.task != facts.task:
        raise TritonConfigError(f"{Path(plan).name} is a {sidecar.task} engine, {onnx.name} a {facts.task} graph")
    models: list[tuple[ModelConfig, Path]] = []
    if sidecar is not None:
        for config in plan_configs(sidecar, tile, max_batch):
            check_plan_config(config, sidecar, Path(plan))
            models.append((config, Path(plan)))
        tile = tile or sidecar.profile.opt[2]
        max_batch = max_batch or sidecar.profile.max[0]
    for config in onnx_configs(facts, tile or DEFAULT_TILE, max_batch or DEFAULT_BATCH):
        check_onnx_config(config, facts, onnx)
        models.append((config, onnx))
    names = [config.name for config, _ in models]
    _free_names(repo, names)
    try:
        repo.mkdir(parents=True, exist_ok=True)
        written = []
        for config, source in models:
            with tempfile.TemporaryDirectory(dir=repo, prefix=f".{config.name}-") as tmp:
                folder = Path(tmp) / config.name
                (folder / VERSION).mkdir(parents=True)
                _place(source, folder / VERSION / config.filename)
                (folder / "config.pbtxt").write_text(config.pbtxt())
                folder.rename(repo / config.name)
            written.append(repo / config.name)
    except OSError as exc:
        raise output_error(repo, exc, what="cannot write the Triton model repository") from None
    return written
