"""A fake ``tensorrt`` with TensorRT 11's Python surface, built only from ``data/tensorrt11_names.txt``.

CI has neither TensorRT nor a GPU, yet the engine build and load paths must run there, and must
break the moment our code reaches for a name that TensorRT 11 does not have (the weak-typing API
removed in 11.0: ``BuilderFlag.FP16``, ``ILayer.precision``, ``set_output_type``, ...). So:

* the module's names and every enum's members come from the committed list, nothing else;
* each fake class stands for one TensorRT class and may only define public names listed as
  ``Owner.member`` (:func:`unlisted_names` finds any that are not; a test keeps it empty);
* reading or setting any other public attribute raises ``AttributeError``, as the real bindings do.

The behaviour is the smallest one that makes the build checkable: the parser reads the real ONNX
graph's inputs and outputs with their dtypes (strongly typed: the graph decides), the builder
refuses a network whose dynamic inputs no profile covers, and the "engine" it serialises computes
``1 - x`` on the buffers bound by address, so a runner that binds them wrong gets wrong numbers.
"""

from __future__ import annotations

import ctypes
import enum
import json
import types
from pathlib import Path

import numpy as np

NAMES_FILE = Path(__file__).resolve().parent / "data" / "tensorrt11_names.txt"
VERSION = "11.4.0.106"  # the bindings wheel the list was read from
#: The one GPU the fake runs on (name, compute capability), as the ``fake_trt`` fixture pins it.
GPU_NAME, GPU_CC = "Fake H100 80GB", "9.0"
_PLAN_MAGIC = b"FAKE-TRT11-PLAN\n"


def read_names(path: Path = NAMES_FILE) -> tuple[frozenset[str], frozenset[str]]:
    """(names TensorRT 11 has, names it lacks), from the committed list."""
    present, absent = set(), set()
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name = line.split("\t", 1)[0].strip()
        (absent if name.startswith("!") else present).add(name.lstrip("!"))
    return frozenset(present), frozenset(absent)


PRESENT, ABSENT = read_names()


def _members(owner: str) -> list[str]:
    return sorted(n.split(".", 1)[1] for n in PRESENT if n.startswith(owner + "."))


class _Strict:
    """Base of the fake classes: public attributes must be listed as ``<_owner>.<name>``."""

    _owner = ""

    def __getattribute__(self, name: str):
        if not name.startswith("_"):
            owner = type(self)._owner
            if f"{owner}.{name}" not in PRESENT:
                raise AttributeError(f"'tensorrt.{owner}' object has no attribute '{name}' "
                                     f"(not in TensorRT 11's name list)")
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value) -> None:
        if not name.startswith("_") and f"{type(self)._owner}.{name}" not in PRESENT:
            raise AttributeError(f"'tensorrt.{type(self)._owner}' object has no attribute '{name}' "
                                 f"(not in TensorRT 11's name list)")
        object.__setattr__(self, name, value)


def _enum(owner: str) -> type[enum.IntEnum]:
    """An enum with exactly the members the list gives ``owner``."""
    return enum.IntEnum(owner, {name: index for index, name in enumerate(_members(owner))})


class _DataType(enum.IntEnum):
    float32 = 0
    float16 = 1
    int32 = 3
    int64 = 4


_ONNX_DTYPES = {1: _DataType.float32, 10: _DataType.float16, 6: _DataType.int32, 7: _DataType.int64}
_NUMPY = {_DataType.float32: np.float32, _DataType.float16: np.float16}


class ITensor(_Strict):
    _owner = "ITensor"

    def __init__(self, name: str, shape: tuple[int, ...], dtype: _DataType) -> None:
        self._name, self._shape, self._dtype = name, shape, dtype

    name = property(lambda self: self._name)
    shape = property(lambda self: self._shape)
    dtype = property(lambda self: self._dtype)


class INetworkDefinition(_Strict):
    _owner = "INetworkDefinition"

    def __init__(self, flags: int) -> None:
        self._flags, self._inputs, self._outputs, self._onnx = flags, [], [], None

    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))

    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]

    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]

    def get_flag(self, flag) -> bool:
        return bool(self._flags & (1 << int(flag)))


