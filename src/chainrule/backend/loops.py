"""Overrides compiled with Numba: a dense layer's bias and activation, the label cross-entropy, addmm.

Part of :mod:`chainrule.backend` (level 1); a provider of the kernel registry.

In NumPy a dense layer's ``a = phi(Z + b)`` after its matrix product is several
passes over the ``(m, n)`` result, each writing a fresh array; on the way back
``g * phi'(a)`` and the column sums ``dC/db`` are two more. Here each direction is
one loop over the rows, compiled once per dtype (single-threaded: the BLAS
products around them own the cores):

    bias_act   z := phi(z + b)                            (in place; relu, sigmoid)
    act_grad   d = g * phi'(a),  db = sum over rows of d  (one pass; relu, sigmoid, tanh)

and the optimizers' in-place updates are one pass over the parameter, its gradient
and its state (``adam_update``: Adam's two moments; ``momentum_update``: SGD's
velocity, plain or Nesterov).

``phi'`` is read from the output ``a`` as in the references (``relu'`` is
``[a > 0]``, ``sigmoid' = a (1 - a)``, ``tanh' = 1 - a**2``). tanh's forward is
left to the reference: a scalar tanh per entry in a loop is slower than NumPy's
vectorised one. The label cross-entropy runs its row maxima and sums as loops
around NumPy's vectorised ``exp`` (a scalar ``exp`` in the loop is slower), and
declines (``NotImplemented``) on a label out of range, so the reference raises
its error. ``addmm`` makes the BLAS call of :mod:`chainrule.backend.blas` from
compiled code, which costs less than through ctypes.

The loops compute what the references compute, up to rounding, and ``relu`` keeps
a NaN input NaN, as ``maximum`` does. The optimizer loops flush subnormal numbers
to zero while they run (x86's FTZ/DAZ bits, restored on return): Adam's second
moment of a near-zero gradient decays into the subnormal range, where every
multiply costs about a hundred cycles (a 784x256 update took 1.8 ms instead of
0.1 ms). A value below 1e-38 (float32) or 1e-308 (float64) in ``m`` or ``v`` then
becomes 0; a step differs from the reference's only where it would be below those.

Each loop takes NumPy float32/float64 arrays of one native dtype and the layouts
named in its predicate; anything else runs the reference. Numba is optional
(``pip install "chainrule[fast]"``); without it this module registers nothing, and
a Numba that cannot compile switches the loops off with one warning. Compiled code
is cached in the user's cache directory (:func:`cache_dir`), never beside the
installed package. What the loops save, and what they cost (memory, the first call
of a process), is in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.backend import blas
from chainrule.backend.registry import override

Array = Any
ACTS = ("relu", "sigmoid", "tanh")  # activation codes 0, 1, 2 of the loops
_compiled: dict[str, Any] = {}
_flush_on: Any = None  # set by loops(): see _mxcsr_intrinsics
_restore: Any = None


def cache_dir() -> Path | None:
    """Where compiled loops are cached: ``$CHAINRULE_CACHE_DIR``, else the user cache directory.

    ``$XDG_CACHE_HOME/chainrule/numba`` (default ``~/.cache/chainrule/numba``); None if it
    cannot be created or written (the loops are then compiled afresh in each process).
    """
    base = os.environ.get("CHAINRULE_CACHE_DIR")
    if base is None:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "chainrule")
    path = Path(base) / "numba"
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return None
    return path


def _jit(fn: Any, numba: Any, where: Path | None) -> Any:
    """``numba.njit`` of ``fn``, its cache (if any) in ``where`` and nowhere else."""
    disp = numba.njit(nogil=True, error_model="numpy")(fn)
    if where is not None:
        from numba.core import caching

        class Locator(caching.UserWideCacheLocator):
            def __init__(self, py_func: Any, py_file: str) -> None:
                self._py_file = py_file
                self._lineno = py_func.__code__.co_firstlineno
                self._cache_path = str(where)

        class Impl(caching.CompileResultCacheImpl):
            _locator_classes = [Locator]  # noqa: RUF012 (numba's own class attribute)

        class Cache(caching.FunctionCache):
            _impl_class = Impl

        disp._cache = Cache(fn)  # NOTE: what Dispatcher.enable_caching does, with our locator
    return disp


def _mxcsr_intrinsics(numba: Any) -> tuple[Any, Any]:
    """``(flush_on, restore)``: compiled-code calls that set and restore x86's flush-to-zero mode.

    ``old = flush_on()`` sets FTZ and DAZ in the SSE control register of the calling
    thread (subnormal results and inputs count as 0) and returns its previous value;
    ``restore(old)`` puts it back. On other processors both do nothing.
    """
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return numba.njit(lambda: np.uint32(0)), numba.njit(lambda old: None)
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    def call(builder: Any, name: str, slot: Any) -> None:
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        builder.call(fn, [builder.bitcast(slot, ir.IntType(8).as_pointer())])

    @intrinsic
    def flush_on(typingctx: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            old = cgutils.alloca_once(builder, ir.IntType(32))
            call(builder, "llvm.x86.sse.stmxcsr", old)
            new = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(builder.or_(builder.load(old), ir.Constant(ir.IntType(32), 0x8040)), new)
            call(builder, "llvm.x86.sse.ldmxcsr", new)
            return builder.load(old)

        return types.uint32(), codegen

    @intrinsic
    def restore(typingctx: Any, old: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(args[0], slot)
            call(builder, "llvm.x86.sse.ldmxcsr", slot)
            return context.get_dummy_value()

        return types.none(types.uint32), codegen

    return flush_on, restore


def loops() -> dict[str, Any] | None:
    """The compiled loops by name (``bias_act``, ``act_grad``, ``sce_shift``, ...); None if Numba is broken.

    Made once. A Numba that cannot be imported or cannot compile (a mismatched llvmlite, an
    unsupported CPU) leaves every override declining, with one warning: the references run.
    """
    if not _compiled:
        try:
            import numba

            global _flush_on, _restore
            _flush_on, _restore = _mxcsr_intrinsics(numba)
            where = cache_dir()
            _compiled.update({name: _jit(fn, numba, where) for name, fn in _LOOPS.items()})
        except Exception as e:  # any failure of an optional accelerator
            _broken(e)
    return None if _compiled.get("broken") else _compiled


def _broken(e: BaseException) -> None:
    """Switch the loops off for this process, saying why once."""
    import warnings

    _compiled["broken"] = True
    warnings.warn(
        f"chainrule's Numba loops are off for this process ({type(e).__name__}: {e}); "
        "results are the same, computed by the NumPy references.",
        RuntimeWarning,
        stacklevel=3,
    )


def _call(name: str, *args: Any) -> Any:
    """Run loop ``name``; :data:`NotImplemented` (the reference runs) if the loops cannot compile."""
    fns = loops()
    if fns is None:
        return NotImplemented
    try:
        return fns[name](*args)
    except _numba_errors() as e:  # compiling for these argument types failed: nothing ran yet
        _broken(e)
        return NotImplemented


def _numba_errors() -> tuple[type[BaseException], ...]:
    from numba.core.errors import NumbaError

    return (NumbaError,)


# NOTE: ``zero`` and ``one`` come in typed like the arrays, so float32 math stays float32.
def _bias_act(z: Array, b: Array, has_b: bool, act: int, zero: Any, one: Any) -> None:
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


def _act_grad(g: Array, a: Array, d: Array, db: Array, want_db: bool, act: int, zero: Any, one: Any) -> None:
    db[:] = zero  # rows added in order, as NumPy's d.sum(axis=0) adds them
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            x = a[i, j]
            if act == 0:  # a product, not a choice: a NaN g stays NaN, as in the reference
                v = g[i, j] * (one if x > zero else zero)
            elif act == 1:
                v = g[i, j] * (x * (one - x))
            else:
                v = g[i, j] * (one - x * x)
            d[i, j] = v
            if want_db:
                db[j] += v


def _sce_shift(z: Array, labels: Array, zero: Any, finite_max: bool, e: Array, mx: Array) -> int:
    for i in range(z.shape[0]):
        if labels[i] < 0 or labels[i] >= z.shape[1]:
            return i  # the reference names the bad label
        m = z[i, 0]
        for j in range(1, z.shape[1]):
            m = max(m, z[i, j])
        if finite_max and not np.isfinite(m):  # lse of a row of -inf is -inf, not NaN
            m = zero
        mx[i] = m
        for j in range(z.shape[1]):
            e[i, j] = z[i, j] - m
    return -1


def _sce_loss(e: Array, z: Array, labels: Array, mx: Array, zero: Any, out: Array) -> None:
    for i in range(e.shape[0]):
        s = zero
        for j in range(e.shape[1]):
            s += e[i, j]
        out[i] = np.log(s) + mx[i] - z[i, labels[i]]


def _sce_grad(e: Array, labels: Array, scale: Array, per_row: bool, zero: Any, one: Any) -> None:
    for i in range(e.shape[0]):
        s = zero
        for j in range(e.shape[1]):
            s += e[i, j]
        c = scale[i] if per_row else scale[0]
        for j in range(e.shape[1]):
            e[i, j] = (e[i, j] / s - (one if j == labels[i] else zero)) * c


# NOTE: the optimizer loops flush subnormal numbers to zero while they run. Gradients of sparse
# inputs (MNIST's zero pixels) are tiny, and g**2 or moments decaying step after step fall below
# float32's smallest normal; the processor then takes ~100 cycles per number (an Adam step on a
# 784x256 weight: 1.8 ms instead of 0.1). Values that small are 0 to the update (v is compared
# with eps**2); the reference keeps them, so the two differ only below 1.2e-38.
def _adam(w: Array, g: Array, m: Array, v: Array, c: Array) -> None:
    old = _flush_on()
    b1, c1, b2, c2, bc2, eps, step = c[0], c[1], c[2], c[3], c[4], c[5], c[6]
    for i in range(w.shape[0]):
        gi = g[i]
        mi = m[i] * b1 + c1 * gi
        vi = v[i] * b2 + c2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        w[i] -= step * mi / (np.sqrt(vi / bc2) + eps)
    _restore(old)


def _momentum(w: Array, g: Array, v: Array, c: Array, nesterov: bool) -> None:
    old = _flush_on()
    lr, mu = c[0], c[1]
    for i in range(w.shape[0]):
        gi = g[i]
        vi = v[i] * mu + gi
        v[i] = vi
        w[i] -= lr * (gi + mu * vi if nesterov else vi)
    _restore(old)


def _gemm(fn: Any, ints: Any, a: Array, b: Array, c: Array, alpha: Any) -> None:
    ta, tb, n, p, k, lda, ldb, ldc = ints  # a blas.gemm_plan; beta = 1
    fn(102, ta, tb, n, p, k, alpha, a.ctypes.data, lda, b.ctypes.data, ldb, 1.0, c.ctypes.data, ldc)


# NOTE: one thread, on purpose: Numba's parallel loops start an OpenMP pool whose threads
# spin after each loop; beside OpenBLAS's threads on 2 cores that made a batch-1024 step
# several times slower, and two threads gained nothing on these memory-bound loops.
_LOOPS = {
    "bias_act": _bias_act,
    "act_grad": _act_grad,
    "sce_shift": _sce_shift,
    "sce_loss": _sce_loss,
    "sce_grad": _sce_grad,
    "adam": _adam,
    "momentum": _momentum,
    "gemm": _gemm,
}


def _provide(name: str, applies: Any) -> Any:
    """Register the decorated loop as an override of ``name`` where Numba is installed and allowed.

    ``CHAINRULE_NUMBA=0`` in the environment leaves the loops unregistered.
    """
    if os.environ.get("CHAINRULE_NUMBA", "1") == "0" or importlib.util.find_spec("numba") is None:
        return lambda fn: fn
    return override(name, applies, "numba")


_FLOATS = frozenset((np.dtype(np.float32), np.dtype(np.float64)))  # native byte order only


def _native(first: Any, *rest: Any) -> bool:
    """NumPy float32/float64 arrays of one native-endian dtype (what the loops are compiled for)."""
    # NOTE: hot path (every kernel call asks): one set lookup, no generator
    if not isinstance(first, np.ndarray) or first.dtype not in _FLOATS:
        return False
    for x in rest:
        if not isinstance(x, np.ndarray) or x.dtype != first.dtype:
            return False
    return True


def _bias_act_applies(z: Any, b: Any, activation: str) -> bool:
    return (
        activation in ("relu", "sigmoid")  # not tanh: NumPy's vectorised tanh is faster
        and (_native(z) if b is None else _native(z, b))
        and z.ndim == 2
        and z.flags.c_contiguous
        and z.flags.writeable
        and (b is None or b.shape == z.shape[1:])
    )


@_provide("bias_act", _bias_act_applies)
def bias_act(z: np.ndarray, b: np.ndarray | None, activation: str) -> np.ndarray:
    """``z := phi(z + b)`` in place, one pass; returns ``z``."""
    bias = np.zeros(1, dtype=z.dtype) if b is None else b  # a placeholder of the right dtype
    done = _call("bias_act", z, bias, b is not None, ACTS.index(activation), z.dtype.type(0), z.dtype.type(1))
    return NotImplemented if done is NotImplemented else z


def _act_grad_applies(g: Any, a: Any, activation: str, want_db: bool) -> bool:
    return activation in ACTS and _native(g, a) and g.ndim == 2 and g.shape == a.shape


@_provide("act_grad", _act_grad_applies)
def act_grad(
    g: np.ndarray, a: np.ndarray, activation: str, want_db: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """``d = g * phi'(a)`` and the column sums of ``d``, in one pass."""
    d = np.empty(g.shape, dtype=g.dtype)
    db = np.empty(g.shape[1] if want_db else 1, dtype=g.dtype)
    zero, one = g.dtype.type(0), g.dtype.type(1)
    if _call("act_grad", g, a, d, db, want_db, ACTS.index(activation), zero, one) is NotImplemented:
        return NotImplemented
    return d, db if want_db else None


