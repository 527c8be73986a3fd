"""Overrides that call the BLAS NumPy itself loads, through ctypes: ``axpy`` and ``addmm``.

Part of :mod:`chainrule.backend` (level 1); a provider of the kernel registry.

NumPy has no fused multiply-add over arrays: ``y += alpha * x`` reads ``x``, writes
a temporary, reads it back and writes ``y``, and ``c += alpha * (a @ b)`` writes the
whole product before adding it. BLAS's ``?axpy`` does the first in one pass, and
``?gemm`` with ``beta = 1`` adds the product into ``c`` as it goes. Both are found
in the OpenBLAS of NumPy's wheels (located with threadpoolctl: the ILP64 ``...64_``
symbols), each checked on a known input before use, so a different build or
integer width leaves the kernels on their references. What each saves is measured
in ``docs/benchmarks.md``; results can differ from the references in the last bit
(BLAS may fuse the multiply-add, and sums the product in blocks).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from chainrule.backend.registry import override

_found: dict[tuple[str, str], Any] = {}
AXPY_MIN = 1 << 12  # below this many entries the ctypes call costs more than NumPy's two passes


def routine(name: str, dtype: Any) -> Any:
    """NumPy's BLAS ``cblas_?axpy``/``cblas_?gemm`` for float32/64 ``dtype`` through ctypes, or None."""
    key = (name, np.dtype(dtype).char)
    if key not in _found:
        _found[key] = _load(*key) if key[1] in "fd" else None
    return _found[key]


def _load(name: str, char: str) -> Any:
    try:
        from threadpoolctl import threadpool_info

        paths = [i["filepath"] for i in threadpool_info() if i.get("internal_api") == "openblas"]
    except Exception:  # threadpoolctl absent or unable to inspect this platform
        return None
    real, i64, ptr, enum = (
        ctypes.c_float if char == "f" else ctypes.c_double,
        ctypes.c_int64,
        ctypes.c_void_p,
        ctypes.c_int,
    )
    argtypes = {
        "axpy": [i64, real, ptr, i64, ptr, i64],  # n, alpha, x, incx, y, incy
        # order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc
        "gemm": [enum, enum, enum, i64, i64, i64, real, ptr, i64, ptr, i64, real, ptr, i64],
    }[name]
    letter = "s" if char == "f" else "d"
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in (f"scipy_cblas_{letter}{name}64_", f"cblas_{letter}{name}64_"):  # 64_: 64-bit ints
            fn = getattr(lib, symbol, None)
            if fn is None:
                continue
            fn.argtypes, fn.restype = argtypes, None
            if _probe(name, fn, char):  # the right library, the right integer width
                return fn
    return None


def _probe(name: str, fn: Any, char: str) -> bool:
    """Run ``fn`` on a small known input; True if it gave the right answer."""
    x = np.arange(1, 41, dtype=char)
    y = np.ones(40, dtype=char)
    if name == "axpy":
        fn(40, 2.0, x.ctypes.data, 1, y.ctypes.data, 1)
        return bool(np.array_equal(y, 1 + 2 * x))
    a, b, c = x[:6].reshape(2, 3), x[6:18].reshape(3, 4), y[:8].reshape(2, 4).copy(order="F")
    fn(102, 112, 112, 2, 4, 3, 2.0, a.ctypes.data, 3, b.ctypes.data, 4, 1.0, c.ctypes.data, 2)
    return bool(np.array_equal(c, 1 + 2 * (a @ b)))


def _same_layout(x: np.ndarray, y: np.ndarray) -> bool:
    return (x.flags.c_contiguous and y.flags.c_contiguous) or (x.flags.f_contiguous and y.flags.f_contiguous)


def _axpy_applies(alpha: float, x: Any, y: Any) -> bool:
    return (
        isinstance(y, np.ndarray)
        and isinstance(x, np.ndarray)
        and y.size >= AXPY_MIN
        and y.dtype.isnative
        and x.dtype == y.dtype
        and x.shape == y.shape
        and y.flags.writeable
        and _same_layout(x, y)
        and (x is y or not np.may_share_memory(x, y))
        and routine("axpy", y.dtype) is not None
    )


@override("axpy", _axpy_applies, "blas")
def axpy(alpha: float, x: np.ndarray, y: np.ndarray) -> None:
    """``y += alpha x`` in one pass: ``?axpy`` over the flat memory of both."""
    routine("axpy", y.dtype)(y.size, float(alpha), x.ctypes.data, 1, y.ctypes.data, 1)


def gemm_plan(c: Any, a: Any, b: Any) -> tuple[Any, ...] | None:
    """How ``c += alpha a b`` goes to BLAS, or None where the reference must do it.

    Returns ``(gemm, (trans_a, trans_b, n, p, k, lda, ldb, ldc), a, b, c)`` for a
    column-major ``cblas_?gemm`` (order 102; ``trans`` 111 none, 112 transposed): a
    C-ordered ``c`` is computed as the F-ordered ``c.T = b.T a.T``, and each operand is
    read transposed where it is C-ordered. Float32/64 NumPy arrays of one native dtype,
    each C- or F-contiguous, with ``c`` writeable and sharing no memory with ``a`` or ``b``.
    """
    if not (isinstance(c, np.ndarray) and isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return None
    if not (
        a.ndim == b.ndim == c.ndim == 2
        and a.dtype == b.dtype == c.dtype
        and c.dtype.isnative
        and c.shape == (a.shape[0], b.shape[1])
        and a.shape[1] == b.shape[0]
        and c.flags.writeable
        and (a.flags.c_contiguous or a.flags.f_contiguous)
        and (b.flags.c_contiguous or b.flags.f_contiguous)
        and (c.flags.c_contiguous or c.flags.f_contiguous)
        and not (np.may_share_memory(c, a) or np.may_share_memory(c, b))
    ):
        return None
    fn = routine("gemm", c.dtype)
    if fn is None:
        return None
    if not c.flags.f_contiguous:  # column-major BLAS: C-ordered c is F-ordered c.T = b.T a.T
        a, b, c = b.T, a.T, c.T
    n, p = c.shape
    k = a.shape[1]
    trans_a, lda = (111, max(n, 1)) if a.flags.f_contiguous else (112, max(k, 1))
    trans_b, ldb = (111, max(k, 1)) if b.flags.f_contiguous else (112, max(p, 1))
    return fn, (trans_a, trans_b, n, p, k, lda, ldb, max(n, 1)), a, b, c


@override("addmm", lambda c, a, b, alpha: isinstance(c, np.ndarray), "blas")
def addmm(c: np.ndarray, a: np.ndarray, b: np.ndarray, alpha: float) -> Any:
    """``c += alpha a b`` in one ``?gemm`` with ``beta = 1``: the product is never stored.

    Declines (``NotImplemented``) where :func:`gemm_plan` finds no BLAS call for the arrays.
    """
    plan = gemm_plan(c, a, b)
    if plan is None:
        return NotImplemented
    fn, (ta, tb, n, p, k, lda, ldb, ldc), a, b, c = plan
    fn(102, ta, tb, n, p, k, float(alpha), a.ctypes.data, lda, b.ctypes.data, ldb, 1.0, c.ctypes.data, ldc)
    return None


__all__ = ["AXPY_MIN", "addmm", "axpy", "gemm_plan", "routine"]
