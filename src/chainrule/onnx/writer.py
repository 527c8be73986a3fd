"""Writing a chainrule model as an ONNX file (part of :mod:`chainrule.onnx`, level 8).

A :class:`~chainrule.layers.Sequential` becomes one ONNX graph, layer by layer:

    Dense l        ->  Gemm(a[l-1], W[l], b[l], transB=1) = z[l]     (z[l] = W[l] a[l-1] + b[l])
    phi[l]         ->  its operator in chainrule.onnx.ACTIVATIONS    (a[l] = phi[l](z[l]))
    Dropout        ->  nothing (the identity at inference)

``W[l]`` is stored as ``(n[l], n[l-1])`` exactly as chainrule (and PyTorch)
hold it, hence ``transB=1``. The input is ``(batch, n[0])`` with a symbolic
batch axis, so any number of rows runs; the output is ``(batch, n[L])``.
"""

from __future__ import annotations

import json
import os
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from chainrule import backend
from chainrule.errors import ConfigError, SerializationError, ShapeError
from chainrule.fileio import write_atomic
from chainrule.layers import Activation, Dense, Dropout, Module, Sequential
from chainrule.onnx.activations import ACTIVATIONS, DOMAIN, float64_function

OPSET = 20  # ONNX operator set of every export: Gelu needs 20; onnxruntime >= 1.17 runs it
BATCH = "batch"  # the name of the symbolic batch axis
ELEM_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}
MAX_PROTO_BYTES = 2**31 - 1  # protobuf's limit on one message: larger weights need external data


def _version() -> str:
    try:
        return importlib_metadata.version("chainrule")
    except importlib_metadata.PackageNotFoundError:  # running from a source tree
        return "unknown"


