"""``chainrule explain``: backprop by hand, with every number (level 6).

For one example or a small batch, :func:`explain` computes what the notes
compute by hand (forward pass ``z[l]``, ``a[l]``; the loss ``C``; the deltas
``delta[L] = dC/da[L] * phi'(z[L])`` and ``delta[l] = (W[l+1]^T delta[l+1]) *
phi'(z[l])``; ``dC/dW[l] = delta[l] a[l-1]^T``, ``dC/db[l] = delta[l]``; one
gradient-descent step) in NumPy float64, and checks the gradients against the
autodiff engine and central finite differences. :func:`render` writes it as
text, Markdown with LaTeX, JSON, a PNG picture or an interactive HTML page; :func:`run` is the command
line ``chainrule explain SPEC``.

Examples
--------
>>> from chainrule.explain import explain, render
>>> spec = {"layers": [{"weights": [[0.5]], "bias": [0.0], "activation": "sigmoid"}],
...         "input": [1.0], "target": [1.0], "loss": "half_sse", "learning_rate": 0.5}
>>> expl = explain(spec, weight="1:1,1")
>>> print(render(expl, "text").splitlines()[0])
Backpropagation, step by step: a 1-1 network, one example
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from chainrule.errors import ChainruleError, ConfigError
from chainrule.explain.core import Explanation, explain, parse_weight
from chainrule.explain.html import to_html
from chainrule.explain.narrate import narrate, to_markdown, to_text
from chainrule.explain.picture import to_png
from chainrule.explain.spec import Spec, load_spec
from chainrule.fileio import strict_json

FORMATS = ("text", "markdown", "json", "png", "html")


def render(explanation: Explanation, fmt: str = "text", all_steps: bool = False) -> str | bytes:
    """The explanation as ``text``, ``markdown``, ``json``, ``html`` (str) or ``png`` (bytes).

    ``html`` is one self-contained interactive page (:mod:`chainrule.explain.html`).

    A loss curve of many ``steps`` is summarised in text and Markdown (the first
    value, every k-th, the last) unless ``all_steps``; JSON always has every value.

    Raises
    ------
    ConfigError
        For an unknown format, or a network too large for ``png`` or ``html``.
    """
    if fmt == "text":
        return to_text(narrate(explanation, all_steps))
    if fmt == "markdown":
        return to_markdown(narrate(explanation, all_steps))
    if fmt == "json":  # strict JSON: a number that overflowed is null, not Infinity
        return strict_json(explanation.to_dict(), indent=2) + "\n"
    if fmt == "png":
        return to_png(explanation)
    if fmt == "html":
        return to_html(explanation)
    raise ConfigError(f"explain: unknown format {fmt!r}; expected one of {list(FORMATS)}.")


def run(
    spec_path: str | os.PathLike[str] | dict[str, Any],
    fmt: str = "text",
    output: str | os.PathLike[str] | None = None,
    weight: str | Sequence[str] | None = None,
    steps: int = 0,
    all_steps: bool = False,
) -> int:
    """What ``chainrule explain SPEC --format F --output FILE --weight L:J,K --steps N [--all]`` does.

    Prints to stdout (or writes ``output``); returns 0. On a mistake in the
    spec or the options, prints one line to stderr and returns 2.
    """
    try:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r}; expected one of {list(FORMATS)}.")
        if fmt == "png" and output is None:
            raise ConfigError(
                "--format png needs --output FILE.png (a picture is not printed to a terminal)."
            )
        result = render(explain(spec_path, steps=steps, weight=weight), fmt, all_steps)
        if output is None:
            sys.stdout.write(result if isinstance(result, str) else result.decode("latin-1"))
        elif isinstance(result, bytes):
            with open(output, "wb") as fh:
                fh.write(result)
        else:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(result)
    except ChainruleError as exc:
        print(f"chainrule explain: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"chainrule explain: cannot write {os.fspath(output or '')!r}: {exc.strerror}.", file=sys.stderr
        )
        return 2
    return 0


__all__ = ["FORMATS", "Explanation", "Spec", "explain", "load_spec", "parse_weight", "render", "run"]
