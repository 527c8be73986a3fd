"""Check a hand-worked answer quantity by quantity, and name its mistakes (level 7).

An answer is a JSON object in the layout of ``explain --format json``: ``loss``,
``dC_da_L`` and ``layers``, one object per layer with any of ``z``, ``a``,
``phi_prime`` (``softmax_jacobian``), ``W_next_T_delta_next``, ``delta``,
``grad_weights``, ``grad_bias``, ``weights_after``, ``bias_after``. Any subset
will do, and ``null`` marks a number not filled in. The other keys of
``explain``'s output are accepted; ``sizes``, ``examples`` and ``weights``, if
given, must be the spec's (an answer to another exercise is a bad file).

Each quantity is compared, in the order of computation (:func:`chainrule.check.steps.order`),
with ``explain``'s float64 value, to ``digits`` significant digits: right when
every entry is within one unit of the ``digits``-th significant digit. A value
computed correctly from the learner's own rounded inputs is right too. The
first wrong quantity is diagnosed by recomputing it with each known mistake
(:data:`chainrule.check.mistakes.MISTAKES`) from the learner's own earlier
numbers; later quantities that follow from a wrong one (correct steps on wrong
inputs) are consequences, the same mistake made again is a repeat, and only
what is left is a further mistake.
"""

# ruff: noqa: E741
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from chainrule.check import steps as st
from chainrule.check.mistakes import DELTA_OUT, EQUATIONS, MISTAKES, Mistake
from chainrule.check.report import Finding, Report
from chainrule.errors import ConfigError
from chainrule.explain import explain
from chainrule.explain.spec import Spec, read_json

Array = np.ndarray
Key = st.Key

TOP_CHECKED = ("loss", "dC_da_L")
TOP_OTHER = (
    "layers",
    "sizes",
    "examples",
    "input",
    "target",
    "loss_name",
    "fused",
    "learning_rate",
    "update_bias",
    "weight_chains",
    "losses",
    "check",
    "title",
)
LAYER_CHECKED = (
    "z",
    "a",
    "phi_prime",
    "softmax_jacobian",
    "W_next_T_delta_next",
    "delta",
    "grad_weights",
    "grad_bias",
    "weights_after",
    "bias_after",
)
LAYER_OTHER = ("layer", "activation", "weights", "bias")


# ------------------------------------------------------------------ reading
def _leaves_are_numbers(value: Any) -> bool:
    if isinstance(value, list):
        return all(_leaves_are_numbers(v) for v in value)
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _numbers(value: Any, who: str) -> Array | None:
    """A float array (``nan`` where the answer has ``null``), or None for nothing given."""
    if value is None:
        return None
    if not _leaves_are_numbers(value):
        raise ConfigError(f"{who}: expected numbers (or null) in a rectangular list, got {value!r}.")
    try:
        arr = np.array(value, dtype=np.float64)
    except ValueError:
        raise ConfigError(f"{who}: the rows have different lengths; expected a rectangular list.") from None
    return None if arr.size and np.isnan(arr).all() else arr


def _fit(spec: Spec, key: Key, arr: Array) -> Array:
    """The answer's array in the internal shape (examples as rows), or as it came if it does not fit."""
    want = st.shape_of(spec, key)
    if arr.shape == want:
        return arr
    one = not spec.batch and key[0] in st.PER_EXAMPLE
    if (one and arr.shape == want[1:]) or (arr.size == 1 and int(np.prod(want)) == 1):
        return arr.reshape(want)
    return arr


def read(source: str | os.PathLike[str] | Mapping[str, Any], spec: Spec, digits: int = 3) -> dict[Key, Array]:
    """The answer's numbers by key, validated against ``spec``.

    Raises
    ------
    ConfigError
        An unreadable file, invalid JSON, an unknown key, a value that is not
        numbers, the wrong number of layers, or sizes and weights of another spec.
    """
    if not isinstance(source, Mapping | str | os.PathLike):
        raise ConfigError(f"answer: expected a JSON object (a dict) or a path, got {type(source).__name__}.")
    name = "answer" if isinstance(source, Mapping) else os.fspath(source)
    data = dict(source) if isinstance(source, Mapping) else read_json(name, name)
    unknown = sorted(set(data) - set(TOP_CHECKED) - set(TOP_OTHER))
    if unknown:
        raise ConfigError(
            f"{name}: unknown key {unknown[0]!r}; an answer has {list(TOP_CHECKED)} and 'layers' "
            "(the layout of explain --format json)."
        )
    _same_spec(name, data, spec, digits)
    out: dict[Key, Array] = {}
    for q in TOP_CHECKED:
        arr = _numbers(data.get(q), f"{name}: {q}")
        if arr is not None:
            out[(q, 0)] = _fit(spec, (q, 0), arr)
            if q == "loss" and out[(q, 0)].shape != ():
                raise ConfigError(f"{name}: loss must be one number (C), got shape {arr.shape}.")
    layers = data.get("layers", [])
    L = len(spec.layers)
    if not isinstance(layers, list) or len(layers) != L:
        got = f"{len(layers)} entries" if isinstance(layers, list) else type(layers).__name__
        raise ConfigError(f"{name}: 'layers' must be a list of {L} objects (one per layer), got {got}.")
    for i, entry in enumerate(layers):
        out.update(_layer(name, spec, i, entry, digits))
    if not out:
        raise ConfigError(
            f"{name}: the answer gives no numbers to check (every quantity is missing or null)."
        )
    return out


