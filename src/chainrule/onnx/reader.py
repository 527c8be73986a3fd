"""Reading an ONNX file without trusting it (part of :mod:`chainrule.onnx`, level 8).

An ONNX file is a protobuf message: it parses from bytes without running
anything, but it can claim anything. So before any weight becomes a NumPy
array its declared shape is checked against the bytes it really holds and
against a limit on the number of values (:data:`MAX_PARAMETERS`): a tensor
that claims a 10^9-unit layer in a few bytes is refused with one line, and
nothing of that size is allocated. Files larger than protobuf's 2 GiB limit
are refused before they are read.

Weights kept in an external file (PyTorch's default exporter writes those of
1 KiB and more to ``model.onnx.data``) are read only from a file inside the
model's own folder (no absolute path, no ``..``, no link leading out), and
only the declared ``length`` bytes at ``offset``, after checking that they
are the tensor's size and lie within the file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, numpy_helper

from chainrule import limits
from chainrule.errors import SerializationError

MAX_FILE_BYTES = 2**31 - 1  # protobuf cannot parse a larger message
MAX_PARAMETERS = limits.LIMITS["max_parameters"].default  # weights and biases, all layers together
FLOAT_TYPES: dict[int, np.dtype[Any]] = {
    int(TensorProto.FLOAT): np.dtype(np.float32),
    int(TensorProto.DOUBLE): np.dtype(np.float64),
}


def elem_name(elem_type: int) -> str:
    """``TensorProto.FLOAT`` -> ``'float32'``; other ONNX types by their ONNX name."""
    if elem_type in FLOAT_TYPES:
        return str(FLOAT_TYPES[elem_type])
    return (
        str(TensorProto.DataType.Name(elem_type)).lower()
        if elem_type in TensorProto.DataType.values()
        else "?"
    )


def read(path: str | os.PathLike[str], max_bytes: int = MAX_FILE_BYTES) -> onnx.ModelProto:
    """The ONNX model in ``path``, parsed but not trusted (see :class:`Constants` for the weights).

    Raises
    ------
    SerializationError
        A missing, empty, too large or truncated file, or one that is not ONNX.
    """
    p = Path(path)
    if not p.is_file():
        raise SerializationError(f"{p}: no such ONNX file.")
    size = p.stat().st_size
    if size == 0:
        raise SerializationError(f"{p}: the file is empty, not an ONNX model.")
    if size > max_bytes:
        raise SerializationError(
            f"{p}: {size} bytes, more than the {max_bytes} an ONNX file without external data can hold."
        )
    data = p.read_bytes()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise SerializationError(
            f"{p}: not an ONNX model: protobuf cannot parse its {size} bytes (truncated, or another "
            f"format): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}."
        ) from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise SerializationError(
            f"{p}: not an ONNX model: it parses, but has no IR version, opset or graph "
            f"(another format, or a truncated file)."
        )
    return model


def opset(model: onnx.ModelProto) -> int:
    """The version of the default (``ai.onnx``) operator set the model imports."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


