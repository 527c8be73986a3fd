"""Which rows a rank reads: its part of each global batch, its block of a data set, read on demand.

Part of :mod:`chainrule.distributed` (level 8).

Every rank sees the same data (the same arrays, or the same memory-mapped file) and
the same seeded order of rows each epoch, as one process would. A global batch of
``M`` rows is cut into ``size`` contiguous parts, as :func:`numpy.array_split`
cuts (the first ``M mod size`` ranks take one row more); a rank reads only the rows
of its part. Checks and evaluation cut the data set itself the same way into
blocks. :class:`Rows` is the view that makes this cheap for a memory map: indexing
it reads just the rows asked for, cast to the model's dtype, so no rank ever reads
a file whole (a validation split is a list of row numbers, not a copy).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import backend
from chainrule.data import check_shapes
from chainrule.errors import DataError
from chainrule.losses import sample_weights
from chainrule.tables import model_inputs
from chainrule.train import _split

_CHUNK_ROWS = 4096  # rows scanned for NaN at a time: no mask the size of a shard is built


def part(m: int, size: int, rank: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``m`` rows for rank ``rank`` of ``size`` (the first ``m mod size`` get one more).

    Examples
    --------
    >>> [part(10, 3, r) for r in range(3)]
    [(0, 4), (4, 7), (7, 10)]
    >>> [part(1, 3, r) for r in range(3)]
    [(0, 1), (1, 1), (1, 1)]
    """
    q, extra = divmod(m, size)
    lo = rank * q + min(rank, extra)
    return lo, lo + q + (rank < extra)


class Rows:
    """Rows of a 2-D array read on demand, as ``dtype`` on the active device.

    ``rows[idx]`` (a slice or integer indices) reads those rows of ``base`` (of
    ``base[index]`` when ``index`` is given: a split kept as row numbers) and casts
    them; a memory map is never read whole.

    Shapes
    ------
    base : (m_base, n[0]);  index : (m,), optional;  rows[idx] : (len(idx), n[0])
    """

    ndim = 2

    def __init__(self, base: Any, index: np.ndarray | None, dtype: Any) -> None:
        self.base, self.index, self.dtype = base, index, np.dtype(dtype)
        m = base.shape[0] if index is None else index.shape[0]
        self.shape = (int(m), int(base.shape[1]))

    def __repr__(self) -> str:
        kind = type(self.base).__name__
        return f"Rows({self.shape[0]} of {kind} {tuple(self.base.shape)}, dtype={self.dtype})"

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, slice):
            key = backend.to_numpy(key)
        rows = key if self.index is None else self.index[key]
        return backend.asarray(self.base[rows].astype(self.dtype, copy=False))


def checked(x: Any, y: Any, size: int, rank: int, who: str) -> tuple[Any, np.ndarray]:
    """``(x, y)`` checked as :func:`chainrule.train.check_data` does, NaN looked for in this rank's block.

    ``x`` stays as it is (a memory map is not read); ``y`` is read whole (labels or
    targets: a few bytes a row).

    Raises
    ------
    ShapeError, DataError
        Naming ``who``, and the first non-finite value by its index in the whole data.
    """
    if not backend.is_array(x):
        x = np.asarray(x)
    y = np.asarray(backend.to_numpy(y))
    check_shapes(x, y, who)
    lo, hi = part(x.shape[0], size, rank)
    for name, arr in (("inputs", x), ("targets", y)):
        where = first_non_finite(arr, lo, hi)
        if where is not None:
            raise DataError(f"{who}: {name} contain NaN or infinite values (first at index {where}).")
    return x, y


def first_non_finite(a: Any, lo: int, hi: int) -> tuple[int, ...] | None:
    """Index (in ``a``) of the first NaN or infinity in rows ``[lo, hi)``, read in chunks; None if none."""
    if a.dtype.kind not in "fc":
        return None
    for start in range(lo, hi, _CHUNK_ROWS):
        block = backend.to_numpy(a[start : min(start + _CHUNK_ROWS, hi)])
        bad = ~np.isfinite(block)
        if bad.any():
            first = np.argwhere(bad)[0]
            return (start + int(first[0]), *(int(i) for i in first[1:]))
    return None


def inputs(
    trainer: Any,
    x: Any,
    y: Any,
    validation_data: tuple[Any, Any] | None,
    split: float,
    sample_weight: Any = None,
) -> tuple[Rows, Any, Any, Any]:
    """The training rows, targets, weights (or None) and validation pair of :meth:`Trainer.fit` on one rank.

    As one process: DataFrames converted, the same seeded (stratified) validation split,
    inputs cast to the model's dtype. But this rank looks for NaN only in its block
    of rows, and the inputs stay where they are, read row by row through :class:`Rows`.
    """
    comm = trainer.distributed
    model = trainer.model
    dtype = model.parameters()[0].dtype
    x, y = checked(*model_inputs(model, x, y, "fit"), comm.size, comm.rank, "fit")
    w = None
    if sample_weight is not None:
        w = sample_weights(
            np.asarray(backend.to_numpy(sample_weight)), (x.shape[0],), np.float64, "fit sample_weight"
        )
    val = None
    index = None
    if validation_data is not None:
        x_val, y_val = model_inputs(model, *validation_data, "fit validation_data")
        x_val, y_val = checked(x_val, y_val, comm.size, comm.rank, "fit validation_data")
        val = (Rows(x_val, None, dtype), _cast(y_val, dtype))
    elif split:  # the split of one process, made on row numbers: x[i_train], x[i_val]
        i_train, y, w, (i_val, y_val) = _split(
            np.arange(x.shape[0]).reshape(-1, 1), y, split, trainer.seed, w
        )
        val = (Rows(x, i_val[:, 0], dtype), _cast(y_val, dtype))
        index = i_train[:, 0]
    return Rows(x, index, dtype), _cast(y, dtype), None if w is None else _cast(w, dtype), val


def _cast(a: np.ndarray, dtype: Any) -> Any:
    """Targets or weights on the active device, floats in the model's dtype."""
    return backend.asarray(a.astype(dtype, copy=False) if a.dtype.kind == "f" else a)


__all__ = ["Rows", "checked", "first_non_finite", "inputs", "part"]
