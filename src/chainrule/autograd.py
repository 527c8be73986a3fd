"""Grad mode (``no_grad``) and the functional form of reverse mode, ``grad`` (level 3).

``grad(f)`` turns a function of arrays that returns a one-element
:class:`~chainrule.tensor.Tensor` into a function returning ``df/dx``, as in
JAX and HIPS autograd. It runs ``f`` once on fresh leaf tensors and calls
``backward``; nothing here knows any op.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from chainrule import backend
from chainrule.errors import ConfigError, ShapeError
from chainrule.tensor import Array, Tensor, mode


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Context manager: ops inside record no graph (for evaluation and updates); in this thread only."""
    previous = mode.grad_enabled
    mode.grad_enabled = False
    try:
        yield
    finally:
        mode.grad_enabled = previous


@contextlib.contextmanager
def enable_grad() -> Iterator[None]:
    """Context manager: record the graph again inside a :func:`no_grad` block."""
    previous = mode.grad_enabled
    mode.grad_enabled = True
    try:
        yield
    finally:
        mode.grad_enabled = previous


def is_grad_enabled() -> bool:
    """True unless inside :func:`no_grad`."""
    return mode.grad_enabled


def value_and_grad(
    f: Callable[..., Tensor], argnums: int | Sequence[int] = 0
) -> Callable[..., tuple[Array, Any]]:
    """Turn ``f(*arrays) -> scalar Tensor`` into ``(value, gradient(s))``.

    Parameters
    ----------
    f : callable
        Takes arrays or tensors and returns a one-element :class:`Tensor`.
    argnums : int or sequence of int
        Which positional arguments to differentiate with respect to.

    Returns
    -------
    callable
        ``g(*args) -> (value, grad)`` where ``grad`` is an array shaped like
        ``args[argnums]`` (a tuple of arrays if ``argnums`` is a sequence).

    Examples
    --------
    >>> import chainrule as cr
    >>> vg = cr.value_and_grad(lambda x: (x * x).sum())
    >>> value, g = vg([1.0, 3.0])
    >>> float(value), g.tolist()
    (10.0, [2.0, 6.0])
    """
    many = not isinstance(argnums, int)
    nums: tuple[int, ...] = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    def wrapped(*args: Any) -> tuple[Array, Any]:
        if max(nums) >= len(args):
            raise ConfigError(f"value_and_grad: argnums {nums} out of range for {len(args)} args.")
        inputs = list(args)
        for i in nums:
            data = inputs[i].data if isinstance(inputs[i], Tensor) else backend.asarray(inputs[i])
            if data.dtype.kind != "f":
                data = data.astype(np.float64)
            inputs[i] = Tensor(data, requires_grad=True)
        with enable_grad():
            out = f(*inputs)
        if not isinstance(out, Tensor) or out.size != 1:
            raise ShapeError(
                f"value_and_grad: f must return a one-element Tensor, got {type(out).__name__}"
                f"{'' if not isinstance(out, Tensor) else ' of shape ' + str(out.shape)}."
            )
        xp = backend.xp_of(out.data)
        if out.requires_grad:
            out.backward()
        grads = [
            inputs[i].grad if inputs[i].grad is not None else xp.zeros_like(inputs[i].data) for i in nums
        ]
        return out.data, (tuple(grads) if many else grads[0])

    return wrapped


def grad(f: Callable[..., Tensor], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """Turn ``f(*arrays) -> scalar Tensor`` into a function returning ``df/dargs``.

    Same as :func:`value_and_grad` without the value.

    Examples
    --------
    >>> import chainrule as cr
    >>> cr.grad(lambda x: (x * x * x).sum())([2.0]).tolist()
    [12.0]
    """
    vg = value_and_grad(f, argnums)

    def wrapped(*args: Any) -> Any:
        return vg(*args)[1]

    return wrapped


__all__ = ["enable_grad", "grad", "is_grad_enabled", "no_grad", "value_and_grad"]
