"""Fused CPU loops compiled with Numba: a dense layer's activation, the label cross-entropy (level 2).

A dense layer ``a = phi(A_prev @ W.T + b)`` costs two matrix products and, in
NumPy, several passes over the ``(m, n)`` result: add ``b``, apply ``phi``; on
the way back ``g * phi'(a)`` (a mask or a product, then the product with it) and
the column sums ``dC/db``. NumPy runs each pass on one core and writes a fresh
array each time. Here each direction is one loop over the rows, compiled once
per dtype by Numba (one thread: see ``_compile``):

    forward    z := phi(z + b)                                  (in place; relu, sigmoid)
    backward   d = g * phi'(a),  db = sum over rows of d        (one pass; relu, sigmoid, tanh)

``phi'`` is read from the output ``a`` (``relu'(z) = [a > 0]``,
``sigmoid' = a (1 - a)``, ``tanh' = 1 - a**2``), which is why only those
activations are fused. tanh's forward stays NumPy's (``z += b``, then ``tanh``
in place): a scalar tanh per entry in a loop is 14 times slower than NumPy's
vectorised one. The label cross-entropy runs as a loop for the row max and the
shift, NumPy's vectorised ``exp`` in place, and a loop for the row sums with the
loss (forward) or ``(softmax - onehot) * scale`` (backward): 3 calls instead of
~10 array operations and two transposes (1024 x 10, both directions: 40 us
against 63 us; a scalar ``exp`` in the loop would cost 91 us). :func:`addmm` is
:func:`chainrule.backend.addmm` with its BLAS call made from compiled code.

The arithmetic is that of the array operations below, up to rounding (the ops table tests
:func:`chainrule.ops.dense` and the label cross-entropy against PyTorch and
finite differences, ``tests/test_kernels.py`` the loops against the array
operations), and ``relu`` keeps a NaN input NaN, as ``maximum`` does.

Numba is optional: ``pip install "chainrule[fast]"`` (the test extra installs
it too). Without it, and for arrays that are not NumPy (CuPy) or not
float32/float64, the same math runs as array operations; so it does when
``CHAINRULE_NUMBA=0`` is set. The loops cost a one-time ~120 MiB of resident
memory (Numba and LLVM) and 0.2-0.4 s at the first call of a process (about 1 s
the first time, to compile; the result is cached next to this file or in the
user's cache directory); they save ~5-10% of a training step
(``docs/benchmarks.md``). The softmax-row helpers at the end (``lse``,
``softmax``) are array operations for any backend.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from chainrule import backend
from chainrule.backend import xp_of
from chainrule.errors import ConfigError, DataError

Array = Any
FUSED = ("relu", "sigmoid", "tanh")  # activations whose derivative is a function of the output
_SCE = "softmax_cross_entropy_labels"  # who the label errors of the cross-entropy name

_compiled: dict[str, Any] = {}


def _load() -> Any:
    """The compiled loops by name (``forward``, ``backward``, ``sce_shift``, ...), or None."""
    if "loops" not in _compiled:
        _compiled["loops"] = None if os.environ.get("CHAINRULE_NUMBA", "1") == "0" else _compile()
    return _compiled["loops"]


def _compile() -> Any:
    try:
        import numba
    except ImportError:  # the array-operation path below computes the same
        return None

    # NOTE: ``zero`` and ``one`` come in typed like the arrays, so float32 math stays float32
    def forward(z: Array, b: Array, has_b: bool, act: int, zero: Any, one: Any) -> None:
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                v = z[i, j] + b[j] if has_b else z[i, j]
                if act == 0:
                    if v <= zero:  # noqa: PLR1730 (NaN fails this test and stays NaN; max() would not)
                        v = zero
                else:  # sigmoid, from e**-|v|: never overflows
                    e = np.exp(-abs(v))
                    v = one / (one + e) if v >= zero else e / (one + e)
                z[i, j] = v

    def backward(
        g: Array, a: Array, d: Array, db: Array, want_db: bool, act: int, zero: Any, one: Any
    ) -> None:
        db[:] = zero  # rows added in order, as NumPy's d.sum(axis=0) adds them
        for i in range(g.shape[0]):
            for j in range(g.shape[1]):
                x = a[i, j]
                if act == 0:  # a product, not a choice: a NaN g stays NaN, as in ops.relu's rule
                    v = g[i, j] * (one if x > zero else zero)
                elif act == 1:
                    v = g[i, j] * (x * (one - x))
                else:
                    v = g[i, j] * (one - x * x)
                d[i, j] = v
                if want_db:
                    db[j] += v

    def sce_shift(z: Array, labels: Array, zero: Any, finite_max: bool, e: Array, mx: Array) -> int:
        for i in range(z.shape[0]):
            if labels[i] < 0 or labels[i] >= z.shape[1]:
                return i  # the caller names the bad label
            m = z[i, 0]
            for j in range(1, z.shape[1]):
                m = max(m, z[i, j])
            if finite_max and not np.isfinite(m):  # lse of a row of -inf is -inf, not NaN, as in lse()
                m = zero
            mx[i] = m
            for j in range(z.shape[1]):
                e[i, j] = z[i, j] - m
        return -1

    def sce_loss(e: Array, z: Array, labels: Array, mx: Array, zero: Any, out: Array) -> None:
        for i in range(e.shape[0]):
            s = zero
            for j in range(e.shape[1]):
                s += e[i, j]
            out[i] = np.log(s) + mx[i] - z[i, labels[i]]

    def sce_grad(e: Array, labels: Array, scale: Array, per_row: bool, zero: Any, one: Any) -> None:
        for i in range(e.shape[0]):
            s = zero
            for j in range(e.shape[1]):
                s += e[i, j]
            c = scale[i] if per_row else scale[0]
            for j in range(e.shape[1]):
                e[i, j] = (e[i, j] / s - (one if j == labels[i] else zero)) * c

    def gemm(fn: Any, ints: Any, a: Array, b: Array, c: Array, alpha: Any) -> None:
        ta, tb, n, p, k, lda, ldb, ldc = ints  # a backend.gemm_plan; beta = 1
        fn(102, ta, tb, n, p, k, alpha, a.ctypes.data, lda, b.ctypes.data, ldb, 1.0, c.ctypes.data, ldc)

    # NOTE: one thread, on purpose: Numba's parallel loops start an OpenMP pool whose
    # threads spin after each loop; beside OpenBLAS's threads on 2 cores that made a
    # batch-1024 step 7x slower (43 ms against 6.2 ms), and even without the contention
    # (OMP_WAIT_POLICY=passive) two threads gained nothing on these memory-bound loops.

    loops = [("forward", forward), ("backward", backward), ("sce_shift", sce_shift)]
    loops += [("sce_loss", sce_loss), ("sce_grad", sce_grad), ("gemm", gemm)]
    try:  # compiled code cached next to this file, or in the user's cache directory
        return {name: numba.njit(cache=True, nogil=True, error_model="numpy")(fn) for name, fn in loops}
    except RuntimeError:  # no writable cache location: compile afresh in each process
        return {name: numba.njit(nogil=True, error_model="numpy")(fn) for name, fn in loops}


def addmm(c: Array, a: Array, b: Array, alpha: float) -> None:
    """:func:`chainrule.backend.addmm` (``c += alpha a b`` in one BLAS gemm), called from compiled code.

    The same BLAS function with the same arguments (:func:`chainrule.backend.gemm_plan`),
    but a call through ctypes costs ~4.8 us (14 arguments converted to C, three
    ``.ctypes.data`` lookups) against ~1.8 us from a compiled loop, alone; inside a
    training step of a 784-256-128-10 MLP at batch 32, whose fused SGD makes one call
    per weight, the step took 18-28 us less (of ~350).
    """
    loops = _load()
    plan = None if loops is None else backend.gemm_plan(c, a, b)
    if plan is None:
        backend.addmm(c, a, b, alpha)
    else:
        fn, ints, a, b, c = plan
        loops["gemm"](fn, ints, a, b, c, c.dtype.type(alpha))


def _native(first: Array, *rest: Array) -> bool:
    """NumPy float32/float64 arrays of one native-endian dtype (what the loops are compiled for)."""
    if not isinstance(first, np.ndarray) or first.dtype.char not in "fd" or not first.dtype.isnative:
        return False
    for x in rest:
        if not isinstance(x, np.ndarray) or x.dtype != first.dtype:
            return False
    return True


def _code(activation: str) -> int:
    if activation not in FUSED:
        raise ConfigError(f"no fused loop for activation {activation!r}; expected one of {list(FUSED)}.")
    return FUSED.index(activation)


def bias_act(z: Array, b: Array | None, activation: str) -> Array:
    """``z := phi(z + b)`` in place and return ``z``; ``z (m, n)`` C-ordered, ``b (n,)`` or None."""
    act = _code(activation)
    loops = _load()
    # NOTE: not tanh: a scalar tanh per entry in the loop is 14x slower than NumPy's vectorised one
    if (
        act != 2
        and loops is not None
        and _native(z, *([] if b is None else [b]))
        and z.ndim == 2
        and z.flags.c_contiguous
        and (b is None or b.shape == z.shape[1:])  # a broadcast bias takes the array path
    ):
        bias = np.zeros(1, dtype=z.dtype) if b is None else b  # a placeholder of the right dtype
        zero, one = z.dtype.type(0), z.dtype.type(1)
        loops["forward"](z, bias, b is not None, act, zero, one)
        return z
    xp = xp_of(z)
    if b is not None:
        z += b
    if act == 0:
        return xp.maximum(z, 0, out=z)
    if act == 1:
        e = xp.exp(-xp.abs(z))
        return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return xp.tanh(z, out=z) if z.dtype.kind == "f" else xp.tanh(z)


def act_grad(g: Array, a: Array, activation: str, want_db: bool) -> tuple[Array, Array | None]:
    """``(d, db)``: ``d = g * phi'(a)`` (fresh, ``(m, n)``) and, if asked, ``db = d.sum(axis=0)``."""
    act = _code(activation)
    loops = _load()
    if loops is not None and _native(g, a) and g.ndim == 2 and g.shape == a.shape:
        d = np.empty(g.shape, dtype=g.dtype)
        db = np.empty(g.shape[1] if want_db else 1, dtype=g.dtype)
        zero, one = g.dtype.type(0), g.dtype.type(1)
        loops["backward"](g, a, d, db, want_db, act, zero, one)
        return d, db if want_db else None
    if act == 0:
        d = g * (a > 0)
    elif act == 1:
        d = g * (a * (1 - a))
    else:
        d = g * (1 - a * a)
    return d, d.sum(axis=0) if want_db else None


