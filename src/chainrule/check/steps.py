"""The steps of one forward pass, backward pass and update, as replaceable rules (level 7).

``explain`` computes every number of the notes once, correctly. To recognise a
learner's mistake, :mod:`chainrule.check` recomputes the same numbers with one
step done the wrong way, so here each step of the notes is one small rule
``rule(at) -> array``, looked up by the name of the quantity it produces, and
:func:`compute` runs them in the order of the notes. A mistake (see
:mod:`chainrule.check.mistakes`) replaces a few rules.

The quantities, their keys in ``explain --format json`` and their order
(examples as rows, ``l = 1..L``)::

    z[l]       z                    z[l] = a[l-1] W[l]^T + b[l]
    a[l]       a                    a[l] = phi[l](z[l])
    C          loss                 the loss's convention, mean over the m examples
    dC/da[L]   dC_da_L              with the loss's 1/m
    W[l+1]^T delta[l+1]             W_next_T_delta_next   (l < L)
    phi'(z[l]) phi_prime            (softmax: the Jacobian, key softmax_jacobian)
    delta[l]   delta                dC/da[l] * phi'(z[l]); a - y for a fused pair
    dC/dW[l]   grad_weights         delta[l]^T a[l-1]
    dC/db[l]   grad_bias            delta[l] summed over the examples
    W[l] after weights_after        W[l] - alpha dC/dW[l]
    b[l] after bias_after           b[l] - alpha dC/db[l] (unless biases are fixed)

The backward quantities run from layer L down to 1, then the gradients and the
updates from 1 up to L. With ``given`` values (a learner's answer), every later
step uses the learner's own number wherever the answer has one ("follow
through"), so a step is judged on the inputs the learner actually had.
"""

# ruff: noqa: E741  (l is the layer index, as in the notes)
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule.explain import handwork as hw
from chainrule.explain.spec import Spec

Array = np.ndarray
Key = tuple[str, int]  # (quantity, layer); layer 0 for C and dC/da[L]
Rule = Callable[["At"], Array]

PER_EXAMPLE = ("z", "a", "dC_da_L", "W_next_T_delta_next", "phi_prime", "delta")
SYMBOL = {
    "z": "z[{l}]",
    "a": "a[{l}]",
    "loss": "C",
    "dC_da_L": "dC/da[L]",
    "W_next_T_delta_next": "W[{n}]^T delta[{n}]",
    "phi_prime": "phi'(z[{l}])",
    "delta": "delta[{l}]",
    "grad_weights": "dC/dW[{l}]",
    "grad_bias": "dC/db[{l}]",
    "weights_after": "W[{l}] after the step",
    "bias_after": "b[{l}] after the step",
}


@dataclass
class At:
    """What one step of layer ``l`` sees; a rule reads the fields it needs.

    Shapes
    ------
    ``a_prev (m, n[l-1])``; ``z, a, g, dphi, delta (m, n[l])`` (``dphi (m, n, n)``
    for softmax); ``W (n[l], n[l-1])``, ``b (n[l],)``; ``W_next (n[l+1], n[l])``,
    ``delta_next (m, n[l+1])``; ``grad`` shaped like the parameter it updates;
    ``y (m, n[L])``.
    """

    l: int
    act: str
    m: int
    loss: str
    fused: str | None
    alpha: float
    update_bias: bool
    W: Any = None
    b: Any = None
    a_prev: Any = None
    z: Any = None
    a: Any = None
    y: Any = None
    g: Any = None  # dC/da[l]
    dphi: Any = None
    delta: Any = None
    W_next: Any = None
    delta_next: Any = None
    grad: Any = None

    def but(self, **changes: Any) -> At:
        """A copy with some fields changed (how a mistake feeds a rule other values)."""
        return dataclasses.replace(self, **changes)


def chain(act: str, g: Array, dphi: Array) -> Array:
    """``dC/dz = dC/da * phi'(z)``, or ``J^T dC/da`` for softmax (``J[e, i, j] = da_j/dz_i``)."""
    if act == "softmax":
        return np.asarray(np.einsum("eij,ej->ei", dphi, g))
    return np.asarray(g * dphi)


