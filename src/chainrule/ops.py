"""The primitives and their derivative rules: one table (level 3).

Each primitive's forward function and its VJP rule sit together here and
register into :data:`PRIMITIVES`, chainrule's ``derivatives.yaml``. A rule has
a fixed contract,

    vjp(g, out, *inputs, **params) -> one gradient (or None) per input,

where ``g = dC/dout`` has the shape of ``out``. A rule that also takes a
``needs`` keyword (``linear``, ``dense``, ``matmul``) is told which inputs want a
gradient, and returns None for the others instead of computing them. Rules
return gradients in the *broadcast* shape when that is simpler; the driver in
:mod:`chainrule.tensor` reduces them to each input's shape. Arrays come from the
active backend and every function below asks :func:`chainrule.backend.xp_of` for
its namespace, so the same table runs on NumPy and on CuPy.

A fused op (``dense``, the softmax family, the label cross-entropy) does its
array work through *kernels* (:func:`chainrule.backend.kernel`): each kernel is
defined here by its reference, the math as array operations, and the backend may
run a faster override of it instead (Numba loops, BLAS); this module never
chooses one.

Print the table with ``python -m chainrule ops``. Tests are driven by it: every
differentiable primitive is checked against PyTorch autograd and central
finite differences on its ``samples``, and every primitive must be either
differentiable (with a rule) or listed as non-differentiable (``vjp=None``).

Conventions at kinks (same as PyTorch): ``relu'(0) = 0``,
``leaky_relu'(0) = slope``, ``abs'(0) = 0``; ``max``, ``maximum`` and
``minimum`` split the gradient evenly between tied entries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.backend import kernel, scatter_add, xp_of
from chainrule.errors import ConfigError, DataError
from chainrule.tensor import VJP, Array, Primitive, Tensor

PRIMITIVES: dict[str, Primitive] = {}


def primitive(
    vjp: VJP | None, formula: str, samples: list[dict[str, Any]] | None = None
) -> Callable[[Callable[..., Array]], Primitive]:
    """Register ``forward`` with its rule ``vjp`` in :data:`PRIMITIVES`.

    ``samples`` lists example inputs for the table-driven tests; see :class:`chainrule.tensor.Primitive`.
    """

    def register(forward: Callable[..., Array]) -> Primitive:
        prim = Primitive(forward.__name__.strip("_"), forward, vjp, formula, samples)
        if prim.name in PRIMITIVES:
            raise ConfigError(f"primitive {prim.name!r} registered twice; pick another name.")
        PRIMITIVES[prim.name] = prim
        return prim

    return register


def sample(*shapes: tuple[int, ...], params: Any = None, domains: Any = "real") -> dict[str, Any]:
    """One test sample: input ``shapes``, op ``params`` (dict or ``rng -> dict``), domains."""
    return {"shapes": list(shapes), "params": params or {}, "domains": domains}


_UNARY = [sample((5,)), sample((3, 4)), sample((2, 3, 4))]
_BINARY = [sample((3, 4), (3, 4)), sample((3, 4), (4,)), sample((2, 1, 4), (3, 1)), sample((3, 4), ())]
_POS = [dict(s, domains="positive") for s in _UNARY]


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes)


def _expand(g: Array, ndim: int, axis: Any, keepdims: bool) -> Array:
    """Re-insert the axes a reduction removed, so ``g`` broadcasts against its input."""
    if keepdims or axis is None:
        return g.reshape(g.shape if keepdims else (1,) * ndim)
    return xp_of(g).expand_dims(g, _axes(axis, ndim))


# ----------------------------------------------------------- arithmetic
@primitive(lambda g, out, a, b: (g, g), "da = g; db = g", _BINARY)
def add(a: Array, b: Array) -> Array:
    """Elementwise ``a + b`` with broadcasting."""
    return a + b


@primitive(lambda g, out, a, b: (g, -g), "da = g; db = -g", _BINARY)
def subtract(a: Array, b: Array) -> Array:
    """Elementwise ``a - b`` with broadcasting."""
    return a - b


@primitive(lambda g, out, a, b: (g * b, g * a), "da = g * b; db = g * a", _BINARY)
def multiply(a: Array, b: Array) -> Array:
    """Elementwise ``a * b`` with broadcasting."""
    return a * b


@primitive(
    lambda g, out, a, b: (g / b, -g * out / b),
    "da = g / b; db = -g * a / b**2",
    [dict(s, domains=["real", "positive"]) for s in _BINARY],
)
def divide(a: Array, b: Array) -> Array:
    """Elementwise ``a / b`` with broadcasting."""
    return a / b


@primitive(lambda g, out, x: (-g,), "dx = -g", _UNARY)
def negative(x: Array) -> Array:
    """Elementwise ``-x``."""
    return -x


def _power_vjp(g: Array, out: Array, x: Array, p: Array) -> tuple[Array, Array]:
    xp = xp_of(x)
    # NOTE: dC/dp needs log(x), defined for x > 0 only; elsewhere it is taken as 0.
    return g * p * x ** (p - 1), g * out * xp.log(xp.where(x > 0, x, 1))


@primitive(
    _power_vjp,
    "dx = g * p * x**(p-1); dp = g * x**p * log(x)  (x > 0)",
    [dict(s, domains=["positive", "real"]) for s in _BINARY],
)
def power(x: Array, p: Array) -> Array:
    """Elementwise ``x ** p`` with broadcasting."""
    return x**p


# --------------------------------------------------------------- matmul
def _matmul_vjp(
    g: Array, out: Array, a: Array, b: Array, needs: tuple[bool, ...] = (True, True)
) -> tuple[Array | None, Array | None]:
    if a.ndim == 2 and b.ndim == 2:  # the common case, no reshaping; skip unwanted products
        return (g @ b.T if needs[0] else None), (a.T @ g if needs[1] else None)
    xp = xp_of(g)
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    # NOTE: re-insert b's axis first, so a 0-d g (vector @ vector) becomes (1, 1).
    g2 = xp.expand_dims(g, -1) if b.ndim == 1 else g
    g2 = xp.expand_dims(g2, -2) if a.ndim == 1 else g2
    ga = g2 @ xp.swapaxes(b2, -1, -2)
    gb = xp.swapaxes(a2, -1, -2) @ g2
    if a.ndim == 1:
        ga = ga.reshape(-1, a.shape[0]).sum(axis=0)
    if b.ndim == 1:
        gb = gb[..., 0].reshape(-1, b.shape[0]).sum(axis=0)
    return ga, gb


@primitive(
    _matmul_vjp,
    "dA = g @ B^T; dB = A^T @ g  (batch axes broadcast, vectors promoted)",
    [
        sample((3, 4), (4, 5)),
        sample((2, 3, 4), (4, 5)),
        sample((2, 3, 4), (2, 4, 5)),
        sample((2, 1, 3, 4), (3, 4, 2)),
        sample((4,), (4, 5)),
        sample((3, 4), (4,)),
        sample((4,), (4,)),
        sample((2, 3, 4), (4,)),
    ],
)
def matmul(a: Array, b: Array) -> Array:
    """Matrix product ``a @ b`` (NumPy semantics: batched, vectors promoted).

    Shapes: ``(..., n, k) @ (..., k, p) -> (..., n, p)``.
    """
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul needs arrays of at least one axis, not scalars")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(
            f"inner dimensions differ: a has {a.shape[-1]} columns, b has "
            f"{b.shape[-2 if b.ndim > 1 else 0]} rows"
        )
    return a @ b


# ---------------------------------------------------------- reductions
@primitive(
    lambda g, out, x, axis=None, keepdims=False: (
        xp_of(g).broadcast_to(_expand(g, x.ndim, axis, keepdims), x.shape),
    ),
    "dx = broadcast(g)",
    [
        sample((5,)),
        sample((3, 4), params={"axis": 1}),
        sample((2, 3, 4), params={"axis": (0, 2), "keepdims": True}),
    ],
)
def sum(x: Array, axis: Any = None, keepdims: bool = False) -> Array:  # noqa: A001
    """Sum over ``axis`` (all axes if None)."""
    return x.sum(axis=axis, keepdims=keepdims)


def _mean_vjp(g: Array, out: Array, x: Array, axis: Any = None, keepdims: bool = False) -> Any:
    count = int(np.prod([x.shape[a] for a in _axes(axis, x.ndim)]))
    return (xp_of(g).broadcast_to(_expand(g, x.ndim, axis, keepdims) / count, x.shape),)


@primitive(
    _mean_vjp,
    "dx = broadcast(g) / count",
    [
        sample((5,)),
        sample((3, 4), params={"axis": 0}),
        sample((2, 3, 4), params={"axis": -1, "keepdims": True}),
    ],
)
def mean(x: Array, axis: Any = None, keepdims: bool = False) -> Array:
    """Mean over ``axis`` (all axes if None)."""
    return x.mean(axis=axis, keepdims=keepdims)


def _max_vjp(g: Array, out: Array, x: Array, axis: Any = None, keepdims: bool = False) -> Any:
    mask = x == _expand(out, x.ndim, axis, keepdims)
    share = mask / mask.sum(axis=axis, keepdims=True)  # ties split the gradient evenly
    return (_expand(g, x.ndim, axis, keepdims) * share.astype(g.dtype, copy=False),)


@primitive(
    _max_vjp,
    "dx = g where x is the max (split evenly among ties), else 0",
    [
        sample((5,)),
        sample((3, 4), params={"axis": 1}),
        sample((2, 3, 4), params={"axis": (0, 1), "keepdims": True}),
    ],
)
def max(x: Array, axis: Any = None, keepdims: bool = False) -> Array:  # noqa: A001
    """Largest entry over ``axis`` (all axes if None)."""
    return x.max(axis=axis, keepdims=keepdims)


# ------------------------------------------------------------- shaping
@primitive(
    lambda g, out, x, shape: (g.reshape(x.shape),),
    "dx = reshape(g, x.shape)",
    [sample((3, 4), params={"shape": (2, 6)}), sample((2, 3, 4), params={"shape": (-1,)})],
)
def reshape(x: Array, shape: tuple[int, ...]) -> Array:
    """View of ``x`` with a new shape."""
    return x.reshape(shape)


def _transpose_vjp(g: Array, out: Array, x: Array, axes: Any = None) -> tuple[Array]:
    if axes is None:
        return (g.transpose(),)
    return (g.transpose(tuple(np.argsort([a % x.ndim for a in axes]))),)  # negative axes too


@primitive(
    _transpose_vjp,
    "dx = transpose(g, inverse(axes))",
    [
        sample((3, 4)),
        sample((2, 3, 4), params={"axes": (1, 2, 0)}),
        sample((2, 3, 4), params={"axes": (-1, 0, 1)}),
    ],
)
def transpose(x: Array, axes: Any = None) -> Array:
    """Permute axes (reverse them if ``axes`` is None); a view, no copy."""
    return x.transpose(axes)


def _is_basic(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, int | slice) or p is None or p is Ellipsis for p in parts)


def _getitem_vjp(g: Array, out: Array, x: Array, index: Any) -> tuple[Array]:
    gx = xp_of(g).zeros_like(x)
    if _is_basic(index):
        gx[index] = g
    else:  # advanced indices may repeat: accumulate
        scatter_add(gx, index, g)
    return (gx,)


@primitive(
    _getitem_vjp,
    "dx = zeros; dx[index] += g",
    [
        sample((5, 4), params={"index": (slice(1, 4), 2)}),
        sample((5, 4), params={"index": (np.array([0, 2, 2]), slice(None))}),
        sample((3, 4), params={"index": (np.array([0, 1, 1]), np.array([3, 2, 2]))}),
    ],
)
def getitem(x: Array, index: Any) -> Array:
    """``x[index]``: basic slicing or integer-array indexing."""
    return x[index]


def _take_vjp(g: Array, out: Array, x: Array, indices: Array, axis: int) -> tuple[Array]:
    xp = xp_of(g)
    # the forward broadcasts x and indices against each other: a size-1 axis of x collects its g
    full = list(xp.indices(x.shape, sparse=True))
    full[axis] = xp.broadcast_to(indices, g.shape)
    gx = xp.zeros_like(x)
    scatter_add(gx, tuple(full), g)
    return (gx,)


@primitive(
    _take_vjp,
    "dx = zeros; dx[along axis at indices] += g",
    [
        sample((3, 4), params=lambda rng: {"indices": rng.integers(0, 4, (3, 2)), "axis": 1}),
        sample((3, 4), params=lambda rng: {"indices": rng.integers(0, 3, (5, 4)), "axis": 0}),
        sample((3, 4), params=lambda rng: {"indices": rng.integers(0, 4, (1, 2)), "axis": -1}),
        sample((1, 4), params=lambda rng: {"indices": rng.integers(0, 4, (3, 2)), "axis": 1}),
    ],
)
def take_along_axis(x: Array, indices: Array, axis: int) -> Array:
    """``numpy.take_along_axis(x, indices, axis)`` (e.g. pick each row's label)."""
    return xp_of(x).take_along_axis(x, indices, axis=axis)


def _concatenate_vjp(g: Array, out: Array, *xs: Array, axis: int = 0) -> list[Array]:
    cuts = np.cumsum([x.shape[axis] for x in xs])[:-1]
    return list(xp_of(g).split(g, [int(c) for c in cuts], axis=axis))


@primitive(
    _concatenate_vjp,
    "dx_i = the slice of g that x_i filled",
    [sample((2, 3), (4, 3)), sample((2, 3), (2, 1), (2, 2), params={"axis": 1})],
)
def concatenate(*xs: Array, axis: int = 0) -> Array:
    """Join arrays along ``axis``; call as ``concatenate(a, b, ..., axis=0)``."""
    return xp_of(xs[0]).concatenate(xs, axis=axis)


# ------------------------------------------------------- elementwise math
@primitive(lambda g, out, x: (g * out,), "dx = g * exp(x)", _UNARY)
def exp(x: Array) -> Array:
    """Elementwise ``e ** x``."""
    return xp_of(x).exp(x)


@primitive(lambda g, out, x: (g / x,), "dx = g / x", _POS)
def log(x: Array) -> Array:
    """Elementwise natural logarithm."""
    return xp_of(x).log(x)


@primitive(lambda g, out, x: (g / (2 * out),), "dx = g / (2 sqrt(x))", _POS)
def sqrt(x: Array) -> Array:
    """Elementwise square root."""
    return xp_of(x).sqrt(x)


@primitive(lambda g, out, x: (g * xp_of(x).sign(x),), "dx = g * sign(x)  (abs'(0) = 0)", _UNARY)
def abs(x: Array) -> Array:  # noqa: A001
    """Elementwise absolute value."""
    return xp_of(x).abs(x)


def _pick_vjp(g: Array, a: Array, b: Array) -> tuple[Array, Array]:
    """Gradients of an op choosing ``a`` where ``a > b`` (``maximum``); ties split."""
    xp = xp_of(g)
    half, zero = g * 0.5, xp.zeros_like(g)
    tie = a == b
    return xp.where(a > b, g, xp.where(tie, half, zero)), xp.where(a < b, g, xp.where(tie, half, zero))


@primitive(
    lambda g, out, a, b: _pick_vjp(g, a, b),
    "da = g where a > b; db = g where b > a; ties split g/2",
    _BINARY,
)
def maximum(a: Array, b: Array) -> Array:
    """Elementwise larger of ``a`` and ``b``."""
    return xp_of(a).maximum(a, b)


@primitive(
    lambda g, out, a, b: _pick_vjp(g, b, a),  # (g where b > a, g where b < a) = (da, db)
    "da = g where a < b; db = g where b < a; ties split g/2",
    _BINARY,
)
def minimum(a: Array, b: Array) -> Array:
    """Elementwise smaller of ``a`` and ``b``."""
    return xp_of(a).minimum(a, b)


def _where_vjp(g: Array, out: Array, a: Array, b: Array, cond: Array) -> tuple[Array, Array]:
    xp = xp_of(g)
    zero = xp.zeros((), dtype=g.dtype)
    return xp.where(cond, g, zero), xp.where(cond, zero, g)


@primitive(
    _where_vjp,
    "da = g where cond else 0; db = g where not cond else 0",
    [
        sample((3, 4), (3, 4), params=lambda rng: {"cond": rng.random((3, 4)) > 0.5}),
        sample((3, 4), (4,), params=lambda rng: {"cond": rng.random((1, 4)) > 0.5}),
    ],
)
def _where(a: Array, b: Array, cond: Array) -> Array:
    """``a`` where ``cond`` is true, else ``b`` (the primitive; see :func:`where`)."""
    return xp_of(a).where(cond, a, b)


# ------------------------------------------------------------ activations
# phi'(z) as a function of the output a = phi(z): one formula each, used by the
# activation's own rule and by the dense op's.
def _relu_d(a: Array) -> Array:
    return a > 0  # relu'(0) = 0


def _sigmoid_d(a: Array) -> Array:
    return a * (1 - a)


def _tanh_d(a: Array) -> Array:
    return 1 - a * a


@primitive(lambda g, out, x: (g * _relu_d(out),), "dx = g * [x > 0]  (relu'(0) = 0)", _UNARY)
def relu(x: Array) -> Array:
    """Rectified linear unit ``max(x, 0)``; ``relu'(0) = 0`` as in PyTorch."""
    return xp_of(x).maximum(x, 0)


def _leaky_vjp(g: Array, out: Array, x: Array, slope: float = 0.01) -> tuple[Array]:
    return (xp_of(g).where(x > 0, g, g * slope),)


@primitive(
    _leaky_vjp,
    "dx = g if x > 0 else slope * g  (leaky_relu'(0) = slope)",
    [*_UNARY, sample((3, 4), params={"slope": 0.2})],
)
def leaky_relu(x: Array, slope: float = 0.01) -> Array:
    """``x`` if ``x > 0`` else ``slope * x``."""
    return xp_of(x).where(x > 0, x, x * slope)


def _elu_vjp(g: Array, out: Array, x: Array, alpha: float = 1.0) -> tuple[Array]:
    xp = xp_of(x)  # alpha e**x, not out + alpha: that cancels to 0 for very negative x
    return (g * xp.where(x > 0, 1, alpha * xp.exp(xp.minimum(x, 0))),)


@primitive(
    _elu_vjp,
    "dx = g if x > 0 else g alpha e**x  (elu'(0) = alpha)",
    [*_UNARY, sample((3, 4), params={"alpha": 0.5})],
)
def elu(x: Array, alpha: float = 1.0) -> Array:
    """``x`` if ``x > 0`` else ``alpha (e**x - 1)``; ``e**x`` of ``min(x, 0)``, so it never overflows."""
    xp = xp_of(x)
    return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0)))


