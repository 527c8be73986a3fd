"""Replaying a recorded step: the same forwards and rules, on new batches, without rebuilding the graph.

Part of :mod:`chainrule.jit` (level 4).

Define-by-run costs Python work on every step: a tensor per op, a node per op, a
topological sort per backward. A :class:`CompiledStep` does that work once, from a
:class:`~chainrule.jit.record.Recording`: its forward runs each op's forward
function on arrays, slot by slot; its backward is the engine's own driver,
:func:`chainrule.tensor.backprop`, over a plan made once from the recording, with
the same rules in the same order. So the numbers are the eager step's, bit for bit,
and every parameter that wants a gradient gets it in ``grad`` (accumulated, as
``backward`` does). A pass may rewrite the plan before the step is built
(:mod:`chainrule.jit.passes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from chainrule.backend import xp_of
from chainrule.errors import ConfigError
from chainrule.jit.record import Recording
from chainrule.tensor import Array, Step, Tensor, backprop, forward


def backward_plan(rec: Recording) -> list[Step]:
    """The backward pass of ``rec`` as driver steps: every value that wants a gradient, outputs first.

    A parameter's step keeps its gradient (``grad``); an op's step calls its rule with
    ``needs`` (for rules that take it) and sends gradients only to wanted inputs.
    """
    ops = {op.slot: op for op in rec.ops}
    leaves = {r.slot: r.tensor for r in rec.inputs if r.kind == "leaf"}
    steps = []
    for slot in reversed(rec.order):
        if slot not in rec.wanted:
            continue
        op = ops.get(slot)
        if op is None:
            steps.append(Step(slot, None, "", (), {}, (), (), leaves[slot]))
            continue
        wanted = tuple(i in rec.wanted for i in op.inputs)
        params = {**op.params, "needs": wanted} if op.prim.masked else dict(op.params)
        targets = tuple(i if w else None for i, w in zip(op.inputs, wanted, strict=True))
        steps.append(Step(slot, op.prim.vjp, op.prim.name, op.inputs, params, targets, op.shapes, None))
    return steps


class CompiledStep:
    """``step(batch) -> C``: the recorded forward and backward on a new batch (a mapping name -> array).

    Parameters
    ----------
    rec : Recording
        The step, captured by :func:`chainrule.jit.record.capture`.
    plan : list of Step, optional
        Its backward pass (default :func:`backward_plan`; a pass may have rewritten it).
    stepped : sequence of Tensor
        Parameters the plan updates in place instead of giving a gradient (a fused
        optimizer step); with any, a loss that is not finite returns before the
        backward pass, so nothing moves.

    Raises
    ------
    ConfigError
        If the loss depends on no parameter that wants a gradient.
    """

    def __init__(
        self, rec: Recording, plan: list[Step] | None = None, stepped: Sequence[Tensor] = ()
    ) -> None:
        if rec.root not in rec.wanted:
            raise ConfigError(
                "jit: the loss depends on no parameter that wants a gradient; nothing to train."
            )
        self.recording = rec
        self.stepped = list(stepped)
        self.template: list[Any] = [None] * rec.n_slots
        self.batch_slots: list[tuple[int, str]] = []
        self.leaf_slots: list[tuple[int, Tensor]] = []
        for r in rec.inputs:
            if r.kind == "constant":
                self.template[r.slot] = r.value
            elif r.kind == "batch":
                self.batch_slots.append((r.slot, r.name))
            elif r.kind == "leaf":
                assert r.tensor is not None
                self.leaf_slots.append((r.slot, r.tensor))
        self.draws = rec.draws
        self.forward_plan = [(op.slot, op.prim, op.inputs, dict(op.params)) for op in rec.ops]
        self.steps = backward_plan(rec) if plan is None else plan
        # a parameter bound to a batch input (labels=y) is set in place in each dict that holds it
        self.bound: list[tuple[dict[str, Any], str, str]] = []
        for op, (_, _, _, params) in zip(rec.ops, self.forward_plan, strict=True):
            self.bound += [(params, key, name) for key, name in op.batch_params]
            for s in self.steps:
                if s.key == op.slot and s.vjp is not None:
                    self.bound += [(s.params, key, name) for key, name in op.batch_params]
        self.root = rec.root
        self._seed: Array | None = None

    def __repr__(self) -> str:
        return f"CompiledStep({len(self.forward_plan)} ops, {len(self.steps)} backward steps)"

    def __call__(self, batch: Mapping[str, Array]) -> Array:
        values = self.template.copy()
        for slot, name in self.batch_slots:
            values[slot] = batch[name]
        for slot, t in self.leaf_slots:
            values[slot] = t.data
        for where, draw in self.draws:  # every draw the eager step made, in its order
            drawn = draw()
            if where is not None:
                values[where] = drawn
        for params, key, name in self.bound:
            params[key] = batch[name]
        for slot, prim, inputs, params in self.forward_plan:
            values[slot] = forward(prim, [values[i] for i in inputs], params)
        loss = values[self.root]
        if self.stepped and not math.isfinite(float(loss.reshape(()).item())):
            return loss  # nothing is stepped on a non-finite loss: the caller sees it first
        if self._seed is None:
            self._seed = xp_of(loss).ones_like(loss)
        backprop(self.steps, values, {self.root: self._seed.copy()})
        return loss


__all__ = ["CompiledStep", "backward_plan"]
