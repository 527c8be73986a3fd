"""The hand-style numbers of ``explain``: the notes' equations in NumPy float64 (level 6).

Nothing here reads a gradient off the autodiff engine. For ``l = 1, ..., L``
(layer 1 is the first weight layer, ``a[0] = x``), with examples as rows:

    z[l] = W[l] a[l-1] + b[l],   a[l] = phi[l](z[l])
    delta[L] = dC/da[L] * phi'(z[L])            (a[L] - y for a fused pair)
    delta[l] = (W[l+1]^T delta[l+1]) * phi'(z[l])
    dC/dW[l] = delta[l] a[l-1]^T,   dC/db[l] = delta[l]
    W[l] <- W[l] - alpha dC/dW[l],  b[l] <- b[l] - alpha dC/db[l]

For a softmax layer ``phi'`` is the Jacobian ``da_j/dz_i = a_j (delta_ij - a_i)``
and ``delta = J^T g``. Over a batch of ``m`` examples ``dC/da[L]`` carries the
loss's ``1/m`` and the gradients sum over the examples. The engine
(:mod:`chainrule.layers` + :mod:`chainrule.losses`) and central finite
differences only check these numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from chainrule.autograd import enable_grad, no_grad
from chainrule.errors import ConfigError
from chainrule.functional import ELEMENTWISE, get_activation
from chainrule.layers import Dense, Sequential
from chainrule.losses import LOSSES, fused, get_loss
from chainrule.tensor import Tensor

Array = np.ndarray
Params = list[tuple[Array, Array | None]]


# ------------------------------------------------------------ activations
@dataclass(frozen=True)
class Phi:
    """``phi`` and ``phi'`` of one activation; ``formula`` writes ``phi'`` with ``{z}`` and ``{a}``."""

    f: Callable[[Array], Array]
    d: Callable[[Array, Array], Array]  # (z, a) -> phi'(z)
    formula: str


def _sigmoid(z: Array) -> Array:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


_GELU_C = math.sqrt(2.0 / math.pi)


def _gelu(z: Array) -> Array:
    return 0.5 * z * (1 + np.tanh(_GELU_C * (z + 0.044715 * z**3)))


def _gelu_prime(z: Array, a: Array) -> Array:
    t = np.tanh(_GELU_C * (z + 0.044715 * z**3))
    return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * _GELU_C * (1 + 3 * 0.044715 * z * z)


def _softmax(z: Array) -> Array:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


PHI: dict[str, Phi] = {
    "identity": Phi(lambda z: z.copy(), lambda z, a: np.ones_like(z), "1"),
    "sigmoid": Phi(_sigmoid, lambda z, a: a * (1 - a), "{a} (1 - {a})"),
    "tanh": Phi(np.tanh, lambda z, a: 1 - a * a, "1 - {a}^2"),
    "relu": Phi(lambda z: np.maximum(z, 0.0), lambda z, a: (z > 0).astype(np.float64), "[{z} > 0]"),
    "leaky_relu": Phi(
        lambda z: np.where(z > 0, z, 0.01 * z),
        lambda z, a: np.where(z > 0, 1.0, 0.01),
        "1 if {z} > 0 else 0.01",
    ),
    "softplus": Phi(lambda z: np.logaddexp(0.0, z), lambda z, a: _sigmoid(z), "sigmoid({z})"),
    "elu": Phi(
        lambda z: np.where(z > 0, z, np.exp(np.minimum(z, 0.0)) - 1),
        lambda z, a: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0.0))),
        "1 if {z} > 0 else e^{z}",
    ),
    "gelu": Phi(_gelu, _gelu_prime, "gelu'({z})"),
}


def _engine_phi(name: str) -> Phi:
    """``phi`` and the elementwise ``phi'`` of a registered activation without a closed form here."""
    fn = get_activation(name)

    def d(z: Array, a: Array) -> Array:
        t = Tensor(z.copy(), requires_grad=True)
        with enable_grad():
            fn(t).sum().backward()
        return np.asarray(t.grad, dtype=np.float64)

    return Phi(lambda z: np.asarray(fn(Tensor(z)).data, dtype=np.float64), d, name + "'({z})")


