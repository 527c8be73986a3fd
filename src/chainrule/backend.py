"""The array backend: NumPy now, CuPy when asked (level 1).

This is the only module that imports CuPy, and it does so lazily, so a machine
without a GPU never touches it. Ops never import NumPy or CuPy for array
functions directly; they ask :func:`xp_of` for the namespace of the arrays in
hand, so the same rule runs on either library.

Moving data between host and device is explicit: :func:`to_device` and
:func:`to_numpy`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from chainrule.errors import BackendError, ConfigError

BACKENDS = ("numpy", "cupy")

_state: dict[str, Any] = {"name": "numpy", "xp": np}


def _import_cupy() -> ModuleType:
    """Import CuPy and check that a GPU answers; one clear error otherwise."""
    try:
        import cupy  # lazy on purpose: CuPy is optional
    except ImportError as exc:
        raise BackendError(
            "backend 'cupy' requested, but CuPy is not installed: "
            "install cupy-cuda12x (or the build for your CUDA), or use backend='numpy'."
        ) from exc
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA raises its own runtime error types
        raise BackendError(
            f"backend 'cupy' requested, but no CUDA GPU is usable: {exc}. "
            "Use backend='numpy' (or --device cpu)."
        ) from exc
    if n < 1:
        raise BackendError("backend 'cupy' requested, but no CUDA GPU was found; use 'numpy'.")
    return cupy


def get_backend() -> str:
    """Name of the active backend, ``'numpy'`` or ``'cupy'``."""
    return str(_state["name"])


def xp() -> ModuleType:
    """Array namespace of the active backend (``numpy`` or ``cupy``)."""
    module: ModuleType = _state["xp"]
    return module


def set_backend(name: str) -> None:
    """Make ``name`` (``'numpy'`` or ``'cupy'``) the backend new tensors live on.

    Raises
    ------
    ConfigError
        If ``name`` is not one of :data:`BACKENDS`.
    BackendError
        If ``'cupy'`` is asked for and CuPy or a GPU is missing.
    """
    if name not in BACKENDS:
        raise ConfigError(f"set_backend: expected one of {BACKENDS}, got {name!r}.")
    module = np if name == "numpy" else _import_cupy()
    _state["name"], _state["xp"] = name, module


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Context manager: run the block with ``name`` as the active backend."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def xp_of(array: Any) -> ModuleType:
    """Namespace owning ``array``: ``numpy`` for NumPy arrays, else the active one."""
    if isinstance(array, np.ndarray | np.generic):
        return np
    module: ModuleType = _state["xp"]
    return module


def is_array(obj: Any) -> bool:
    """True for a NumPy array or an array of the active backend."""
    return isinstance(obj, np.ndarray) or (
        _state["name"] != "numpy" and isinstance(obj, _state["xp"].ndarray)
    )


def asarray(obj: Any, dtype: Any = None) -> Any:
    """Convert ``obj`` to an array of the active backend (no copy when possible)."""
    return _state["xp"].asarray(obj, dtype=dtype)


def to_numpy(array: Any) -> np.ndarray:
    """Host copy of ``array`` as a NumPy array (a no-op for NumPy input)."""
    if isinstance(array, np.ndarray):
        return array
    get = getattr(array, "get", None)
    if get is not None:  # CuPy arrays copy device -> host with .get()
        return np.asarray(get())
    return np.asarray(array)


def to_device(array: Any, name: str | None = None) -> Any:
    """Array on backend ``name`` (default: the active one), copied if it must move.

    Raises
    ------
    ConfigError
        If ``name`` is not one of :data:`BACKENDS`.
    BackendError
        If ``'cupy'`` is asked for and CuPy or a GPU is missing.
    """
    target = name or get_backend()
    if target not in BACKENDS:
        raise ConfigError(f"to_device: expected one of {BACKENDS}, got {target!r}.")
    if target == "numpy":
        return to_numpy(array)
    return _import_cupy().asarray(array)


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` with repeated indices accumulated (unbuffered)."""
    if isinstance(target, np.ndarray):
        np.add.at(target, index, values)
    else:  # CuPy
        import cupyx

        cupyx.scatter_add(target, index, values)