@primitive(lambda g, out, x: (g * _sigmoid_d(out),), "dx = g * a (1 - a), a = sigmoid(x)", _UNARY)
def sigmoid(x: Array) -> Array:
    """Logistic ``1 / (1 + e**-x)``, computed from ``e**-|x|`` so it never overflows."""
    xp = xp_of(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


@primitive(lambda g, out, x: (g * _tanh_d(out),), "dx = g * (1 - a**2), a = tanh(x)", _UNARY)
def tanh(x: Array) -> Array:
    """Hyperbolic tangent."""
    return xp_of(x).tanh(x)


# The activations a dense op can apply itself: phi, and phi' as a function of a = phi(z).
DENSE_ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "relu": (relu.forward, _relu_d),
    "sigmoid": (sigmoid.forward, _sigmoid_d),
    "tanh": (tanh.forward, _tanh_d),
}


# ------------------------------------------------------------ dense layers
@kernel
def weight_grad(delta: Array, a_prev: Array, w: Array) -> Array:
    """``dC/dW = delta^T A_prev``, summed over the batch (``w`` only lends its layout to overrides).

    Shapes: ``delta (m, n[l])``, ``A_prev (m, n[l-1])``, ``W (n[l], n[l-1])`` -> ``(n[l], n[l-1])``.
    """
    return delta.T @ a_prev


