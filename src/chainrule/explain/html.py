"""The HTML of ``explain``: one self-contained, interactive page (level 6).

The page draws the network as SVG and steps through the forward pass layer by
layer, the loss, the backward pass (``delta[l]`` flowing back) and the update;
a click on a neuron shows its equations with the numbers filled in, a click on
a weight its gradient as the chain of factors, and for a batch one example can
be picked. Softmax layers show their Jacobian.

Every number on the page is read from one embedded JSON document, the same
document ``chainrule explain --format json`` prints (with a chain for every
weight when the network has at most :data:`MAX_CHAINS` weights; otherwise for
the weights named with ``--weight``). Each number carries the path of its
value in that document (``data-key``) and its full precision (``data-full``,
also shown on hover); the page shows it to a chosen number of significant
digits.

The script and the style sheet live beside this module (``web/explain.js``,
``web/explain.css``) and are inlined at render time: the page loads nothing,
from the network or from disk. :func:`fragment` is the same view without the
``<html>`` shell, for notebooks (``Explanation._repr_html_``).
"""

# ruff: noqa: E741  (l is the layer index, as in the notes: z[l], a[l], W[l])
from __future__ import annotations

import dataclasses
import html
import json
import math
import secrets
from importlib import resources
from typing import Any

from chainrule.errors import ConfigError
from chainrule.explain import handwork as hw
from chainrule.explain.core import Explanation, chain
from chainrule.explain.narrate import narrate, to_text

MAX_NEURONS = 16  # per layer: more do not fit a readable drawing
MAX_CHAINS = 512  # weights: up to this many, the page carries every weight's chain


def _asset(name: str) -> str:
    return (resources.files("chainrule.explain") / "web" / name).read_text(encoding="utf-8")


def page_data(expl: Explanation) -> dict[str, Any]:
    """The JSON document the page renders: ``expl.to_dict()``, with every weight's chain if small.

    With at most :data:`MAX_CHAINS` weights, ``weight_chains`` holds one chain per
    weight, layer by layer, row by row (what ``--format json`` gives with every
    weight named by ``--weight``); otherwise only the chains already asked for.
    """
    sizes = expl.spec.sizes
    n_weights = sum(sizes[l] * sizes[l - 1] for l in range(1, len(sizes)))
    if n_weights <= MAX_CHAINS:
        asked = {(c["layer"], c["row"], c["column"]) for c in expl.chains}
        every = [
            (l, j, k)
            for l in range(1, len(sizes))
            for j in range(1, sizes[l] + 1)
            for k in range(1, sizes[l - 1] + 1)
        ]
        if set(every) != asked:
            expl = dataclasses.replace(expl, chains=[])
            expl.chains = [chain(expl, ref) for ref in every]
    return expl.to_dict()


def _finite_json(value: Any) -> Any:
    """Non-finite floats as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (not JSON numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_json(v) for v in value]
    return value


def _script_json(data: dict[str, Any]) -> str:
    """JSON safe inside ``<script>``: ``<``, ``>`` and ``&`` as unicode escapes."""
    text = json.dumps(_finite_json(data), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _check_size(expl: Explanation) -> None:
    for l, n in enumerate(expl.spec.sizes):
        if n > MAX_NEURONS:
            raise ConfigError(
                f"html: the network is too large to draw (layer {l} has {n} neurons, at most {MAX_NEURONS}); "
                "use --format text, markdown or json."
            )


def fragment(expl: Explanation, standalone: bool = False) -> str:
    """The view as one ``<div>`` with its style and script inline (for a notebook cell or a page).

    Raises
    ------
    ConfigError
        If a layer has more than :data:`MAX_NEURONS` neurons.
    """
    _check_size(expl)
    uid = "crx-" + secrets.token_hex(6)
    spec = expl.spec
    shape = "-".join(str(n) for n in spec.sizes)
    who = f"a batch of m = {expl.m} examples" if spec.batch else "one example"
    title = spec.title or f"Backpropagation, step by step: a {shape} network, {who}"
    options = json.dumps({"standalone": standalone})
    meta = {  # formulas as text (the page's numbers all come from page_data)
        "C": hw.rule_of(spec.loss).C,
        "phi": [hw.phi_of(layer.activation).formula for layer in spec.layers],
    }
    return (
        f'<div class="crx" id="{uid}" data-title="{html.escape(title)}" '
        f'data-meta="{html.escape(json.dumps(meta))}">'
        f"<style>{_asset('explain.css')}</style>"
        f'<script type="application/json" class="crx-data">{_script_json(page_data(expl))}</script>'
        f'<noscript><pre class="crx-text">{html.escape(to_text(narrate(expl)))}</pre></noscript>'
        f"<script>{_asset('explain.js')}\nchainruleExplain.mount({json.dumps(uid)}, {options});</script>"
        "</div>"
    )


def to_html(expl: Explanation) -> str:
    """One self-contained HTML page: every script and style inline, no request of any kind.

    Raises
    ------
    ConfigError
        If a layer has more than :data:`MAX_NEURONS` neurons.
    """
    body = fragment(expl, standalone=True)
    title = expl.spec.title or "chainrule explain: backprop, step by step"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # NOTE: the policy forbids every fetch; inline script and style are all the page has
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{html.escape(title)}</title></head>\n"
        f"<body>{body}</body></html>\n"
    )


__all__ = ["MAX_CHAINS", "MAX_NEURONS", "fragment", "page_data", "to_html"]
