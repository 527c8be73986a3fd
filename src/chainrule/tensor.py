"""The define-by-run graph and the backward driver (level 2).

A :class:`Tensor` wraps an array of the active backend. Applying a
:class:`Primitive` to tensors that require gradients records one node: the
primitive, its parent tensors and its parameters. :meth:`Tensor.backward`
walks that graph in reverse topological order (iteratively, so a chain of
100,000 ops is fine) and asks each primitive's VJP rule for the gradients of
its inputs.

This module knows no op by name: the primitives and their rules live in
:mod:`chainrule.ops`, which also installs the arithmetic operators on
:class:`Tensor`. All bookkeeping lives here, once:

- ``+=`` accumulation of gradients reaching a tensor along several paths;
- reducing a broadcast gradient back to its input's shape;
- checking that each rule returned one gradient per input, of the right shape.

Math
----
For ``out = f(x1, ..., xn)`` and an upstream gradient ``g = dC/dout``, the
rule returns ``dC/dxi = g . dout/dxi`` (a vector-Jacobian product), without
building the Jacobian.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from chainrule import backend
from chainrule.errors import DTypeError, GradientError, ShapeError

Array = Any  # an ndarray of the active backend (numpy.ndarray or cupy.ndarray)
Forward = Callable[..., Array]
VJP = Callable[..., Sequence[Array | None]]

_grad_enabled = [True]

if TYPE_CHECKING:  # the operators chainrule.ops installs, declared for type checkers
    from chainrule.tensor_api import TensorMethods as _TensorMethods
else:
    _TensorMethods = object


class Primitive:
    """An op with a forward function and, if differentiable, its VJP rule.

    Parameters
    ----------
    name : str
        Name in the table of primitives.
    forward : callable
        ``forward(*arrays, **params) -> array``.
    vjp : callable or None
        ``vjp(g, out, *arrays, **params) -> one gradient (or None) per input``,
        where ``g = dC/dout`` has the shape of ``out``. ``None`` marks a
        non-differentiable op (argmax, comparisons): its output never records
        a node.
    formula : str
        The rule in bracket-free plain text, printed by :func:`chainrule.ops.table`.
    samples : list of dict
        Example inputs the table-driven tests use: ``{"shapes": [...],
        "params": {...} or callable(rng) -> dict, "domain": "real"|"positive"|
        "unit"}``.
    descends : tuple of int
        Inputs the rule can update in place instead of returning their gradient: given
        ``descend[i] = alpha`` it adds ``alpha * dC/dinput_i`` into input ``i`` and returns
        None for it (an SGD step fused into the gradient's product; :mod:`chainrule.trace`).
    """

    __slots__ = ("__dict__", "descends", "formula", "forward", "masked", "name", "samples", "vjp")

    def __init__(
        self,
        name: str,
        forward: Forward,
        vjp: VJP | None,
        formula: str = "",
        samples: list[dict[str, Any]] | None = None,
        descends: tuple[int, ...] = (),
    ) -> None:
        self.name = name
        self.descends = descends
        self.forward = forward
        self.vjp = vjp
        self.formula = formula
        self.samples = samples or []
        # a rule with a ``needs`` keyword is told which inputs want a gradient, to skip the rest
        self.masked = vjp is not None and "needs" in inspect.signature(vjp).parameters
        self.__doc__ = forward.__doc__

    @property
    def differentiable(self) -> bool:
        """True if the primitive has a VJP rule."""
        return self.vjp is not None

    def __call__(self, *args: Any, **params: Any) -> Tensor:
        return apply(self, args, params)

    def __repr__(self) -> str:
        kind = "differentiable" if self.differentiable else "non-differentiable"
        return f"Primitive({self.name!r}, {kind})"


def _coerce(value: Any, like: Array | None) -> Array:
    """A constant operand as an array: Python numbers take the dtype of ``like``."""
    if backend.is_array(value):
        return value
    if isinstance(value, int | float) and like is not None and like.dtype.kind == "f":
        return backend.xp_of(like).asarray(value, dtype=like.dtype)
    return backend.asarray(value)


def apply(prim: Primitive, args: Sequence[Any], params: dict[str, Any]) -> Tensor:
    """Run ``prim`` on ``args`` (tensors, arrays or numbers) and record a node.

    Raises
    ------
    ShapeError, DTypeError
        If the forward function rejects its inputs; the message names the op,
        the input shapes and dtypes, and the parameters.
    """
    parents: Sequence[Tensor] = args
    datas = []
    record = False
    for a in args:  # NOTE: hot path; the common case is all Tensors
        if not isinstance(a, Tensor):
            parents = _as_tensors(args)
            datas = [p.data for p in parents]
            record = any(p.requires_grad for p in parents)
            break
        datas.append(a.data)
        record = record or a.requires_grad
    try:
        out = prim.forward(*datas, **params)
    except (ValueError, IndexError) as exc:
        raise ShapeError(_describe(prim, datas, params, exc)) from exc
    except TypeError as exc:
        raise DTypeError(_describe(prim, datas, params, exc)) from exc
    if isinstance(out, np.generic):  # NumPy reductions return scalars, not 0-d arrays
        out = np.asarray(out)
    result = _wrap(out)
    if record and prim.vjp is not None and _grad_enabled[0]:
        result.requires_grad = True
        result._node = (prim, parents, params)
    return result


def _as_tensors(args: Sequence[Any]) -> list[Tensor]:
    """Wrap constant operands; Python numbers take the dtype of the first tensor."""
    like = next((a.data for a in args if isinstance(a, Tensor)), None)
    return [a if isinstance(a, Tensor) else Tensor(_coerce(a, like)) for a in args]


def _wrap(data: Array) -> Tensor:
    """A new tensor around ``data`` without the checks of ``Tensor.__init__`` (hot path)."""
    t = object.__new__(Tensor)
    t.data, t.grad, t.requires_grad, t.name, t._node, t._retain = data, None, False, None, None, False
    return t


def _describe(prim: Primitive, datas: Sequence[Array], params: dict[str, Any], exc: Exception) -> str:
    inputs = ", ".join(f"{tuple(d.shape)} {d.dtype}" for d in datas)
    extra = f" with {params}" if params else ""
    return f"{prim.name}: cannot apply to inputs [{inputs}]{extra}: {exc}"


def _unbroadcast(g: Array, shape: tuple[int, ...], who: str = "unbroadcast") -> Array:
    """Sum ``g`` over the axes that broadcasting added or stretched, to ``shape``.

    Math: if ``x`` of shape ``shape`` was broadcast to ``g.shape``, then
    ``dC/dx = sum of g over every broadcast axis`` (keeping stretched size-1 axes).

    Raises
    ------
    ShapeError
        If ``g`` cannot be reduced to ``shape`` (a rule of ``who`` returned a wrong shape).
    """
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    if lead > 0:
        g = g.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)
    if g.shape != shape:
        raise ShapeError(
            f"{who}: VJP rule returned a gradient of shape {g.shape} for an input of shape {shape}."
        )
    return g


class Tensor(_TensorMethods):
    """An array of the active backend that records the ops applied to it.

    Parameters
    ----------
    data : array_like or Tensor
        The values; converted with the active backend's ``asarray``.
    requires_grad : bool
        Whether gradients with respect to this tensor are wanted. Only
        floating-point tensors can require gradients.
    dtype : dtype, optional
        Convert ``data`` to this dtype.
    name : str, optional
        A label, shown by ``repr`` and used by ``explain``.

    Attributes
    ----------
    data : array
        The wrapped array, shape ``shape``.
    grad : array or None
        ``dC/dself`` after :meth:`backward`, same shape as ``data``; set on
        leaves that require gradients, and on intermediates after
        :meth:`retain_grad`.

    Examples
    --------
    >>> import chainrule as cr
    >>> w = cr.Tensor([1.0, 2.0], requires_grad=True)
    >>> (w * w).sum().backward()
    >>> w.grad
    array([2., 4.])
    """

    __slots__ = ("_node", "_retain", "data", "grad", "name", "requires_grad")
    __array_ufunc__ = None  # make NumPy defer ``ndarray + Tensor`` to Tensor.__radd__

    def __init__(
        self,
        data: Any,
        requires_grad: bool = False,
        dtype: Any = None,
        name: str | None = None,
    ) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if dtype is not None or not backend.is_array(data):
            data = backend.asarray(data, dtype=dtype)
        if requires_grad and data.dtype.kind not in "fc":
            raise DTypeError(
                f"Tensor: only floating-point tensors can require gradients, got dtype "
                f"{data.dtype}; pass dtype=numpy.float64 (or float32)."
            )
        self.data: Array = data
        self.grad: Array | None = None
        self.requires_grad = requires_grad
        self.name = name
        self._node: tuple[Primitive, Sequence[Tensor], dict[str, Any]] | None = None
        self._retain = False

    # ----------------------------------------------------------------- info
    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the wrapped array."""
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        """dtype of the wrapped array."""
        return self.data.dtype

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return int(self.data.ndim)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(self.data.size)

    @property
    def is_leaf(self) -> bool:
        """True if no recorded op produced this tensor."""
        return self._node is None

    @property
    def op(self) -> str | None:
        """Name of the primitive that produced this tensor, if recorded."""
        return None if self._node is None else self._node[0].name

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __repr__(self) -> str:
        extra = ", requires_grad=True" if self.requires_grad else ""
        extra += f", op={self.op!r}" if self._node is not None else ""
        extra += f", name={self.name!r}" if self.name else ""
        body = np.array2string(backend.to_numpy(self.data), separator=", ", prefix="Tensor(")
        return f"Tensor({body}, dtype={self.dtype}{extra})"

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (copied to the host if on a GPU)."""
        return backend.to_numpy(self.data)

    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ShapeError(f"item: expected a tensor with one element, got shape {self.shape}.")
        return float(self.data.reshape(()).item())

    # ------------------------------------------------------------- autodiff
    def detach(self) -> Tensor:
        """A tensor sharing the data, cut from the graph (no gradient flows back)."""
        return Tensor(self.data)

    def retain_grad(self) -> Tensor:
        """Keep ``grad`` on this intermediate after backward (e.g. ``delta[l] = dC/dz[l]``)."""
        if not self.requires_grad:
            raise GradientError("retain_grad: this tensor does not require gradients.")
        self._retain = True
        return self

    def zero_grad(self) -> None:
        """Forget the accumulated gradient."""
        self.grad = None

    def backward(self, gradient: Any = None) -> None:
        """Accumulate ``dC/dx`` into ``x.grad`` for every leaf ``x`` this tensor depends on.

        Parameters
        ----------
        gradient : array_like, optional
            ``dC/dself``, same shape as ``self``. Defaults to 1 for a
            one-element tensor (``C`` is this tensor).

        Raises
        ------
        GradientError
            If the tensor does not require gradients, or is not a single
            value and no ``gradient`` was given.
        ShapeError
            If ``gradient`` has the wrong shape, or a rule returned one.
        """
        if not self.requires_grad:
            raise GradientError(
                "backward: this tensor does not require gradients; no input had "
                "requires_grad=True (or it was computed under no_grad)."
            )
        xp = backend.xp_of(self.data)
        if gradient is None:
            if self.data.size != 1:
                raise GradientError(
                    f"backward: a tensor of shape {self.shape} needs an explicit gradient "
                    "of the same shape; only one-element tensors get the default 1."
                )
            seed = xp.ones_like(self.data)
        else:
            seed = xp.asarray(gradient.data if isinstance(gradient, Tensor) else gradient)
            seed = seed.astype(self.dtype, copy=False)
            if seed.shape != self.data.shape:
                raise ShapeError(
                    f"backward: gradient must have the tensor's shape {self.shape}, got {tuple(seed.shape)}."
                )
        _run_backward(self, seed)


def _toposort(root: Tensor) -> list[Tensor]:
    """Tensors reachable from ``root`` that require grad, inputs before outputs (iterative)."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if node._node is not None:
            stack.extend((p, False) for p in node._node[1] if p.requires_grad and id(p) not in seen)
    return order


def _miscount(name: str, grads: Any, expected: int) -> None:
    """Raise the error for a rule that returned ``len(grads)`` gradients for ``expected`` inputs."""
    raise GradientError(f"{name}: VJP rule returned {len(grads)} gradients for {expected} inputs.")


def _owner(a: Array) -> Array:
    """The array owning ``a``'s memory: ``a`` itself, or the base of a view."""
    return a if a.base is None else a.base


def fresh(g: Array, owned: dict[int, Array]) -> Array:
    """``g``, or a copy of it if it may share memory with an array in ``owned`` or is read-only.

    ``owned`` maps ``id`` to the owner of every upstream gradient given to a rule
    (a rule may return it, or a view of it, as is) and of every gradient already
    stored, and keeps them alive so their ids stay unique. So no two ``.grad``
    arrays, nor a ``.grad`` and a caller's array, share memory, while a view of an
    array the rule made itself (``(A^T delta)^T``) is kept as it is.
    """
    if isinstance(g, np.generic):
        g = np.asarray(g)
    if id(_owner(g)) in owned or not getattr(g.flags, "writeable", True):
        g = g.copy()
    owned[id(_owner(g))] = _owner(g)
    return g


def _accumulate(t: Tensor, g: Array, owned: dict[int, Array]) -> None:
    """``t.grad += g``; the first gradient is stored without a copy when nothing else holds it."""
    t.grad = fresh(g, owned) if t.grad is None else t.grad + g


def _run_backward(root: Tensor, seed: Array) -> None:
    grads: dict[int, Array] = {id(root): seed}
    owned = {id(_owner(seed)): _owner(seed)}  # the caller's array: a leaf must not alias it
    for t in reversed(_toposort(root)):
        g = grads.pop(id(t), None)
        node = t._node
        if g is None:
            continue
        if node is None or t._retain:
            _accumulate(t, g, owned)
        if node is None:
            continue
        prim, parents, params = node
        datas = [p.data for p in parents]
        if prim.masked:
            params = {**params, "needs": tuple(p.requires_grad for p in parents)}
        owned[id(_owner(g))] = _owner(g)  # the rule may hand g (or a view of it) to a parent as is
        in_grads = prim.vjp(g, t.data, *datas, **params)  # type: ignore[misc]
        if len(in_grads) != len(parents):
            _miscount(prim.name, in_grads, len(parents))
        for p, gp in zip(parents, in_grads, strict=True):
            if gp is None or not p.requires_grad:
                continue
            gp = _unbroadcast(gp, p.data.shape, prim.name)
            key = id(p)
            grads[key] = grads[key] + gp if key in grads else gp


__all__ = [
    "Primitive",
    "Tensor",
    "apply",
]
