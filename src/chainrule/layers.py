"""Layers and models: Dense, Activation, Dropout, Sequential and the ``mlp`` builder (level 5).

Notation (the notes', batches as rows)
--------------------------------------
A dense layer ``l`` maps ``A_prev = a[l-1]`` of shape ``(m, n[l-1])`` to

    Z = A_prev @ W.T + b        (z[l] = W[l] a[l-1] + b[l] per example)
    A = phi(Z)                  (a[l] = phi[l](z[l]))

with ``W`` of shape ``(n[l], n[l-1])`` (PyTorch's ``(out_features,
in_features)``) and ``b`` of shape ``(n[l],)``. Backprop through it gives
``delta = dC/dZ``, ``dC/dW = delta.T @ A_prev``, ``dC/db = delta.sum(axis=0)``
and ``dC/dA_prev = delta @ W``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from chainrule import backend, limits, ops
from chainrule.errors import ConfigError, ShapeError
from chainrule.functional import DENSE, get_activation
from chainrule.init import default_for, get_initializer
from chainrule.jit import random_input, uniform_rows
from chainrule.summary import ModelSummary, summarize
from chainrule.tensor import Tensor

LAYERS: dict[str, type[Module]] = {}


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
        raise ConfigError(f"seed must be an integer >= 0, a numpy Generator or None, got {seed!r}.")
    return np.random.default_rng(seed)


class Module:
    """Base class: parameters, train/eval mode, a JSON config, host/device moves."""

    training: bool = True
    position: str = ""  # "layers[i]" once placed in a Sequential, for error messages

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        LAYERS[cls.__name__] = cls

    def __call__(self, x: Tensor | Any) -> Tensor:
        return self.forward(x if isinstance(x, Tensor) else Tensor(x))

    def forward(self, x: Tensor) -> Tensor:
        """Output of the module for input ``x``."""
        raise NotImplementedError

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        """``(name, tensor)`` for every trainable parameter, in a fixed order."""
        return []

    def parameters(self) -> list[Tensor]:
        """Every trainable parameter, in the order of :meth:`named_parameters`."""
        return [p for _, p in self.named_parameters()]

    def train(self, mode: bool = True) -> Module:
        """Switch to training mode (dropout active) or, with ``mode=False``, eval mode."""
        self.training = mode
        return self

    def eval(self) -> Module:
        """Switch to evaluation mode (dropout off)."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget the gradients of every parameter."""
        for p in self.parameters():
            p.grad = None

    def to(self, device: str) -> Module:
        """Move every parameter to ``device`` (``'cpu'`` or ``'gpu'``), explicitly."""
        for p in self.parameters():
            p.data = backend.parameter(backend.to_device(p.data, device))
            p.grad = None
        return self

    def config(self) -> dict[str, Any]:
        """JSON-serialisable architecture (no weights), enough for :func:`from_config`."""
        return {"type": type(self).__name__}

    def rng_state(self) -> dict[str, Any]:
        """State of the module's random generator (dropout), for exact resumes."""
        return {}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`rng_state` returned."""

    def _who(self) -> str:
        return f"{self.position} {self!r}".strip()


class Dense(Module):
    """Fully connected layer ``Z = A_prev @ W.T + b``, ``A = phi(Z)``.

    Parameters
    ----------
    in_features, out_features : int
        ``n[l-1]`` and ``n[l]``.
    bias : bool or array_like
        ``False`` for a layer without bias (as in notes 001 and 003); an array
        of shape ``(n[l],)`` gives explicit bias values.
    activation : str
        Name of ``phi[l]`` in :data:`chainrule.functional.ACTIVATIONS`.
    init : str, optional
        Weight initializer name (He for the ReLU family, Glorot otherwise).
    weights : array_like, optional
        Explicit ``W[l]`` of shape ``(n[l], n[l-1])``: ``weights[j][k] = w_jk[l]``.
    seed : int or numpy.random.Generator, optional
        Source of the random weights.
    dtype : dtype
        Parameter dtype (float32 by default; float64 for checking).

    Shapes
    ------
    ``A_prev (m, n[l-1]) -> A (m, n[l])``; ``W (n[l], n[l-1])``; ``b (n[l],)``.
    ``weights`` and ``bias`` arrays are copied: training never writes into the caller's arrays.

    Raises
    ------
    ShapeError
        If explicit weights or bias have the wrong shape, or the input does.
    ConfigError
        If the sizes are not positive, or the activation or init is unknown.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool | Any = True,
        activation: str = "identity",
        init: str | None = None,
        weights: Any = None,
        seed: int | np.random.Generator | None = None,
        dtype: Any = np.float32,
    ) -> None:
        if in_features < 1 or out_features < 1:
            raise ConfigError(
                f"Dense: sizes must be positive, got in_features={in_features}, out_features={out_features}."
            )
        self.in_features, self.out_features = int(in_features), int(out_features)
        _check_sizes([self.in_features, self.out_features], bias is not False and bias is not None, "Dense")
        get_activation(activation)  # an unknown name fails here, not at the first forward
        self.activation = activation
        self.init = init or default_for(activation)
        shape = (self.out_features, self.in_features)
        if weights is None:
            w = get_initializer(self.init)(shape, _rng(seed))
        else:
            w = np.asarray(backend.to_numpy(weights), dtype=np.float64)
            if w.shape != shape:
                raise ShapeError(
                    f"{self!r}: expected weights of shape {shape} (n[l], n[l-1]), got {w.shape}."
                )
        w = backend.parameter(backend.to_device(w.astype(dtype), backend.get_device()))  # its own copy
        self.W = Tensor(w, requires_grad=True, name="W")
        self.b: Tensor | None = None
        if bias is not False and bias is not None:
            values = np.zeros(self.out_features) if bias is True else np.asarray(backend.to_numpy(bias))
            if values.shape != (self.out_features,):
                raise ShapeError(
                    f"{self!r}: expected bias of shape ({self.out_features},), got {values.shape}."
                )
            values = backend.parameter(backend.to_device(values.astype(dtype), backend.get_device()))
            self.b = Tensor(values, requires_grad=True, name="b")

    def __repr__(self) -> str:
        extra = "" if getattr(self, "b", True) is not None else ", bias=False"
        act = "" if self.activation == "identity" else f", activation={self.activation!r}"
        return f"Dense(in_features={self.in_features}, out_features={self.out_features}{extra}{act})"

    def pre_activation(self, a_prev: Tensor) -> Tensor:
        """``Z = A_prev @ W.T + b``, checking that ``A_prev`` has ``n[l-1]`` columns."""
        return ops.linear(a_prev, *self._operands(a_prev))

    @property
    def phi(self) -> Any:
        """``phi[l]``: the function registered under :attr:`activation` now."""
        return get_activation(self.activation)

    def forward(self, x: Tensor) -> Tensor:
        """``A = phi(A_prev @ W.T + b)``.

        While the activation registered under the layer's name is chainrule's own relu,
        sigmoid or tanh, that is one op, :func:`chainrule.ops.dense`; otherwise
        ``linear``, then the registered function.
        """
        fused = DENSE.get(self.activation)
        if fused is not None:
            return ops.dense(x, *self._operands(x), activation=fused)
        return self.phi(self.pre_activation(x))

    def _operands(self, a_prev: Tensor) -> tuple[Tensor, ...]:
        shape = a_prev.data.shape
        if a_prev.data.ndim not in (1, 2) or shape[-1] != self.in_features:
            raise ShapeError(
                f"{self._who()}: expected input of shape (m, {self.in_features}), got {tuple(shape)}."
            )
        return (self.W,) if self.b is None else (self.W, self.b)

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        return [("W", self.W)] if self.b is None else [("W", self.W), ("b", self.b)]

    def config(self) -> dict[str, Any]:
        return {
            "type": "Dense",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.b is not None,
            "activation": self.activation,
            "init": self.init,
            "dtype": str(self.W.dtype),
        }


