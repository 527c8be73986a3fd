"""Trace a training step once, then replay it without rebuilding the graph (level 3).

Define-by-run costs Python work on every step: a :class:`~chainrule.tensor.Tensor`
per op, a node per op, a topological sort per backward. For a step whose graph
is the same every time (an MLP's forward, loss and backward on batches of one
shape), :func:`trace` records the graph once and returns a function that runs
the *same* primitives' forward functions and VJP rules, in the same order, on
plain arrays. The numbers are bit-for-bit those of the eager engine (a test
checks it); only the bookkeeping is gone. The replay is written out once as
straight-line Python, one line per op and per gradient (``step.source``: the
forward pass, then the delta recursion from the loss back to the weights), and
compiled, so a step costs the calls themselves and little else.

What is baked into a trace, and so must not change between calls: the graph's
structure, which parameters require gradients, the shapes and dtypes of ``x``,
``y`` and the parameters, the ops' parameters (a loss's reduction), and every
constant that is not ``x``, ``y`` or a leaf's or watched tensor's current
``data`` (read afresh on every call). Random masks (dropout) are constants, so a
model with active dropout must not be traced; :class:`~chainrule.train.Trainer`
falls back to the eager engine then, and keys its traces by all of the above.

A trace can also take the SGD step ``p := p - lr dC/dp`` for the parameters in
``descend``, inside the backward pass: a rule that can (``linear`` and ``dense``,
for ``W`` and ``b``) adds ``-lr`` times the gradient into the parameter in place,
``W`` in the same GEMM that forms ``delta^T A_prev``, so ``dC/dW`` is never stored
or read back. Such a parameter's ``grad`` is left None. Only a parameter that feeds
exactly one such op, and whose memory no other tensor of the step shares (checked
when tracing), is stepped this way; the others get their ``grad`` as usual. A step
whose loss is not finite returns it before the backward pass, so nothing moves.
"""

from __future__ import annotations

import keyword
import linecache
import math
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.backend import xp_of
from chainrule.errors import ConfigError, GradientError
from chainrule.tensor import Array, Tensor, _miscount, _owner, _toposort, _unbroadcast, fresh

_SLOT, _X, _Y, _CONST, _LEAF = 0, 1, 2, 3, 4


def _operand(kind: int, value: Any, x: Array, y: Array) -> Any:
    """An op's input that is not a recorded value: the batch, or a constant, or a watched tensor."""
    if kind == _Y:
        return y
    if kind == _X:
        return x
    return value.data if kind == _LEAF else value


