"""The compile layer: a training step recorded on the eager engine, replayed with its numbers (level 4).

:class:`Compiler` runs a step function (forward and loss) the way Keras's
``fit`` runs its compiled step: the first two calls for batches of a kind run on
the eager engine and are recorded (:mod:`~chainrule.jit.record`); if the two
recordings agree, later calls replay the recording (:mod:`~chainrule.jit.replay`):
the same forward functions and VJP rules, in the same order, without building a
graph, so the loss and every gradient are bit for bit the eager step's.

Safety is derived, not listed: a step whose two recordings differ (a constant
that changed, a graph that changed, randomness drawn behind the recorder's back)
is not compiled; it keeps running eagerly, and the compiler says so once, naming
the op (:class:`~chainrule.errors.CompileWarning`). Randomness the library draws
(dropout masks, through :func:`random_input`) is an input of the compiled step,
drawn afresh on every call in the eager order, so models with dropout compile too;
inside :func:`batch_rows` a step draws only its rows of a global batch's numbers
(:mod:`~chainrule.jit.rows`, for data-parallel training).
A compiled step also checks, on every call, that its parameters still want the
gradients and have the shapes and dtypes it recorded, and :meth:`Compiler.verify`
makes the next call of each step record again and compare (the Trainer asks for it
at each epoch), so a model changed between epochs is noticed. Two recordings may
also agree by chance (a value computed from the batch outside chainrule's ops that
happened to be equal in both), so a compiled step records again and compares at
its 4th, 32nd, 256th, ... call; a difference is said and the step recorded anew.
Values computed from a batch belong in ops (``Tensor(w).sum()``, not
``float(w.sum())``): then the compiled step computes them anew for every batch.

Passes rewrite a recording before it is compiled (:mod:`~chainrule.jit.passes`):
plain SGD fused into the gradient's GEMM is one, opt-in.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chainrule.errors import CompileWarning, GradientError
from chainrule.jit.passes import LearningRate, fuse_sgd
from chainrule.jit.record import Recording, capture, difference, random_input, recording
from chainrule.jit.replay import CompiledStep, backward_plan
from chainrule.jit.rows import batch_rows, uniform_rows
from chainrule.tensor import Array, Tensor

CHECK_FIRST, CHECK_GROWTH = 4, 8  # a compiled step records again at its 4th, 32nd, 256th, ... call


@dataclass
class _Entry:
    """What the compiler knows of one kind of batch: its recordings, its compiled step, or why it has none."""

    recordings: list[Recording] = field(default_factory=list)
    step: CompiledStep | None = None
    guards: list[tuple[Tensor, bool, Any, tuple[int, ...]]] = field(default_factory=list)
    eager: str | None = None  # why this step runs eagerly
    verify: bool = False
    calls: int = 0  # compiled calls so far
    next_check: int = 0  # the compiled call that records again and compares (4, 32, 256, ...)

    def holds(self) -> bool:
        """The recorded parameters still want gradients and have the recorded dtypes and shapes."""
        return all(
            t.requires_grad is rg and t.data.dtype == dt and t.data.shape == sh
            for t, rg, dt, sh in self.guards
        )


class Compiler:
    """``compiler(batch, context) -> C``: a step that runs eagerly while it records, then compiled.

    Parameters
    ----------
    fn : callable
        ``fn(**batch) -> one-element Tensor``: the forward pass and loss; the entries of
        ``tracked`` arrive as tensors, the others as arrays.
    leaves : callable
        ``leaves() -> the model's parameters``, read at each recording; those that
        require a gradient get it after every call, as after ``backward``.
    tracked : tuple of str
        Batch entries passed to ``fn`` as tensors (the inputs ``x``).
    fuse : sequence of Tensor, optional
        Parameters to step by plain SGD inside the backward pass where an op allows
        (:func:`~chainrule.jit.passes.fuse_sgd`); they then get no gradient, and
        ``lr.value`` is the step's ``alpha``.
    lr : LearningRate, optional
        Read by a fused step on each call.
    enabled : bool
        False runs every call eagerly (no recording, no warnings).
    """

    def __init__(
        self,
        fn: Callable[..., Tensor],
        leaves: Callable[[], Sequence[Tensor]],
        tracked: tuple[str, ...] = ("x",),
        fuse: Sequence[Tensor] = (),
        lr: LearningRate | None = None,
        enabled: bool = True,
    ) -> None:
        self.fn, self.leaves, self.tracked = fn, leaves, tracked
        self.fuse, self.lr = list(fuse), lr or LearningRate()
        self.enabled = enabled
        self.entries: dict[Hashable, _Entry] = {}
        self._said: set[str] = set()

    def __repr__(self) -> str:
        compiled = sum(e.step is not None for e in self.entries.values())
        return f"Compiler(enabled={self.enabled}, compiled={compiled}, eager={len(self.entries) - compiled})"

    def __call__(self, batch: Mapping[str, Array], context: Hashable = ()) -> Array:
        """Run the step on ``batch`` (forward, loss, backward); returns the loss ``C`` as an array."""
        key = (context, *((n, type(v), v.shape, v.dtype) for n, v in batch.items()))
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = _Entry()
        if entry.step is not None and not entry.holds():  # a parameter frozen, recast or reshaped
            entry.step, entry.verify = None, False  # compile afresh, as for a new kind of batch
        if entry.step is not None and not entry.verify:
            entry.calls += 1
            if entry.calls < entry.next_check:
                return entry.step(batch)
            entry.verify = (
                True  # NOTE: two recordings can agree by chance: record again and compare, ever rarer
            )
            entry.next_check *= CHECK_GROWTH
        if not self.enabled or entry.eager is not None:
            return self.eager(batch)
        loss, rec = self._record(batch)
        self._learn(entry, rec)
        return loss

    def eager(self, batch: Mapping[str, Array]) -> Array:
        """The step on the eager engine: ``fn`` then ``backward``; returns the loss."""
        root = self.fn(**self._inputs(batch))
        _check_root(root)
        root.backward()
        return root.data

    def verify(self) -> None:
        """Make the next call of every compiled step record again, and compare with what it compiled."""
        for entry in self.entries.values():
            entry.verify = entry.step is not None

    def _inputs(self, batch: Mapping[str, Array]) -> dict[str, Any]:
        return {n: Tensor(v) if n in self.tracked else v for n, v in batch.items()}

    def _record(self, batch: Mapping[str, Array]) -> tuple[Array, Recording]:
        inputs = self._inputs(batch)
        with recording() as draws:
            root = self.fn(**inputs)
        _check_root(root)
        rec = capture(root, inputs, self.leaves(), draws)
        root.backward()
        return root.data, rec

    def _learn(self, entry: _Entry, rec: Recording) -> None:
        """Compile after two agreeing recordings; on a disagreement, run eagerly and say why once."""
        if entry.verify and entry.step is not None:
            why = difference(entry.step.recording, rec)
            entry.verify = False
            if why is None:
                return
            self._say(f"the step changed since it was compiled ({why}); recording it again")
            entry.step, entry.recordings = None, []
        entry.recordings.append(rec)
        if len(entry.recordings) < 2:
            return
        why = difference(*entry.recordings)
        if why is None and rec.retained:  # a replay makes no tensors for intermediates to keep it in
            why = f"the output of op {rec.retained[0]!r} keeps its gradient (retain_grad)"
        if why is None:
            try:
                entry.step = self._compile(rec)
            except Exception as exc:
                why = f"it could not be compiled: {exc}"
        if why is not None:
            entry.eager = why
            self._say(
                f"this training step runs on the eager engine (the same numbers, more Python work): {why}"
            )
        else:
            leaves = [r.tensor for r in rec.inputs if r.kind == "leaf" and r.tensor is not None]
            entry.guards = [(t, t.requires_grad, t.data.dtype, t.data.shape) for t in leaves]
            entry.calls, entry.next_check = 0, CHECK_FIRST
        entry.recordings = []

    def _compile(self, rec: Recording) -> CompiledStep:
        plan = backward_plan(rec)
        stepped: list[Tensor] = []
        if self.fuse:
            plan, stepped = fuse_sgd(rec, plan, self.fuse, self.lr)
        return CompiledStep(rec, plan, stepped)

    def _say(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            warnings.warn(message, CompileWarning, stacklevel=4)


def _check_root(root: Any) -> None:
    if not isinstance(root, Tensor) or root.size != 1:
        raise GradientError("jit: the step must return a one-element tensor (the loss).")


__all__ = [
    "CompiledStep",
    "Compiler",
    "LearningRate",
    "Recording",
    "batch_rows",
    "capture",
    "difference",
    "random_input",
    "recording",
    "uniform_rows",
]
