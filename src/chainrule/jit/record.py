"""Recording a step: the graph an eager step built, as typed records; and the comparison of two recordings.

Part of :mod:`chainrule.jit` (level 4).

A step (forward and loss) runs eagerly, on the ordinary engine, inside
:func:`recording`; :func:`capture` then reads the graph it built, from the loss back
to its sources, into a :class:`Recording`: every value gets a *slot*, every op an
:class:`OpRecord` naming its primitive, the slots of its inputs and its parameters,
and every value the step did not compute an :class:`InputRecord` saying where it
comes from:

- ``batch``: an array of the batch (``x``, ``y``, ...), given anew on every call;
- ``leaf``: a model parameter, whose ``data`` is read afresh on every call;
- ``random``: values drawn by the library each step (a dropout mask, made by
  :func:`random_input`), drawn again on every call, in the order they were drawn;
- ``constant``: anything else, baked into the compiled step.

Whether baking is safe is decided by comparison, not by a list of rules:
:func:`difference` of two recordings of the same step on different batches names
the first op whose structure, parameters or constants differ (a value the module
draws per step without telling the recorder changes between the two). Only a step
whose two recordings agree is compiled.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.backend import to_numpy
from chainrule.tensor import Array, Primitive, Tensor, mode, toposort

_drawn = threading.local()  # .draws: the random inputs of the step this thread records, if any


def random_input(draw: Callable[[], Array]) -> Tensor:
    """A tensor of values the library draws afresh each step (a dropout mask): ``Tensor(draw())``.

    Inside a recording the tensor is remembered as a *random input*: a compiled step
    calls ``draw()`` again on every call, in the order of the eager step's draws, so its
    numbers are those of the eager step. ``draw`` must take its randomness from a
    generator it holds (``numpy.random.Generator``), never from global state.
    """
    t = Tensor(draw())
    draws = getattr(_drawn, "draws", None)
    if draws is not None:  # this thread is recording a step
        draws.append((t, draw))
    return t


@contextlib.contextmanager
def recording() -> Iterator[list[tuple[Tensor, Callable[[], Array]]]]:
    """Context manager for the eager step to be captured.

    Inside it every op gets a node, also one that needs no gradient (``x * 2`` on the
    input, a comparison, ``1 - y``), so that the recording can replay it on each
    batch; and the :func:`random_input` draws are collected.
    """
    draws: list[tuple[Tensor, Callable[[], Array]]] = []
    previous = mode.record_every_op, getattr(_drawn, "draws", None)
    mode.record_every_op, _drawn.draws = True, draws
    try:
        yield draws
    finally:
        mode.record_every_op, _drawn.draws = previous


@dataclass(frozen=True)
class InputRecord:
    """A value the step does not compute: from the batch, a parameter, a draw, or a constant."""

    slot: int
    kind: str  # "batch", "leaf", "random" or "constant"
    name: str = ""  # the batch input's name (kind "batch")
    tensor: Tensor | None = None  # the parameter (kind "leaf")
    value: Any = None  # the array (kind "constant")
    draw: Callable[[], Array] | None = None  # kind "random"
    seen: Any = None  # a copy of the constant's value when it was recorded, for comparisons


@dataclass(frozen=True)
class OpRecord:
    """One op of the step: ``values[slot] = prim.forward(*values[inputs], **params, **batch params)``.

    ``batch_params`` maps a parameter to the batch input it is (``labels=y``);
    ``wanted`` is true where the value depends on a parameter that wants a gradient.
    """

    slot: int
    prim: Primitive
    inputs: tuple[int, ...]
    params: dict[str, Any]
    batch_params: tuple[tuple[str, str], ...]
    shapes: tuple[tuple[int, ...], ...]
    wanted: bool


@dataclass
class Recording:
    """A captured step: its inputs and ops by slot, in an order the eager backward pass visits in reverse."""

    inputs: list[InputRecord]
    ops: list[OpRecord]  # inputs before outputs: the order of chainrule.tensor.toposort
    order: list[int]  # every slot that requires a gradient, in toposort order (the backward's, reversed)
    root: int
    n_slots: int
    wanted: set[int] = field(default_factory=set)
    draws: list[tuple[int | None, Callable[[], Array]]] = field(default_factory=list)  # in draw order
    retained: list[str] = field(default_factory=list)  # ops whose output keeps its gradient (retain_grad)


def capture(
    root: Tensor,
    batch: Mapping[str, Any],
    leaves: Sequence[Tensor],
    draws: Sequence[tuple[Tensor, Callable[[], Array]]],
) -> Recording:
    """Read the graph behind ``root`` (a one-element loss) into a :class:`Recording`.

    Parameters
    ----------
    root : Tensor
        The step's loss, computed eagerly inside :func:`recording`.
    batch : mapping of str to array or Tensor
        The step's per-call inputs by name; recognised in the graph by identity.
    leaves : sequence of Tensor
        The model's parameters: read afresh on every call, never baked; those that
        require a gradient get it (as ``backward`` gives it). Any other tensor the step
        reads is a constant.
    draws : sequence of (Tensor, draw)
        The random inputs :func:`recording` collected, in the order they were drawn.
    """
    order = toposort(root)  # what the backward pass visits, as the eager driver does
    slots = {id(t): i for i, t in enumerate(order)}
    by_data = {id(_data(v)): name for name, v in batch.items()}
    watched = {id(p) for p in leaves}
    drawn_by = {id(t): draw for t, draw in draws}
    inputs: list[InputRecord] = []
    ops: list[OpRecord] = []
    wanted: set[int] = set()

    def source(t: Tensor) -> None:
        slot = slots.setdefault(id(t), len(slots))
        if id(t) in drawn_by:
            inputs.append(InputRecord(slot, "random", draw=drawn_by[id(t)]))
        elif id(t.data) in by_data:
            inputs.append(InputRecord(slot, "batch", name=by_data[id(t.data)]))
        elif id(t) in watched or t.requires_grad:  # a parameter, or any tensor that wants its gradient
            inputs.append(InputRecord(slot, "leaf", tensor=t))
            if t.requires_grad:
                wanted.add(slot)
        else:  # a snapshot too: a buffer refilled in place each step must compare unequal to itself
            inputs.append(InputRecord(slot, "constant", value=t.data, seen=_snapshot(t.data)))

    retained = []
    for t in toposort(root, grad_only=False):  # inputs before outputs: a source before its readers
        if t._node is None:
            source(t)
            continue
        if t._retain:
            retained.append(t._node[0].name)
        prim, parents, params_ = t._node
        ins = tuple(slots[id(p)] for p in parents)
        bound = tuple((k, by_data[id(v)]) for k, v in params_.items() if id(v) in by_data)
        fixed = {k: v for k, v in params_.items() if k not in dict(bound)}
        slot = slots.setdefault(id(t), len(slots))
        if t.requires_grad and any(i in wanted for i in ins):
            wanted.add(slot)
        shapes = tuple(tuple(p.data.shape) for p in parents)
        ops.append(OpRecord(slot, prim, ins, fixed, bound, shapes, slot in wanted))
    # every draw of the eager step, in its order: one the graph does not use is drawn all the same
    drawn = [(slots.get(id(t)), draw) for t, draw in draws]
    outputs = list(range(len(order)))
    return Recording(inputs, ops, outputs, slots[id(root)], len(slots), wanted, drawn, retained)


def _data(v: Any) -> Any:
    return v.data if isinstance(v, Tensor) else v


def difference(a: Recording, b: Recording) -> str | None:
    """Where two recordings of one step differ, in words naming the op; None if they agree.

    Compared: the ops, their order, inputs and parameters; every input's kind; the
    identity of parameters; the values of constants (a constant that changed was
    drawn or computed per step without the recorder seeing it, so baking it would
    freeze it).
    """
    if len(a.ops) != len(b.ops) or a.n_slots != b.n_slots or a.root != b.root:
        return f"the graph changed between two steps ({len(a.ops)} ops, then {len(b.ops)})"
    if [slot for slot, _ in a.draws] != [slot for slot, _ in b.draws]:
        return f"the step drew {len(a.draws)} random inputs, then {len(b.draws)}, or in another order"
    kinds_b = {r.slot: r for r in b.inputs}
    users = {i: op for op in a.ops for i in op.inputs}
    for ra in a.inputs:
        rb = kinds_b.get(ra.slot)
        user = users.get(ra.slot)
        who = f"an input of op {user.prim.name!r}" if user is not None else "an input"
        if rb is None or rb.kind != ra.kind or rb.name != ra.name:
            return f"{who} changed its kind between two steps"
        if ra.kind == "leaf" and rb.tensor is not ra.tensor:
            return f"{who} is another parameter in the second step"
        if ra.kind == "constant" and not _same(ra.seen, rb.seen):
            return (
                f"{who} (shape {tuple(np.shape(ra.value))}) is a constant that changed between two steps: "
                "a value drawn or computed per step that the recorder cannot see (draw random values "
                "with chainrule.jit.random_input to make them inputs of the compiled step)"
            )
    for oa, ob in zip(a.ops, b.ops, strict=True):
        same_op = oa.prim is ob.prim and oa.slot == ob.slot and oa.inputs == ob.inputs
        if not (same_op and oa.batch_params == ob.batch_params and oa.shapes == ob.shapes):
            return f"op {oa.prim.name!r} changed between two steps"
        if oa.params.keys() != ob.params.keys() or not all(
            _same(oa.params[k], ob.params[k]) for k in oa.params
        ):
            return f"a parameter of op {oa.prim.name!r} changed between two steps"
    return None


def _snapshot(value: Any) -> Any:
    """A copy of an array (an op's constant operand), to compare with the next recording's."""
    return value.copy() if hasattr(value, "copy") else value


def _same(x: Any, y: Any) -> bool:
    """Equal values of equal type, shape and dtype (NaN equal to NaN)."""
    if isinstance(x, tuple | list):
        return isinstance(y, type(x)) and len(x) == len(y) and all(map(_same, x, y))
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        if type(x) is not type(y) or x.shape != y.shape or x.dtype != y.dtype:
            return False
        x, y = to_numpy(x), to_numpy(y)
        return bool(np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"))
    return type(x) is type(y) and bool(x == y)


__all__ = [
    "InputRecord",
    "OpRecord",
    "Recording",
    "capture",
    "difference",
    "random_input",
    "recording",
]