_AXPY_MIN = 1 << 12  # below this, the ctypes call costs more than NumPy's two passes


def axpy(alpha: float, x: Any, y: Any) -> None:
    """``y += alpha * x`` in place: one pass over memory, like ``torch.Tensor.add_(x, alpha=)``.

    NumPy has no fused multiply-add over arrays: ``y -= lr * g`` reads ``g``, writes a
    temporary, reads it back and writes ``y``. An SGD step on a 784x256 weight spends
    2.5x longer that way than BLAS's ``axpy`` does (13 vs 36 us, warm), so float32/64
    arrays of at least 4096 entries with the same shape and memory order go to the
    ``?axpy`` of the OpenBLAS that NumPy itself loads (:func:`_blas`). Anything else
    (CuPy, other BLAS builds, mixed layouts, small arrays) takes the NumPy path. The
    two can differ in the last bit (``axpy`` may fuse the multiply-add).
    """
    fast = (
        _blas("axpy", y.dtype)
        if isinstance(y, np.ndarray)
        and y.size >= _AXPY_MIN
        and isinstance(x, np.ndarray)
        and y.dtype.isnative
        else None
    )
    if (
        fast is not None
        and x.dtype == y.dtype
        and x.shape == y.shape
        and y.flags.writeable
        and (
            (x.flags.c_contiguous and y.flags.c_contiguous) or (x.flags.f_contiguous and y.flags.f_contiguous)
        )
        and (x is y or not np.may_share_memory(x, y))
    ):
        fast(y.size, float(alpha), x.ctypes.data, 1, y.ctypes.data, 1)
    else:
        y += alpha * x


def addmm(c: Any, a: Any, b: Any, alpha: float) -> None:
    """``c += alpha * (a @ b)`` in place, in one BLAS ``?gemm`` with ``beta = 1`` (torch's ``addmm_``).

    Shapes: ``a (n, k)``, ``b (k, p)``, ``c (n, p)``. The product is never stored:
    the GEMM adds it into ``c`` as it goes, so an SGD step ``W -= lr * delta^T A``
    skips writing ``dC/dW`` and reading it back. Float32/64 NumPy arrays, each C- or
    F-contiguous, with ``c`` writeable and sharing no memory with ``a`` or ``b``, go to
    the ``?gemm`` of NumPy's own OpenBLAS (:func:`gemm_plan`); anything else (CuPy,
    other BLAS builds, strided views) takes ``c += alpha * (a @ b)``. The two can
    differ in the last bit. :func:`chainrule.kernels.addmm` makes the same call from
    compiled code, ~3 us cheaper.
    """
    plan = gemm_plan(c, a, b)
    if plan is None:
        c += alpha * (a @ b)
        return
    fn, (ta, tb, n, p, k, lda, ldb, ldc), a, b, c = plan
    fn(102, ta, tb, n, p, k, float(alpha), a.ctypes.data, lda, b.ctypes.data, ldb, 1.0, c.ctypes.data, ldc)