def phi_of(name: str) -> Phi:
    """The :class:`Phi` of activation ``name`` (softmax: ``phi`` only; its ``phi'`` is a Jacobian)."""
    if name == "softmax":
        return Phi(_softmax, lambda z, a: a, "a_j (delta_ij - a_i)")
    if name in PHI:
        return PHI[name]
    if name in ELEMENTWISE:
        return _engine_phi(name)
    raise ConfigError(
        f"explain: activation {name!r} is neither elementwise nor softmax; explain cannot show it."
    )


def softmax_jacobian(a: Array) -> Array:
    """``J[e, i, j] = da_j/dz_i = a_j (delta_ij - a_i)`` for each example ``e``: ``(m, n) -> (m, n, n)``."""
    return a[:, None, :] * (np.eye(a.shape[1])[None] - a[:, :, None])


# ------------------------------------------------------------------ losses
@dataclass(frozen=True)
class LossRule:
    """``C`` (batch mean, as :mod:`chainrule.losses`) and ``dC/da[L]`` (with its ``1/m``), plus their text."""

    value: Callable[[Array, Array], float]
    grad: Callable[[Array, Array], Array]
    C: str
    dCda: str  # noqa: N815


def _mean(per_example: Array) -> float:
    return float(np.mean(per_example))


def _ce(a: Array, y: Array) -> Array:
    return -np.sum(np.where(y != 0, y * np.log(np.where(y != 0, a, 1.0)), 0.0), axis=-1)


def _bce(a: Array, y: Array) -> Array:
    log_a = np.log(np.where(y != 0, a, 1.0))
    log_1ma = np.log(np.where(y != 1, 1 - a, 1.0))
    return -np.sum(y * log_a + (1 - y) * log_1ma, axis=-1)


def _log_softmax(z: Array) -> Array:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


RULES: dict[str, LossRule] = {
    "sse": LossRule(
        lambda a, y: _mean(np.sum((a - y) ** 2, axis=-1)),
        lambda a, y: 2 * (a - y) / len(a),
        "sum_j (a_j[L] - y_j)^2",
        "2 (a[L] - y)",
    ),
    "half_sse": LossRule(
        lambda a, y: _mean(0.5 * np.sum((a - y) ** 2, axis=-1)),
        lambda a, y: (a - y) / len(a),
        "1/2 sum_j (a_j[L] - y_j)^2",
        "a[L] - y",
    ),
    "mse": LossRule(
        lambda a, y: float(np.mean((a - y) ** 2)),
        lambda a, y: 2 * (a - y) / a.size,
        "1/k sum_j (a_j[L] - y_j)^2",
        "2 (a[L] - y) / k",
    ),
    "cross_entropy": LossRule(
        lambda a, y: _mean(_ce(a, y)),
        lambda a, y: np.where(y != 0, -y / np.where(y != 0, a, 1.0), 0.0) / len(a),
        "-sum_j y_j log a_j[L]",
        "-y / a[L]",
    ),
    "binary_cross_entropy": LossRule(
        lambda a, y: _mean(_bce(a, y)),
        lambda a, y: (a - y) / (a * (1 - a)) / len(a),
        "-sum_j [y_j log a_j[L] + (1 - y_j) log(1 - a_j[L])]",
        "(a[L] - y) / (a[L] (1 - a[L]))",
    ),
    "softmax_cross_entropy": LossRule(
        lambda z, y: _mean(-np.sum(np.where(y != 0, y * _log_softmax(z), 0.0), axis=-1)),
        lambda z, y: (_softmax(z) * y.sum(axis=-1, keepdims=True) - y) / len(z),
        "-sum_j y_j log softmax(a[L])_j",
        "softmax(a[L]) - y",
    ),
    "sigmoid_binary_cross_entropy": LossRule(
        lambda z, y: _mean(np.sum(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))), axis=-1)),
        lambda z, y: (_sigmoid(z) - y) / len(z),
        "sum_j [max(a_j[L], 0) - a_j[L] y_j + log(1 + e^-|a_j[L]|)]",
        "sigmoid(a[L]) - y",
    ),
}


