"""The array backend: the device (CPU: NumPy, GPU: CuPy), and the kernel registry (level 1).

This package is the only place that imports CuPy, and it does so lazily, so a
machine without a GPU never touches it. Ops never import NumPy or CuPy for array
functions directly; they ask :func:`xp_of` for the namespace of the arrays in
hand, so the same rule runs on either library.

One vocabulary names where arrays live: the *device* ``"cpu"`` (NumPy arrays)
or ``"gpu"`` (CuPy arrays), in Python (:func:`set_device`, ``model.to("gpu")``)
as on the command line (``--device gpu``). The array libraries' own names
(``"numpy"``, ``"cupy"``) are accepted too. Moving data between host and device
is explicit: :func:`to_device` and :func:`to_numpy`.

The kernel registry (:mod:`chainrule.backend.registry`) is re-exported here:
:func:`kernel` defines a kernel by its reference implementation, :func:`override`
registers a fast path for it. The fast paths live in this package too
(:mod:`~chainrule.backend.loops`: Numba; :mod:`~chainrule.backend.blas`: BLAS
through ctypes; :mod:`~chainrule.backend.rows`: NumPy reductions), imported on
the first kernel call; :mod:`~chainrule.backend.memory` holds the opt-in
allocator setting, :mod:`~chainrule.backend.threads` the choice of BLAS threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from chainrule.backend.registry import (
    KERNELS,
    Kernel,
    Override,
    kernel,
    override,
    overrides_enabled,
    use_overrides,
)
from chainrule.errors import BackendError, ConfigError

BACKENDS = ("numpy", "cupy")
DEVICES = ("cpu", "gpu")
_LIBRARY = {"cpu": "numpy", "gpu": "cupy", "numpy": "numpy", "cupy": "cupy"}

_state: dict[str, Any] = {"name": "numpy", "xp": np}


def _import_cupy() -> ModuleType:
    """Import CuPy and check that a GPU answers; one clear error otherwise."""
    try:
        import cupy  # lazy on purpose: CuPy is optional
    except ImportError as exc:
        raise BackendError(
            "device 'gpu' requested, but CuPy is not installed: install cupy-cuda12x (or the build "
            "for your CUDA), or use device 'cpu' (--device cpu)."
        ) from exc
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA raises its own runtime error types
        raise BackendError(
            f"device 'gpu' requested, but no CUDA GPU is usable: {exc}. Use device 'cpu' (--device cpu)."
        ) from exc
    if n < 1:
        raise BackendError("device 'gpu' requested, but no CUDA GPU was found; use device 'cpu'.")
    return cupy


def _library(name: str, who: str) -> str:
    try:
        return _LIBRARY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"{who}: expected device 'cpu' or 'gpu', got {name!r}.") from None


def get_backend() -> str:
    """Name of the active array library, ``'numpy'`` or ``'cupy'``."""
    return str(_state["name"])


def get_device() -> str:
    """The active device, ``'cpu'`` or ``'gpu'``."""
    return "cpu" if _state["name"] == "numpy" else "gpu"


def xp() -> ModuleType:
    """Array namespace of the active backend (``numpy`` or ``cupy``)."""
    module: ModuleType = _state["xp"]
    return module


def set_device(name: str) -> None:
    """Make ``name`` (``'cpu'`` or ``'gpu'``) the device new tensors live on.

    Raises
    ------
    ConfigError
        If ``name`` is not a device (``'numpy'`` and ``'cupy'`` are accepted as aliases).
    BackendError
        If ``'gpu'`` is asked for and CuPy or a GPU is missing.
    """
    library = _library(name, "set_device")
    module = np if library == "numpy" else _import_cupy()
    _state["name"], _state["xp"] = library, module


set_backend = set_device  # the same switch, by its older name


@contextlib.contextmanager
def use_device(name: str) -> Iterator[None]:
    """Context manager: run the block with ``name`` (``'cpu'`` or ``'gpu'``) as the active device."""
    previous = get_backend()
    set_device(name)
    try:
        yield
    finally:
        set_device(previous)


use_backend = use_device


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
    """Array on device ``name`` (``'cpu'`` or ``'gpu'``; default: the active one), copied if it must move.

    Raises
    ------
    ConfigError
        If ``name`` is not a device.
    BackendError
        If ``'gpu'`` is asked for and CuPy or a GPU is missing.
    """
    library = get_backend() if name is None else _library(name, "to_device")
    if library == "numpy":
        return to_numpy(array)
    return _import_cupy().asarray(array)


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` with repeated indices accumulated (unbuffered)."""
    if isinstance(target, np.ndarray):
        np.add.at(target, index, values)
    else:  # CuPy
        import cupyx

        cupyx.scatter_add(target, index, values)


# ------------------------------------------------------- generic array kernels
@kernel
def parameter(values: Any) -> Any:
    """A fresh array holding ``values``, for a layer's parameter (overrides may choose its memory layout).

    The copy is the layer's own: training never writes into the caller's array.
    """
    return values.copy()


@kernel
def axpy(alpha: float, x: Any, y: Any) -> None:
    """``y += alpha * x`` in place (``y`` and ``x`` of one shape): an optimizer's update.

    Math: ``W := W + alpha g`` (``alpha = -lr`` for a gradient step).
    """
    y += alpha * x


@kernel
def addmm(c: Any, a: Any, b: Any, alpha: float) -> None:
    """``c += alpha * (a @ b)`` in place, like torch's ``addmm_``.

    Shapes: ``a (n, k)``, ``b (k, p)``, ``c (n, p)``. With ``c = W``, ``a = delta^T``,
    ``b = A_prev`` and ``alpha = -lr`` this is an SGD step ``W := W - alpha dC/dW``.
    """
    c += alpha * (a @ b)


__all__ = [
    "BACKENDS",
    "DEVICES",
    "KERNELS",
    "Kernel",
    "Override",
    "addmm",
    "asarray",
    "parameter",
    "axpy",
    "get_backend",
    "get_device",
    "is_array",
    "kernel",
    "override",
    "overrides_enabled",
    "scatter_add",
    "set_backend",
    "set_device",
    "to_device",
    "to_numpy",
    "use_backend",
    "use_device",
    "use_overrides",
    "xp",
    "xp_of",
]
