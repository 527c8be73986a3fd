"""Activations and the dense-layer function, by name (level 4).

Every activation ``phi`` is one decorated function that registers itself in
:data:`ACTIVATIONS`; layers, ``explain`` and the command line look it up by
name with :func:`get_activation`. Elementwise activations act entry by entry,
so ``phi'(z)`` is diagonal; ``softmax`` acts on a whole row, with the Jacobian
``da_j/dz_i = a_j (delta_ij - a_i)``.

The registry is the one source of truth for what a name means: a dense layer
applies ``relu``, ``sigmoid`` or ``tanh`` inside its own fused op
(:func:`chainrule.ops.dense`) only while the registered function is chainrule's
own (:data:`DENSE`); register another function under that name and layers use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule import backend, ops
from chainrule.errors import ConfigError, DataError
from chainrule.tensor import Tensor

Activation = Callable[[Tensor], Tensor]

ACTIVATIONS: dict[str, Activation] = {}
ELEMENTWISE: set[str] = set()
DENSE: dict[str, str] = {}  # activation name -> the activation ops.dense applies itself


def activation(
    name: str, elementwise: bool = True, dense: str | None = None
) -> Callable[[Activation], Activation]:
    """Register an activation function under ``name`` (replacing any function of that name).

    ``dense`` names the activation of :data:`chainrule.ops.DENSE_ACTIVATIONS` that
    equals ``fn``, so that a dense layer may apply it inside its fused op; leave it
    None for any other function.
    """

    def register(fn: Activation) -> Activation:
        ACTIVATIONS[name] = fn
        if elementwise:
            ELEMENTWISE.add(name)
        else:
            ELEMENTWISE.discard(name)
        if dense is None:
            DENSE.pop(name, None)
        else:
            DENSE[name] = dense
        return fn

    return register


def get_activation(name: str) -> Activation:
    """The activation registered as ``name``.

    Raises
    ------
    ConfigError
        If no activation has that name; the message lists the known names.
    """
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}.") from None


@activation("identity")
def identity(z: Tensor) -> Tensor:
    """``phi(z) = z``, ``phi'(z) = 1`` (regression output)."""
    return z


@activation("sigmoid", dense="sigmoid")
def sigmoid(z: Tensor) -> Tensor:
    """``phi(z) = 1 / (1 + e**-z)``, ``phi'(z) = a (1 - a)``; never overflows."""
    return ops.sigmoid(z)


@activation("tanh", dense="tanh")
def tanh(z: Tensor) -> Tensor:
    """``phi(z) = tanh(z)``, ``phi'(z) = 1 - a**2``."""
    return ops.tanh(z)


@activation("relu", dense="relu")
def relu(z: Tensor) -> Tensor:
    """``phi(z) = max(z, 0)``, ``phi'(z) = [z > 0]``; ``relu'(0) = 0`` as in PyTorch."""
    return ops.relu(z)


@activation("leaky_relu")
def leaky_relu(z: Tensor, slope: float = 0.01) -> Tensor:
    """``phi(z) = z if z > 0 else slope z``; ``phi'(0) = slope``."""
    return ops.leaky_relu(z, slope=slope)


@activation("softplus")
def softplus(z: Tensor) -> Tensor:
    """``phi(z) = log(1 + e**z) = max(z, 0) + log(1 + e**-|z|)`` (stable), ``phi' = sigmoid``."""
    return ops.maximum(z, 0.0) + ops.log(1.0 + ops.exp(-ops.abs(z)))


@activation("elu")
def elu(z: Tensor, alpha: float = 1.0) -> Tensor:
    """``phi(z) = z if z > 0 else alpha (e**z - 1)``; ``phi'(0) = alpha``; never overflows."""
    return ops.elu(z, alpha=alpha)


_GELU_C = math.sqrt(2.0 / math.pi)


