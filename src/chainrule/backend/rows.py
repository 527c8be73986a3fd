"""Overrides of NumPy memory layouts: short rows (softmax, logsumexp) and weight matrices stored by column.

Part of :mod:`chainrule.backend` (level 1); a provider of the kernel registry.

Weight matrices: OpenBLAS computes ``A_prev @ W.T`` faster when ``W`` is stored
column-major (``W.T`` is then a plain row-major operand), and ``dC/dW = delta^T
A_prev`` faster as ``(A_prev^T delta)^T``, which comes out column-major too, so
the update ``W -= alpha dC/dW`` runs over both arrays in one memory order. So
:func:`parameter` stores a 2-D NumPy float matrix column-major, and
:func:`weight_grad` takes that form for such a ``W``. Shape, values and indexing
are the reference's; only the memory layout differs.

NumPy reduces a short last axis of a 2-D array row by row, slowly: the max of a
1024 x 10 array over its rows takes several times longer than the same work on the
transposed copy over axis 0, which NumPy vectorises. So for a 2-D NumPy array
with at most 64 columns and at least as many rows, these overrides work on the
transposed copy and transpose the result back (a view: the result is column-major).
The arithmetic is the reference's; the results equal it up to rounding (the
reduction may sum in another order).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.backend.registry import KERNELS, override

SHORT = 64  # at most this many columns, and at least this many rows


def _matrix(values: Any) -> bool:
    return isinstance(values, np.ndarray) and values.ndim == 2 and values.dtype.kind == "f"


@override("parameter", _matrix, "numpy")
def parameter(values: np.ndarray) -> np.ndarray:
    """A column-major copy of a weight matrix."""
    return np.array(values, order="F")


def _column_major_w(delta: Any, a_prev: Any, w: Any) -> bool:
    return isinstance(w, np.ndarray) and w.ndim == 2 and w.flags.f_contiguous and not w.flags.c_contiguous


@override("weight_grad", _column_major_w, "numpy")
def weight_grad(delta: np.ndarray, a_prev: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(A_prev^T delta)^T``: the same product, column-major like ``W``."""
    return (a_prev.T @ delta).T


def _short_rows(x: Any, axis: int = -1, keepdims: bool = False) -> bool:
    return isinstance(x, np.ndarray) and x.ndim == 2 and axis in (-1, 1) and x.shape[1] <= SHORT <= x.shape[0]


@override("softmax", _short_rows, "numpy")
def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The reference's ``softmax`` over axis 0 of ``x.T``, transposed back."""
    return KERNELS["softmax"].reference(np.ascontiguousarray(x.T), 0).T


@override("logsumexp", _short_rows, "numpy")
def logsumexp(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """The reference's ``logsumexp`` over axis 0 of ``x.T``, transposed back."""
    r = KERNELS["logsumexp"].reference(np.ascontiguousarray(x.T), 0, True).T
    return r if keepdims else r[:, 0]


__all__ = ["SHORT", "logsumexp", "parameter", "softmax", "weight_grad"]