class _Graph:
    """Nodes, weights and the running tensor name while a model is written out."""

    def __init__(self, input_name: str, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self.functions: dict[str, onnx.FunctionProto] = {}
        self.current = input_name
        self.names = {input_name}
        self.n = 0  # the notes' layer number l of the last Dense layer
        self.graph = onnx.GraphProto()

    def fresh(self, name: str, fallback: str) -> str:
        """``name`` (``z[2]``, ``a[2]``) unless taken, then ``fallback``."""
        name = name if name not in self.names else fallback
        self.names.add(name)
        return name

    def dense(self, i: int, layer: Dense) -> None:
        self.n += 1
        l = self.n  # noqa: E741 (the notes' layer index)
        inputs = [self.current]
        for param, symbol in ((layer.W, "W"), (layer.b, "b")):
            if param is not None:
                inputs.append(self.fresh(f"{symbol}[{l}]", f"layers[{i}].{symbol}"))
                values = np.ascontiguousarray(backend.to_numpy(param.data), dtype=self.dtype)
                self.weights.append(numpy_helper.from_array(values, inputs[-1]))
        z = self.fresh(f"z[{l}]", f"layers[{i}].z")
        self.nodes.append(helper.make_node("Gemm", inputs, [z], name=f"layers[{i}].Gemm", transB=1))
        self.current = z
        self.activation(i, layer.activation, f"a[{l}]")

    def activation(self, i: int, name: str, out: str) -> None:
        if name not in ACTIVATIONS:
            raise ConfigError(
                f"export: layers[{i}] uses activation {name!r}, which has no ONNX form in "
                f"chainrule.onnx.ACTIVATIONS; known: {sorted(ACTIVATIONS)}."
            )
        act = ACTIVATIONS[name]
        if act is None:  # identity
            return
        domain = ""
        if act.float64_function and self.dtype == np.float64:
            domain = DOMAIN
            self.functions[act.op] = float64_function(act.op)
        a = self.fresh(out, f"layers[{i}].a")
        self.nodes.append(
            helper.make_node(
                act.op, [self.current], [a], name=f"layers[{i}].{act.op}", domain=domain, **act.attributes
            )
        )
        self.current = a


def _layers(model: Module) -> list[Module]:
    if isinstance(model, Dense):
        return [model]
    if not isinstance(model, Sequential):
        raise ConfigError(f"export: expected a Sequential or a Dense layer, got {type(model).__name__}.")
    return list(model.layers)


def _dtype(model: Module, dtype: Any) -> np.dtype:
    params = model.parameters()
    try:
        chosen = np.dtype(dtype if dtype is not None else params[0].dtype if params else np.float32)
    except TypeError:
        chosen = None
    if chosen not in ELEM_TYPES:
        raise ConfigError(f"export: dtype must be float32 or float64, got {dtype!r}.")
    return np.dtype(chosen)


def _graph(layers: list[Module], dtype: np.dtype, input_name: str, output_name: str) -> _Graph:
    """The nodes and weights of ``layers``, checked to chain: ``W[l]`` has ``n[l-1]`` columns."""
    denses = [layer for layer in layers if isinstance(layer, Dense)]
    if not denses:
        raise ConfigError("export: the model has no Dense layer, so its input size n[0] is unknown.")
    g = _Graph(input_name, dtype)
    g.names.add(output_name)  # no inner tensor takes the output's name
    n_prev = denses[0].in_features
    for i, layer in enumerate(layers):
        if isinstance(layer, Dense):
            if layer.in_features != n_prev:
                raise ShapeError(
                    f"export: layers[{i}] {layer!r} does not chain: a[{g.n}] has {n_prev} entries."
                )
            g.dense(i, layer)
            n_prev = layer.out_features
        elif isinstance(layer, Activation):
            g.activation(i, layer.activation, f"a[{g.n}]")
        elif not isinstance(layer, Dropout):
            raise ConfigError(
                f"export: layers[{i}] is a {type(layer).__name__}, which has no ONNX form; "
                f"export takes Dense, Activation and Dropout layers."
            )
    g.nodes[-1].output[0] = output_name  # a Dense layer always wrote a node
    elem = ELEM_TYPES[dtype]
    g.graph = helper.make_graph(
        g.nodes,
        "chainrule.Sequential",
        [helper.make_tensor_value_info(input_name, elem, [BATCH, denses[0].in_features])],
        [helper.make_tensor_value_info(output_name, elem, [BATCH, n_prev])],
        g.weights,
        doc_string="z[l] = W[l] a[l-1] + b[l], a[l] = phi[l](z[l]); W[l] of shape (n[l], n[l-1]).",
    )
    return g


def to_onnx(
    model: Module,
    dtype: Any = None,
    input_name: str = "input",
    output_name: str = "output",
    metadata: dict[str, Any] | None = None,
) -> onnx.ModelProto:
    """The ONNX model of ``model`` (opset :data:`OPSET`), checked by ``onnx.checker`` (full check).

    Parameters
    ----------
    model : Sequential or Dense
        Dense, Activation and Dropout layers (Dropout is left out: the identity at inference).
    dtype : float32 or float64, optional
        The dtype of the weights and the input; the model's own by default.
    input_name, output_name : str
        Names of the graph's input ``(batch, n[0])`` and output ``(batch, n[L])``.
    metadata : dict, optional
        JSON-serialisable training metadata (loss, data, classes, ...), stored
        as the model property ``chainrule.metadata`` beside ``chainrule.architecture``.

    Shapes
    ------
    input ``(batch, n[0])`` -> output ``(batch, n[L])``, ``batch`` symbolic.

    Raises
    ------
    ConfigError
        A layer or activation without an ONNX form, a bad dtype, names that clash.
    SerializationError
        If the model is too large for one ONNX file (2 GiB).
    """
    layers = _layers(model)
    dtype = _dtype(model, dtype)
    if not input_name or not output_name or input_name == output_name:
        raise ConfigError(
            f"export: input and output names must be two different non-empty strings, "
            f"got {input_name!r} and {output_name!r}."
        )
    if sum(p.data.size for p in model.parameters()) * dtype.itemsize > MAX_PROTO_BYTES:
        raise SerializationError("export: the weights exceed 2 GiB, more than one ONNX file holds.")
    g = _graph(layers, dtype, input_name, output_name)
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid(DOMAIN, 1)] if g.functions else [])
    proto = helper.make_model(
        g.graph,
        opset_imports=opsets,
        functions=list(g.functions.values()),
        producer_name="chainrule",
        producer_version=_version(),
        doc_string=repr(model),
    )
    proto.ir_version = helper.find_min_ir_version_for(opsets[:1])  # the oldest runtimes that can read it
    config = model.config() if isinstance(model, Sequential) else Sequential(model).config()
    helper.set_model_props(
        proto,
        {
            "chainrule.architecture": json.dumps(config),
            "chainrule.metadata": json.dumps(metadata or {}),
            "chainrule.version": _version(),
        },
    )
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(
    model: Module,
    path: str | os.PathLike[str],
    dtype: Any = None,
    input_name: str = "input",
    output_name: str = "output",
    metadata: dict[str, Any] | None = None,
) -> onnx.ModelProto:
    """Write ``model`` to ``path`` as ONNX (see :func:`to_onnx`), atomically; returns the model written.

    Examples
    --------
    >>> import tempfile, os, numpy as np, onnxruntime as ort
    >>> from chainrule.layers import mlp
    >>> from chainrule.onnx import export
    >>> model = mlp([4, 8, 3], "relu", "softmax", seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> _ = export(model, path)
    >>> session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    >>> session.run(None, {"input": np.ones((2, 4), np.float32)})[0].shape
    (2, 3)
    """
    proto = to_onnx(model, dtype, input_name, output_name, metadata)
    write_atomic(Path(path), proto.SerializeToString())
    return proto


__all__ = ["BATCH", "OPSET", "export", "to_onnx"]
