"""The spec of a network to explain: read, validated and normalised (level 6).

A spec is a JSON object (or the same as a Python dict)::

    {"layers": [{"weights": [[0.15, 0.20], [0.25, 0.30]], "bias": [0.35, 0.35],
                 "activation": "sigmoid"}, ...],
     "input": [0.05, 0.10], "target": [0.01, 0.99],
     "loss": "half_sse", "learning_rate": 0.5, "update_bias": true}

``weights[j][k]`` is ``w_jk[l]``, from neuron ``k`` of layer ``l-1`` to neuron
``j`` of layer ``l``: ``W[l]`` has shape ``(n[l], n[l-1])``. A layer without
``bias`` has none; ``"sizes": [n[l-1], n[l]]`` (or just ``n[l]``) with
``"seed"`` draws the weights with the library's initializer instead.
``input`` and ``target`` may be one example or a list of examples (a batch).

Every mistake raises one :class:`~chainrule.errors.ShapeError` or
:class:`~chainrule.errors.ConfigError` whose message names the layer and the
shapes, e.g. ``layers[1] (layer 2): weights of shape (2, 3) do not chain: a[1]
has 2 entries, so expected (n[2], 2).``
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule import backend, limits
from chainrule.errors import ConfigError, ShapeError
from chainrule.functional import ACTIVATIONS
from chainrule.layers import Dense, Module, Sequential
from chainrule.losses import LOSSES
from chainrule.tensor import Tensor

SPEC_KEYS = ("layers", "input", "target", "loss", "learning_rate", "update_bias", "title")
LAYER_KEYS = ("weights", "bias", "activation", "sizes", "seed")


@dataclass
class LayerSpec:
    """One dense layer: ``W[l]`` of shape ``(n[l], n[l-1])``, ``b[l]`` of shape ``(n[l],)`` or None."""

    W: np.ndarray
    b: np.ndarray | None
    activation: str


@dataclass
class Spec:
    """A validated spec: float64 arrays, examples as rows.

    Shapes
    ------
    ``x (m, n[0])``, ``y (m, n[L])``; ``batch`` is False when the spec gave
    one example (then ``m = 1``).
    """

    layers: list[LayerSpec]
    x: np.ndarray
    y: np.ndarray
    batch: bool
    loss: str = "half_sse"
    learning_rate: float = 0.5
    update_bias: bool = True
    title: str = ""
    sizes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sizes = [int(self.x.shape[1])] + [int(layer.W.shape[0]) for layer in self.layers]


def _who(i: int) -> str:
    return f"layers[{i}] (layer {i + 1})"


def _array(value: Any, who: str, what: str) -> np.ndarray:
    _check_numbers(value, who, what)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # ragged, or an integer beyond any float
        raise ConfigError(
            f"{who}: {what} must be numbers in a rectangular list, got {_short(value)}."
        ) from None
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{who}: {what} must be finite numbers, got {_short(value)}.")
    return arr


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_numbers(value: Any, who: str, what: str) -> None:
    """Every leaf of nested lists a JSON number: no strings ("0.5"), booleans or objects."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool) or not isinstance(item, int | float):
            raise ConfigError(
                f"{who}: {what} must be numbers in a rectangular list, found {_short(item)} "
                f"({type(item).__name__}) in {_short(value)}."
            )


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    return read_json(path, f"spec {os.fspath(path)}")


