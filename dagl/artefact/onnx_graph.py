"""An ONNX file as the artefact format reads it: its declared ``dagl.*`` facts and its graph's interface.

Export's TensorRT check, the Triton repository writer and the runners that take an ``.onnx`` all judge
the same facts (which tensors a graph takes and returns, of what element type and shape); one reader
keeps them from drifting apart. ``onnx`` is imported when a file is read, not when this module is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagl.errors import UserInputError

from .format import declared_metadata

#: ``onnx.TensorProto.FLOAT``: every graph dagl-export writes (FP16 ones too) takes and returns float32.
ONNX_FLOAT = 1


class OnnxFileError(UserInputError):
    """The file is not a readable ONNX model."""


@dataclass(frozen=True)
class GraphValue:
    """One graph input or output."""

    name: str
    #: ``onnx.TensorProto`` element type (``ONNX_FLOAT`` for float32).
    elem_type: int
    #: ``None`` when the value has no shape (unknown rank); else per axis its size (an int), its name
    #: (a str, a dynamic axis) or ``None`` (neither fixed nor named).
    dims: tuple[int | str | None, ...] | None

    def shown_dims(self) -> list[int | str]:
        """The dims as messages show them: ``?`` for an axis that is neither fixed nor named."""
        return ["?" if dim is None else dim for dim in self.dims or ()]


def _value(value) -> GraphValue:
    tensor = value.type.tensor_type
    dims = None if not tensor.HasField("shape") else tuple(
        dim.dim_value if dim.HasField("dim_value") else (dim.dim_param if dim.HasField("dim_param") else None)
        for dim in tensor.shape.dim)
    return GraphValue(value.name, tensor.elem_type, dims)


def graph_inputs(graph) -> list[GraphValue]:
    """The inputs a caller feeds: the graph's inputs less its initialisers (older exports list weights as inputs)."""
    initialisers = {init.name for init in graph.initializer}
    return [_value(value) for value in graph.input if value.name not in initialisers]


def graph_outputs(graph) -> list[GraphValue]:
    """The graph's outputs."""
    return [_value(value) for value in graph.output]


def load_onnx(path: str | Path):
    """``(model, declared)``: the ONNX model at ``path`` without external data (a graph from elsewhere must
    not make us read other files) and its validated ``dagl.*`` metadata; one line if it cannot be read."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf errors have no common base class
        raise OnnxFileError(f"{path}: not a readable ONNX file ({exc.__class__.__name__})") from None
    return model, declared_metadata({prop.key: prop.value for prop in model.metadata_props}, path)
