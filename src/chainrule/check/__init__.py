"""``chainrule check``: check backprop worked by hand, and a learner's own backward code (level 7).

- :func:`answer` compares a hand-worked answer (the JSON layout of ``explain
  --format json``, any subset of its numbers) with chainrule's values in the
  order of computation, to a number of significant digits suited to hand
  work, names the first wrong number in the notes' notation (``delta_2[1]``)
  and the known mistake that gives it (:data:`MISTAKES`), and marks what
  follows from it as consequences.
- :func:`backward` runs a learner's backward function for a dense layer, an
  activation or a loss against the autodiff engine, on random inputs and on
  edge values, and names the first wrong output and the mistake.
- :func:`run` is the command line ``chainrule check``.

Examples
--------
>>> from chainrule.check import answer
>>> spec = {"layers": [{"weights": [[0.5]], "bias": [0.0], "activation": "sigmoid"}],
...         "input": [1.0], "target": [1.0], "loss": "half_sse", "learning_rate": 0.5}
>>> report = answer(spec, {"layers": [{"a": [0.622], "delta": [-0.378]}]})
>>> report.ok, report.first.entry, report.first.mistake.name
(False, 'delta_1[1]', 'phi_prime_left_out')
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chainrule.check.answer import check, read
from chainrule.check.backward import BackwardReport, backward
from chainrule.check.mistakes import MISTAKES, Mistake, table
from chainrule.check.report import FORMATS, Finding, Report
from chainrule.errors import ChainruleError, ConfigError


def answer(
    spec: str | os.PathLike[str] | Mapping[str, Any],
    answer: str | os.PathLike[str] | Mapping[str, Any],
    digits: int = 3,
) -> Report:
    """Check a hand-worked ``answer`` to the exercise ``spec``.

    Parameters
    ----------
    spec : dict or path
        The exercise, as for :func:`chainrule.explain.explain`.
    answer : dict or path
        The learner's numbers in the layout of ``explain --format json``
        (``null`` for a number not filled in).
    digits : int
        Significant digits that must agree (one unit of the last is allowed).

    Returns
    -------
    Report
        ``ok``, ``first`` (the first mistake) and one :class:`Finding` per quantity.

    Raises
    ------
    ConfigError, ShapeError
        For a bad spec or answer file (unreadable, not the layout, another spec's answer).
    """
    return check(spec, answer, digits)


def _pairs(paths: Sequence[str]) -> list[tuple[str, str]]:
    """``SPEC ANSWER...`` or exercise folders, each with ``spec.json`` and ``answer.json``."""
    if paths and all(Path(p).is_dir() for p in paths):
        return [(str(Path(p) / "spec.json"), str(Path(p) / "answer.json")) for p in paths]
    if len(paths) < 2:
        raise ConfigError(
            "check: give SPEC and ANSWER.json (or exercise folders holding spec.json and answer.json)."
        )
    return [(paths[0], p) for p in paths[1:]]


def run(paths: Sequence[str], fmt: str = "text", output: str | None = None, digits: int = 3) -> int:
    """What ``chainrule check SPEC ANSWER... [--format F] [--digits D] [--output FILE]`` does.

    Returns 0 if every answer is right, 1 if one has a mistake, 2 if a file is bad
    (one line on stderr for each bad file; the others are still checked).
    """
    if fmt not in FORMATS:
        print(f"chainrule check: unknown format {fmt!r}; expected one of {list(FORMATS)}.", file=sys.stderr)
        return 2
    try:
        pairs = _pairs(paths)
    except ChainruleError as exc:
        print(f"chainrule {exc}", file=sys.stderr)
        return 2
    status, texts, objects = 0, [], []
    for spec, ans in pairs:
        try:
            report = check(spec, ans, digits)
        except ChainruleError as exc:
            print(f"chainrule check: {exc}", file=sys.stderr)
            status = 2
            continue
        status = max(status, 0 if report.ok else 1)
        texts.append(report.render(fmt))
        objects.append(report.to_dict())
    if fmt == "json":
        import json

        text = json.dumps(objects[0] if len(pairs) == 1 and objects else objects, indent=2) + "\n"
    else:
        text = "\n".join(texts)
    if output is None:
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
    return status


__all__ = [
    "FORMATS",
    "MISTAKES",
    "BackwardReport",
    "Finding",
    "Mistake",
    "Report",
    "answer",
    "backward",
    "read",
    "run",
    "table",
]