class Activation(Module):
    """An activation ``a = phi(z)`` as a layer of its own (no parameters)."""

    def __init__(self, name: str) -> None:
        get_activation(name)  # an unknown name fails here
        self.activation = name

    def __repr__(self) -> str:
        return f"Activation({self.activation!r})"

    def forward(self, x: Tensor) -> Tensor:
        return get_activation(self.activation)(x)

    def config(self) -> dict[str, Any]:
        return {"type": "Activation", "name": self.activation}


class Dropout(Module):
    """Inverted dropout: in training, zero each entry with probability ``p`` and scale by ``1/(1-p)``.

    In eval mode it is the identity. The mask comes from the layer's own seeded
    generator, drawn through :func:`chainrule.jit.random_input`, so a compiled
    training step draws it afresh each step, in the eager order. Its uniform numbers
    come from :func:`chainrule.jit.uniform_rows`: a rank of a data-parallel job draws
    exactly its rows of the mask one process would draw for the global batch.
    """

    def __init__(self, p: float = 0.5, seed: int | np.random.Generator | None = None) -> None:
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"Dropout: p must be in [0, 1), got {p}.")
        self.p = float(p)
        self.rng = _rng(seed)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        shape, dtype = x.shape, x.dtype

        def draw() -> Any:  # the mask, scaled: 1/(1-p) where kept, 0 where dropped
            keep = uniform_rows(self.rng, shape) >= self.p  # this step's rows of a global batch's mask
            return backend.asarray(keep, dtype=dtype) * (1.0 / (1.0 - self.p))

        return x * random_input(draw)

    def config(self) -> dict[str, Any]:
        return {"type": "Dropout", "p": self.p}

    def rng_state(self) -> dict[str, Any]:
        return dict(self.rng.bit_generator.state)

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state