def _exp_shifted(z: Array, labels: Array, loops: Any, forward: bool) -> tuple[Array, Array] | None:
    """``(exp(z - rowmax), rowmax)`` by the loops and NumPy's exp; None where the array path must run.

    The row max and the shift are a loop (NumPy reduces a short row slowly); the exp is
    NumPy's, vectorised, in place (a scalar exp per entry in the loop is ~4.5 ns: 2x
    slower at 1024 x 10). The forward replaces a non-finite row max by 0, as :func:`lse`
    does; the backward keeps it, as :func:`softmax` does. None for arrays the loops do
    not take.
    """
    if not (
        _native(z)
        and z.ndim == 2
        and z.shape[1] > 0
        and isinstance(labels, np.ndarray)
        and labels.shape == z.shape[:1]
        and labels.dtype.kind in "iu"
        and labels.dtype.isnative
    ):
        return None
    e, mx = np.empty(z.shape, dtype=z.dtype), np.empty(z.shape[0], dtype=z.dtype)
    bad = loops["sce_shift"](z, labels, z.dtype.type(0), forward, e, mx)
    if bad >= 0:
        _label_error(labels, z.shape[1], bad, _SCE)
    return np.exp(e, out=e), mx


def check_label_range(labels: Array, n_classes: int, who: str) -> None:
    """Raise a DataError naming the first of ``labels`` outside ``0 .. n_classes - 1``, if any.

    The one range check of integer labels: :func:`chainrule.functional.check_labels`
    uses it, and so does the array path below (the loops check as they go).
    """
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        _label_error(labels, n_classes, int(bad.argmax()), who)