def _linear_vjp(
    g: Array, out: Array, a: Array, w: Array, *b: Array, needs: Any = (True, True, True)
) -> tuple[Array | None, ...]:
    g2, a2 = g.reshape(-1, w.shape[0]), a.reshape(-1, w.shape[1])
    # NOTE: the first layer's input needs no gradient: skipping g @ W saves its largest product.
    grads = (g @ w if needs[0] else None, weight_grad(g2, a2, w) if needs[1] else None)
    return (*grads, g2.sum(axis=0) if needs[2] else None) if b else grads


@primitive(
    _linear_vjp,
    "Z = A_prev @ W^T + b: dA_prev = delta @ W; dW = delta^T @ A_prev; db = sum_m delta",
    [sample((5, 3), (4, 3), (4,)), sample((5, 3), (4, 3)), sample((3,), (4, 3), (4,))],
)
def linear(a: Array, w: Array, *b: Array) -> Array:
    """Dense layer ``Z = A_prev @ W.T + b``, one op (equals the composite of matmul and add).

    Shapes: ``A_prev (m, n[l-1])``, ``W (n[l], n[l-1])``, ``b (n[l],)``,
    ``Z (m, n[l])``. Math: ``z[l] = W[l] a[l-1] + b[l]`` per example (row).
    """
    if a.shape[-1] != w.shape[1]:
        raise ValueError(
            f"expected input of shape (m, {w.shape[1]}) for W of shape {tuple(w.shape)}, got {tuple(a.shape)}"
        )
    z = a @ w.T
    if b:
        z += b[0]
    return z


