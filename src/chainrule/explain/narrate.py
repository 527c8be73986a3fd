"""The text and Markdown of ``explain``: the notes' lines, with the numbers (level 6).

The narration is written once, as lines in the plain bracket notation of the
notes (``z[l]``, ``w_jk[l]``, ``delta[l]``, ``dC/dW[l]``); the Markdown renderer
turns each math line into LaTeX (``z^{[l]}``, ``\\frac{\\partial C}{\\partial W^{[l]}}``).
Items are ``(kind, text)``: ``h1``/``h2`` headings, ``p`` prose with math in
backticks, ``m`` a math line, ``mv`` a math line whose ``*`` is elementwise.
"""

# ruff: noqa: E741  (l is the layer index, as in the notes: z[l], a[l], W[l])
from __future__ import annotations

import re
from typing import Any

import numpy as np

from chainrule.explain import handwork as hw
from chainrule.explain.core import KINKS, Explanation

Item = tuple[str, str]


# ------------------------------------------------------------- numbers
def num(x: float) -> str:
    """A number with 9 significant digits, as the notes print them; ``-0`` prints as ``0``."""
    value = float(x)
    return f"{value + 0.0 if value == 0 else value:.9g}"  # -0.0 + 0.0 is 0.0


def fac(x: float) -> str:
    """A number as a factor in a product: negatives in parentheses."""
    return f"({num(x)})" if float(x) < 0 else num(x)


SUMMARY_LINES = 20  # a loss curve longer than this is summarised unless every value is asked for