class Constants:
    """The weights of a graph by name: initializers and ``Constant`` nodes, checked before conversion.

    ``count(name)`` reads only a tensor's declared dims; ``array(name)`` first
    checks that the dims agree with the bytes present and that the running
    total stays within ``max_parameters``, and only then makes the array.
    """

    def __init__(
        self,
        graph: onnx.GraphProto,
        where: str,
        max_parameters: int | None = None,
        folder: str | os.PathLike[str] | None = None,
    ) -> None:
        self.where = where
        self.folder = None if folder is None else Path(folder)
        # chainrule's limit on parameters (chainrule.limits), unless the caller gives one
        self.max_parameters = limits.get("max_parameters") if max_parameters is None else int(max_parameters)
        self.tensors: dict[str, tuple[TensorProto, str]] = {
            t.name: (t, f"initializer {t.name!r}") for t in graph.initializer
        }
        for pos, node in enumerate(graph.node):
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.output) == 1:
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    self.tensors[node.output[0]] = (value, f"graph.node[{pos}] (Constant {node.name!r})")
        self.total = 0

    def __repr__(self) -> str:
        return (
            f"Constants({len(self.tensors)} tensors, {self.total} values read, limit {self.max_parameters})"
        )

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def shape(self, name: str) -> tuple[int, ...]:
        """Declared dims (nothing read)."""
        return tuple(int(d) for d in self.tensors[name][0].dims)

    def array(self, name: str) -> np.ndarray:
        """The tensor as a float32/float64 array, after its claims are checked.

        Raises
        ------
        SerializationError
            External data, a non-float type, negative dims, more values than the
            limit, or dims that disagree with the bytes present.
        """
        tensor, who = self.tensors[name]
        who = f"{self.where}: {who}"
        dims = self.shape(name)
        if tensor.data_type not in FLOAT_TYPES:
            raise SerializationError(
                f"{who} has type {elem_name(tensor.data_type)}; chainrule takes float32 or float64 weights."
            )
        if any(d < 0 for d in dims):
            raise SerializationError(f"{who} has negative dims {dims}.")
        count = math.prod(dims)
        if self.total + count > self.max_parameters:
            raise SerializationError(
                f"{who} claims shape {dims} = {count:,} values, which would bring the model to "
                f"{self.total + count:,}, more than the limit of {self.max_parameters:,} "
                f"(max_parameters); refused before allocating. {limits.how_to_raise('max_parameters')}"
            )
        dtype = FLOAT_TYPES[tensor.data_type].newbyteorder("<")  # ONNX stores raw data little-endian
        if tensor.data_location == TensorProto.EXTERNAL:
            raw = self._external(tensor, who, count * dtype.itemsize)
            self.total += count
            return np.frombuffer(raw, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))
        held = len(tensor.raw_data) if tensor.raw_data else len(_typed_values(tensor)) * dtype.itemsize
        if held != count * dtype.itemsize:
            raise SerializationError(
                f"{who} claims shape {dims} ({count * dtype.itemsize:,} bytes) but holds {held:,} bytes "
                f"(a truncated or altered file)."
            )
        self.total += count
        return np.array(numpy_helper.to_array(tensor), dtype=dtype.newbyteorder("="))

    def _external(self, tensor: TensorProto, who: str, nbytes: int) -> bytes:
        """The ``nbytes`` of an external tensor, from a file in the model's folder, once checked."""
        if self.folder is None:
            raise SerializationError(
                f"{who} keeps its values in an external file; read the model with load(path), "
                f"which knows its folder."
            )
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        folder = self.folder.resolve()
        path = (folder / location).resolve()
        if (
            not location
            or Path(location).is_absolute()
            or ".." in Path(location).parts
            or not path.is_relative_to(folder)
        ):
            raise SerializationError(
                f"{who}: external data {location!r} is not a file inside the model's folder."
            )
        if not path.is_file():
            raise SerializationError(
                f"{who}: its external data file {location!r} is missing beside the model."
            )
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", nbytes))
        except ValueError:
            raise SerializationError(
                f"{who}: external data offset/length are not integers: {info}."
            ) from None
        size = path.stat().st_size
        if length != nbytes or offset < 0 or offset + length > size:
            raise SerializationError(
                f"{who} needs {nbytes:,} bytes, but its external data claims {length:,} bytes at offset "
                f"{offset:,} of {location!r}, which has {size:,} (a truncated or altered file)."
            )
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read(length)


def _typed_values(tensor: TensorProto) -> Any:
    return tensor.float_data if tensor.data_type == TensorProto.FLOAT else tensor.double_data


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values (strings decoded)."""
    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        out[a.name] = value.decode() if isinstance(value, bytes) else value
    return out


__all__ = ["MAX_FILE_BYTES", "MAX_PARAMETERS", "Constants", "attributes", "opset", "read"]