@kernel
def bias_act(z: Array, b: Array | None, activation: str) -> Array:
    """``a = phi(z + b)``, row by row: a dense layer after its matrix product (``z`` may be overwritten).

    Shapes: ``z (m, n)``, ``b (n,)`` (or broadcastable) or None -> ``a (m, n)``.
    """
    phi = DENSE_ACTIVATIONS[activation][0]
    return phi(z if b is None else z + b)


@kernel
def act_grad(g: Array, a: Array, activation: str, want_db: bool) -> tuple[Array, Array | None]:
    """``delta = g * phi'(z)`` from the output ``a = phi(z)``, and ``dC/db = sum over rows of delta``.

    Shapes: ``g, a (m, n)`` -> ``delta (m, n)``, ``db (n,)`` (None unless ``want_db``).
    """
    d = g * DENSE_ACTIVATIONS[activation][1](a)
    return d, d.sum(axis=0) if want_db else None


def _dense_vjp(
    g: Array, out: Array, a: Array, w: Array, *b: Array, activation: str, needs: Any = (True, True, True)
) -> Any:
    n = w.shape[0]
    d, db = act_grad(g.reshape(-1, n), out.reshape(-1, n), activation, bool(b) and needs[2])
    grads = _linear_vjp(d.reshape(g.shape), out, a, w, needs=needs[:2])
    return (*grads, db) if b else grads