def curve_rows(n_values: int, show_all: bool = False) -> list[int]:
    """Which ``C_i`` of ``n_values`` to print: all of a short curve, else the first, every k-th, the last.

    Examples
    --------
    >>> curve_rows(5)
    [0, 1, 2, 3, 4]
    >>> curve_rows(1001)[:3], curve_rows(1001)[-2:], len(curve_rows(1001))
    ([0, 50, 100], [950, 1000], 21)
    """
    if show_all or n_values <= SUMMARY_LINES + 1:
        return list(range(n_values))
    k = -(-(n_values - 1) // SUMMARY_LINES)  # ceil: at most SUMMARY_LINES steps of k
    return sorted({*range(0, n_values, k), n_values - 1})


def vec(v: np.ndarray) -> str:
    return "[" + ", ".join(num(x) for x in np.ravel(v)) + "]"


def mat(M: np.ndarray) -> str:
    return "[" + ", ".join(vec(row) for row in np.atleast_2d(M)) + "]"


def arr(expl: Explanation, v: np.ndarray) -> str:
    """One example's vector, or a batch's matrix (one row per example)."""
    return mat(v) if expl.spec.batch else vec(v[0])


# ----------------------------------------------------------- narration
def narrate(expl: Explanation, all_steps: bool = False) -> list[Item]:
    """All items of the explanation, in the order of the issue: forward, loss, backward, ...

    A loss curve of more than ``SUMMARY_LINES + 1`` values (``--steps``) is printed as
    its first value, every k-th and the last, unless ``all_steps`` (``--all``).
    """
    items = _header(expl) + _forward(expl) + _loss(expl) + _backward(expl) + _gradients(expl)
    for c in expl.chains:
        items += _chain(expl, c)
    return items + _update(expl, all_steps) + _check(expl)


def _header(expl: Explanation) -> list[Item]:
    spec = expl.spec
    L = len(spec.layers)
    shape = "-".join(str(n) for n in spec.sizes)
    who = "one example" if not spec.batch else f"a batch of m = {expl.m} examples"
    items: list[Item] = [("h1", spec.title or f"Backpropagation, step by step: a {shape} network, {who}")]
    items.append(
        (
            "p",
            f"{L} layer{'s' if L > 1 else ''} with sizes `n[0..{L}]` = {spec.sizes}; layer 1 is the first "
            "weight layer and `a[0] = x`. `w_jk[l]` is the weight from neuron k of layer l-1 to neuron j "
            f"of layer l, so `W[l]` has shape (n[l], n[l-1]). Loss {spec.loss}, learning rate "
            f"`alpha = {num(spec.learning_rate)}`.",
        )
    )
    if spec.batch:
        items.append(
            (
                "p",
                f"Each row of x, y, `z[l]`, `a[l]` and `delta[l]` is one example. C is the mean over the "
                f"m = {expl.m} examples, so `dC/da[L]` carries the factor `1/m` and the gradients sum "
                "over the examples.",
            )
        )
    return items


def _forward(expl: Explanation) -> list[Item]:
    spec = expl.spec
    items: list[Item] = [
        ("h2", "1. Forward pass"),
        ("p", "`z[l] = W[l] a[l-1] + b[l]`, `a[l] = phi[l](z[l])`."),
    ]
    items += [("m", f"a[0] = x = {arr(expl, spec.x)}"), ("m", f"y = {arr(expl, spec.y)}")]
    a_prev = spec.x
    for layer in expl.layers:
        l, n = layer.index, layer.W.shape[0]
        items.append(("p", f"Layer {l}: {n} neuron{'s' if n > 1 else ''}, activation {layer.activation}."))
        b_term = "" if layer.b is None else f" + b[{l}]"
        b_num = "" if layer.b is None else f" + {vec(layer.b)}"
        if spec.batch:
            items.append(("m", f"z[{l}] = W[{l}] a[{l - 1}]{b_term} = {mat(layer.z)}"))
        else:
            items.append(
                (
                    "m",
                    f"z[{l}] = W[{l}] a[{l - 1}]{b_term} = {mat(layer.W)} {vec(a_prev[0])}{b_num} "
                    f"= {vec(layer.z[0])}",
                )
            )
            if layer.W.shape[1] <= 4 and n <= 4:
                items += _neurons(layer, a_prev[0])
        items.append(("m", f"a[{l}] = {layer.activation}(z[{l}]) = {arr(expl, layer.a)}"))
        a_prev = layer.a
    return items


def _neurons(layer: hw.Layer, a_prev: np.ndarray) -> list[Item]:
    """``z_j[l] = w_j1[l] a_1[l-1] + ... + b_j[l]``, one line per neuron."""
    l = layer.index
    out: list[Item] = []
    for j in range(layer.W.shape[0]):
        ks = range(layer.W.shape[1])
        sym = " + ".join(f"w_{j + 1}{k + 1}[{l}] a_{k + 1}[{l - 1}]" for k in ks)
        val = " + ".join(f"{fac(layer.W[j, k])} * {fac(a_prev[k])}" for k in ks)
        if layer.b is not None:
            sym += f" + b_{j + 1}[{l}]"
            val += f" + {fac(layer.b[j])}"
        out.append(("m", f"z_{j + 1}[{l}] = {sym} = {val} = {num(layer.z[0, j])}"))
    return out


def _loss(expl: Explanation) -> list[Item]:
    spec = expl.spec
    L = len(spec.layers)
    rule = hw.rule_of(spec.loss)
    mean = " averaged over the examples" if spec.batch else ""
    text = f"`C = {rule.C}`".replace("[L]", f"[{L}]")
    items: list[Item] = [("h2", f"2. Loss ({spec.loss})"), ("p", f"{text} per example{mean}.")]
    if expl.fused:
        items.append(
            ("p", f"The library computes it as `{expl.fused}` from `z[{L}]`, which is stable for any logit.")
        )
    return [*items, ("m", f"C = {num(expl.loss)}")]


def _phi_line(layer: hw.Layer, expl: Explanation) -> Item:
    l = layer.index
    formula = hw.phi_of(layer.activation).formula.format(z=f"z[{l}]", a=f"a[{l}]")
    assert layer.dphi is not None
    return ("m", f"phi'(z[{l}]) = {formula} = {arr(expl, layer.dphi)}")


def _jacobian(layer: hw.Layer, expl: Explanation) -> list[Item]:
    l = layer.index
    assert layer.jacobian is not None
    items: list[Item] = [
        ("p", f"Softmax Jacobian of layer {l}, `da_j/dz_i = a_j (delta_ij - a_i)` (row i, column j):")
    ]
    for e in range(expl.m):
        who = f"example {e + 1}: " if expl.spec.batch else ""
        items.append(("m", f"{who}da[{l}]/dz[{l}] = {mat(layer.jacobian[e])}"))
    return items


def _backward(expl: Explanation) -> list[Item]:
    L = len(expl.layers)
    out = expl.layers[-1]
    over_m = "1/m " if expl.spec.batch else ""
    items: list[Item] = [("h2", "3. Backward pass"), ("p", "`delta[l] = dC/dz[l]`, the error of layer l.")]
    if expl.fused:
        items.append(
            (
                "p",
                f"Layer {L} (output): {out.activation} output with {expl.spec.loss} is a fused pair, so the "
                f"`phi'` and `dC/da` factors cancel: fused: `delta[{L}] = {over_m}(a[{L}] - y)`.",
            )
        )
        items.append(("m", f"delta[{L}] = {over_m}(a[{L}] - y) = {arr(expl, out.delta)}"))  # type: ignore[arg-type]
        if out.jacobian is not None:
            items += _jacobian(out, expl)
    else:
        dcda = hw.rule_of(expl.spec.loss).dCda.replace("[L]", f"[{L}]")
        items.append(("p", f"Layer {L} (output): `delta[{L}] = dC/da[{L}] * phi'(z[{L}])`."))
        items.append(("m", f"dC/da[{L}] = {over_m}({dcda}) = {arr(expl, expl.dCda)}"))
        items += _through(out, expl, f"dC/da[{L}]")
    for layer in expl.layers[-2::-1]:
        l = layer.index
        items.append(
            ("p", f"Layer {l} (hidden): `delta[{l}] = (W[{l + 1}]^T delta[{l + 1}]) * phi'(z[{l}])`.")
        )
        above = expl.layers[l]
        assert layer.back is not None and above.delta is not None
        if expl.spec.batch:
            items.append(("m", f"W[{l + 1}]^T delta[{l + 1}] = {mat(layer.back)}"))
        else:
            rhs = f"{mat(above.W.T)} {vec(above.delta[0])} = {vec(layer.back[0])}"
            items.append(("m", f"W[{l + 1}]^T delta[{l + 1}] = {rhs}"))
        items += _through(layer, expl, f"(W[{l + 1}]^T delta[{l + 1}])")
    return items


def _through(layer: hw.Layer, expl: Explanation, g: str) -> list[Item]:
    """``delta[l] = g * phi'(z[l])``, or ``J^T g`` for softmax."""
    l = layer.index
    assert layer.delta is not None
    if layer.jacobian is not None:
        return [
            *_jacobian(layer, expl),
            ("m", f"delta[{l}] = (da[{l}]/dz[{l}])^T {g} = {arr(expl, layer.delta)}"),
        ]
    return [_phi_line(layer, expl), ("mv", f"delta[{l}] = {g} * phi'(z[{l}]) = {arr(expl, layer.delta)}")]


def _gradients(expl: Explanation) -> list[Item]:
    summed = " summed over the m examples" if expl.spec.batch else ""
    items: list[Item] = [
        ("h2", "4. Gradients"),
        (
            "p",
            "`dC/dW[l] = delta[l] a[l-1]^T`, `dC/db[l] = delta[l]`; entry by entry "
            f"`dC/dw_jk[l] = delta_j[l] a_k[l-1]` and `dC/db_j[l] = delta_j[l]`{summed}.",
        ),
    ]
    a_prev = expl.spec.x
    for layer in expl.layers:
        l = layer.index
        assert layer.delta is not None and layer.grad_W is not None
        if expl.spec.batch:
            items.append(("m", f"dC/dW[{l}] = delta[{l}]^T a[{l - 1}] = {mat(layer.grad_W)}"))
        else:
            outer = f"{vec(layer.delta[0])} {vec(a_prev[0])}^T"
            items.append(("m", f"dC/dW[{l}] = delta[{l}] a[{l - 1}]^T = {outer} = {mat(layer.grad_W)}"))
        if layer.grad_b is not None:
            items.append(("m", f"dC/db[{l}] = delta[{l}] = {vec(layer.grad_b)}"))
        a_prev = layer.a
    return items


def _chain(expl: Explanation, c: dict[str, Any]) -> list[Item]:
    l, j, k = c["layer"], c["row"], c["column"]
    w = f"w_{j}{k}[{l}]"
    items: list[Item] = [
        ("h2", f"Chain for `{w}` (layer {l}, row {j}, column {k})"),
        ("p", f"`{w}` goes from neuron {k} of layer {l - 1} to neuron {j} of layer {l}."),
        (
            "m",
            f"dC/d{w} = dC/da_{j}[{l}] * da_{j}[{l}]/dz_{j}[{l}] * dz_{j}[{l}]/d{w} "
            f"= delta_{j}[{l}] a_{k}[{l - 1}]",
        ),
    ]
    for e, row in enumerate(c["examples"]):
        lines = _chain_lines(expl, c, row)
        if expl.spec.batch:
            items.append(("p", f"Example {e + 1}:"))
        items += [("m", line) for line in lines]
    if expl.spec.batch:
        terms = " + ".join(fac(row["product"]) for row in c["examples"])
        items.append(("m", f"dC/d{w} = sum over examples = {terms} = {num(c['grad'])}"))
    alpha = num(expl.spec.learning_rate)
    rhs = f"{num(c['value'])} - {alpha} * {fac(c['grad'])} = {num(c['after'])}"
    items.append(("m", f"{w} <- {w} - alpha dC/d{w} = {rhs}"))
    return items


def _chain_lines(expl: Explanation, c: dict[str, Any], row: dict[str, Any]) -> list[str]:
    """The factors of ``delta_j[l] a_k[l-1]`` for one example, first in symbols, then in numbers."""
    l, j, k = c["layer"], c["row"], c["column"]
    w, a_k, end = f"w_{j}{k}[{l}]", f"a_{k}[{l - 1}]", f"{fac(row['a_prev'])} = {num(row['product'])}"
    m = "1/m " if expl.spec.batch else ""
    if "a" in row:  # fused output
        return [
            f"dC/d{w} = {m}(a_{j}[{l}] - y_{j}) * {a_k}",
            f"= {m}({num(row['a'])} - {fac(row['y'])}) * {end}",
        ]
    if "softmax_terms" in row:
        g = f"dC/da_i[{l}]"
        total = " + ".join(f"{fac(gi)} * {fac(ji)}" for gi, ji in row["softmax_terms"])
        lines = [f"dC/d{w} = (sum_i {g} da_i[{l}]/dz_{j}[{l}]) * {a_k}"]
        if "terms" in row:
            lines.append(f"with dC/da[{l}] = W[{l + 1}]^T delta[{l + 1}] (section 3)")
        return [*lines, f"= ({total}) * {end}", f"= {fac(row['delta'])} * {end}"]
    if "terms" in row:
        sym = " + ".join(f"w_{i + 1}{j}[{l + 1}] delta_{i + 1}[{l + 1}]" for i in range(len(row["terms"])))
        val = " + ".join(f"{fac(wi)} * {fac(di)}" for wi, di in row["terms"])
        return [
            f"= ({sym}) * phi'(z_{j}[{l}]) * {a_k}",
            f"= ({val}) * {fac(row['phi_prime'])} * {fac(row['a_prev'])}",
            f"= {fac(row['back'])} * {fac(row['phi_prime'])} * {end}",
        ]
    return [
        f"= dC/da_{j}[{l}] * phi'(z_{j}[{l}]) * {a_k}",
        f"= {fac(row['dC_da'])} * {fac(row['phi_prime'])} * {end}",
    ]


def _update(expl: Explanation, all_steps: bool = False) -> list[Item]:
    alpha = num(expl.spec.learning_rate)
    bias_rule = (
        "`b[l] <- b[l] - alpha dC/db[l]`"
        if expl.spec.update_bias
        else "the biases stay fixed (update_bias false)"
    )
    items: list[Item] = [
        ("h2", f"5. One gradient-descent step with alpha = {alpha}"),
        ("p", f"`W[l] <- W[l] - alpha dC/dW[l]`; {bias_rule}."),
    ]
    for layer in expl.layers:
        l = layer.index
        assert layer.grad_W is not None and layer.W_after is not None
        items.append(("m", f"W[{l}] <- {mat(layer.W)} - {alpha} {mat(layer.grad_W)} = {mat(layer.W_after)}"))
        if layer.b is not None and layer.b_after is not None and expl.spec.update_bias:
            assert layer.grad_b is not None
            items.append(
                ("m", f"b[{l}] <- {vec(layer.b)} - {alpha} {vec(layer.grad_b)} = {vec(layer.b_after)}")
            )
    if expl.losses is not None:
        n = len(expl.losses) - 1
        rows = curve_rows(len(expl.losses), all_steps)
        items.append(
            ("p", f"The loss C over {n} step{'s' if n > 1 else ''} (before each step, and after the last):")
        )
        if len(rows) < len(expl.losses):
            items.append(
                (
                    "p",
                    f"(a summary: {len(rows)} of the {n + 1} values, every {rows[1]}-th and the last; "
                    "--all prints every value, as --format json always does)",
                )
            )
        items += [("m", f"C_{i} = {num(expl.losses[i])}") for i in rows]
    return items


def _check(expl: Explanation) -> list[Item]:
    ck = expl.check
    items: list[Item] = [
        ("h2", "6. Check"),
        (
            "p",
            "Largest difference of these hand-style gradients from the autodiff engine: "
            f"{ck['autodiff']:.3g} "
            f"(loss: {ck['autodiff_loss']:.3g}); from central finite differences (eps = {ck['eps']:g}): "
            f"{ck['finite_differences']:.3g}.",
        ),
    ]
    if expl.kinks:
        items.append(("p", _kink_note(expl)))
    return items


def _kink_note(expl: Explanation) -> str:
    """Why finite differences disagree at a kink, naming the unit(s)."""
    first = expl.kinks[0]
    unit = f"z_{first['unit']}[{first['layer']}]" + (
        f" of example {first['example']}" if expl.spec.batch else ""
    )
    at = (
        f"z = 0 at `{unit}`"
        if first["z"] == 0
        else f"`{unit}` = {num(first['z'])}, within a finite-difference step of 0"
    )
    more = len(expl.kinks) - 1
    others = f" (and {more} more unit{'s' if more > 1 else ''})" if more else ""
    left, right = KINKS[first["activation"]]
    agrees = ", and agrees with the autodiff engine" if expl.check["autodiff"] < 1e-8 else ""
    return (
        f"The finite differences meet a kink: {at}{others}; {first['activation']} is not differentiable "
        f"at z = 0: its one-sided derivatives ({num(left)} and {num(right)}) disagree, so a central "
        f"difference across the kink averages them, and the difference above says nothing about the "
        f"hand derivation there. That uses `{first['activation']}'(0) = {num(left)}`, the engine's "
        f"convention{agrees}."
    )


# ------------------------------------------------------------- renderers
def to_text(items: list[Item]) -> str:
    """Plain text for a terminal: headings underlined, math lines indented."""
    out: list[str] = []
    for kind, body in items:
        if kind in ("h1", "h2"):
            body = body.replace("`", "")
            out += ["", body, ("=" if kind == "h1" else "-") * len(body)]
        elif kind == "p":
            out.append(body.replace("`", ""))
        else:
            out.append(("      " if body.startswith(("=", "with ")) else "  ") + body)
    return "\n".join(out).lstrip("\n") + "\n"


def to_markdown(items: list[Item]) -> str:
    """Markdown with LaTeX: ``$...$`` inline, ``$$...$$`` for each math line."""
    out: list[str] = []
    for kind, body in items:
        if kind == "h1":
            out.append(f"# {body}")
        elif kind in ("h2", "p"):
            body = re.sub(r"`([^`]*)`", lambda mt: f"${tex(mt.group(1), elementwise=True)}$", body)
            out.append(f"## {body}" if kind == "h2" else body)
        else:
            out.append(f"$${tex(body, elementwise=kind == 'mv')}$$")
    return "\n\n".join(out) + "\n"


_NUM = r"-?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|-?inf|nan"
_SYM = r"(?:delta|phi|[A-Za-z])(?:_\w+)?(?:\[[^\]\[]+\])?"


def _tex_num(s: str) -> str:
    mt = re.fullmatch(r"(-?[\d.]+)e([+-]?\d+)", s)
    return s if mt is None else f"{mt.group(1)} \\times 10^{{{int(mt.group(2))}}}"


def _tex_sym(s: str) -> str:
    mt = re.fullmatch(r"(delta|phi|[A-Za-z])(?:_(\w+))?(?:\[([^\]\[]+)\])?", s)
    if mt is None:
        return s
    base, sub, layer = mt.groups()
    base = "\\" + base if base in ("delta", "phi") else base
    out = base + (f"_{{{sub}}}" if sub else "")
    return f"{{{out}^{{[{layer}]}}}}" if layer else out


def tex(line: str, elementwise: bool = False) -> str:
    """One line of bracket notation as LaTeX."""
    s = re.sub(
        r"\[(\[[^\[\]]*\](?:, \[[^\[\]]*\])*)\]",
        lambda mt: (
            "\\begin{bmatrix}"
            + " \\\\ ".join(
                " & ".join(_tex_num(x) for x in row.split(", "))
                for row in re.findall(r"\[([^\[\]]*)\]", mt.group(1))
            )
            + "\\end{bmatrix}"
        ),
        line,
    )
    s = re.sub(
        rf"(?<![\w\])])\[((?:{_NUM})(?:, (?:{_NUM}))*)\]",
        lambda mt: (
            "\\begin{bmatrix}"
            + " \\\\ ".join(_tex_num(x) for x in mt.group(1).split(", "))
            + "\\end{bmatrix}"
        ),
        s,
    )
    s = re.sub(rf"(?<![\w\\])d(C|{_SYM})/d({_SYM})", lambda mt: _frac(mt.group(1), mt.group(2)), s)
    s = re.sub(
        rf"(?<![\w\\{{])({_SYM})",
        lambda mt: _tex_sym(mt.group(1)) if _is_sym(mt.group(1)) else mt.group(1),
        s,
    )
    s = re.sub(rf"(?<![\w{{])({_NUM})", lambda mt: _tex_num(mt.group(1)), s)
    for old, new in _WORDS:
        s = s.replace(old, new)
    return s.replace(" * ", " \\odot " if elementwise else " \\cdot ")


def _is_sym(s: str) -> bool:
    return "[" in s or s.startswith(("delta_", "phi", "w_", "a_", "y_", "z_", "b_")) or len(s) == 1


def _frac(num_: str, den: str) -> str:
    top = "C" if num_ == "C" else _tex_sym(num_)
    return f"\\frac{{\\partial {top}}}{{\\partial {_tex_sym(den)}}}"


_WORDS = [
    ("^T", "^\\top"),
    ("<-", "\\leftarrow"),
    ("sum_i", "\\sum_i "),
    ("sum_j", "\\sum_j "),
    ("alpha", "\\alpha"),
    ("1/2 ", "\\tfrac{1}{2} "),
    ("1/m ", "\\tfrac{1}{m} "),
    ("1/k ", "\\tfrac{1}{k} "),
    (" if ", "\\text{ if }"),
    (" else ", "\\text{ else }"),
    ("sum over examples", "\\textstyle\\sum_{\\text{examples}}"),
    ("with ", "\\text{with }"),
    (" (section 3)", "\\text{ (section 3)}"),
]
_WORDS += [("example ", "\\text{example }"), ("leaky_relu(", "\\operatorname{leaky\\_relu}(")]
_OPERATORS = ("identity", "sigmoid", "softmax", "relu", "softplus", "gelu", "elu")
_WORDS += [(f"{fn}(", f"\\operatorname{{{fn}}}(") for fn in _OPERATORS]
_WORDS += [(f"{fn}(", f"\\{fn}(") for fn in ("tanh", "log", "max", "exp")]