def _label_error(labels: Array, n_classes: int, i: int, who: str) -> None:
    raise DataError(
        f"{who}: labels[{i}] = {int(labels[i])} is out of range for n_classes={n_classes} "
        f"(expected 0 .. {n_classes - 1})."
    )


def sce_labels(z: Array, labels: Array) -> Array:
    """Per-example ``-log softmax(z)_label = lse(z) - z_label``: ``z (m, k)``, labels ``(m,)`` -> ``(m,)``.

    Raises
    ------
    DataError
        A label outside ``0 .. k - 1`` (a traced step replays this op without the loss's own check).
    """
    loops = _load()
    shifted = None if loops is None else _exp_shifted(z, labels, loops, forward=True)
    if shifted is not None:
        out = np.empty(z.shape[0], dtype=z.dtype)
        loops["sce_loss"](shifted[0], z, labels, shifted[1], z.dtype.type(0), out)
        return out
    check_label_range(labels, z.shape[-1], _SCE)
    return lse(z, -1, False) - z[xp_of(z).arange(z.shape[0]), labels]  # gather, then one (m,) subtract


def sce_labels_grad(z: Array, labels: Array, scale: Array) -> Array:
    """``(softmax(z) - onehot(labels)) * scale``, ``scale`` a scalar or one per row ``(m,)``."""
    loops = _load()
    scale = xp_of(z).asarray(scale, dtype=z.dtype)
    fits = loops is not None and scale.shape in ((), z.shape[:1])
    shifted = _exp_shifted(z, labels, loops, forward=False) if fits else None
    if shifted is not None:
        d, zero, one = shifted[0], z.dtype.type(0), z.dtype.type(1)
        loops["sce_grad"](d, labels, scale.reshape(-1), scale.ndim == 1, zero, one)
        return d
    check_label_range(labels, z.shape[-1], _SCE)
    a = softmax(z, -1)
    a[xp_of(z).arange(z.shape[0]), labels] -= 1  # a - y without building the one-hot y
    a *= scale[:, None] if scale.ndim == 1 else scale
    return a


