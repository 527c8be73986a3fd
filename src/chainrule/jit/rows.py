"""Rows of a global batch: a step computing some rows of a larger batch draws exactly their random numbers.

Part of :mod:`chainrule.jit` (level 4).

Data-parallel training (:mod:`chainrule.distributed`) cuts each global batch of
``M`` rows into parts, one per process: a rank computes rows ``[lo, hi)``. For
its numbers to be those of one process training on the whole batch, the random
numbers a layer draws per row (a dropout mask) must be that process's for those
rows. So layers draw them through :func:`uniform_rows`: inside
``batch_rows(offset, total)`` it returns rows ``[offset, offset + m)`` of the
``(total, ...)`` array that ``rng.random((total, ...), dtype=float32)`` would
have drawn, and leaves the generator where that draw would have left it, so the
next step's draws agree too. Outside such a block it is that plain draw.

The rows before and after are skipped, not drawn: PCG64 (NumPy's default
generator) jumps ahead in ``O(log n)`` (``advance``); other generators draw and
discard. A float32 draw takes one 32-bit half of a 64-bit output, the other half
is kept for the next draw, so a skip counts halves and keeps that buffer right.
The block is per thread, like grad mode and recording.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from chainrule.errors import ConfigError, ShapeError

_window = threading.local()
_ADVANCES = (np.random.PCG64, np.random.PCG64DXSM)  # advance() counts 64-bit outputs, halves buffered
_CHUNK = 1 << 20  # float32 draws discarded at a time by generators that cannot jump


@contextlib.contextmanager
def batch_rows(offset: int, total: int) -> Iterator[None]:
    """Steps run in the block compute rows ``offset, offset + 1, ...`` of a global batch of ``total`` rows.

    Raises
    ------
    ConfigError
        If ``offset`` is not in ``0 .. total``.
    """
    if not 0 <= offset <= total:
        raise ConfigError(f"batch_rows: offset must be in 0 .. total ({total}), got {offset}.")
    previous = getattr(_window, "rows", None)
    _window.rows = (int(offset), int(total))
    try:
        yield
    finally:
        _window.rows = previous


def current_rows() -> tuple[int, int] | None:
    """``(offset, total)`` of the :func:`batch_rows` block this thread is in, or None."""
    rows: tuple[int, int] | None = getattr(_window, "rows", None)
    return rows


def uniform_rows(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform float32 numbers in ``[0, 1)`` of ``shape`` ``(m, ...)``: this step's rows of the global draw.

    Shapes
    ------
    out : ``shape``; inside ``batch_rows(offset, total)`` it equals
    ``rng.random((total, *shape[1:]), dtype=float32)[offset : offset + m]`` drawn from the
    same state, and ``rng`` ends in the state that draw leaves.

    Raises
    ------
    ShapeError
        If the step's ``m`` rows do not fit in the global batch after ``offset``.
    """
    rows = current_rows()
    if rows is None or len(shape) == 0:
        return rng.random(shape, dtype=np.float32)
    offset, total = rows
    m = shape[0]
    if offset + m > total:
        raise ShapeError(
            f"uniform_rows: a step of {m} rows at row {offset} of a global batch of {total} rows "
            "does not fit; the rows given to batch_rows do not match the batch."
        )
    per_row = math.prod(shape[1:])
    skip(rng, offset * per_row)
    out = rng.random(shape, dtype=np.float32)
    skip(rng, (total - offset - m) * per_row)
    return out


def skip(rng: np.random.Generator, n: int) -> None:
    """Move ``rng`` past ``n`` float32 draws, as ``rng.random(n, dtype=float32)`` would, drawing none."""
    if n <= 0:
        return
    bits: Any = rng.bit_generator
    if type(bits) not in _ADVANCES:
        for start in range(0, n, _CHUNK):
            rng.random(min(_CHUNK, n - start), dtype=np.float32)
        return
    state = dict(bits.state)
    if state["has_uint32"]:  # the kept half of the last output is the next draw: use it up
        n -= 1
        state["has_uint32"] = 0
        bits.state = state
    bits.advance(n // 2)  # two draws per 64-bit output; advance() also forgets any kept half
    if n % 2:  # one draw more: take the low half of the next output, keep its high half
        rng.random(1, dtype=np.float32)


__all__ = ["batch_rows", "current_rows", "skip", "uniform_rows"]