_DENSE = [
    sample((5, 3), (4, 3), *b, params={"activation": f}) for f in DENSE_ACTIVATIONS for b in [[(4,)], []]
]
_DENSE.append(sample((2, 5, 3), (4, 3), params={"activation": "tanh"}))


@primitive(_dense_vjp, "a = phi(A_prev @ W^T + b): delta = g * phi'(a), then as linear", _DENSE)
def dense(a: Array, w: Array, *b: Array, activation: str = "relu") -> Array:
    """Dense layer and its activation in one op: ``a[l] = phi(A_prev @ W.T + b)``.

    ``activation`` is one of :data:`DENSE_ACTIVATIONS` (``phi'`` is a function of
    ``a[l]``, so the rule needs no ``z[l]``); equals ``phi(linear(a, w, b))``. Shapes
    as :func:`linear`.
    """
    z = linear.forward(a, w)
    return bias_act(z.reshape(-1, w.shape[0]), b[0] if b else None, activation).reshape(z.shape)


# (70, 3): more rows than columns, the shape of a batch of class scores
_ROWS = [sample((5,)), sample((3, 4)), sample((2, 3, 4), params={"axis": 1}), sample((70, 3))]


@primitive(
    lambda g, out, x, axis=-1: (out * (g - (g * out).sum(axis=axis, keepdims=True)),),
    "dz_i = sum_j g_j a_j (delta_ij - a_i) = a_i (g_i - sum_j g_j a_j)",
    _ROWS,
)
@kernel
def softmax(x: Array, axis: int = -1) -> Array:
    """``a_j = e**z_j / sum_k e**z_k`` along ``axis``; the max is subtracted first.

    The VJP applies the Jacobian ``da_j/dz_i = a_j (delta_ij - a_i)`` without
    building it: ``dC/dz = a * (g - sum(g * a))``.
    """
    e = xp_of(x).exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