class TracedStep:
    """``step(x, y, lr=None) -> C``: replays a recorded forward and backward; sets each ``grad``.

    Built by :func:`trace`. Calling it replaces (does not add to) the ``grad``
    of every parameter that the loss depends on, like ``zero_grad`` + ``backward``;
    the parameters in ``descended`` instead take the step ``p -= lr dC/dp`` in place
    (``lr`` is then required) and keep ``grad = None``. ``source`` is the replay's
    Python code: ``v<i>`` the recorded values, ``g<i>`` their gradients,
    ``F<i>``/``V<i>`` each op's forward and rule, ``SEED`` the ones of ``dC/dC``
    (copied per call), ``d = -lr``.
    """

    def __init__(
        self,
        fn: Callable[[Tensor, Array], Tensor],
        params: Sequence[Tensor],
        x: Array,
        y: Array,
        watch: Sequence[Tensor] = (),
        descend: Sequence[Tensor] = (),
    ) -> None:
        x_t = Tensor(x, requires_grad=True)  # track everything derived from x, then drop its gradient
        root = fn(x_t, y)
        if not root.requires_grad or root.size != 1:
            raise GradientError(
                "trace: the step must return a one-element tensor that depends on the parameters."
            )
        order = _toposort(root)
        slot = {id(t): i for i, t in enumerate(order)}
        wanted = {id(p) for p in params}
        self.n = len(order)
        self.root = slot[id(root)]
        self._seed = xp_of(root.data).ones_like(root.data)  # dC/dC, copied afresh on each call
        if id(x_t) not in slot:
            raise ConfigError("trace: the step's loss does not depend on x; nothing to replay per batch.")
        self.x_slot = slot[id(x_t)]
        # every leaf's data is read afresh on each call; only the wanted ones get a gradient
        self.sources = [(i, t) for i, t in enumerate(order) if t._node is None and t is not x_t]
        self.leaves = [(i, t) for i, t in self.sources if id(t) in wanted]
        self.watched = {id(t) for t in watch}
        self.forward: list[tuple[int, Any, list[tuple[int, Any]], dict[str, Any], list[str]]] = []
        self.backward: list[
            tuple[int, str, Any, list[int | None], dict[str, Any], list[tuple[int, ...]], list[str]]
        ] = []
        steppable: dict[int, list[tuple[int, int]]] = {}  # op -> (input, slot) its rule can step
        for i, t in enumerate(order):
            if t._node is None:
                continue
            prim, parents, params_ = t._node
            args = [self._arg(p, slot, x, y) for p in parents]
            y_keys = [k for k, v in params_.items() if v is y]
            frozen = [k for k, v in params_.items() if k not in y_keys and _batch_sized(v, x.shape[0])]
            if frozen:
                raise ConfigError(
                    f"trace: parameter {frozen[0]!r} of {prim.name} is a batch-sized array; "
                    "it would be frozen into the trace."
                )
            self.forward.append((i, prim.forward, args, dict(params_), y_keys))
            targets = [slot[id(p)] if id(p) in slot and p is not x_t else None for p in parents]
            bparams = {**params_, "needs": tuple(s is not None for s in targets)} if prim.masked else params_
            self.backward.append(
                (i, prim.name, prim.vjp, targets, bparams, [p.shape for p in parents], y_keys)
            )
            steppable[i] = [(j, s) for j, s in enumerate(targets) if j in prim.descends and s is not None]
        self.backward.reverse()
        # a parameter feeding one op only, whose rule can step it: stepped there, its dC/dp never kept
        uses = Counter(s for entry in self.backward for s in entry[3] if s is not None)
        able = {s for steps in steppable.values() for _, s in steps}
        chosen = {i for i, t in self.leaves if uses[i] == 1 and i in able and any(t is p for p in descend)}
        constants = [a for *_, args, _, _ in self.forward for kind, a in args if kind == _CONST]
        for i, t in self.leaves:  # its memory seen through another tensor would be read after its step
            others = [u.data for j, u in self.sources if j != i] + constants if i in chosen else []
            if any(xp_of(t.data).may_share_memory(t.data, o) for o in others):
                chosen.discard(i)
        self.descents = {i: {j for j, s in steps if s in chosen} for i, steps in steppable.items()}
        self.descended = [t for i, t in self.leaves if i in chosen]
        self._chosen = chosen
        self.source, self._replay = self._compile()

    def _arg(self, p: Tensor, slot: dict[int, int], x: Array, y: Array) -> tuple[int, Any]:
        if id(p) in slot:
            return _SLOT, slot[id(p)]
        if id(p) in self.watched:  # a frozen parameter: its data may be replaced between calls
            return _LEAF, p
        if p.data is y:
            return _Y, None
        if p.data is x:
            return _X, None
        if p.data.ndim and p.data.shape[0] == x.shape[0]:
            # NOTE: a batch-sized constant (a dropout mask, targets rebuilt from y) would be
            # frozen into the trace; refuse, so the caller runs the eager engine instead.
            raise ConfigError(
                f"trace: a constant of shape {p.shape} the size of the batch feeds the graph; "
                "it would be frozen into the trace (dropout, or targets not given as y)."
            )
        return _CONST, p.data

    def __call__(self, x: Array, y: Array, lr: float | None = None) -> Array:
        if lr is None and self.descended:
            raise ConfigError(f"trace: this step updates {len(self.descended)} parameters in place; pass lr.")
        return self._replay(x, y, lr)

    def _compile(self) -> tuple[str, Callable[[Array, Array, float | None], Array]]:
        """The replay as straight-line Python, one line per op and per gradient, compiled once.

        The same calls in the same order as an interpreted walk over the records (so the
        same numbers), without its per-op list indexing, argument building and loops:
        12-20 us less per step of a 3-layer MLP (``docs/benchmarks.md``). ``step.source``
        shows it: the forward ``v[i] = op(...)``, then the rules backward from the loss's
        seed ``g[root] = 1``.
        """
        env: dict[str, Any] = {"_generic": np.generic, "_asarray": np.asarray}
        env["_isfinite"] = math.isfinite
        env.update(_owner=_owner, _unbroadcast=_unbroadcast, _fresh=fresh, _miscount=_miscount)
        body = [f"v{i} = S{i}.data" for i, _ in self.sources] + [f"v{self.x_slot} = x"]
        env.update({f"S{i}": leaf for i, leaf in self.sources})
        calls: dict[int, list[str]] = {}
        for i, forward, args, params, y_keys in self.forward:
            names = []
            for j, (kind, value) in enumerate(args):
                if kind == _SLOT:
                    names.append(f"v{value}")
                elif kind in (_X, _Y):
                    names.append("x" if kind == _X else "y")
                else:  # a watched tensor's data is read afresh; a constant is baked in
                    env[f"C{i}_{j}"] = value
                    body.append(f"a{i}_{j} = C{i}_{j}" + (".data" if kind == _LEAF else ""))
                    names.append(f"a{i}_{j}")
            calls[i] = names
            env[f"F{i}"] = forward
            call = _arguments(names, f"P{i}", params, y_keys, env)
            body.append(f"v{i} = F{i}({call})  # {_words(getattr(forward, '__name__', 'op'))}")
            body.append(f"if isinstance(v{i}, _generic): v{i} = _asarray(v{i})")
        if self.descended:  # nothing is stepped on a non-finite loss: the caller sees it first
            body += [f"if not _isfinite(v{self.root}.item()): return v{self.root}", "d = -lr"]
        pending = {s for entry in self.backward for s in entry[3] if s is not None} - self._chosen
        body += [f"g{s} = None" for s in sorted((pending | set(calls)) - {self.root})]
        env["SEED"] = self._seed
        keeps = any(i not in self._chosen for i, _ in self.leaves)  # some gradient is stored
        body += [f"g{self.root} = SEED.copy()", *(["owned = {}"] if keeps else [])]
        for i, name, vjp, slots, params, shapes, y_keys in self.backward:
            env[f"V{i}"], call = vjp, _arguments([f"g{i}", f"v{i}", *calls[i]], f"Q{i}", params, y_keys, env)
            stepped = self.descents[i]
            if stepped:  # the rule steps these inputs itself and returns None for them
                steps = ", ".join("d" if j in stepped else "None" for j in range(len(slots)))
                call += f", descend=({steps}{',' if len(slots) == 1 else ''})"
            body.append(f"if g{i} is not None:  # {_words(name)}")
            body += [f"    o = _owner(g{i}); owned[id(o)] = o"] if keeps else []
            body += [f"    r = V{i}({call})", f"    g{i} = None"]
            body.append(f"    if len(r) != {len(slots)}: _miscount({name!r}, r, {len(slots)})")
            for j, s in enumerate(slots):
                # a rule's gradient (not a stepped one), summed back to its input's shape, then added up
                if s is not None and j not in stepped:
                    env[f"H{i}_{j}"] = shapes[j]
                    body += [f"    p = r[{j}]", "    if p is not None:"]
                    body.append(f"        if p.shape != H{i}_{j}: p = _unbroadcast(p, H{i}_{j}, {name!r})")
                    body.append(f"        g{s} = p if g{s} is None else g{s} + p")
        env.update({f"L{i}": leaf for i, leaf in self.leaves})
        body += [
            f"L{i}.grad = None  # stepped in place by its op's rule"
            if i in self._chosen
            else f"L{i}.grad = None if g{i} is None else _fresh(g{i}, owned)"
            for i, _ in self.leaves
        ]
        source = (
            "def replay(x, y, lr):\n"
            + "".join(f"    {line}\n" for line in body)
            + f"    return v{self.root}\n"
        )
        filename = f"<chainrule.trace {id(self):x}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # for tracebacks
        weakref.finalize(self, linecache.cache.pop, filename, None)
        exec(compile(source, filename, "exec"), env)  # our own records' code, never input
        return source, env["replay"]