def _layer(name: str, spec: Spec, i: int, entry: Any, digits: int) -> dict[Key, Array]:
    l = i + 1
    who = f"{name}: layers[{i}] (layer {l})"
    if entry is None:
        return {}
    if not isinstance(entry, dict):
        raise ConfigError(f"{who}: expected an object with z, a, delta, ..., got {entry!r}.")
    unknown = sorted(set(entry) - set(LAYER_CHECKED) - set(LAYER_OTHER))
    if unknown:
        raise ConfigError(f"{who}: unknown key {unknown[0]!r}; expected some of {list(LAYER_CHECKED)}.")
    W = _numbers(entry.get("weights"), f"{who}: weights")
    if W is not None and (W.shape != spec.layers[i].W.shape or not _close(W, spec.layers[i].W, digits).all()):
        raise ConfigError(f"{who}: weights are not the spec's W[{l}]; is this the answer to another spec?")
    softmax = spec.layers[i].activation == "softmax"
    out: dict[Key, Array] = {}
    for q in LAYER_CHECKED:
        if q not in entry:
            continue
        if q in ("phi_prime", "softmax_jacobian") and (q == "softmax_jacobian") != softmax:
            right = "softmax_jacobian" if softmax else "phi_prime"
            raise ConfigError(
                f"{who}: a {spec.layers[i].activation} layer's phi' goes under {right!r}, not {q!r}."
            )
        if q == "W_next_T_delta_next" and l == len(spec.layers):
            raise ConfigError(
                f"{who}: the output layer has no W_next_T_delta_next (there is no layer {l + 1})."
            )
        if q in ("grad_bias", "bias_after") and spec.layers[i].b is None:
            raise ConfigError(f"{who}: layer {l} has no bias, so no {q}.")
        key: Key = ("phi_prime" if q == "softmax_jacobian" else q, l)
        arr = _numbers(entry[q], f"{who}: {q}")
        if arr is not None:
            out[key] = _fit(spec, key, arr)
    return out


def _same_spec(name: str, data: dict[str, Any], spec: Spec, digits: int) -> None:
    if "sizes" in data and data["sizes"] != spec.sizes:
        raise ConfigError(
            f"{name}: its sizes {data['sizes']} are not the spec's {spec.sizes}; "
            "is this the answer to another spec?"
        )
    if "examples" in data and data["examples"] != spec.x.shape[0]:
        raise ConfigError(f"{name}: it has {data['examples']} examples, the spec {spec.x.shape[0]}.")


# -------------------------------------------------------------- comparing
def _close(yours: Array, ref: Array | None, digits: int) -> Array:
    """Entrywise: within one unit of the ``digits``-th significant digit of ``ref`` (``nan`` in yours: True).

    Entries of ``ref`` much smaller than its largest are compared at ``10^-digits``
    of that largest, so a 0 written for ``1e-17`` is right.
    """
    if ref is None or ref.shape != yours.shape:
        return np.zeros(yours.shape, dtype=bool)
    with np.errstate(all="ignore"):
        finite = np.abs(ref[np.isfinite(ref)])
        floor = max(float(finite.max()) * 10.0**-digits if finite.size else 0.0, 1e-12)
        mag = np.maximum(np.abs(ref), floor)
        unit = 10.0 ** (np.floor(np.log10(mag)) - digits + 1)
        ok = np.abs(yours - ref) <= unit * (1 + 1e-9)
    return np.asarray(ok | np.isnan(yours))


def _ancestors(spec: Spec) -> dict[Key, set[Key]]:
    """The quantities each one is computed from, directly or not."""
    L = len(spec.layers)
    direct: dict[Key, list[Key]] = {("loss", 0): [("a", L), ("z", L)], ("dC_da_L", 0): [("a", L)]}
    for l in range(1, L + 1):
        top = [("dC_da_L", 0), ("z", L)] if l == L else [("W_next_T_delta_next", l)]
        direct |= {
            ("z", l): [("a", l - 1)] if l > 1 else [],
            ("a", l): [("z", l)],
            ("W_next_T_delta_next", l): [("delta", l + 1), ("a", l)],
            ("phi_prime", l): [("z", l), ("a", l)],
            ("delta", l): [*top, ("phi_prime", l)],
            ("grad_weights", l): [("delta", l), ("a", l - 1), ("a", l)],
            ("grad_bias", l): [("delta", l)],
            ("weights_after", l): [("grad_weights", l)],
            ("bias_after", l): [("grad_bias", l)],
        }
    out: dict[Key, set[Key]] = {}
    for key in st.order(spec):
        out[key] = set()
        for parent in direct.get(key, []):
            out[key] |= {parent} | out.get(parent, set())
    return out