def phi_prime(act: str, z: Array, a: Array) -> Array:
    """``phi'(z)`` elementwise (``a = phi(z)`` given), or softmax's Jacobian of ``a``."""
    if act == "softmax":
        return hw.softmax_jacobian(a)
    return np.asarray(hw.phi_of(act).d(z, a), dtype=np.float64)


def _loss(s: At) -> Array:
    if s.fused is not None:
        return np.array(hw.RULES[s.fused].value(s.z, s.y))
    return np.array(hw.rule_of(s.loss).value(s.a, s.y))


def _delta(s: At) -> Array:
    if s.fused is not None:  # the fused pair: delta[L] = (a[L] - y) / m straight from z[L]
        return np.asarray(hw.RULES[s.fused].grad(s.z, s.y))
    return chain(s.act, s.g, s.dphi)


def _bias_after(s: At) -> Array:
    return np.asarray(s.b - s.alpha * s.grad) if s.update_bias else np.array(s.b)


CORRECT: dict[str, Rule] = {
    "z": lambda s: s.a_prev @ s.W.T + (0.0 if s.b is None else s.b),
    "a": lambda s: np.asarray(hw.phi_of(s.act).f(s.z)),
    "loss": _loss,
    "dC_da_L": lambda s: np.asarray(hw.rule_of(s.loss).grad(s.a, s.y)),
    "W_next_T_delta_next": lambda s: s.delta_next @ s.W_next,
    "phi_prime": lambda s: phi_prime(s.act, s.z, s.a),
    "delta": _delta,
    "grad_weights": lambda s: s.delta.T @ s.a_prev,
    "grad_bias": lambda s: s.delta.sum(axis=0),
    "weights_after": lambda s: s.W - s.alpha * s.grad,
    "bias_after": _bias_after,
}


def order(spec: Spec) -> list[Key]:
    """Every quantity of ``spec`` in the order the notes compute them."""
    L = len(spec.layers)
    keys: list[Key] = [(q, l) for l in range(1, L + 1) for q in ("z", "a")]
    keys += [("loss", 0), ("dC_da_L", 0)]
    for l in range(L, 0, -1):
        keys += ([("W_next_T_delta_next", l)] if l < L else []) + [("phi_prime", l), ("delta", l)]
    with_bias = [l for l in range(1, L + 1) if spec.layers[l - 1].b is not None]
    for grad, after in (("grad_weights", "grad_bias"), ("weights_after", "bias_after")):
        for l in range(1, L + 1):
            keys += [(grad, l)] + ([(after, l)] if l in with_bias else [])
    return keys


def shape_of(spec: Spec, key: Key) -> tuple[int, ...]:
    """The shape of a quantity, examples as rows: ``(m, n[l])``, ``(n[l], n[l-1])``, ``()``..."""
    q, l = key
    m, sizes = spec.x.shape[0], spec.sizes
    if q == "loss":
        return ()
    if q == "dC_da_L":
        return (m, sizes[-1])
    if q == "phi_prime" and spec.layers[l - 1].activation == "softmax":
        return (m, sizes[l], sizes[l])
    if q in PER_EXAMPLE:
        return (m, sizes[l])
    if q in ("grad_weights", "weights_after"):
        return (sizes[l], sizes[l - 1])
    return (sizes[l],)


def symbol(spec: Spec, key: Key) -> str:
    """The notes' name of a whole quantity: ``delta[1]``, ``dC/dW[2]``, ``C``."""
    q, l = key
    return SYMBOL[q].format(l=l, n=l + 1)


def json_key(spec: Spec, key: Key) -> str:
    """The quantity's key in ``explain --format json`` (``softmax_jacobian`` for a softmax phi')."""
    q, l = key
    if q == "phi_prime" and spec.layers[l - 1].activation == "softmax":
        return "softmax_jacobian"
    return q