def read_json(path: str | os.PathLike[str], where: str) -> dict[str, Any]:
    """A JSON object from a file a person wrote (a spec, an answer), checked; ``where`` names it in errors.

    Raises
    ------
    ConfigError
        The file cannot be read, is not UTF-8 (line and byte offset named), not JSON
        (line and column named), or not a JSON object.
    LimitError
        It nests deeper than ``max_nesting_depth``.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it: {exc.strerror}.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{where}: not UTF-8 at line {line}, byte offset {exc.start} (bytes "
            f"{raw[exc.start : exc.end].hex(' ')}); save the file as UTF-8."
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{where}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    except RecursionError:
        raise ConfigError(
            f"{where}: JSON nested too deeply to parse (far over the limit max_nesting_depth = "
            f"{limits.get('max_nesting_depth')})."
        ) from None
    limits.check_depth(data, where)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}.")
    return data


def _check_size(parameters: int, i: int) -> None:
    """The network so far within ``max_explain_parameters``: each parameter costs two forward passes."""
    limits.check("max_explain_parameters", parameters, f"spec: the network up to {_who(i)}")


def _weights(i: int, layer: dict[str, Any], n_prev: int, activation: str, used: int) -> np.ndarray:
    """``W[l]`` from explicit ``weights`` or from ``sizes`` + ``seed``, checked to chain."""
    who = _who(i)
    prev = "a[0] = x" if i == 0 else f"a[{i}]"
    if ("weights" in layer) == ("sizes" in layer):
        raise ConfigError(
            f"{who}: give either 'weights' (a list of rows) or 'sizes' with 'seed', not both or neither."
        )
    if "sizes" in layer:
        sizes = layer["sizes"]
        sizes = [n_prev, sizes] if isinstance(sizes, int) else sizes
        if not (
            isinstance(sizes, list)
            and len(sizes) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)
        ):
            raise ConfigError(
                f"{who}: 'sizes' must be [n[{i}], n[{i + 1}]] (positive integers), got {sizes!r}."
            )
        if sizes[0] != n_prev:
            raise ShapeError(
                f"{who}: sizes {sizes} do not chain: {prev} has {n_prev} entries, "
                f"so expected [{n_prev}, n[{i + 1}]]."
            )
        seed = layer.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ConfigError(f"{who}: 'seed' must be an integer >= 0, got {seed!r}.")
        has_bias = layer.get("bias") is not None and layer.get("bias") is not False
        _check_size(used + sizes[1] * (n_prev + has_bias), i)
        dense = Dense(n_prev, sizes[1], activation=activation, seed=seed, dtype=np.float64)
        return np.array(backend.to_numpy(dense.W.data), dtype=np.float64)
    W = _array(layer["weights"], who, "weights")
    if W.ndim != 2 or W.size == 0:
        raise ShapeError(
            f"{who}: weights must be a list of rows, shape (n[{i + 1}], n[{i}]), got shape {W.shape}."
        )
    if W.shape[1] != n_prev:
        raise ShapeError(
            f"{who}: weights of shape {W.shape} do not chain: {prev} has {n_prev} entries, "
            f"so expected (n[{i + 1}], {n_prev})."
        )
    return W


def _layer(i: int, layer: Any, n_prev: int, used: int) -> LayerSpec:
    """Layer ``i`` checked; ``used`` parameters came before it (for ``max_explain_parameters``)."""
    who = _who(i)
    if not isinstance(layer, dict):
        raise ConfigError(f"{who}: expected an object with 'weights', 'bias', 'activation', got {layer!r}.")
    unknown = sorted(set(layer) - set(LAYER_KEYS))
    if unknown:
        raise ConfigError(f"{who}: unknown key {unknown[0]!r}; expected some of {list(LAYER_KEYS)}.")
    activation = layer.get("activation", "identity")
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ConfigError(f"{who}: unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}.")
    W = _weights(i, layer, n_prev, activation, used)
    bias = layer.get("bias")
    b = None
    if bias is True:
        b = np.zeros(W.shape[0])
    elif bias is not None and bias is not False:
        b = _array(bias, who, "bias")
        if b.shape != (W.shape[0],):
            raise ShapeError(
                f"{who}: bias of shape {b.shape} does not match weights of shape {W.shape}; "
                f"expected {W.shape[0]} entries (n[{i + 1}])."
            )
    _check_size(used + W.size + (0 if b is None else b.size), i)
    return LayerSpec(W, b, activation)


def _examples(
    x: np.ndarray, y: np.ndarray, n_in: int, n_out: int, L: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """``x (m, n[0])`` and ``y (m, n[L])`` from one example or a list of examples."""
    if x.ndim not in (1, 2) or x.shape[-1] != n_in:
        raise ShapeError(
            f"input: expected n[0] = {n_in} entries (or a list of such examples), got shape {x.shape}."
        )
    batch = x.ndim == 2
    X = x.reshape(-1, n_in)
    m = X.shape[0]
    if not batch:
        if y.size == n_out and y.ndim <= 1:
            return X, y.reshape(1, n_out), False
        raise ShapeError(
            f"target: expected n[{L}] = {n_out} entries (the output of layer {L}), got shape {y.shape} "
            f"({y.size} entries)."
        )
    if y.shape == (m, n_out):
        return X, y, True
    if n_out == 1 and y.shape == (m,):
        return X, y.reshape(m, 1), True
    raise ShapeError(
        f"target: expected shape (m, n[{L}]) = ({m}, {n_out}) for the {m} examples of input "
        f"(layer {L} has {n_out} outputs), got {y.shape}."
    )


def load_spec(path_or_dict: str | os.PathLike[str] | dict[str, Any]) -> Spec:
    """Read and validate a spec (a path to a JSON file, or a dict).

    Returns
    -------
    Spec
        float64 weights and examples, one :class:`LayerSpec` per layer.

    Raises
    ------
    ConfigError
        Unreadable, non-UTF-8 or invalid JSON, a missing or unknown key, a value
        of the wrong JSON type (a list for an activation, a string for a number,
        a negative or fractional seed), an unknown activation or loss, a bad learning rate.
    LimitError
        JSON nested deeper than ``max_nesting_depth``, or a network with more
        parameters than ``max_explain_parameters`` (checked before any is drawn).
    ShapeError
        Weights that do not chain, a bias or target of the wrong length.
    """
    data = path_or_dict if isinstance(path_or_dict, dict) else _read(path_or_dict)
    limits.check_depth(data, "spec")
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"spec: unknown key {unknown[0]!r}; expected some of {list(SPEC_KEYS)}.")
    for key in ("layers", "input", "target"):
        if key not in data:
            raise ConfigError(f"spec: missing {key!r}; a spec needs 'layers', 'input' and 'target'.")
    if not isinstance(data["layers"], list) or not data["layers"]:
        raise ConfigError("spec: 'layers' must be a non-empty list of layer objects.")
    x = _array(data["input"], "input", "the input")
    if x.ndim not in (1, 2) or x.size == 0:
        raise ShapeError(
            f"input: expected one example (n[0],) or a list of examples (m, n[0]), got shape {x.shape}."
        )
    layers: list[LayerSpec] = []
    used = 0
    for i, layer in enumerate(data["layers"]):
        layers.append(_layer(i, layer, x.shape[-1] if i == 0 else layers[-1].W.shape[0], used))
        used += layers[-1].W.size + (0 if layers[-1].b is None else layers[-1].b.size)
    y = _array(data["target"], "target", "the target")
    L = len(layers)
    X, Y, batch = _examples(x, y, x.shape[-1], layers[-1].W.shape[0], L)
    loss = data.get("loss", "half_sse")
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ConfigError(f"spec: unknown loss {loss!r}; expected one of {sorted(LOSSES)}.")
    lr = data.get("learning_rate", 0.5)
    try:
        ok = not isinstance(lr, bool) and isinstance(lr, int | float) and 0 <= float(lr) < math.inf
    except OverflowError:  # a JSON integer beyond any float
        ok = False
    if not ok:
        raise ConfigError(f"spec: learning_rate must be a finite number >= 0, got {_short(lr)}.")
    update_bias = data.get("update_bias", True)
    if not isinstance(update_bias, bool):
        raise ConfigError(f"spec: update_bias must be true or false, got {update_bias!r}.")
    title = data.get("title", "")
    if not isinstance(title, str):
        raise ConfigError(f"spec: title must be a string, got {_short(title)}.")
    return Spec(layers, X, Y, batch, loss, float(lr), update_bias, title)


def spec_from_model(model: Module, x: Any, y: Any) -> dict[str, Any]:
    """The spec dict of a :class:`~chainrule.layers.Sequential` of Dense layers, with ``x`` and ``y``.

    Raises
    ------
    ConfigError
        If the model is not a Sequential (or a Dense layer), or holds other layers.
    """
    if isinstance(model, Dense):
        model = Sequential(model)
    if not isinstance(model, Sequential):
        raise ConfigError(
            f"explain: expected a spec, a spec path or a Sequential of Dense layers, got {model!r}."
        )
    layers = []
    for i, layer in enumerate(model.layers):
        if not isinstance(layer, Dense):
            raise ConfigError(
                f"explain: layers[{i}] {layer!r} is not Dense; explain takes Dense layers only "
                f"(give the activation as Dense(..., activation=...))."
            )
        entry: dict[str, Any] = {"weights": backend.to_numpy(layer.W.data).astype(np.float64).tolist()}
        if layer.b is not None:
            entry["bias"] = backend.to_numpy(layer.b.data).astype(np.float64).tolist()
        entry["activation"] = layer.activation
        layers.append(entry)
    return {"layers": layers, "input": _as_list(x), "target": _as_list(y)}


def _as_list(v: Any) -> Any:
    return np.asarray(backend.to_numpy(v.data if isinstance(v, Tensor) else v), dtype=np.float64).tolist()


__all__ = ["LayerSpec", "Spec", "load_spec", "spec_from_model"]