def rule_of(loss: str) -> LossRule:
    """The :class:`LossRule` of the library loss named ``loss``."""
    get_loss(loss)  # an unknown name raises the library's ConfigError
    if loss not in RULES:
        raise ConfigError(f"explain: no hand-style rule for loss {loss!r}; explain knows {sorted(RULES)}.")
    return RULES[loss]


def fused_name(loss: str, output_activation: str) -> str | None:
    """Name of the loss on logits that the library fuses ``output_activation`` + ``loss`` into."""
    return LOSSES[loss].fuses.get(output_activation)


# ------------------------------------------------------------ the passes
@dataclass
class Layer:
    """The numbers of layer ``l`` (1-based), examples as rows.

    Shapes
    ------
    ``W (n[l], n[l-1])``, ``b (n[l],)`` or None, ``z, a, delta (m, n[l])``,
    ``dphi (m, n[l])`` (None for softmax), ``jacobian (m, n[l], n[l])`` (softmax
    only, ``[e, i, j] = da_j/dz_i``), ``back = delta[l+1] W[l+1]`` (None for
    ``L``), ``grad_W (n[l], n[l-1])``, ``grad_b (n[l],)``.
    """

    index: int
    activation: str
    W: Array
    b: Array | None
    z: Array
    a: Array
    dphi: Array | None = None
    jacobian: Array | None = None
    back: Array | None = None
    delta: Array | None = None
    grad_W: Array | None = None  # noqa: N815
    grad_b: Array | None = None
    W_after: Array | None = None
    b_after: Array | None = None


def forward(params: Params, activations: list[str], x: Array) -> list[tuple[Array, Array]]:
    """``(z[l], a[l])`` for ``l = 1..L``: ``z[l] = a[l-1] W[l]^T + b[l]``, ``a[l] = phi[l](z[l])``."""
    out = []
    a = x
    for (W, b), act in zip(params, activations, strict=True):
        z = a @ W.T if b is None else a @ W.T + b
        a = phi_of(act).f(z)
        out.append((z, a))
    return out


def _through(layer: Layer, g: Array) -> Array:
    """``dC/dz[l]`` from ``g = dC/da[l]``: ``g * phi'(z[l])``, or ``J^T g`` for softmax."""
    if layer.activation == "softmax":
        layer.jacobian = softmax_jacobian(layer.a)
        return np.einsum("eij,ej->ei", layer.jacobian, g)
    layer.dphi = phi_of(layer.activation).d(layer.z, layer.a)
    return g * layer.dphi


def passes(
    params: Params, activations: list[str], x: Array, y: Array, loss: str
) -> tuple[list[Layer], float, Array]:
    """Forward, loss, delta recursion and gradients; returns ``(layers, C, dC/da[L])``."""
    layers = [
        Layer(i + 1, act, W, b, z, a)
        for i, ((W, b), act, (z, a)) in enumerate(
            zip(params, activations, forward(params, activations, x), strict=True)
        )
    ]
    out = layers[-1]
    fuse = fused_name(loss, out.activation)
    if fuse is not None:  # delta[L] = a[L] - y straight from the logits z[L]
        C = RULES[fuse].value(out.z, y)
        dCda = rule_of(loss).grad(out.a, y)
        out.delta = RULES[fuse].grad(out.z, y)
        if out.activation == "softmax":
            out.jacobian = softmax_jacobian(out.a)
        else:
            out.dphi = phi_of(out.activation).d(out.z, out.a)
    else:
        rule = rule_of(loss)
        C = rule.value(out.a, y)
        dCda = rule.grad(out.a, y)
        out.delta = _through(out, dCda)
    for layer, above in zip(layers[-2::-1], layers[:0:-1], strict=True):
        assert above.delta is not None
        layer.back = above.delta @ above.W
        layer.delta = _through(layer, layer.back)
    a_prev = x
    for layer in layers:
        assert layer.delta is not None
        layer.grad_W = layer.delta.T @ a_prev
        layer.grad_b = None if layer.b is None else layer.delta.sum(axis=0)
        a_prev = layer.a
    return layers, C, dCda


