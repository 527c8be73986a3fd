"""Check a learner's own backward function against the autodiff engine (level 7).

A learner writes the backward pass of one piece in plain NumPy; this runs it
on random inputs (one example and a batch of ``m``) and on edge values, and
compares every output with what chainrule's engine gives for the same inputs:

- ``layer="dense"``: ``fn(delta, A_prev, W) -> (dC/dA_prev, dC/dW, dC/db)``,
  with ``delta = dC/dZ`` of ``Z = A_prev W^T + b``;
- ``layer="dense:sigmoid"`` (any activation) or a ``Dense`` layer:
  ``fn(dA, A_prev, W, b) -> (dC/dA_prev, dC/dW, dC/db)``, with ``dA = dC/dA`` of
  ``A = phi(A_prev W^T + b)``;
- an activation, ``layer="sigmoid"``: ``fn(dA, Z) -> dC/dZ`` (or ``fn(dA, Z, A)``);
- a loss, ``layer="half_sse"``: ``fn(A, Y) -> dC/dA`` of the batch mean ``C``
  (for a loss on logits, ``fn(Z, Y) -> dC/dZ``).

Shapes are the library's, examples as rows: ``A_prev (m, n[l-1])``, ``W (n[l],
n[l-1])``, ``b (n[l],)``, ``Z, A, delta (m, n[l])``. ``delta`` and ``dA`` already
carry the loss's ``1/m``, so ``dC/dW = delta^T A_prev`` sums over the examples.

The first output that is off is diagnosed with the known mistakes of
:data:`chainrule.check.mistakes.MISTAKES`, recomputed on the same inputs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.autograd import enable_grad
from chainrule.check.mistakes import MISTAKES, Mistake
from chainrule.check.steps import At, Rule
from chainrule.errors import ConfigError
from chainrule.explain import handwork as hw
from chainrule.functional import ACTIVATIONS, get_activation, linear
from chainrule.layers import Dense
from chainrule.losses import LOSSES, get_loss
from chainrule.tensor import Tensor

Array = np.ndarray
DENSE_OUT = ("dC/dA_prev", "dC/dW", "dC/db")


@dataclass
class Piece:
    """What is being checked: ``kind`` (dense, activation, loss), its activation or loss, and sizes."""

    kind: str
    name: str  # activation (dense, activation) or loss
    n_in: int = 3
    n_out: int = 3

    def outputs(self) -> tuple[str, ...]:
        return DENSE_OUT if self.kind == "dense" else ("dC/dZ",) if self.kind == "activation" else ("dC/dA",)


@dataclass
class Case:
    """One set of inputs: its name and the arrays the learner's function gets."""

    name: str
    inputs: dict[str, Array]