def _arguments(
    names: list[str], key: str, params: dict[str, Any], y_keys: list[str], env: dict[str, Any]
) -> str:
    """``a, b, **P`` for a call: the op's parameters as a dict in ``env``, each ``y``-valued one as ``y``."""
    fixed = {k: v for k, v in params.items() if k not in y_keys}
    if fixed:
        env[key] = fixed
        names = [*names, f"**{key}"]
    plain = {k: k.isidentifier() and not keyword.iskeyword(k) for k in y_keys}
    return ", ".join(names + [f"{k}=y" if plain[k] else f"**{{{k!r}: y}}" for k in y_keys])


def _words(text: str) -> str:
    """``text`` on one line, for a comment in the generated source."""
    return " ".join(str(text).split())


def _batch_sized(value: Any, m: int) -> bool:
    if isinstance(value, tuple | list):
        return any(_batch_sized(v, m) for v in value)
    shape = getattr(value, "shape", None)
    return shape is not None and len(shape) > 0 and shape[0] == m


def trace(
    fn: Callable[[Tensor, Array], Tensor],
    params: Sequence[Tensor],
    x: Array,
    y: Array,
    watch: Sequence[Tensor] = (),
    descend: Sequence[Tensor] = (),
) -> TracedStep:
    """Record ``fn(x, y) -> C`` once on example inputs; return a replayable :class:`TracedStep`.

    Parameters
    ----------
    fn : callable
        ``fn(x_tensor, y_array) -> one-element Tensor`` (forward + loss).
    params : sequence of Tensor
        The parameters whose gradients the step produces.
    x, y : arrays
        Example batch; later calls must have the same shapes and dtypes.
    watch : sequence of Tensor
        Tensors that need no gradient but whose ``data`` may be replaced between
        calls (frozen parameters): read afresh on every call, not frozen.
    descend : sequence of Tensor
        Parameters to step by plain SGD inside the backward pass where an op's rule can
        (see the module docstring); the step is then called as ``step(x, y, lr)``.
    """
    return TracedStep(fn, params, x, y, watch, descend)


__all__ = ["TracedStep", "trace"]
