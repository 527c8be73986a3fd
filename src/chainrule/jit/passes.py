"""Rewrites of a recorded step's backward plan: plain SGD fused into the gradient's GEMM (opt-in).

Part of :mod:`chainrule.jit` (level 4).

With plain SGD, ``W := W - alpha dC/dW`` and ``dC/dW = delta^T A_prev`` for a
``linear`` or ``dense`` op. :func:`fuse_sgd` rewrites such an op's backward step so
that it adds ``-alpha delta^T A_prev`` into ``W`` in place, in one GEMM with
``beta = 1`` (the :func:`chainrule.backend.addmm` kernel), and ``-alpha dC/db`` into
``b`` (:func:`chainrule.backend.axpy`): ``dC/dW`` is never written out and read back
by an optimizer. ``dC/dA_prev = delta W`` is taken before ``W`` moves. Such a
parameter gets no ``grad``.

Only a parameter that feeds exactly one such op, and whose memory no other input of
the step shares, is stepped this way; everything else keeps its gradient for the
optimizer. The weights equal the separate update's up to rounding (the GEMM adds
its partial sums into ``W`` block by block); ``docs/benchmarks.md`` gives the
difference and what the fusion saves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from chainrule import ops
from chainrule.backend import addmm, axpy, xp_of
from chainrule.jit.record import Recording
from chainrule.tensor import Array, Step, Tensor


class LearningRate:
    """The ``alpha`` a fused step reads on each call (set by the caller before it)."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"LearningRate({self.value})"


def _stepping_rule(lr: LearningRate, activation: str | None) -> Callable[..., tuple[Array | None, ...]]:
    """The backward step of ``linear`` (``activation`` None) or ``dense`` that steps ``W`` and ``b``."""

    def rule(
        g: Array, out: Array, a: Array, w: Array, *b: Array, needs: Any, **_: Any
    ) -> tuple[Array | None, ...]:
        n = w.shape[0]
        delta = g.reshape(-1, n)
        db = None
        if activation is not None:  # delta = g * phi'(a[l]), and dC/db with it
            delta, db = ops.act_grad(delta, out.reshape(-1, n), activation, bool(b))
        elif b:
            db = delta.sum(axis=0)
        da = delta.reshape(g.shape) @ w if needs[0] else None  # before W moves
        addmm(w, delta.T, a.reshape(-1, w.shape[1]), -lr.value)  # W += -alpha delta^T A_prev
        if b:
            axpy(-lr.value, db, b[0])
        return (da, None, None) if b else (da, None)

    return rule


def fuse_sgd(
    rec: Recording, plan: list[Step], params: Sequence[Tensor], lr: LearningRate
) -> tuple[list[Step], list[Tensor]]:
    """Rewrite ``plan`` so that ``linear``/``dense`` ops step their ``W`` (and ``b``) by plain SGD.

    Returns the new plan and the parameters it steps in place (all of an op's
    parameters must be steppable: each in ``params``, used by that op alone, sharing
    memory with no other input of the step).
    """
    wanted = {id(p) for p in params}
    uses = Counter(i for op in rec.ops for i in op.inputs)
    leaves = {r.slot: r.tensor for r in rec.inputs if r.kind == "leaf"}
    arrays = [(r.slot, r.value) for r in rec.inputs if r.kind == "constant"]
    arrays += [(slot, t.data) for slot, t in leaves.items() if t is not None]

    def steppable(slot: int) -> bool:
        t = leaves.get(slot)
        if t is None or id(t) not in wanted or not t.requires_grad or uses[slot] != 1:
            return False  # a frozen parameter stays where it is
        return not any(s != slot and xp_of(a).may_share_memory(t.data, a) for s, a in arrays)

    fused: dict[int, tuple[str | None, tuple[int, ...]]] = {}
    for op in rec.ops:
        bias_fits = len(op.shapes) < 3 or op.shapes[2] == op.shapes[1][:1]  # b (n[l],), not broadcast
        if op.prim in (ops.linear, ops.dense) and bias_fits and all(steppable(i) for i in op.inputs[1:]):
            fused[op.slot] = (op.params.get("activation"), op.inputs[1:])
    stepped_slots = {i for _, slots in fused.values() for i in slots}
    new_plan = []
    for s in plan:
        if s.key in fused:
            activation, slots = fused[s.key]
            targets = tuple(None if t in slots else t for t in s.targets)
            s = s._replace(vjp=_stepping_rule(lr, activation), targets=targets)
        elif s.key in stepped_slots:
            continue  # its gradient never arrives: the op stepped it
        new_plan.append(s)
    return new_plan, [t for slot, t in leaves.items() if slot in stepped_slots and t is not None]


__all__ = ["LearningRate", "fuse_sgd"]