@activation("gelu")
def gelu(z: Tensor) -> Tensor:
    """``phi(z) = z/2 (1 + tanh(sqrt(2/pi) (z + 0.044715 z**3)))``.

    The tanh approximation (PyTorch's ``gelu(approximate='tanh')``).
    """
    return 0.5 * z * (1.0 + ops.tanh(_GELU_C * (z + 0.044715 * z * z * z)))


@activation("softmax", elementwise=False)
def softmax(z: Tensor) -> Tensor:
    """``a_j = e**z_j / sum_k e**z_k`` along the last axis; ``da_j/dz_i = a_j (delta_ij - a_i)``."""
    return ops.softmax(z, axis=-1)


def check_labels(labels: Any, n_classes: int, who: str = "labels") -> Any:
    """``labels`` if they are 1-D integers in ``0 .. n_classes - 1``, else an error naming the first bad one.

    Raises
    ------
    ConfigError
        ``n_classes < 1``.
    DataError
        Labels not 1-D integers, or out of range.
    """
    if n_classes < 1:
        raise ConfigError(f"{who}: n_classes must be >= 1, got {n_classes}.")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{who}: expected 1-D integer labels, got shape {labels.shape} dtype {labels.dtype}.")
    ops.check_label_range(labels, n_classes, who)
    return labels


def check_probabilities(targets: Any, who: str = "targets") -> Any:
    """``targets`` if every entry lies in ``[0, 1]`` (0/1 labels or probabilities), else an error naming one.

    Raises
    ------
    DataError
        The first entry (in C order) that is below 0, above 1 or NaN.
    """
    xp = backend.xp_of(targets)
    bad = ~((targets >= 0) & (targets <= 1))
    if bool(bad.any()):
        where = tuple(int(i) for i in xp.argwhere(bad)[0])
        raise DataError(
            f"{who}: targets must lie in [0, 1] (0/1 labels or probabilities); "
            f"target{list(where)} = {targets[where].item()}."
        )
    return targets


def one_hot(labels: Any, n_classes: int, dtype: Any = np.float32, who: str = "one_hot") -> Any:
    """Rows ``e_label`` of length ``n_classes`` for integer ``labels``, on the labels' backend.

    Shapes: ``labels (m,)`` integers in ``0 .. n_classes - 1`` -> ``(m, n_classes)``.

    Raises
    ------
    ConfigError
        ``n_classes < 1``.
    DataError
        Labels not 1-D integers, or out of range (the first bad one is named,
        after ``who``, e.g. the loss that needed the one-hot rows).

    Examples
    --------
    >>> one_hot(np.array([2, 0]), 3)
    array([[0., 0., 1.],
           [1., 0., 0.]], dtype=float32)
    """
    xp = backend.xp_of(labels)
    labels = check_labels(xp.asarray(labels), n_classes, who)
    out = xp.zeros((labels.shape[0], n_classes), dtype=dtype)
    out[xp.arange(labels.shape[0]), labels] = 1
    return out


def linear(a_prev: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """``Z = A_prev @ W.T + b``: the dense layer's pre-activation.

    Shapes: ``A_prev (m, n[l-1])``, ``W (n[l], n[l-1])``, ``b (n[l],)`` ->
    ``Z (m, n[l])``. Math: ``z[l] = W[l] a[l-1] + b[l]``; ``dC/dW = delta^T A_prev``,
    ``dC/db = sum over m of delta``, ``dC/dA_prev = delta W``.
    """
    return ops.linear(a_prev, w) if b is None else ops.linear(a_prev, w, b)


__all__ = [
    "ACTIVATIONS",
    "DENSE",
    "ELEMENTWISE",
    "activation",
    "elu",
    "gelu",
    "get_activation",
    "identity",
    "leaky_relu",
    "check_labels",
    "check_probabilities",
    "linear",
    "one_hot",
    "relu",
    "sigmoid",
    "softmax",
    "softplus",
    "tanh",
]