class Sequential(Module):
    """Layers applied in order: ``a[l] = layer_l(a[l-1])``, ``a[0] = x``.

    ``feature_names`` (the input columns' names) and ``classes`` (the label of
    each output class, ``classes[k]``) are kept when the model learns from a
    table (:mod:`chainrule.tables`); both are ``None`` otherwise, and both are
    saved with the architecture.

    Examples
    --------
    >>> import numpy as np
    >>> from chainrule.layers import Sequential, Dense
    >>> net = Sequential(Dense(2, 3, activation="relu", seed=0), Dense(3, 1))
    >>> net(np.ones((4, 2), dtype=np.float32)).shape
    (4, 1)
    """

    def __init__(self, *layers: Module) -> None:
        if len(layers) == 1 and isinstance(layers[0], Sequence):
            layers = tuple(layers[0])
        if not layers:
            raise ConfigError("Sequential: needs at least one layer.")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise ConfigError(f"Sequential: layers[{i}] is a {type(layer).__name__}, not a Module.")
            layer.position = f"layers[{i}]"
        self.layers: list[Module] = list(layers)
        self.feature_names: list[str] | None = None
        self.classes: list[Any] | None = None

    def __repr__(self) -> str:
        body = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({body}\n)"

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    @property
    def output_activation(self) -> str:
        """Name of the last activation (``'identity'`` if the model ends linearly)."""
        last = self.layers[-1]
        return str(getattr(last, "activation", "identity"))

    def forward(self, x: Tensor, logits: bool = False) -> Tensor:
        """Output ``a[L]``; with ``logits=True``, ``z[L]`` (the last activation skipped).

        ``logits=True`` is what fused losses (softmax + cross-entropy) use.
        """
        layers = self.layers
        last = layers[-1]
        for layer in layers[:-1] if logits else layers:
            x = layer(x)
        if logits and isinstance(last, Dense):
            return last.pre_activation(x)
        return x  # a trailing Activation layer was skipped

    def __call__(self, x: Tensor | Any, logits: bool = False) -> Tensor:
        return self.forward(x if isinstance(x, Tensor) else Tensor(x), logits=logits)

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        return [
            (f"layers.{i}.{n}", p) for i, layer in enumerate(self.layers) for n, p in layer.named_parameters()
        ]

    def train(self, mode: bool = True) -> Module:
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"type": "Sequential", "layers": [layer.config() for layer in self.layers]}
        if self.feature_names is not None:
            config["feature_names"] = list(self.feature_names)
        if self.classes is not None:
            config["classes"] = list(self.classes)
        return config

    def rng_state(self) -> dict[str, Any]:
        return {str(i): s for i, layer in enumerate(self.layers) if (s := layer.rng_state())}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        for key, s in state.items():
            self.layers[int(key)].set_rng_state(s)

    def dense_layers(self) -> list[Dense]:
        """The Dense layers, in order (``W[1], ..., W[L]``)."""
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    def summary(self) -> ModelSummary:
        """Layers, output shapes and parameter counts, as Keras's ``summary()`` (:mod:`chainrule.summary`)."""
        return summarize(self)

    def _repr_html_(self) -> str:  # Jupyter shows the summary as a table
        return summarize(self)._repr_html_()