class _Checker:
    """The reference, the follow-through values and every mistake's numbers for one answer."""

    def __init__(self, spec: Spec, answer: dict[Key, Array], expected: dict[Key, Array], digits: int) -> None:
        self.spec, self.answer, self.expected, self.digits = spec, answer, expected, digits
        self.follow = st.compute(spec, st.CORRECT, answer)
        self.variants = {
            m.name: (st.compute(spec, m.steps(), answer), st.compute(spec, m.steps())) for m in MISTAKES
        }
        self.keys = st.order(spec)
        self.ancestors = _ancestors(spec)

    def close(self, key: Key, ref: Array | None) -> Array:
        return _close(self.answer[key], ref, self.digits)

    def explained(self, key: Key, mistake: Mistake) -> Array | None:
        """The mistake's value of ``key`` if it is the answer's (from the learner's inputs, or its own)."""
        for values in self.variants[mistake.name]:
            ref = values.get(key)
            if ref is not None and (self.close(key, ref) | self.close(key, self.expected[key])).all():
                return ref
        return None

    def fits(self, mistake: Mistake) -> int:
        """How many of the answer's quantities the mistake, made at every step it touches, gives."""
        runs = self.variants[mistake.name]
        return sum(any(self.close(k, run.get(k)).all() for run in runs) for k in self.answer)

    def diagnose(self, key: Key) -> tuple[Mistake | None, Array | None, list[str]]:
        """The known mistake that best gives the answer's ``key``, its value, other candidates."""
        found = []
        for rank, mistake in enumerate(MISTAKES):
            ref = self.explained(key, mistake)
            if ref is None or (
                ref.shape == self.expected[key].shape and _close(ref, self.expected[key], 15).all()
            ):
                continue
            found.append((-self.fits(mistake), rank, mistake, ref))
        if not found:
            return None, None, []
        found.sort(key=lambda f: (f[0], f[1]))
        return found[0][2], found[0][3], [f[2].name for f in found[1:]]

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        bad: dict[Key, Finding] = {}  # wrong, repeated or consequence
        for key in self.keys:
            finding = Finding(key, st.symbol(self.spec, key), "not given", st.json_key(self.spec, key))
            if key in self.answer:
                self._judge(key, finding, bad)
            if finding.status not in ("right", "not given"):
                bad[key] = finding
            out.append(finding)
        return out

    def _judge(self, key: Key, f: Finding, bad: dict[Key, Finding]) -> None:
        mine, want = self.answer[key], self.expected[key]
        f.entries = int(np.sum(~np.isnan(mine)))
        upstream = [k for k in self.keys if k in self.ancestors[key] and k in bad]
        ok = self.close(key, want)
        if not upstream:
            ok |= self.close(key, self.follow.get(key))
        f.equation = self._equation(key)
        if mine.shape == want.shape and ok.all():
            f.status = "right"
            return
        f.locate(self.spec, mine, want, ok)
        if upstream and (ok | self.close(key, self.follow.get(key))).all():
            cause = bad[upstream[-1]]
            f.status, f.cause = "consequence", cause.entry or cause.name
            f.mistake = cause.mistake
            return
        for earlier in bad.values():
            if earlier.mistake is not None and self.explained(key, earlier.mistake) is not None:
                f.status, f.mistake, f.cause = "repeated", earlier.mistake, earlier.entry
                return
        f.status = "wrong"
        f.mistake, ref, f.also = self.diagnose(key)
        if ref is not None and f.index is not None and ref.shape == mine.shape:
            f.mistake_value = float(ref[f.index])

    def _equation(self, key: Key) -> str:
        q, l = key
        if q == "delta" and l == len(self.spec.layers):
            return DELTA_OUT
        return EQUATIONS[q]


def check(
    spec: str | os.PathLike[str] | Mapping[str, Any],
    answer: str | os.PathLike[str] | Mapping[str, Any],
    digits: int = 3,
) -> Report:
    """Check ``answer`` against what ``explain`` computes for ``spec``; see :func:`chainrule.check.answer`."""
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 15:
        raise ConfigError(f"check: digits must be an integer from 1 to 15, got {digits!r}.")
    expl = explain(dict(spec) if isinstance(spec, Mapping) else spec)
    expected = st.from_explanation(expl.layers, expl.loss, expl.dCda)
    given = read(answer, expl.spec, digits)
    checker = _Checker(expl.spec, given, expected, digits)
    names = [
        what if isinstance(s, Mapping) else os.fspath(s) for s, what in ((spec, "spec"), (answer, "answer"))
    ]
    return Report(expl.spec, checker.findings(), digits, names[0], names[1], expl.check)


__all__ = ["check", "read"]
