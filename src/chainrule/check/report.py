"""The report of ``chainrule check``: findings per quantity, as text, Markdown or JSON (level 7)."""

# ruff: noqa: E741
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.check.mistakes import Mistake
from chainrule.explain.spec import Spec

Key = tuple[str, int]
STATUSES = ("right", "wrong", "consequence", "repeated", "not given")
FORMATS = ("text", "markdown", "json")


def _ix(*index: int) -> str:
    """1-based subscripts: ``12`` for (0, 1), ``10,2`` once an index has two digits."""
    parts = [str(i + 1) for i in index]
    return ("," if any(len(p) > 1 for p in parts) else "").join(parts)


def entry_name(spec: Spec, key: Key, index: tuple[int, ...]) -> str:
    """The notes' name of one number: ``delta_2[1]``, ``dC/dw_12[2]``, ``a_1[1], example 3``."""
    q, l = key
    L = len(spec.layers)
    if q == "loss":
        return "C"
    if q in ("grad_weights", "weights_after", "grad_bias", "bias_after"):
        name = {"grad_weights": "dC/dw", "weights_after": "w", "grad_bias": "dC/db", "bias_after": "b"}[q]
        return f"{name}_{_ix(*index)}[{l}]" + (" after the step" if q.endswith("after") else "")
    e, j = index[0], index[-1]
    names = {
        "z": f"z_{_ix(j)}[{l}]",
        "a": f"a_{_ix(j)}[{l}]",
        "dC_da_L": f"dC/da_{_ix(j)}[{L}]",
        "W_next_T_delta_next": f"(W[{l + 1}]^T delta[{l + 1}])_{_ix(j)}",
        "phi_prime": f"phi'(z_{_ix(j)}[{l}])",
        "delta": f"delta_{_ix(j)}[{l}]",
    }
    name = names[q]
    if q == "phi_prime" and len(index) == 3:
        name = f"da_{_ix(j)}[{l}]/dz_{_ix(index[1])}[{l}]"
    return name + (f", example {e + 1}" if spec.batch else "")


@dataclass
class Finding:
    """What the check found for one quantity.

    ``status`` is ``right``, ``wrong`` (a mistake of its own), ``consequence``
    (a right step on wrong inputs: it follows from ``cause``), ``repeated`` (the
    mistake of ``cause`` made again) or ``not given``. For anything not right,
    ``entry`` names the first number that is off, with ``yours`` and
    ``expected``; ``shape`` is set when the answer's shape is wrong.
    """

    key: Key
    name: str
    status: str
    json_key: str
    entries: int = 0
    wrong_entries: int = 0
    entry: str = ""
    index: tuple[int, ...] | None = None
    yours: float | None = None
    expected: float | None = None
    shape: tuple[int, ...] | None = None
    expected_shape: tuple[int, ...] | None = None
    mistake: Mistake | None = None
    mistake_value: float | None = None
    also: list[str] = field(default_factory=list)
    cause: str = ""
    equation: str = ""

    def __repr__(self) -> str:
        return f"Finding({self.name}: {self.status}{', ' + self.entry if self.entry else ''})"

    def locate(self, spec: Spec, mine: np.ndarray, want: np.ndarray, ok: np.ndarray) -> None:
        """Name the first number that is off (or the shape, if that is what is wrong)."""
        if mine.shape != want.shape:
            self.shape, self.expected_shape = tuple(mine.shape), tuple(want.shape)
            self.entry, self.wrong_entries = self.name, self.entries
            return
        bad = np.argwhere(~ok)
        self.wrong_entries = len(bad)
        self.index = tuple(int(i) for i in bad[0]) if len(bad) else ()
        self.entry = entry_name(spec, self.key, self.index)
        self.yours, self.expected = float(mine[self.index]), float(want[self.index])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"quantity": self.name, "key": self.json_key, "layer": self.key[1]}
        out["status"] = self.status
        if self.status in ("right", "not given"):
            return out
        out.update(entry=self.entry, yours=self.yours, expected=self.expected)
        if self.shape is not None:
            out.update(shape=list(self.shape), expected_shape=list(self.expected_shape or ()))
        out["wrong_entries"] = self.wrong_entries
        if self.mistake is not None:
            out["mistake"] = {"name": self.mistake.name, "title": self.mistake.title}
            out["mistake"].update(equation=self.mistake.equation, wrong=self.mistake.wrong)
        if self.status == "wrong":
            out.update(mistake_value=self.mistake_value, also_matches=self.also, equation=self.equation)
        else:
            out["cause"] = self.cause
        return out