def from_config(config: dict[str, Any], seed: int | None = 0) -> Module:
    """Rebuild a module (with fresh weights) from :meth:`Module.config`.

    Raises
    ------
    ConfigError
        If the config names an unknown layer type or lacks a field.
    """
    kind = config.get("type")
    try:
        if kind == "Sequential":
            model = Sequential(*[from_config(c, seed) for c in config["layers"]])
            model.feature_names, model.classes = config.get("feature_names"), config.get("classes")
            return model
        if kind == "Dense":
            return Dense(
                config["in_features"],
                config["out_features"],
                bias=bool(config["bias"]),
                activation=config["activation"],
                init=config.get("init"),
                seed=seed,
                dtype=np.dtype(config.get("dtype", "float32")),
            )
        if kind == "Activation":
            return Activation(config["name"])
        if kind == "Dropout":
            return Dropout(config["p"], seed=seed)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"from_config: {kind} config is missing or has a bad field: {exc}.") from exc
    raise ConfigError(f"from_config: unknown layer type {kind!r}; expected one of {sorted(LAYERS)}.")


def _check_sizes(sizes: Sequence[int], bias: bool, who: str) -> None:
    """Widths and the parameter count within :mod:`chainrule.limits`, before any weight is drawn."""
    shape = "-".join(map(str, sizes))
    for n in sizes:
        limits.check("max_layer_width", n, f"{who} {shape}", " in one layer")
    total = sum(a * b + (b if bias else 0) for a, b in itertools.pairwise(sizes))
    limits.check("max_parameters", total, f"{who} {shape}", " (weights and biases)")


def mlp(
    sizes: Sequence[int],
    activation: str = "relu",
    output: str = "identity",
    bias: bool = True,
    dropout: float = 0.0,
    init: str | None = None,
    seed: int | None = 0,
    dtype: Any = np.float32,
) -> Sequential:
    """A multilayer perceptron in one line: ``mlp([784, 256, 128, 10], "relu", "softmax")``.

    Parameters
    ----------
    sizes : sequence of int
        ``n[0], n[1], ..., n[L]``: input size, hidden sizes, output size.
    activation : str
        ``phi`` of every hidden layer.
    output : str
        ``phi[L]`` of the output layer (``identity`` for regression or logits).
    dropout : float
        Dropout probability after each hidden layer (0 for none).
    seed : int
        One generator, seeded once, draws every layer's weights in order.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2:
        raise ConfigError(f"mlp: sizes needs at least input and output sizes, got {sizes}.")
    _check_sizes(sizes, bias, "mlp")
    rng = _rng(seed)
    layers: list[Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        last = i == len(sizes) - 2
        layers.append(
            Dense(
                n_in,
                n_out,
                bias=bias,
                activation=output if last else activation,
                init=init,
                seed=rng,
                dtype=dtype,
            )
        )
        if dropout and not last:
            layers.append(Dropout(dropout, seed=int(rng.integers(2**63))))
    return Sequential(*layers)


__all__ = ["LAYERS", "Activation", "Dense", "Dropout", "Module", "Sequential", "from_config", "mlp"]
