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
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from chainrule import backend
from chainrule.errors import ChainruleError, DTypeError, GradientError, ShapeError

Array = Any  # an ndarray of the active backend (numpy.ndarray or cupy.ndarray)
Forward = Callable[..., Array]
VJP = Callable[..., Sequence[Array | None]]


class _Mode(threading.local):
    """Per thread: whether ops record the graph, and (while chainrule.jit records a step) every op."""

    grad_enabled = True
    record_every_op = False  # ops needing no gradient get nodes too


mode = _Mode()  # NOTE: one per thread, so two threads may train (and evaluate) at once

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
    """

    __slots__ = ("__dict__", "formula", "forward", "masked", "name", "samples", "vjp")

    def __init__(
        self,
        name: str,
        forward: Forward,
        vjp: VJP | None,
        formula: str = "",
        samples: list[dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
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
    out = forward(prim, datas, params)
    result = _wrap(out)
    differentiable = record and prim.vjp is not None
    if (differentiable or mode.record_every_op) and mode.grad_enabled:
        result.requires_grad = differentiable
        result._node = (prim, parents, params)  # (on a value that needs no gradient: a recording only)
    return result


def forward(prim: Primitive, datas: Sequence[Array], params: dict[str, Any]) -> Array:
    """``prim``'s forward on arrays, as an array; used by :func:`apply` and by replays of a recorded step.

    Raises
    ------
    ShapeError, DTypeError
        If the forward function rejects its inputs; the message names the op,
        the input shapes and dtypes, and the parameters.
    """
    try:
        out = prim.forward(*datas, **params)
    except ChainruleError:
        raise  # the op's own error (a label out of range) says it best
    except (ValueError, IndexError) as exc:
        raise ShapeError(_describe(prim, datas, params, exc)) from exc
    except TypeError as exc:
        raise DTypeError(_describe(prim, datas, params, exc)) from exc
    if isinstance(out, np.generic):  # NumPy reductions return scalars, not 0-d arrays
        out = np.asarray(out)
    return out


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
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.ndim == len(shape) and g.shape[i] != 1)
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

    # NOTE: ``==`` and ``!=`` are elementwise (chainrule.ops installs them, as it does ``<``), so
    # hashing stays by identity, and truth is defined only for one element, as in NumPy.
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ShapeError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; use .numpy().any() "
                "or .numpy().all()."
            )
        return bool(self.data.reshape(()).item())

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


def toposort(root: Tensor, grad_only: bool = True) -> list[Tensor]:
    """Tensors reachable from ``root`` that require grad (or all, if not ``grad_only``), inputs first.

    Iterative, depth first; the backward pass visits them in reverse.
    """
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            parents = () if node._node is None else node._node[1]
            stack.extend(
                (p, False) for p in parents if (p.requires_grad or not grad_only) and id(p) not in seen
            )
    return order


class Step(NamedTuple):
    """One value of the backward pass, in the order the driver visits them (outputs before inputs).

    ``key`` names the value (the id of a tensor, or a slot of a recorded step) and
    ``values[key]`` is its array. A value made by an op has the op's rule ``vjp``, the
    keys of the op's ``inputs`` and its ``params``; ``targets[i]`` is the key that
    collects input ``i``'s gradient (None: not wanted) and ``shapes[i]`` that input's
    shape. A value whose gradient is kept (a leaf, or a retained intermediate) has
    its tensor in ``keep``.
    """

    key: Any
    vjp: VJP | None
    name: str
    inputs: tuple[Any, ...]
    params: dict[str, Any]
    targets: tuple[Any, ...]
    shapes: tuple[tuple[int, ...], ...]
    keep: Tensor | None


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


def backprop(steps: Sequence[Step], values: Any, grads: dict[Any, Array]) -> None:
    """Run the chain rule over ``steps``, from the gradients in ``grads`` (the seed ``dC/dC``).

    For each value in turn: take its gradient ``g`` (the sum of everything its
    consumers sent), keep it if asked (``t.grad += g``), then ask its op's rule for
    ``dC/dinput_i = g . dout/dinput_i`` and add each, summed back to the input's shape
    where broadcasting stretched it, into that input's gradient. The one driver:
    :meth:`Tensor.backward` builds its steps from the graph, a recorded step
    (:mod:`chainrule.jit`) from its recording.

    Raises
    ------
    GradientError, ShapeError
        A rule returned the wrong number of gradients, or one of an irreducible shape.
    """
    owned = {id(_owner(g)): _owner(g) for g in grads.values()}  # a leaf must not alias the seed
    for key, vjp, name, inputs, params, targets, shapes, keep in steps:
        g = grads.pop(key, None)
        if g is None:
            continue
        if keep is not None:
            _accumulate(keep, g, owned)
        if vjp is None:
            continue
        owner = _owner(g)
        owned[id(owner)] = owner  # the rule may hand g (or a view of it) to an input as is
        in_grads = vjp(g, values[key], *[values[i] for i in inputs], **params)
        if len(in_grads) != len(inputs):
            raise GradientError(
                f"{name}: VJP rule returned {len(in_grads)} gradients for {len(inputs)} inputs."
            )
        for target, shape, gp in zip(targets, shapes, in_grads, strict=True):
            if gp is None or target is None:
                continue
            if gp.shape != shape:
                gp = _unbroadcast(gp, shape, name)
            grads[target] = grads[target] + gp if target in grads else gp


def _run_backward(root: Tensor, seed: Array) -> None:
    steps, values = [], {}
    for t in reversed(toposort(root)):
        values[id(t)] = t.data
        if t._node is None:
            steps.append(Step(id(t), None, "", (), {}, (), (), t))
            continue
        prim, parents, params = t._node
        values.update((id(p), p.data) for p in parents)
        wanted = tuple(p.requires_grad for p in parents)
        if prim.masked:
            params = {**params, "needs": wanted}
        targets = tuple(id(p) if w else None for p, w in zip(parents, wanted, strict=True))
        shapes = tuple(p.data.shape for p in parents)
        keep = t if t._retain else None
        steps.append(Step(id(t), prim.vjp, prim.name, tuple(map(id, parents)), params, targets, shapes, keep))
    backprop(steps, values, {id(root): seed})


__all__ = ["Primitive", "Step", "Tensor", "apply", "backprop", "forward", "fresh", "toposort"]