@dataclass
class BackwardReport:
    """The result of :func:`backward`: ``ok``, the cases run, and the first failure in detail."""

    piece: str
    signature: str
    cases: list[str] = field(default_factory=list)
    case: str = ""
    output: str = ""
    error: str = ""
    shape: tuple[int, ...] | None = None
    expected_shape: tuple[int, ...] | None = None
    index: tuple[int, ...] | None = None
    yours: float | None = None
    expected: float | None = None
    mistake: Mistake | None = None
    also: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"BackwardReport({self.piece}, ok={self.ok}, output={self.output!r}, case={self.case!r})"

    @property
    def ok(self) -> bool:
        """True if every output was right on every case."""
        return not (self.output or self.error)

    def __str__(self) -> str:
        head = f"backward check of {self.piece}: {self.signature}"
        if self.ok:
            return f"{head}\nAll outputs right on {len(self.cases)} cases: {'; '.join(self.cases)}."
        lines = [head, f"Case {self.case!r}:"]
        if self.error:
            lines.append(f"  {self.error}")
        elif self.shape is not None:
            lines.append(f"  {self.output} has shape {self.shape}, expected {self.expected_shape}.")
        else:
            lines.append(
                f"  {self.output}{list(self.index or ())} is {self.yours:.6g}, "
                f"the engine gives {self.expected:.6g}."
            )
        if self.mistake is not None:
            lines.append(f"  Mistake: {self.mistake.title}: {self.mistake.wrong}.")
            lines.append(f"  The notes' equation it breaks: {self.mistake.equation}")
            if self.also:
                lines.append(f"  (Also fits: {', '.join(self.also)}.)")
        elif not self.error:
            lines.append("  Not one of the known mistakes.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"piece": self.piece, "ok": self.ok, "cases": self.cases}
        if not self.ok:
            out.update(case=self.case, output=self.output, error=self.error, index=self.index)
            out.update(yours=self.yours, expected=self.expected, also_matches=self.also)
            out["shape"] = None if self.shape is None else [list(self.shape), list(self.expected_shape or ())]
            out["mistake"] = None if self.mistake is None else self.mistake.name
        return out


def _piece(layer: Any) -> Piece:
    if isinstance(layer, Dense):
        return Piece("dense", layer.activation, layer.in_features, layer.out_features)
    if not isinstance(layer, str):
        raise ConfigError(f"check.backward: layer must be a name or a Dense layer, got {layer!r}.")
    if layer == "dense":
        return Piece("dense", "")
    if layer.startswith("dense:") and layer[6:] in ACTIVATIONS:
        return Piece("dense", layer[6:])
    if layer in ACTIVATIONS:
        return Piece("activation", layer)
    if layer in LOSSES:
        return Piece("loss", layer)
    raise ConfigError(
        f"check.backward: unknown layer {layer!r}; expected 'dense', 'dense:ACTIVATION', an activation "
        f"({sorted(ACTIVATIONS)}) or a loss ({sorted(LOSSES)})."
    )


def _signature(p: Piece) -> str:
    if p.kind == "dense":
        args = "delta, A_prev, W" if not p.name else "dA, A_prev, W, b"
        return f"fn({args}) -> (dC/dA_prev, dC/dW, dC/db)"
    if p.kind == "activation":
        return "fn(dA, Z) or fn(dA, Z, A) -> dC/dZ"
    logits = get_loss(p.name).from_logits
    return "fn(Z, Y) -> dC/dZ" if logits else "fn(A, Y) -> dC/dA"


# ------------------------------------------------------------------- cases
def _targets(p: Piece, rng: np.random.Generator, m: int, k: int) -> Array:
    if "binary" in p.name:
        return rng.integers(0, 2, (m, k)).astype(np.float64)
    if "cross_entropy" in p.name:
        return np.eye(k)[rng.integers(0, k, m)]
    return rng.normal(size=(m, k))


def cases(p: Piece, m: int, seed: int) -> list[Case]:
    """Random inputs for one example and for ``m``, then the edge values of the piece."""
    rng = np.random.default_rng(seed)
    out: list[Case] = []
    if p.kind == "dense":
        for rows, (n_in, n_out) in (
            (1, (p.n_in, p.n_out)),
            (m, (p.n_in, p.n_out)),
            (m, (p.n_in + 1, p.n_out)),
        ):
            A = rng.normal(size=(rows, n_in))
            W, b = rng.normal(size=(n_out, n_in)), rng.normal(size=n_out)
            up = rng.normal(size=(rows, n_out)) / rows
            out.append(
                Case(f"random, m = {rows}, W of shape {W.shape}", {"up": up, "A_prev": A, "W": W, "b": b})
            )
        W = rng.normal(size=(p.n_out, p.n_in))
        zeros = {
            "up": rng.normal(size=(m, p.n_out)),
            "A_prev": np.zeros((m, p.n_in)),
            "W": W,
            "b": np.zeros(p.n_out),
        }
        out.append(Case("zeros: A_prev = 0 and b = 0, so z = 0 (the kink of relu)", zeros))
        if p.name in ("sigmoid", "tanh", "softmax"):
            sat = {
                **zeros,
                "A_prev": rng.normal(size=(m, p.n_in)),
                "b": np.where(rng.random(p.n_out) < 0.5, -30.0, 30.0),
            }
            out.append(Case("saturated units: b = +-30", sat))
        return out
    k = 4
    if p.kind == "activation":
        for rows in (1, m):
            out.append(
                Case(
                    f"random, m = {rows}", {"up": rng.normal(size=(rows, k)), "Z": rng.normal(size=(rows, k))}
                )
            )
        out.append(
            Case("zeros: z = 0 (the kink of relu)", {"up": rng.normal(size=(m, k)), "Z": np.zeros((m, k))})
        )
        big = rng.choice([-1.0, 1.0], (m, k)) * rng.uniform(20, 40, (m, k))
        out.append(Case("saturated units: |z| from 20 to 40", {"up": rng.normal(size=(m, k)), "Z": big}))
        out.append(Case("large z: |z| = 800", {"up": rng.normal(size=(m, k)), "Z": 800 * np.sign(big)}))
        return out
    logits = get_loss(p.name).from_logits
    for rows in (1, m):
        Z = rng.normal(size=(rows, k))
        A = Z if logits else np.asarray(hw.phi_of("softmax" if p.name == "cross_entropy" else "sigmoid").f(Z))
        out.append(Case(f"random, m = {rows}", {"A": A, "Y": _targets(p, rng, rows, k)}))
    return out


# -------------------------------------------------------------- the engine
def engine(p: Piece, c: Case) -> list[Array]:
    """The outputs chainrule's autodiff engine gives for the case (float64)."""
    x = c.inputs
    with enable_grad():
        if p.kind == "dense":
            A, W, b = (Tensor(x[k].copy(), requires_grad=True) for k in ("A_prev", "W", "b"))
            Z = linear(A, W, b)
            out = get_activation(p.name)(Z) if p.name else Z
            (out * Tensor(x["up"])).sum().backward()
            return [np.asarray(t.grad, dtype=np.float64) for t in (A, W, b)]
        if p.kind == "activation":
            Z = Tensor(x["Z"].copy(), requires_grad=True)
            (get_activation(p.name)(Z) * Tensor(x["up"])).sum().backward()
            return [np.asarray(Z.grad, dtype=np.float64)]
        A = Tensor(x["A"].copy(), requires_grad=True)
        get_loss(p.name)(A, x["Y"]).backward()
        return [np.asarray(A.grad, dtype=np.float64)]


def by_rules(p: Piece, c: Case, rules: dict[str, Rule]) -> list[Array]:
    """The outputs the steps of the notes give with ``rules`` (a mistake's, or the correct ones)."""
    x = c.inputs
    if p.kind == "loss":
        A = x["A"]
        s = At(1, "identity", A.shape[0], p.name, None, 0.0, True, a=A, y=x["Y"])
        return [np.asarray(rules["dC_da_L"](s))]
    act = p.name or "identity"
    if p.kind == "activation":
        Z = x["Z"]
        s = At(1, act, Z.shape[0], "", None, 0.0, True, z=Z, a=np.asarray(hw.phi_of(act).f(Z)))
        return [np.asarray(rules["delta"](s.but(g=x["up"], dphi=rules["phi_prime"](s))))]
    A_prev, W, b = x["A_prev"], x["W"], x["b"]
    Z = A_prev @ W.T + b
    s = At(1, act, Z.shape[0], "", None, 0.0, True, W=W, b=b, a_prev=A_prev, z=Z, a=hw.phi_of(act).f(Z))
    delta = x["up"] if not p.name else rules["delta"](s.but(g=x["up"], dphi=rules["phi_prime"](s)))
    s = s.but(delta=delta)
    back = rules["W_next_T_delta_next"](s.but(delta_next=delta, W_next=W, a=A_prev))
    return [np.asarray(v) for v in (back, rules["grad_weights"](s), rules["grad_bias"](s))]


# --------------------------------------------------------------- comparing
def _close(yours: Array, ref: Array, rtol: float) -> Array:
    with np.errstate(all="ignore"):
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        return np.asarray(np.abs(yours - ref) <= rtol * scale + 1e-12)


def _call(fn: Callable[..., Any], p: Piece, c: Case) -> list[Array]:
    x = c.inputs
    if p.kind == "dense":
        args = [x["up"], x["A_prev"], x["W"]] + ([x["b"]] if p.name else [])
    elif p.kind == "activation":
        takes_a = len(inspect.signature(fn).parameters) >= 3
        args = [x["up"], x["Z"]] + ([np.asarray(hw.phi_of(p.name).f(x["Z"]))] if takes_a else [])
    else:
        args = [x["A"], x["Y"]]
    result = fn(*[a.copy() for a in args])
    n = len(p.outputs())
    if n > 1 and (not isinstance(result, tuple | list) or len(result) != n):
        raise TypeError(f"expected a tuple {p.outputs()}, got {type(result).__name__}")
    return [np.asarray(r, dtype=np.float64) for r in (result if n > 1 else [result])]


def _fits(yours: list[Array], ref: list[Array], rtol: float) -> int:
    """How many outputs match (same shape, every number close); none if ``ref`` is empty."""
    return sum(
        y.shape == r.shape and bool(_close(y, r, rtol).all()) for y, r in zip(yours, ref, strict=False)
    )


def _made(p: Piece, c: Case, mistake: Mistake) -> list[Array] | None:
    """The outputs with ``mistake`` made, or None where it cannot be made (W for W^T, non-square)."""
    with np.errstate(all="ignore"):
        try:
            return by_rules(p, c, mistake.steps())
        except (ValueError, IndexError):
            return None


def backward(
    fn: Callable[..., Any], layer: Any = "dense", m: int = 4, seed: int = 0, rtol: float = 1e-6
) -> BackwardReport:
    """Run a learner's backward function against the engine; name the first wrong output and the mistake.

    Parameters
    ----------
    fn : callable
        The learner's function, plain NumPy in and out (signatures in the module docstring).
    layer : str or Dense
        ``"dense"``, ``"dense:ACTIVATION"``, a ``Dense`` layer, an activation or a loss name.
    m : int
        The batch size of the second random case (the first has one example).
    seed : int
        Seeds the random inputs.
    rtol : float
        An output is right when every number is within ``rtol`` times the largest
        of the engine's numbers (plus 1e-12).

    Returns
    -------
    BackwardReport

    Raises
    ------
    ConfigError
        If ``fn`` is not callable, ``layer`` is unknown, or ``m`` < 2.
    """
    if not callable(fn):
        raise ConfigError(f"check.backward: fn must be a function, got {type(fn).__name__}.")
    if isinstance(m, bool) or not isinstance(m, int) or m < 2:
        raise ConfigError(f"check.backward: m must be an integer >= 2 (the batch case), got {m!r}.")
    p = _piece(layer)
    label = (
        f"{p.kind} {p.name}".strip()
        if p.kind != "dense"
        else f"dense layer{' + ' + p.name if p.name else ''}"
    )
    report = BackwardReport(label, _signature(p))
    runs: list[tuple[Case, list[Array]]] = []  # the learner's outputs, as evidence for the diagnosis
    failed: tuple[Case, str, Array, Array] | None = None
    for c in cases(p, m, seed):
        report.cases.append(c.name)
        want = engine(p, c)
        try:
            with np.errstate(all="ignore"):
                got = _call(fn, p, c)
        except Exception as exc:  # the learner's code: report it, do not crash on it
            if failed is None:
                report.case, report.error = c.name, f"your function raised {type(exc).__name__}: {exc}"
                return report
            continue
        runs.append((c, got))
        for name, y, r in zip(p.outputs(), got, want, strict=True):
            if failed is None and not (y.shape == r.shape and bool(_close(y, r, rtol).all())):
                failed = (c, name, y, r)
    if failed is not None:
        _fail(report, p, failed, runs, rtol)
    return report


def _fail(
    report: BackwardReport, p: Piece, failed: tuple[Case, str, Array, Array], runs: list[Any], rtol: float
) -> None:
    """Describe the first wrong output; name the mistake that gives it and fits most outputs of all cases."""
    c, name, y, r = failed
    report.case, report.output = c.name, name
    if y.shape != r.shape:
        report.shape, report.expected_shape = tuple(y.shape), tuple(r.shape)
    else:
        bad = np.argwhere(~_close(y, r, rtol))[0]
        report.index = tuple(int(i) for i in bad)
        report.yours, report.expected = float(y[report.index]), float(r[report.index])
        if not np.isfinite(report.yours):
            report.error = (
                f"{name}{list(report.index)} is {report.yours} (the engine: {report.expected:.6g}): "
                "an overflow? Compute sigmoid and softmax stably (subtract the max before exp; "
                "use the a (1 - a) form)."
            )
    i = p.outputs().index(name)
    found = []
    for rank, mistake in enumerate(MISTAKES):
        theirs = {case.name: _made(p, case, mistake) for case, _ in runs}
        mine = _made(p, c, mistake)
        if mine is not None and mine[i].shape == y.shape and bool(_close(y, mine[i], rtol).all()):
            score = sum(_fits(got, theirs[case.name] or [], rtol) for case, got in runs)
            found.append((-score, rank, mistake))
    found.sort(key=lambda f: (f[0], f[1]))
    if found:
        report.mistake, report.also = found[0][2], [f[2].name for f in found[1:]]


__all__ = ["BackwardReport", "backward", "by_rules", "cases", "engine"]