@primitive(
    lambda g, out, x, axis=-1, keepdims=False: (
        _expand(g, x.ndim, axis, keepdims) * xp_of(x).exp(x - _expand(out, x.ndim, axis, keepdims)),
    ),
    "dx = g * softmax(x)",
    [*_ROWS, sample((3, 4), params={"axis": 0, "keepdims": True})],
)
@kernel
def logsumexp(x: Array, axis: int = -1, keepdims: bool = False) -> Array:
    """Stable ``log(sum(exp(x)))`` along ``axis``: the (finite) row max ``M`` is taken out first.

    Math: ``lse(x) = M + log(sum(exp(x - M)))``; a row of -inf gives -inf, not NaN.
    """
    xp = xp_of(x)
    m = x.max(axis=axis, keepdims=True)
    m[~xp.isfinite(m)] = 0
    r = xp.log(xp.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return r if keepdims else r.squeeze(axis=axis)


@primitive(
    lambda g, out, x, axis=-1: (g - xp_of(g).exp(out) * g.sum(axis=axis, keepdims=True),),
    "dz = g - softmax(z) * sum(g)",
    _ROWS,
)
def log_softmax(x: Array, axis: int = -1) -> Array:
    """``z - logsumexp(z)`` along ``axis``: stable log-probabilities."""
    return x - logsumexp.forward(x, axis, True)


# ------------------------------------------------------------ fused losses
def _sce_vjp(g: Array, out: Array, z: Array, y: Array, axis: int = -1) -> tuple[Array, Array]:
    xp = xp_of(z)
    log_a = log_softmax.forward(z, axis)
    g = xp.expand_dims(g, axis)
    return g * (xp.exp(log_a) * y.sum(axis=axis, keepdims=True) - y), -g * log_a


@primitive(
    _sce_vjp,
    "C = -sum_j y_j log softmax(z)_j: dz = g * (softmax(z) sum(y) - y) = a - y for one-hot y",
    [sample((4, 3), (4, 3), domains=["real", "positive"]), sample((5,), (5,), domains=["real", "positive"])],
)
def softmax_cross_entropy(z: Array, y: Array, axis: int = -1) -> Array:
    """Per-example ``C = -sum_j y_j log(softmax(z)_j)`` from logits ``z``, fused and stable.

    Shapes: ``z, y (m, k) -> C (m,)``. Entries with ``y_j = 0`` contribute
    nothing even where ``z_j = -inf``.
    """
    xp = xp_of(z)
    log_a = log_softmax.forward(z, axis)
    zero = xp.zeros((), dtype=log_a.dtype)
    return -(y * xp.where(y != 0, log_a, zero)).sum(axis=axis)  # no 0 * -inf = NaN


def check_label_range(labels: Array, n_classes: int, who: str) -> None:
    """Raise a DataError naming the first of ``labels`` outside ``0 .. n_classes - 1``, if any."""
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        i = int(bad.argmax())
        raise DataError(
            f"{who}: labels[{i}] = {int(labels[i])} is out of range for n_classes={n_classes} "
            f"(expected 0 .. {n_classes - 1})."
        )


@kernel
def sce_labels(z: Array, labels: Array) -> Array:
    """Per-example ``-log softmax(z)_label = logsumexp(z) - z_label``.

    Shapes: ``z (m, k)``, labels ``(m,)`` -> ``(m,)``.

    Raises
    ------
    DataError
        A label outside ``0 .. k - 1`` (a compiled step replays this op without the loss's own check).
    """
    check_label_range(labels, z.shape[-1], "softmax_cross_entropy_labels")
    return logsumexp.forward(z, -1, False) - z[xp_of(z).arange(z.shape[0]), labels]


@kernel
def sce_labels_grad(z: Array, labels: Array, scale: Array) -> Array:
    """``(softmax(z) - onehot(labels)) * scale``, ``scale`` a 0-d array or one per row ``(m,)``.

    Raises
    ------
    DataError
        A label outside ``0 .. k - 1``.
    """
    check_label_range(labels, z.shape[-1], "softmax_cross_entropy_labels")
    a = softmax.forward(z, -1)
    a[xp_of(z).arange(z.shape[0]), labels] -= 1  # a - y without building the one-hot y
    a *= scale[:, None] if scale.ndim == 1 else scale
    return a


def _sparse_sce_vjp(g: Array, out: Array, z: Array, labels: Array, reduction: str = "none") -> tuple[Array]:
    scale = xp_of(z).asarray(g / z.shape[0] if reduction == "mean" else g, dtype=z.dtype)
    return (sce_labels_grad(z, labels, scale),)


@primitive(
    _sparse_sce_vjp,
    "C = -log softmax(z)_label: dz = g * (softmax(z) - onehot(label)) = a - y  (/ m for the mean)",
    [
        sample((4, 3), params=lambda rng: {"labels": rng.integers(0, 3, 4)}),
        sample((5, 4), params=lambda rng: {"labels": rng.integers(0, 4, 5), "reduction": "mean"}),
        sample((5, 4), params=lambda rng: {"labels": rng.integers(0, 4, 5), "reduction": "sum"}),
        sample((70, 3), params=lambda rng: {"labels": rng.integers(0, 3, 70), "reduction": "mean"}),
    ],
)
def softmax_cross_entropy_labels(z: Array, labels: Array, reduction: str = "none") -> Array:
    """``C = -log(softmax(z)_label)`` per example from logits ``z (m, k)`` and integer labels ``(m,)``.

    The same cost as :func:`softmax_cross_entropy` with one-hot targets, without
    building them. ``reduction`` ``"mean"`` or ``"sum"`` reduces over the ``m``
    examples inside the op (one op per step instead of two).
    """
    per_example = sce_labels(z, labels)
    if reduction == "none":
        return per_example
    return per_example.mean() if reduction == "mean" else per_example.sum()


def _xlogy_vjp(g: Array, out: Array, y: Array, a: Array) -> tuple[Array, Array]:
    xp = xp_of(a)
    nonzero = y != 0  # where y = 0 the term is 0 whatever a is: no gradient either
    log_a = xp.where(nonzero, xp.log(xp.where(nonzero, a, 1)), 0)
    return g * log_a, g * xp.where(nonzero, y / xp.where(nonzero, a, 1), 0)


@primitive(
    _xlogy_vjp,
    "y log(a), 0 where y = 0: dy = g log(a); da = g y / a  (both 0 where y = 0, as torch.xlogy)",
    [sample((3, 4), (3, 4), domains="positive"), sample((5,), (5,), domains=["unit", "positive"])],
)
def xlogy(y: Array, a: Array) -> Array:
    """Elementwise ``y log(a)``, exactly 0 where ``y = 0`` even for ``a = 0`` (``0 log 0 = 0``, no NaN)."""
    xp = xp_of(a)
    nonzero = y != 0
    return xp.where(nonzero, y * xp.log(xp.where(nonzero, a, 1)), 0)


def _sbce_vjp(g: Array, out: Array, z: Array, y: Array) -> tuple[Array, Array]:
    return g * (sigmoid.forward(z) - y), -g * z


@primitive(
    _sbce_vjp,
    "C = -[y log s + (1-y) log(1-s)], s = sigmoid(z): dz = g * (s - y); dy = -g * z",
    [sample((4, 3), (4, 3), domains=["real", "unit"])],
)
def sigmoid_binary_cross_entropy(z: Array, y: Array) -> Array:
    """Elementwise binary cross-entropy from logits: ``max(z,0) - z y + log(1 + e**-|z|)``."""
    xp = xp_of(z)
    return xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))


