"""Reading an ONNX MLP into a chainrule model (part of :mod:`chainrule.onnx`, level 8).

The graph is walked from its input to the chosen output, one node at a time,
and each node must continue a chain of dense layers:

    Gemm(a, W, b)              ->  Dense: W[l] = W (transB=1) or W^T, times alpha; b[l] = beta b
    MatMul(a, W) [+ Add(., b)] ->  Dense: W[l] = W^T, b[l] = b
    Relu, Sigmoid, Tanh, ...   ->  phi[l] of that Dense (chainrule.onnx.ACTIVATIONS)
    Identity, Dropout, Cast    ->  nothing (no-ops at inference; Cast only to the model's dtype)
    Flatten, Reshape           ->  nothing: of the input to (batch, n[0]), else only as no-ops

and two patterns that exporters write for one activation: PyTorch's softplus
with its threshold (``Where(z > 20, z, Softplus(z))``) and skl2onnx's binary
classifier (``Concat(1 - p, p)`` after ``p = Sigmoid(z)``, which is exactly a
softmax over ``[0, z]``, so it becomes a two-unit softmax layer).

Anything else (another operator, a branch, a computed weight, shapes that do
not chain) is refused with one line naming the first node that does not fit,
before any layer is built: there is no partial model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto

from chainrule.errors import ConfigError, SerializationError, ShapeError
from chainrule.layers import Activation, Dense, Module, Sequential, from_config
from chainrule.onnx.activations import BY_OP, DOMAIN, is_our_function
from chainrule.onnx.reader import FLOAT_TYPES, Constants, attributes, elem_name, read

STANDARD = ("", "ai.onnx")
STRUCTURAL = {"Gemm", "MatMul", "Add", "Identity", "Dropout", "Cast", "Flatten", "Reshape", "Constant"}
PATTERN_ONLY = {"Greater", "Where", "Sub", "Concat"}  # inside the two known patterns, nowhere else
SUPPORTED = STRUCTURAL | PATTERN_ONLY | set(BY_OP)


def _who(pos: int, node: onnx.NodeProto) -> str:
    return f"graph.node[{pos}] ({node.op_type} {node.name!r})"


@dataclass
class _Layer:
    """A dense layer being read: ``W (n[l], n[l-1])``, ``b (n[l],)`` or None, and ``phi[l]``."""

    W: np.ndarray
    b: np.ndarray | None
    activation: str = "identity"
    open: bool = True  # its output is still z[l]: a bias or an activation may follow


class _Chain:
    """The walk from the graph's input to one output, collecting layers."""

    def __init__(
        self, model: onnx.ModelProto, where: str, output: str | None, max_parameters: int | None, folder: Any
    ) -> None:
        self.where, self.graph = where, model.graph
        self.nodes = list(model.graph.node)
        self.functions = {(f.domain, f.name): f for f in model.functions}
        self.consts = Constants(model.graph, where, max_parameters, folder)
        self.input = self._input()
        self.target = self._target(output)
        self.needed = self._ancestry()
        self.layers: list[_Layer | str] = []  # a str is an activation standing alone
        self.dtype: np.dtype = FLOAT_TYPES.get(self.input.type.tensor_type.elem_type, np.dtype(np.float32))
        self.width = self._input_width()
        self.visited: set[int] = set()
        self.readers: dict[str, list[int]] = {}  # tensor -> the needed nodes that read it, in order
        for pos in self.needed:
            for name in dict.fromkeys(self.nodes[pos].input):
                self.readers.setdefault(name, []).append(pos)

    def fail(self, pos: int, why: str) -> SerializationError:
        return SerializationError(f"{self.where}: {_who(pos, self.nodes[pos])}: {why}")

    # --- the graph's ends -------------------------------------------------------------------

    def _input(self) -> onnx.ValueInfoProto:
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            names = [i.name for i in inputs]
            raise SerializationError(
                f"{self.where}: the graph has {len(inputs)} inputs {names}; an MLP has one."
            )
        elem = inputs[0].type.tensor_type.elem_type
        if not inputs[0].type.HasField("tensor_type") or elem not in FLOAT_TYPES:
            raise SerializationError(
                f"{self.where}: input {inputs[0].name!r} has type {elem_name(elem)}; an MLP takes float32 "
                f"or float64 rows."
            )
        return inputs[0]

    def _target(self, output: str | None) -> str:
        """The tensor to build: the chosen output, looking through a final ZipMap (skl2onnx)."""
        producer = {o: node for node in self.nodes for o in node.output}
        found: dict[str, str] = {}
        for out in self.graph.output:
            node = producer.get(out.name)
            if node is not None and node.op_type == "ZipMap" and node.domain == "ai.onnx.ml":
                found[out.name] = node.input[0]  # a list of {class: probability} maps of this tensor
            elif out.type.tensor_type.elem_type in FLOAT_TYPES:
                found[out.name] = out.name
        names = [o.name for o in self.graph.output]
        if output is not None:
            if output not in found:
                raise ConfigError(
                    f"{self.where}: no float output named {output!r}; its outputs are {names}, "
                    f"of which float: {sorted(found)}."
                )
            return found[output]
        if len(found) != 1:
            raise ConfigError(
                f"{self.where}: the graph has outputs {names}, {len(found)} of them float tensors; "
                f"choose one with output=NAME (chainrule import --graph-output NAME)."
            )
        return next(iter(found.values()))

    def _ancestry(self) -> list[int]:
        """Positions of the nodes the target needs, in graph (topological) order."""
        producer = {o: pos for pos, node in enumerate(self.nodes) for o in node.output if o}
        needed: set[int] = set()
        stack = [self.target]
        while stack:
            pos = producer.get(stack.pop(), -1)
            if pos >= 0 and pos not in needed:
                needed.add(pos)
                stack.extend(i for i in self.nodes[pos].input if i)
        if not needed:
            raise SerializationError(f"{self.where}: output {self.target!r} is computed by no node.")
        return sorted(needed)

    def _input_width(self) -> int | None:
        tensor = self.input.type.tensor_type
        dims = tensor.shape.dim
        self.rows = not tensor.HasField("shape") or len(dims) == 2  # (batch, n[0]), or flattened to it
        if tensor.HasField("shape") and len(dims) == 2 and dims[1].HasField("dim_value"):
            return int(dims[1].dim_value)
        return None

    # --- the walk ---------------------------------------------------------------------------

    def check_operators(self) -> None:
        """Refuse the first needed node whose operator chainrule does not read, before reading any weight."""
        for pos in self.needed:
            node = self.nodes[pos]
            ours = node.domain == DOMAIN and (DOMAIN, node.op_type) in self.functions
            if ours and is_our_function(self.functions[(DOMAIN, node.op_type)]):
                continue
            if node.domain not in STANDARD or node.op_type not in SUPPORTED:
                raise self.fail(
                    pos,
                    f"operator {node.domain + '.' if node.domain else ''}{node.op_type} is not supported; "
                    f"chainrule imports chains of Gemm (or MatMul + Add) and the activations "
                    f"{', '.join(sorted(BY_OP))}. Nothing was imported.",
                )

    def walk(self) -> list[_Layer | str]:
        current = self.input.name
        while current != self.target:
            readers = self.readers.get(current, [])
            if not readers:
                raise SerializationError(f"{self.where}: tensor {current!r} leads nowhere near the output.")
            pos = readers[0]
            if len(readers) > 1:
                current = self._pattern(current, readers)
                continue
            current = self._step(pos, self.nodes[pos], current)
            self.visited.add(pos)
        skipped = [p for p in self.needed if p not in self.visited and self.nodes[p].op_type != "Constant"]
        if skipped:
            raise self.fail(skipped[0], "this node feeds the output from outside the chain (a branch).")
        if not any(isinstance(layer, _Layer) for layer in self.layers):
            raise SerializationError(f"{self.where}: the graph has no Gemm or MatMul layer.")
        return self.layers

    def _step(self, pos: int, node: onnx.NodeProto, current: str) -> str:
        op, attrs = node.op_type, attributes(node)
        if op == "Gemm":
            self._gemm(pos, node, current, attrs)
        elif op == "MatMul":
            self._matmul(pos, node, current)
        elif op == "Add":
            self._add(pos, node, current)
        elif op in BY_OP:
            self._activation(pos, node)
        elif op == "Cast":
            self._cast(pos, attrs)
        elif op in ("Flatten", "Reshape"):
            self._flatten(pos, node, current, attrs)
        elif op == "Dropout":
            self._dropout(pos, node)
        elif op != "Identity":
            raise self.fail(pos, f"{op} appears outside the patterns chainrule reads; nothing was imported.")
        return node.output[0]

    def _const(self, pos: int, name: str, what: str) -> np.ndarray:
        if name not in self.consts:
            raise self.fail(
                pos, f"its {what} {name!r} is computed, not a stored constant; an MLP's weights are stored."
            )
        value = self.consts.array(name)
        if value.dtype != self.dtype:
            raise self.fail(
                pos, f"its {what} {name!r} is {value.dtype}, but the model computes in {self.dtype}."
            )
        return value

    def _data_input(self, pos: int, node: onnx.NodeProto, current: str, index: int = 0) -> None:
        if node.input[index] != current:
            raise self.fail(
                pos,
                f"expected the running activation {current!r} as input {index}, got {node.input[index]!r}.",
            )

    def _gemm(self, pos: int, node: onnx.NodeProto, current: str, attrs: dict[str, Any]) -> None:
        self._data_input(pos, node, current)
        if attrs.get("transA", 0):
            raise self.fail(pos, "transA=1 transposes the activations; an MLP layer does not.")
        B = self._const(pos, node.input[1], "weight")
        if B.ndim != 2:
            raise self.fail(pos, f"weight {node.input[1]!r} has shape {B.shape}, expected a matrix.")
        W = B if attrs.get("transB", 0) else B.T
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        W = W if alpha == 1.0 else W * W.dtype.type(alpha)
        self._new_layer(pos, W)
        if len(node.input) > 2 and node.input[2]:
            b = self._bias(pos, node.input[2])
            self._open(pos).b = b if beta == 1.0 else b * b.dtype.type(beta)

    def _matmul(self, pos: int, node: onnx.NodeProto, current: str) -> None:
        self._data_input(pos, node, current)
        B = self._const(pos, node.input[1], "weight")
        if B.ndim != 2:
            raise self.fail(
                pos, f"weight {node.input[1]!r} has shape {B.shape}, expected a matrix (n[l-1], n[l])."
            )
        self._new_layer(pos, B.T)

    def _add(self, pos: int, node: onnx.NodeProto, current: str) -> None:
        other = [i for i in node.input if i != current]
        if len(other) != 1:
            raise self.fail(pos, "adds the running activation to itself; that is not a bias.")
        layer = self._open(pos)
        if layer.b is not None:
            raise self.fail(pos, "adds a second bias to a layer that has one.")
        layer.b = self._bias(pos, other[0])

    def _open(self, pos: int) -> _Layer:
        last = self.layers[-1] if self.layers else None
        if not isinstance(last, _Layer) or not last.open:
            raise self.fail(pos, "a bias must follow Gemm or MatMul directly, before any activation.")
        return last

    def _bias(self, pos: int, name: str) -> np.ndarray:
        b = self._const(pos, name, "bias")
        n = self._open(pos).W.shape[0]
        if b.size not in (1, n) or b.ndim > 2 or (b.ndim == 2 and b.shape[0] != 1):
            raise ShapeError(
                f"{self.where}: {_who(pos, self.nodes[pos])}: bias {name!r} of shape {b.shape} does not "
                f"match layer {self._number()} with n[{self._number()}] = {n} units; expected ({n},)."
            )
        return np.broadcast_to(b.reshape(-1), (n,)).copy()

    def _number(self) -> int:
        return sum(isinstance(layer, _Layer) for layer in self.layers)

    def _new_layer(self, pos: int, W: np.ndarray) -> None:
        l = self._number() + 1  # noqa: E741 (the notes' layer index)
        if not self.rows:
            dims = [d.dim_value or d.dim_param or "?" for d in self.input.type.tensor_type.shape.dim]
            raise self.fail(
                pos,
                f"the input {self.input.name!r} has shape {dims}, not (batch, n[0]), and is not flattened.",
            )
        if self.width is not None and W.shape[1] != self.width:
            prev = "a[0] = x" if l == 1 else f"a[{l - 1}]"
            raise ShapeError(
                f"{self.where}: {_who(pos, self.nodes[pos])} (layer {l}): weight of shape "
                f"{W.shape} (n[{l}], n[{l - 1}]) does not chain: {prev} has {self.width} entries."
            )
        if 0 in W.shape:
            raise self.fail(pos, f"weight of shape {W.shape} has no units.")
        for layer in self.layers:
            if isinstance(layer, _Layer):
                layer.open = False
        self.layers.append(_Layer(np.ascontiguousarray(W), None))
        self.width = W.shape[0]

    def _activation(self, pos: int, node: onnx.NodeProto) -> None:
        act = BY_OP[node.op_type]
        why = act.mismatch(node)
        if why is not None:
            raise self.fail(pos, why + "; nothing was imported.")
        last = self.layers[-1] if self.layers else None
        if isinstance(last, _Layer) and last.open:
            last.activation, last.open = act.name, False
        else:
            self.layers.append(act.name)

    def _cast(self, pos: int, attrs: dict[str, Any]) -> None:
        to = int(attrs.get("to", 0))
        if to not in FLOAT_TYPES:
            raise self.fail(pos, f"casts to {elem_name(to)}; an MLP computes in float32 or float64.")
        if self.layers and FLOAT_TYPES[to] != self.dtype:
            raise self.fail(pos, f"casts from {self.dtype} to {FLOAT_TYPES[to]} inside the network.")
        self.dtype = FLOAT_TYPES[to]  # a cast of the input sets the model's dtype

    def _flatten(self, pos: int, node: onnx.NodeProto, current: str, attrs: dict[str, Any]) -> None:
        """Flatten or Reshape to ``(batch, n)``: of the input (rank > 2) once, else only as a no-op."""
        self._data_input(pos, node, current)
        n = self.width
        if not self.rows:  # the input, of rank > 2: (batch, d1, d2, ...) -> (batch, d1 d2 ...)
            dims = self.input.type.tensor_type.shape.dim[1:]
            n = (
                int(np.prod([d.dim_value for d in dims]))
                if all(d.HasField("dim_value") for d in dims)
                else None
            )
        if node.op_type == "Flatten":
            if attrs.get("axis", 1) != 1:
                raise self.fail(pos, f"Flatten(axis={attrs['axis']}) does not give (batch, features).")
            self.width, self.rows = n, True
            return
        shape = tuple(int(v) for v in self._const_int(pos, node.input[1]))
        keeps_batch = len(shape) == 2 and (
            shape[0] == -1 or (shape[0] == 0 and not attrs.get("allowzero", 0))
        )
        width = shape[1] if len(shape) == 2 and shape[1] > 0 else n
        if not keeps_batch or (shape[1] < 0 and shape[0] < 0) or (n is not None and width != n):
            raise self.fail(pos, f"Reshape to {shape} changes the rows (batch, {n or 'n'}) of an MLP.")
        self.width, self.rows = width, True

    def _const_int(self, pos: int, name: str) -> np.ndarray:
        tensor = self.consts.tensors.get(name)
        if (
            tensor is None
            or tensor[0].data_type != TensorProto.INT64
            or len(tensor[0].dims) != 1
            or tensor[0].dims[0] > 8
        ):
            raise self.fail(pos, f"its shape {name!r} is not a small stored int64 vector.")
        return onnx.numpy_helper.to_array(tensor[0])

    def _dropout(self, pos: int, node: onnx.NodeProto) -> None:
        if len(node.input) > 2 and node.input[2]:
            mode = self.consts.tensors.get(node.input[2])
            if mode is None or bool(onnx.numpy_helper.to_array(mode[0]).reshape(-1)[:1].any()):
                raise self.fail(pos, "Dropout in training mode; export the model in eval mode.")

    # --- the two multi-node patterns ----------------------------------------------------------

    def _pattern(self, current: str, readers: list[int]) -> str:
        ops = sorted(self.nodes[p].op_type for p in readers)
        if ops == ["Greater", "Softplus", "Where"]:
            return self._softplus_threshold(current, readers)
        if ops == ["Concat", "Sub"]:
            return self._binary_sigmoid(current, readers)
        raise self.fail(
            readers[1],
            f"reads {current!r} too, which graph.node[{readers[0]}] reads: the graph branches there "
            f"(a skip connection?); chainrule imports chains only.",
        )

    def _by_op(self, readers: list[int]) -> dict[str, tuple[int, onnx.NodeProto]]:
        return {self.nodes[p].op_type: (p, self.nodes[p]) for p in readers}

    def _softplus_threshold(self, z: str, readers: list[int]) -> str:
        """PyTorch's ``Where(z > t, z, Softplus(z))``: chainrule's softplus if ``t >= 20``."""
        n = self._by_op(readers)
        (ps, sp), (pg, gt), (pw, wh) = n["Softplus"], n["Greater"], n["Where"]
        t = self._const(pg, gt.input[1], "threshold") if gt.input[0] == z else None
        if (
            t is None
            or t.size != 1
            or float(t.reshape(-1)[0]) < 20
            or list(wh.input) != [gt.output[0], z, sp.output[0]]
        ):
            raise self.fail(
                pw, "is not PyTorch's softplus threshold Where(z > t, z, Softplus(z)) with t >= 20."
            )
        self.visited.update((ps, pg, pw))
        self._activation(ps, sp)
        return str(wh.output[0])

    def _binary_sigmoid(self, p: str, readers: list[int]) -> str:
        """skl2onnx's ``Concat(1 - p, p)`` with ``p = sigmoid(z)``: a softmax over ``[0, z]``."""
        n = self._by_op(readers)
        (psub, sub), (pcat, cat) = n["Sub"], n["Concat"]
        last = self.layers[-1] if self.layers else None
        pair = list(cat.input)
        one = self._const(psub, sub.input[0], "constant") if sub.input[0] in self.consts else np.zeros(0)
        if (
            not isinstance(last, _Layer)
            or last.activation != "sigmoid"
            or last.W.shape[0] != 1
            or one.size != 1
            or float(one.reshape(-1)[0]) != 1.0
            or sub.input[1] != p
            or sorted(pair) != sorted([sub.output[0], p])
            or attributes(cat).get("axis") not in (1, -1)
        ):
            raise self.fail(pcat, "is not skl2onnx's binary output Concat(1 - p, p) after p = Sigmoid(z).")
        # softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)]: a zero row for the "1 - p" column
        last.W = np.stack([np.zeros_like(last.W[0]) if name != p else last.W[0] for name in pair])
        if last.b is not None:
            last.b = np.array([0.0 if name != p else last.b[0] for name in pair], last.b.dtype)
        last.activation, self.width = "softmax", 2
        self.visited.update((psub, pcat))
        return str(cat.output[0])