def compute(
    spec: Spec, rules: Mapping[str, Rule], given: Mapping[Key, Array] | None = None
) -> dict[Key, Array]:
    """Run the steps with ``rules``; each step uses ``given`` values where they exist.

    Returns every quantity the rules computed (before ``given`` replaced it), in
    order. Where a wrong rule cannot run on these shapes (``W`` instead of ``W^T``
    on a non-square layer) the right one runs: that mistake cannot be made there.
    Where it gives the wrong shape (``dC/dW`` transposed), that value is returned
    but later steps go on from the right one.
    """
    given = given or {}
    out: dict[Key, Array] = {}
    cur: dict[Key, Array] = {}
    L = len(spec.layers)
    fuse = hw.fused_name(spec.loss, spec.layers[-1].activation)

    def at(l: int, **fields: Any) -> At:
        layer = spec.layers[l - 1]
        base = At(l, layer.activation, spec.x.shape[0], spec.loss, None, spec.learning_rate, spec.update_bias)
        return base.but(W=layer.W, b=layer.b, y=spec.y, **fields)

    def step(key: Key, s: At) -> None:
        with np.errstate(all="ignore"):
            try:
                value = np.asarray(rules[key[0]](s), dtype=np.float64)
            except (ValueError, IndexError):  # e.g. W for W^T on a non-square layer: not made here
                value = np.asarray(CORRECT[key[0]](s), dtype=np.float64)
        out[key] = value
        if value.shape != shape_of(spec, key):  # dC/dW transposed: later steps go on from the right one
            value = np.asarray(CORRECT[key[0]](s), dtype=np.float64)
        mine = given.get(key)
        if mine is not None and mine.shape == value.shape:
            value = np.where(np.isnan(mine), value, mine)
        cur[key] = value

    def a(l: int) -> Array:
        return spec.x if l == 0 else cur[("a", l)]

    for l in range(1, L + 1):
        step(("z", l), at(l, a_prev=a(l - 1)))
        step(("a", l), at(l, z=cur[("z", l)]))
    last = at(L, z=cur[("z", L)], a=a(L))
    step(("loss", 0), last.but(fused=fuse))
    step(("dC_da_L", 0), last)
    for l in range(L, 0, -1):
        s = at(l, z=cur[("z", l)], a=a(l), a_prev=a(l - 1), fused=fuse if l == L else None)
        if l < L:
            step(("W_next_T_delta_next", l), s.but(W_next=spec.layers[l].W, delta_next=cur[("delta", l + 1)]))
        g = cur[("dC_da_L", 0)] if l == L else cur[("W_next_T_delta_next", l)]
        step(("phi_prime", l), s)
        step(("delta", l), s.but(g=g, dphi=cur[("phi_prime", l)]))
    for l in range(1, L + 1):
        s = at(l, a_prev=a(l - 1), a=a(l), delta=cur[("delta", l)])
        step(("grad_weights", l), s)
        if spec.layers[l - 1].b is not None:
            step(("grad_bias", l), s)
    for l in range(1, L + 1):
        step(("weights_after", l), at(l, grad=cur[("grad_weights", l)]))
        if spec.layers[l - 1].b is not None:
            step(("bias_after", l), at(l, grad=cur[("grad_bias", l)]))
    return out


def from_explanation(layers: list[hw.Layer], C: float, dCda: Array) -> dict[Key, Array]:
    """``explain``'s own numbers under the same keys (the reference every answer is checked against)."""
    out: dict[Key, Array] = {("loss", 0): np.array(C), ("dC_da_L", 0): dCda}
    for layer in layers:
        l = layer.index
        values = {
            "z": layer.z,
            "a": layer.a,
            "W_next_T_delta_next": layer.back,
            "phi_prime": layer.dphi if layer.jacobian is None else layer.jacobian,
            "delta": layer.delta,
            "grad_weights": layer.grad_W,
            "grad_bias": layer.grad_b,
            "weights_after": layer.W_after,
            "bias_after": layer.b_after if layer.b is not None else None,
        }
        out.update({(q, l): np.asarray(v, dtype=np.float64) for q, v in values.items() if v is not None})
    return out


__all__ = ["CORRECT", "At", "Key", "Rule", "chain", "compute", "from_explanation", "order", "phi_prime"]