@dataclass
class Report:
    """The findings for one answer, in the order of computation."""

    spec: Spec
    findings: list[Finding]
    digits: int
    spec_name: str = "spec"
    answer_name: str = "answer"
    check: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        first = self.first
        return f"Report(ok={self.ok}, first={first.entry if first else None!r}, digits={self.digits})"

    @property
    def ok(self) -> bool:
        """True if every quantity given is right."""
        return all(f.status in ("right", "not given") for f in self.findings)

    @property
    def first(self) -> Finding | None:
        """The first wrong quantity (the first mistake), if any."""
        return next((f for f in self.findings if f.status == "wrong"), None)

    def counts(self) -> dict[str, int]:
        return {s: sum(f.status == s for f in self.findings) for s in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        first = self.first
        return {
            "spec": self.spec_name,
            "answer": self.answer_name,
            "digits": self.digits,
            "ok": self.ok,
            "counts": self.counts(),
            "first_mistake": None if first is None else first.to_dict(),
            "quantities": [f.to_dict() for f in self.findings],
        }

    def render(self, fmt: str = "text") -> str:
        """The report as ``text``, ``markdown`` or ``json``."""
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2) + "\n"
        if fmt not in FORMATS:
            from chainrule.errors import ConfigError

            raise ConfigError(f"check: unknown format {fmt!r}; expected one of {list(FORMATS)}.")
        md = fmt == "markdown"
        title = f"Check of {self.answer_name} against {self.spec_name} ({self.digits} significant digits)"
        lines = [f"### {title}" if md else title, "" if md else "=" * len(title)]
        lines += [*_verdict(self, md), "", *_table(self, md)]
        return "\n".join(lines).rstrip() + "\n"


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def _mistake_lines(f: Finding, md: bool) -> list[str]:
    c = "`" if md else ""
    where = f"{c}{f.entry}{c}"
    if f.shape is not None:
        head = f"{where}: your shape is {f.shape}, expected {f.expected_shape}."
    else:
        head = f"{where}: yours {_g(f.yours)}, chainrule's {_g(f.expected)}"
        head += f" ({f.wrong_entries} of {f.entries} numbers of {c}{f.name}{c} are off)."
    out = [head]
    if f.mistake is not None:
        then = "" if f.mistake_value is None else f"; with it, {where} = {_g(f.mistake_value)}"
        out.append(f"Mistake: {f.mistake.title}: {f.mistake.wrong}{then}.")
        out.append(f"The notes' equation it breaks: {c}{f.mistake.equation}{c}")
        if f.also:
            out.append(f"(The numbers also fit: {', '.join(f.also)}.)")
    else:
        out.append(f"Not one of the known mistakes. The notes' equation: {c}{f.equation}{c}")
    return out


def _verdict(report: Report, md: bool) -> list[str]:
    n = report.counts()
    given = len(report.findings) - n["not given"]
    if report.ok:
        return [f"All {given} quantities given are right."]
    wrong = [f for f in report.findings if f.status == "wrong"]
    out = [f"First mistake, in {wrong[0].name}:"]
    out += [("- " if md else "  ") + line for line in _mistake_lines(wrong[0], md)]
    follow = [f for f in report.findings if f.status in ("consequence", "repeated")]
    if follow:
        out += ["", "Consequences (they follow from a mistake above; not new mistakes):"]
        for f in follow:
            why = (
                f"the same mistake as {f.cause}" if f.status == "repeated" else f"follows from your {f.cause}"
            )
            out.append(f"{'- ' if md else '  '}{f.name}: {f.entry} = {_g(f.yours)}: {why}")
    if len(wrong) > 1:
        out += ["", "Further mistakes:"]
        for f in wrong[1:]:
            out += [("- " if md else "  ") + line for line in _mistake_lines(f, md)]
    return out


def _table(report: Report, md: bool) -> list[str]:
    n = report.counts()
    rows = [f for f in report.findings if f.status != "not given"]
    out = (
        ["| quantity | status | first number off | yours | chainrule |", "|---|---|---|---|---|"]
        if md
        else []
    )
    width = max((len(f.name) for f in rows), default=8)
    for f in rows:
        off = "" if f.status == "right" else f.entry
        if md:
            numbers = f"{_g(f.yours)} | {_g(f.expected)}" if off else " | "
            out.append(f"| `{f.name}` | {f.status} | {off} | {numbers} |")
        else:
            out.append(f"  {f.name:<{width}}  {f.status:<11}  {off}".rstrip())
    missing = [f.name for f in report.findings if f.status == "not given"]
    summary = (
        f"{len(rows)} quantities checked: {n['right']} right, {n['wrong']} wrong, "
        f"{n['consequence'] + n['repeated']} consequences."
    )
    out += ["", summary]
    if missing:
        out.append(f"Not given: {', '.join(missing)}.")
    return out


__all__ = ["FORMATS", "Finding", "Report", "entry_name"]