# ------------------------------------------------ softmax rows (array operations, any backend)
def rows_first(x: Array, axis: int) -> tuple[Array, int, bool]:
    """``(x, axis, False)``, or the transposed copy of a 2-D array with a short last axis.

    NOTE: NumPy reduces a short last axis of a 2-D array row by row, slowly (50 us for
    a 1024x10 max); the same work on the transposed copy over axis 0 is vectorised
    (9 us). Callers work on that copy and transpose the result back (a view). Few rows
    are cheaper as they are.
    """
    if isinstance(x, np.ndarray) and x.ndim == 2 and axis in (-1, 1) and x.shape[1] <= 64 <= x.shape[0]:
        return np.ascontiguousarray(x.T), 0, True
    return x, axis, False


def lse(x: Array, axis: int, keepdims: bool) -> Array:
    """Stable ``log(sum(exp(x)))``: subtract the (finite) max first."""
    xp = xp_of(x)
    xs, ax, flipped = rows_first(x, axis)
    m = xs.max(axis=ax, keepdims=True)
    m[~xp.isfinite(m)] = 0  # rows of -inf stay -inf, not NaN
    r = xp.log(xp.exp(xs - m).sum(axis=ax, keepdims=True)) + m
    return (r.T if flipped else r) if keepdims else r.squeeze(axis=ax)


def softmax(x: Array, axis: int) -> Array:
    """``exp(x - max) / sum`` along ``axis``: a fresh array (column-major for short rows)."""
    xs, ax, flipped = rows_first(x, axis)
    e = xp_of(x).exp(xs - xs.max(axis=ax, keepdims=True))
    e /= e.sum(axis=ax, keepdims=True)
    return e.T if flipped else e


__all__ = [
    "FUSED",
    "act_grad",
    "addmm",
    "bias_act",
    "check_label_range",
    "lse",
    "rows_first",
    "sce_labels",
    "sce_labels_grad",
    "softmax",
]