def _build(layers: list[_Layer | str], dtype: np.dtype) -> Sequential:
    modules: list[Module] = []
    for layer in layers:
        if isinstance(layer, str):
            modules.append(Activation(layer))
        else:
            n_out, n_in = layer.W.shape
            bias = False if layer.b is None else layer.b
            modules.append(Dense(n_in, n_out, bias, layer.activation, weights=layer.W, dtype=dtype))
    return Sequential(*modules)


def _signature(model: Sequential) -> list[Any]:
    """What a model computes, layer types aside: sizes, biases and activations in order."""
    return _config_signature(model.config())


def _config_signature(config: Any) -> list[Any]:
    out: list[Any] = []
    for layer in config["layers"]:
        if layer["type"] == "Dense":
            out.append((layer["in_features"], layer["out_features"], layer["bias"]))
        act = (
            layer.get("activation", layer.get("name", "identity"))
            if layer["type"] != "Dropout"
            else "identity"
        )
        if act != "identity":
            out.append(act)
    return out


def _with_architecture(model: Sequential, props: dict[str, str]) -> Sequential:
    """chainrule's own layers (Dropout, init names) from the file's architecture, if it agrees with the graph.

    The architecture is compared with the graph before anything is built from
    it; the graph is what runs, so a property that disagrees is ignored.
    """
    try:
        config = json.loads(props["chainrule.architecture"])
        if config.get("type") != "Sequential" or _config_signature(config) != _signature(model):
            return model
        rebuilt = from_config(config)
    except (KeyError, ValueError, TypeError, AttributeError, ConfigError, RecursionError):
        return model
    if not isinstance(rebuilt, Sequential):
        return model
    for target, source in zip(rebuilt.parameters(), model.parameters(), strict=True):
        target.data = source.data
    return rebuilt