def _rows_applies(z: Any, labels: Any, *rest: Any) -> bool:
    return (
        _native(z)
        and z.ndim == 2
        and z.shape[1] > 0
        and isinstance(labels, np.ndarray)
        and labels.shape == z.shape[:1]
        and labels.dtype.kind in "iu"
        and labels.dtype.isnative
    )


def _exp_shifted(z: np.ndarray, labels: np.ndarray, forward: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """``(exp(z - rowmax), rowmax)``: the max and shift in a loop, NumPy's exp in place.

    None (decline) on a label out of range, or where the loop cannot run.

    The forward replaces a non-finite row max by 0, as the reference's logsumexp does; the
    backward keeps it, as its softmax does.
    """
    e, mx = np.empty(z.shape, dtype=z.dtype), np.empty(z.shape[0], dtype=z.dtype)
    bad = _call("sce_shift", z, labels, z.dtype.type(0), forward, e, mx)
    if bad is NotImplemented or bad >= 0:
        return None
    return np.exp(e, out=e), mx


@_provide("sce_labels", _rows_applies)
def sce_labels(z: np.ndarray, labels: np.ndarray) -> Any:
    """Per-example ``lse(z) - z_label``; declines on a label out of range."""
    shifted = _exp_shifted(z, labels, forward=True)
    if shifted is None:
        return NotImplemented
    out = np.empty(z.shape[0], dtype=z.dtype)
    done = _call("sce_loss", shifted[0], z, labels, shifted[1], z.dtype.type(0), out)
    return NotImplemented if done is NotImplemented else out


def _sce_grad_applies(z: Any, labels: Any, scale: Any) -> bool:
    return _rows_applies(z, labels) and getattr(scale, "shape", None) in ((), z.shape[:1])


@_provide("sce_labels_grad", _sce_grad_applies)
def sce_labels_grad(z: np.ndarray, labels: np.ndarray, scale: np.ndarray) -> Any:
    """``(softmax(z) - onehot(labels)) * scale``; declines on a label out of range."""
    shifted = _exp_shifted(z, labels, forward=False)
    if shifted is None:
        return NotImplemented
    d, zero, one = shifted[0], z.dtype.type(0), z.dtype.type(1)
    scale = np.asarray(scale, dtype=z.dtype)
    done = _call("sce_grad", d, labels, scale.reshape(-1), scale.ndim == 1, zero, one)
    return NotImplemented if done is NotImplemented else d


def _adam_applies(w: Any, g: Any, m: Any, v: Any, *rest: Any) -> bool:
    if not (_native(w, g, m, v) and w.flags.writeable and w.shape == g.shape == m.shape == v.shape):
        return False
    arrays = (w, g, m, v)
    c_order = all(a.flags.c_contiguous for a in arrays)
    return c_order or all(a.flags.f_contiguous for a in arrays)


@_provide("adam_update", _adam_applies)
def adam_update(
    w: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    lr: float,
    b1: float,
    b2: float,
    eps: float,
    t: int,
) -> Any:
    """Adam's step in one pass over ``w``, ``g``, ``m`` and ``v`` (each read and written once)."""
    flat = [a.ravel(order="K") for a in (w, g, m, v)]  # views in memory order: the arrays are contiguous
    consts = np.array([b1, 1 - b1, b2, 1 - b2, 1 - b2**t, eps, lr / (1 - b1**t)], dtype=w.dtype)
    return _call("adam", *flat, consts)  # None, or NotImplemented if it cannot run


def _momentum_applies(w: Any, g: Any, v: Any, *rest: Any) -> bool:
    return _adam_applies(w, g, v, v)


@_provide("momentum_update", _momentum_applies)
def momentum_update(w: np.ndarray, g: np.ndarray, v: np.ndarray, lr: float, mu: float, nesterov: bool) -> Any:
    """SGD with momentum in one pass over ``w``, ``g`` and ``v``."""
    flat = [a.ravel(order="K") for a in (w, g, v)]  # views in memory order: the arrays are contiguous
    return _call("momentum", *flat, np.array([lr, mu], dtype=w.dtype), bool(nesterov))


@_provide("addmm", lambda c, a, b, alpha: isinstance(c, np.ndarray))
def addmm(c: np.ndarray, a: np.ndarray, b: np.ndarray, alpha: float) -> Any:
    """The BLAS call of :func:`chainrule.backend.blas.addmm`, made from compiled code."""
    plan = blas.gemm_plan(c, a, b)
    if plan is None:
        return NotImplemented
    fn, ints, a, b, c = plan
    return _call("gemm", fn, ints, a, b, c, c.dtype.type(alpha))


__all__ = [
    "ACTS",
    "momentum_update",
    "act_grad",
    "adam_update",
    "addmm",
    "bias_act",
    "cache_dir",
    "loops",
    "sce_labels",
    "sce_labels_grad",
]