def gemm_plan(c: Any, a: Any, b: Any) -> tuple[Any, ...] | None:
    """How :func:`addmm` hands ``c += alpha a b`` to BLAS, or None where NumPy must do it.

    Returns ``(gemm, (trans_a, trans_b, n, p, k, lda, ldb, ldc), a, b, c)`` for a
    column-major ``cblas_?gemm`` (order 102; ``trans`` 111 none, 112 transposed): a
    C-ordered ``c`` is computed as the F-ordered ``c.T = b.T a.T``, and each operand is
    read transposed where it is C-ordered.
    """
    fast = (
        _blas("gemm", c.dtype)
        if isinstance(c, np.ndarray) and isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
        else None
    )
    if not (
        fast is not None
        and a.ndim == b.ndim == c.ndim == 2
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
    if not c.flags.f_contiguous:  # column-major BLAS: C-ordered c is F-ordered c.T = b.T a.T
        a, b, c = b.T, a.T, c.T
    n, p = c.shape
    k = a.shape[1]
    trans_a, lda = (111, max(n, 1)) if a.flags.f_contiguous else (112, max(k, 1))
    trans_b, ldb = (111, max(k, 1)) if b.flags.f_contiguous else (112, max(p, 1))
    return fast, (trans_a, trans_b, n, p, k, lda, ldb, max(n, 1)), a, b, c


def _blas(routine: str, dtype: Any) -> Any:
    """NumPy's BLAS ``cblas_?axpy``/``cblas_?gemm`` for float32/64 ``dtype`` through ctypes, or None.

    Found once per routine and dtype in the OpenBLAS that NumPy loads (located with
    threadpoolctl): the ILP64 ``...64_`` symbols of NumPy's wheels, each checked on a
    known input before use, so a different build or integer width falls back to NumPy.
    """
    found: dict[tuple[str, str], Any] = _state.setdefault("blas", {})
    key = (routine, np.dtype(dtype).char)
    if key not in found:
        found[key] = _load_blas(*key) if key[1] in "fd" else None
    return found[key]


def _load_blas(routine: str, char: str) -> Any:
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
    }[routine]
    letter = "s" if char == "f" else "d"
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in (f"scipy_cblas_{letter}{routine}64_", f"cblas_{letter}{routine}64_"):  # 64_: 64-bit ints
            fn = getattr(lib, name, None)
            if fn is None:
                continue
            fn.argtypes, fn.restype = argtypes, None
            if _probe(routine, fn, char):  # the right library, the right integer width
                return fn
    return None


def _probe(routine: str, fn: Any, char: str) -> bool:
    """Run ``fn`` on a small known input; True if it gave the right answer."""
    x = np.arange(1, 41, dtype=char)
    y = np.ones(40, dtype=char)
    if routine == "axpy":
        fn(40, 2.0, x.ctypes.data, 1, y.ctypes.data, 1)
        return bool(np.array_equal(y, 1 + 2 * x))
    a, b, c = x[:6].reshape(2, 3), x[6:18].reshape(3, 4), y[:8].reshape(2, 4).copy(order="F")
    fn(102, 112, 112, 2, 4, 3, 2.0, a.ctypes.data, 3, b.ctypes.data, 4, 1.0, c.ctypes.data, 2)
    return bool(np.array_equal(c, 1 + 2 * (a @ b)))


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Let glibc's ``malloc`` reuse freed memory for the next step's arrays; True if it took.

    A training step allocates its activations and gradients afresh and frees them
    at its end. By default glibc serves arrays over 128 KiB with ``mmap`` and hands
    freed memory at the top of the heap back to the OS, so every step page-faults
    its megabytes in again; in a VM a fault costs microseconds, and at batch 1024 of
    a 784-256-128-10 MLP that was a quarter of the step (``benchmarks/mlp_epoch.py``).
    This sets ``M_MMAP_THRESHOLD`` (arrays below it come from the heap) and
    ``M_TRIM_THRESHOLD`` (free memory kept before returning any), so that steady
    state allocates nothing new from the OS. The process keeps up to
    ``trim_threshold`` bytes of freed memory for reuse instead of returning it.

    :class:`~chainrule.train.Trainer` calls this once. It does nothing (and returns
    False) off Linux/glibc, when ``CHAINRULE_KEEP_FREED_MEMORY=0`` is set, or when
    the user already tuned malloc (``MALLOC_*_`` variables, ``glibc.malloc`` tunables).
    """
    if _state.get("malloc") is not None:
        return bool(_state["malloc"])
    user_tuned = any(v in os.environ for v in _MALLOC_ENV) or "glibc.malloc" in os.environ.get(
        "GLIBC_TUNABLES", ""
    )
    if os.environ.get("CHAINRULE_KEEP_FREED_MEMORY", "1") == "0" or user_tuned:
        return False
    ok = False
    if sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL(None).mallopt  # the process's C library; musl's is a no-op returning 0
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            ok = (
                mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
                and mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1
            )
        except (OSError, AttributeError):
            ok = False
    _state["malloc"] = ok
    return ok


__all__ = [
    "BACKENDS",
    "addmm",
    "asarray",
    "axpy",
    "gemm_plan",
    "get_backend",
    "is_array",
    "keep_freed_memory",
    "scatter_add",
    "set_backend",
    "to_device",
    "to_numpy",
    "use_backend",
    "xp",
    "xp_of",
]