def from_onnx(
    model: onnx.ModelProto,
    output: str | None = None,
    max_parameters: int | None = None,
    where: str = "ONNX model",
    folder: str | os.PathLike[str] | None = None,
) -> Sequential:
    """The chainrule :class:`~chainrule.layers.Sequential` that computes ``model``'s output.

    Parameters
    ----------
    model : onnx.ModelProto
        An MLP chain (see the module docstring for what is read).
    output : str, optional
        The graph output to build, when the graph has more than one float output.
    max_parameters : int, optional
        Refuse a model claiming more weights than this, before allocating them
        (default: chainrule's ``max_parameters`` limit, :mod:`chainrule.limits`).
    where : str
        How errors name the model (a file name).
    folder : path, optional
        Where weights kept in external files are read from (the model file's
        folder; :func:`load` gives it). Without it, external weights are refused.

    Raises
    ------
    SerializationError
        The first node that is not part of an MLP chain, or a bad weight.
    ShapeError
        Weights or biases whose shapes do not chain.
    ConfigError
        Several float outputs and no ``output`` chosen, or an unknown one.
    """
    chain = _Chain(model, where, output, max_parameters, folder)
    chain.check_operators()
    layers = chain.walk()
    declared = [o.type.tensor_type.shape.dim for o in model.graph.output if o.name == chain.target]
    dims = declared[0] if declared else []
    if len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value != chain.width:
        raise ShapeError(
            f"{where}: output {chain.target!r} is declared with {dims[1].dim_value} columns, "
            f"but the last layer has {chain.width} units."
        )
    props = {p.key: p.value for p in model.metadata_props}
    return _with_architecture(_build(layers, chain.dtype), props)


def load(
    path: str | os.PathLike[str], output: str | None = None, max_parameters: int | None = None
) -> Sequential:
    """Read the ONNX file ``path`` into a chainrule model (see :func:`from_onnx`).

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> from chainrule.layers import mlp
    >>> from chainrule.onnx import export, load
    >>> path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> _ = export(mlp([4, 8, 3], "tanh", "softmax", seed=0), path)
    >>> load(path)
    Sequential(
      (0): Dense(in_features=4, out_features=8, activation='tanh')
      (1): Dense(in_features=8, out_features=3, activation='softmax')
    )
    """
    folder = os.path.dirname(os.path.abspath(path))
    return from_onnx(read(path), output, max_parameters, where=os.fspath(path), folder=folder)


def load_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The training metadata a chainrule export stored (``chainrule.metadata``), or ``{}``."""
    props = {p.key: p.value for p in read(path).metadata_props}
    try:
        value = json.loads(props.get("chainrule.metadata", "{}"))
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


__all__ = ["SUPPORTED", "from_onnx", "load", "load_metadata"]