# ------------------------------------------------------ non-differentiable
@primitive(None, "non-differentiable")
def argmax(x: Array, axis: Any = None) -> Array:
    """Index of the largest entry along ``axis`` (integers; no gradient)."""
    return x.argmax(axis=axis)


def _comparison(name: str, fn: Callable[[Array, Array], Array]) -> Primitive:
    def forward(a: Array, b: Array) -> Array:
        return fn(a, b)

    forward.__name__, forward.__doc__ = name, f"Elementwise ``{name}`` (booleans; no gradient)."
    return primitive(None, "non-differentiable")(forward)


equal = _comparison("equal", lambda a, b: a == b)
not_equal = _comparison("not_equal", lambda a, b: a != b)
less = _comparison("less", lambda a, b: a < b)
less_equal = _comparison("less_equal", lambda a, b: a <= b)
greater = _comparison("greater", lambda a, b: a > b)
greater_equal = _comparison("greater_equal", lambda a, b: a >= b)

NON_DIFFERENTIABLE = tuple(name for name, p in PRIMITIVES.items() if not p.differentiable)


# ------------------------------------------------------------ public helpers
def _data(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``cond`` is true, else ``b``; gradients flow to ``a`` and ``b`` only."""
    return _where(a, b, cond=_data(cond))


def table() -> list[tuple[str, str]]:
    """``(name, rule)`` for every primitive: the table of derivative rules."""
    return [(name, p.formula) for name, p in PRIMITIVES.items()]


def _index(index: Any) -> Any:
    if isinstance(index, tuple):
        return tuple(_data(i) for i in index)
    return _data(index)


def _shape_arg(shape: Sequence[Any]) -> tuple[int, ...]:
    if len(shape) == 1 and not isinstance(shape[0], int):
        return tuple(shape[0])
    return tuple(shape)


def _install_methods() -> None:
    """Give :class:`Tensor` its operators and methods, all routed through the table."""
    t: Any = Tensor
    t.__add__ = lambda a, b: add(a, b)
    t.__radd__ = lambda a, b: add(b, a)
    t.__sub__ = lambda a, b: subtract(a, b)
    t.__rsub__ = lambda a, b: subtract(b, a)
    t.__mul__ = lambda a, b: multiply(a, b)
    t.__rmul__ = lambda a, b: multiply(b, a)
    t.__truediv__ = lambda a, b: divide(a, b)
    t.__rtruediv__ = lambda a, b: divide(b, a)
    t.__pow__ = lambda a, b: power(a, b)
    t.__rpow__ = lambda a, b: power(b, a)
    t.__matmul__ = lambda a, b: matmul(a, b)
    t.__rmatmul__ = lambda a, b: matmul(b, a)
    t.__neg__ = lambda a: negative(a)
    t.__abs__ = lambda a: abs(a)
    t.__getitem__ = lambda a, i: getitem(a, index=_index(i))
    t.__eq__ = lambda a, b: equal(a, b)
    t.__ne__ = lambda a, b: not_equal(a, b)
    t.__lt__ = lambda a, b: less(a, b)
    t.__le__ = lambda a, b: less_equal(a, b)
    t.__gt__ = lambda a, b: greater(a, b)
    t.__ge__ = lambda a, b: greater_equal(a, b)
    t.sum = lambda a, axis=None, keepdims=False: sum(a, axis=axis, keepdims=keepdims)
    t.mean = lambda a, axis=None, keepdims=False: mean(a, axis=axis, keepdims=keepdims)
    t.max = lambda a, axis=None, keepdims=False: max(a, axis=axis, keepdims=keepdims)
    t.reshape = lambda a, *shape: reshape(a, shape=_shape_arg(shape))
    t.transpose = lambda a, *axes: transpose(a, axes=_shape_arg(axes) if axes else None)
    t.T = property(lambda a: transpose(a))
    t.exp = lambda a: exp(a)
    t.log = lambda a: log(a)
    t.sqrt = lambda a: sqrt(a)
    t.argmax = lambda a, axis=None: argmax(a, axis=axis)


_install_methods()

# every primitive by name (``where`` wraps the primitive ``_where``), and the helpers
__all__ = [name for name in PRIMITIVES if name != "where"]
__all__ += ["DENSE_ACTIVATIONS", "NON_DIFFERENTIABLE", "PRIMITIVES", "primitive", "sample", "table", "where"]
__all__ += ["act_grad", "bias_act", "check_label_range", "sce_labels", "sce_labels_grad", "weight_grad"]