class OnnxParser(_Strict):
    _owner = "OnnxParser"

    def __init__(self, network: INetworkDefinition, logger) -> None:
        self._network, self._errors = network, []

    num_errors = property(lambda self: len(self._errors))

    def get_error(self, index: int) -> str:
        return self._errors[index]

    def parse_from_file(self, path: str) -> bool:
        import onnx

        try:
            model = onnx.load(path, load_external_data=False)
        except Exception as exc:  # the real parser reports any unreadable file as a parse error
            self._errors.append(f"{path}: {exc}")
            return False

        def tensors(values):
            return [ITensor(v.name, tuple(d.dim_value if d.HasField("dim_value") else -1
                                          for d in v.type.tensor_type.shape.dim),
                            _ONNX_DTYPES[v.type.tensor_type.elem_type]) for v in values]

        self._network._inputs = tensors(model.graph.input)
        self._network._outputs = tensors(model.graph.output)
        self._network._onnx = Path(path).name
        return True


class IOptimizationProfile(_Strict):
    _owner = "IOptimizationProfile"

    def __init__(self) -> None:
        self._shapes: dict[str, tuple] = {}

    def set_shape(self, name: str, min, opt, max) -> None:  # noqa: A002 - TensorRT's keyword names
        self._shapes[name] = (tuple(min), tuple(opt), tuple(max))

    def get_shape(self, name: str) -> list[tuple]:
        return list(self._shapes[name])


class IHostMemory(_Strict):
    _owner = "IHostMemory"

    def __init__(self, data: bytes) -> None:
        self._data = data

    nbytes = property(lambda self: len(self._data))

    def __bytes__(self) -> bytes:
        return self._data


class ITimingCache(_Strict):
    _owner = "ITimingCache"

    def __init__(self, data: bytes) -> None:
        self._data = data

    def serialize(self) -> IHostMemory:
        return IHostMemory(self._data)

    def combine(self, other: ITimingCache, ignore_mismatch: bool) -> bool:
        self._data += other._data
        return True


class IBuilderConfig(_Strict):
    _owner = "IBuilderConfig"

    def __init__(self) -> None:
        self._pools: dict = {}
        self._profiles: list[IOptimizationProfile] = []
        self._flags = {BuilderFlag.TF32}  # TF32 is on by default in TensorRT 11 too
        self._cache: ITimingCache | None = None

    def set_memory_pool_limit(self, pool, size: int) -> None:
        self._pools[pool] = size

    def get_memory_pool_limit(self, pool) -> int:
        return self._pools.get(pool, 0)

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def create_timing_cache(self, serialized: bytes) -> ITimingCache:
        return ITimingCache(bytes(serialized))

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        self._cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self._cache

    def set_flag(self, flag) -> None:
        self._flags.add(BuilderFlag(flag))

    def clear_flag(self, flag) -> None:
        self._flags.discard(BuilderFlag(flag))

    def get_flag(self, flag) -> bool:
        return BuilderFlag(flag) in self._flags


class Builder(_Strict):
    _owner = "Builder"

    def __init__(self, logger) -> None:
        self._logger = logger

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        known = sum(1 << int(flag) for flag in NetworkDefinitionCreationFlag)
        if flags & ~known:
            raise TypeError(f"unknown network creation flag bits {flags & ~known:#x}")
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> IHostMemory | None:
        """The plan, or ``None`` (as TensorRT returns) when a dynamic input has no profile."""
        if not config._profiles:
            return None
        for tensor in network._inputs:
            if -1 in tensor.shape and not all(p._shapes.get(tensor.name) for p in config._profiles):
                return None
        if config._cache is not None:
            config._cache._data += b"+tuned"
        plan = {"onnx": network._onnx, "flags": sorted(f.name for f in config._flags),
                "io": [[t.name, "input", t.dtype.name] for t in network._inputs]
                + [[t.name, "output", t.dtype.name] for t in network._outputs],
                "profiles": [{k: list(map(list, v)) for k, v in p._shapes.items()} for p in config._profiles]}
        return IHostMemory(_PLAN_MAGIC + json.dumps(plan).encode())


def read_plan(data: bytes) -> dict:
    """What a fake plan says about its build (for assertions)."""
    assert data.startswith(_PLAN_MAGIC), "not a fake TensorRT plan"
    return json.loads(data[len(_PLAN_MAGIC):])