def loss_at(params: Params, activations: list[str], x: Array, y: Array, loss: str) -> float:
    """``C`` alone, for finite differences and the loss curve."""
    z, a = forward(params, activations, x)[-1]
    fuse = fused_name(loss, activations[-1])
    return RULES[fuse].value(z, y) if fuse is not None else rule_of(loss).value(a, y)


def step(layers: list[Layer], alpha: float, update_bias: bool) -> Params:
    """``W[l] - alpha dC/dW[l]`` (and ``b[l] - alpha dC/db[l]`` unless biases are fixed)."""
    new: Params = []
    for layer in layers:
        assert layer.grad_W is not None
        layer.W_after = layer.W - alpha * layer.grad_W
        layer.b_after = layer.b
        if layer.b is not None and layer.grad_b is not None and update_bias:
            layer.b_after = layer.b - alpha * layer.grad_b
        new.append((layer.W_after, layer.b_after))
    return new


# ----------------------------------------------------------------- checks
def engine_gradients(
    params: Params, activations: list[str], x: Array, y: Array, loss: str
) -> tuple[float, Params]:
    """``C`` and every ``(dC/dW[l], dC/db[l])`` from the autodiff engine, float64."""
    dense = [
        Dense(
            W.shape[1],
            W.shape[0],
            bias=False if b is None else b,
            activation=act,
            weights=W,
            dtype=np.float64,
        )
        for (W, b), act in zip(params, activations, strict=True)
    ]
    model = Sequential(*dense)
    base = get_loss(loss)
    fuse = fused(base, model.output_activation)
    with enable_grad():
        C = fuse(model(x, logits=True), y) if fuse is not None else base(model(x), y)
        C.backward()
    grads: Params = []
    for layer in dense:
        gb = None if layer.b is None else np.asarray(layer.b.grad, dtype=np.float64)
        grads.append((np.asarray(layer.W.grad, dtype=np.float64), gb))
    return float(C.item()), grads


def finite_differences(
    params: Params, activations: list[str], x: Array, y: Array, loss: str, eps: float = 1e-6
) -> Params:
    """Central differences ``(C(theta + eps) - C(theta - eps)) / 2 eps`` for every weight and bias."""
    copies = [(W.copy(), None if b is None else b.copy()) for W, b in params]
    grads: Params = []
    with no_grad():
        for W, b in copies:
            pair: list[Array | None] = []
            for theta in (W, b):
                if theta is None:
                    pair.append(None)
                    continue
                g = np.zeros_like(theta)
                for idx in np.ndindex(theta.shape):
                    keep = theta[idx]
                    theta[idx] = keep + eps
                    up = loss_at(copies, activations, x, y, loss)
                    theta[idx] = keep - eps
                    down = loss_at(copies, activations, x, y, loss)
                    theta[idx] = keep
                    g[idx] = (up - down) / (2 * eps)
                pair.append(g)
            assert pair[0] is not None
            grads.append((pair[0], pair[1]))
    return grads


def max_difference(layers: list[Layer], grads: Params) -> float:
    """Largest ``|hand - other|`` over every ``dC/dW[l]`` and ``dC/db[l]``."""
    worst = 0.0
    for layer, (gW, gb) in zip(layers, grads, strict=True):
        assert layer.grad_W is not None
        worst = max(worst, float(np.max(np.abs(layer.grad_W - gW))))
        if layer.grad_b is not None and gb is not None:
            worst = max(worst, float(np.max(np.abs(layer.grad_b - gb))))
    return worst
