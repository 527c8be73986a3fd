"""The PNG of ``explain``: the network with its numbers on neurons and edges (level 6).

Neurons show ``z``, ``a`` and ``delta`` (of the first example for a batch);
edges show ``w_jk[l]`` and ``dC/dw_jk[l]``, blue for positive weights and red
for negative ones, thicker for larger ``|w|``. Drawn with matplotlib's Agg
backend, for networks of at most :data:`MAX_NEURONS` neurons per layer.
"""

# ruff: noqa: E741  (l is the layer index, as in the notes: z[l], a[l], W[l])
from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from chainrule.errors import ConfigError
from chainrule.explain import handwork as hw
from chainrule.explain.core import Explanation

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MAX_NEURONS = 12
MAX_EDGE_LABELS = 16  # edges between two layers above this are drawn without numbers


def _g(x: float) -> str:
    value = float(x)
    return f"{value + 0.0 if value == 0 else value:.4g}"  # -0 prints as 0


def _ys(n: int) -> np.ndarray:
    return (np.arange(n) - (n - 1) / 2.0)[::-1] * 1.6


def to_png(expl: Explanation) -> bytes:
    """PNG bytes of the network diagram.

    Raises
    ------
    ConfigError
        If a layer has more than :data:`MAX_NEURONS` neurons.
    """
    sizes = expl.spec.sizes
    for l, n in enumerate(sizes):
        if n > MAX_NEURONS:
            raise ConfigError(
                f"png: the network is too large to draw (layer {l} has {n} neurons, at most {MAX_NEURONS}); "
                "use --format text, markdown or json."
            )
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    L = len(sizes) - 1
    fig, ax = plt.subplots(figsize=(3.6 * (L + 1) + 1.5, 1.25 * max(sizes) + 2.2))
    pos = [[(3.6 * l, y) for y in _ys(n)] for l, n in enumerate(sizes)]
    x0 = expl.spec.x[0]
    for layer in expl.layers:
        _edges(ax, layer, pos[layer.index - 1], pos[layer.index])
    for k, (px, py) in enumerate(pos[0]):
        _neuron(ax, px, py, f"x_{k + 1}\n{_g(x0[k])}", "#eeeeee")
    for layer in expl.layers:
        for j, (px, py) in enumerate(pos[layer.index]):
            assert layer.delta is not None
            body = f"z={_g(layer.z[0, j])}\na={_g(layer.a[0, j])}\nδ={_g(layer.delta[0, j])}"
            if layer.b is not None:
                body += f"\nb={_g(layer.b[j])}"
            _neuron(ax, px, py, body, "#fff4d6" if layer.index == L else "#e3f0ff")
        ax.text(
            3.6 * layer.index,
            max(_ys(sizes[layer.index])) + 1.05,
            f"layer {layer.index}\n{layer.activation}",
            ha="center",
            va="bottom",
            fontsize=9,
            weight="bold",
        )
    for j, (px, py) in enumerate(pos[L]):
        ax.text(px + 0.85, py, f"y_{j + 1} = {_g(expl.spec.y[0, j])}", va="center", fontsize=9)
    ax.text(
        0, max(_ys(sizes[0])) + 1.05, "input\na[0] = x", ha="center", va="bottom", fontsize=9, weight="bold"
    )
    who = f" (example 1 of {expl.m})" if expl.spec.batch else ""
    fig.suptitle(
        f"C = {expl.loss:.9g} ({expl.spec.loss}){who}; edges: w and dC/dw; "
        f"alpha = {expl.spec.learning_rate:g}",
        fontsize=10,
    )
    ax.set_aspect("equal")
    ax.axis("off")
    ax.margins(0.08)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _neuron(ax: Axes, x: float, y: float, text: str, color: str) -> None:
    from matplotlib.patches import Circle

    ax.add_patch(Circle((x, y), 0.62, facecolor=color, edgecolor="black", zorder=3))
    ax.text(x, y, text, ha="center", va="center", fontsize=7, zorder=4)


def _edges(ax: Axes, layer: hw.Layer, src: list[tuple[float, float]], dst: list[tuple[float, float]]) -> None:
    W = layer.W
    grad = layer.grad_W
    assert grad is not None
    l = layer.index
    labels = W.size <= MAX_EDGE_LABELS
    top = float(np.max(np.abs(W))) or 1.0
    for j, (xd, yd) in enumerate(dst):
        for k, (xs, ys) in enumerate(src):
            w = float(W[j, k])
            color = "#1f5fbf" if w >= 0 else "#c0392b"
            ax.plot([xs, xd], [ys, yd], color=color, lw=0.6 + 2.4 * abs(w) / top, zorder=1)
            if labels:
                t = 0.36 + 0.28 * (j / max(len(dst) - 1, 1))
                ax.text(
                    xs + t * (xd - xs),
                    ys + t * (yd - ys),
                    f"w_{j + 1}{k + 1}[{l}]={_g(w)}\ndC/dw={_g(grad[j, k])}",
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    zorder=2,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": color, "lw": 0.5},
                )