class IExecutionContext(_Strict):
    _owner = "IExecutionContext"

    def __init__(self, engine: ICudaEngine) -> None:
        self._engine, self._shapes, self._addresses = engine, {}, {}

    def set_input_shape(self, name: str, shape) -> bool:
        low, _, high = self._engine.get_tensor_profile_shape(name, 0)
        if not all(lo <= s <= hi for s, lo, hi in zip(shape, low, high)):
            return False
        self._shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return next(iter(self._shapes.values()))  # image-to-image: outputs have the input's shape

    def set_tensor_address(self, name: str, address: int) -> bool:
        self._addresses[name] = int(address)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        """``output = 1 - input`` read from and written to the bound addresses."""
        io = self._engine._io
        inputs = [n for n, (mode, _) in io.items() if mode == "input"]
        outputs = [n for n, (mode, _) in io.items() if mode == "output"]
        if set(self._addresses) != set(io) or not self._shapes:
            return False
        shape = self.get_tensor_shape(outputs[0])
        count = int(np.prod(shape))

        def view(name: str) -> np.ndarray:
            dtype = _NUMPY[_DataType[io[name][1]]]
            buffer = (ctypes.c_char * (count * np.dtype(dtype).itemsize)).from_address(self._addresses[name])
            return np.frombuffer(buffer, dtype=dtype).reshape(shape)

        view(outputs[0])[...] = 1 - view(inputs[0])
        return True


class ICudaEngine(_Strict):
    _owner = "ICudaEngine"

    def __init__(self, plan: dict) -> None:
        self._plan = plan
        self._io = {name: (mode, dtype) for name, mode, dtype in plan["io"]}

    num_io_tensors = property(lambda self: len(self._io))
    num_optimization_profiles = property(lambda self: len(self._plan["profiles"]))

    def get_tensor_name(self, index: int) -> str:
        return list(self._io)[index]

    def get_tensor_mode(self, name: str):
        return TensorIOMode.INPUT if self._io[name][0] == "input" else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str):
        return _DataType[self._io[name][1]]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple]:
        return [tuple(s) for s in self._plan["profiles"][profile_index][name]]

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)


class Runtime(_Strict):
    _owner = "Runtime"

    def __init__(self, logger) -> None:
        self._logger = logger

    def deserialize_cuda_engine(self, serialized: bytes) -> ICudaEngine | None:
        data = bytes(serialized)
        return ICudaEngine(read_plan(data)) if data.startswith(_PLAN_MAGIC) else None


class ILogger(_Strict):
    _owner = "ILogger"


class Logger(ILogger):
    """``trt.Logger(trt.Logger.WARNING)``; the severities are the listed ``Logger.*`` members."""

    _owner = "Logger"

    def __init__(self, min_severity=None) -> None:
        self._min_severity = min_severity


for _index, _severity in enumerate(_members("Logger")):
    setattr(Logger, _severity, _index)

NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag")
BuilderFlag = _enum("BuilderFlag")
MemoryPoolType = _enum("MemoryPoolType")
TensorIOMode = _enum("TensorIOMode")

_CLASSES = (ITensor, INetworkDefinition, OnnxParser, IOptimizationProfile, IHostMemory, ITimingCache,
            IBuilderConfig, Builder, IExecutionContext, ICudaEngine, Runtime, ILogger, Logger)


def unlisted_names() -> list[str]:
    """Public names the fake defines that the TensorRT 11 list lacks (must stay empty)."""
    found = []
    for cls in _CLASSES:
        for name in vars(cls):
            if not name.startswith("_") and f"{cls._owner}.{name}" not in PRESENT:
                found.append(f"{cls._owner}.{name}")
        if cls.__name__ not in PRESENT:
            found.append(cls.__name__)
    return found


class _StrictModule(types.ModuleType):
    """Module-level names outside the list raise, like ``AttributeError: module 'tensorrt' has no ...``."""

    def __getattribute__(self, name: str):
        if not name.startswith("_") and name not in PRESENT:
            raise AttributeError(f"module 'tensorrt' has no attribute '{name}' (not in TensorRT 11's name list)")
        return super().__getattribute__(name)


def make_module(version: str = VERSION) -> types.ModuleType:
    """A fresh fake ``tensorrt`` module reporting ``version``."""
    module = _StrictModule("tensorrt")
    exported = {cls.__name__: cls for cls in _CLASSES}
    exported.update(NetworkDefinitionCreationFlag=NetworkDefinitionCreationFlag, BuilderFlag=BuilderFlag,
                    MemoryPoolType=MemoryPoolType, TensorIOMode=TensorIOMode,
                    float32=_DataType.float32, float16=_DataType.float16, int32=_DataType.int32,
                    int64=_DataType.int64, __version__=version)
    for name, value in exported.items():
        assert name.startswith("_") or name in PRESENT, name
        setattr(module, name, value)
    return module
