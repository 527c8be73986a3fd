"""A learner doing backprop by hand, example by example with explicit sums, who can make one mistake.

Written independently of chainrule (plain Python loops over examples and
neurons, column notation of note 004), so the tests of ``chainrule.check``
build each wrong answer the way a learner would, not with the checker's own
table of mistakes.
"""

# ruff: noqa: E741  (l is the layer index, as in the notes)
from __future__ import annotations

import math
from typing import Any


def f(act: str, z: float) -> float:
    if act == "sigmoid":
        return 1 / (1 + math.exp(-z))
    if act == "tanh":
        return math.tanh(z)
    if act == "relu":
        return max(z, 0.0)
    return z


def fprime(act: str, z: float, kink: float = 0.0) -> float:
    """phi'(z) from z, as note 004 writes it: sigma(z) (1 - sigma(z)); relu'(0) = kink."""
    if act == "sigmoid":
        return f("sigmoid", z) * (1 - f("sigmoid", z))
    if act == "tanh":
        return 1 - math.tanh(z) ** 2
    if act == "relu":
        return 1.0 if z > 0 else kink if z == 0 else 0.0
    return 1.0


def softmax(z: list[float]) -> list[float]:
    top = max(z)
    e = [math.exp(v - top) for v in z]
    return [v / sum(e) for v in e]


def work(spec: dict[str, Any], mistake: str | None = None) -> dict[str, Any]:
    """The answer, in explain's JSON layout, worked out with ``mistake`` (None: correctly)."""
    Ws = [[list(map(float, row)) for row in layer["weights"]] for layer in spec["layers"]]
    bs = [list(map(float, layer["bias"])) for layer in spec["layers"]]
    acts = [layer.get("activation", "identity") for layer in spec["layers"]]
    batch = isinstance(spec["input"][0], list)
    X = spec["input"] if batch else [spec["input"]]
    Y = (
        spec["target"]
        if batch
        else [spec["target"] if isinstance(spec["target"], list) else [spec["target"]]]
    )
    m, L, loss = len(X), len(Ws), spec["loss"]
    alpha, update_bias = spec["learning_rate"], spec.get("update_bias", True)
    # forward, one example at a time
    Z: list[list[list[float]]] = [[] for _ in range(L)]
    A: list[list[list[float]]] = [[] for _ in range(L)]
    for x in X:
        a = list(map(float, x))
        for l in range(L):
            z = [sum(Ws[l][j][k] * a[k] for k in range(len(a))) + bs[l][j] for j in range(len(Ws[l]))]
            a = softmax(z) if acts[l] == "softmax" else [f(acts[l], v) for v in z]
            Z[l].append(z)
            A[l].append(a)
    # loss and dC/da[L]: the mean over the m examples
    per = 1.0 if mistake == "mean_missing" else 1.0 / m
    two = 2.0 if loss == "sse" else 1.0
    if mistake == "factor_2":
        two = 1.0 if loss == "sse" else 2.0
    C, g_out = 0.0, []
    for a, y in zip(A[-1], Y, strict=True):
        if loss in ("sse", "half_sse"):
            C += per * two / 2 * sum((ai - yi) ** 2 for ai, yi in zip(a, y, strict=True))
            g_out.append([per * two * (ai - yi) for ai, yi in zip(a, y, strict=True)])
        else:  # cross_entropy
            C += -per * sum(yi * math.log(ai) for ai, yi in zip(a, y, strict=True) if yi)
            g_out.append([-per * yi / ai for ai, yi in zip(a, y, strict=True)])
    # backward: deltas from layer L down, each layer's gradient and update as soon as its delta is known
    fused = acts[-1] == "softmax" and loss == "cross_entropy"
    D: list[list[list[float]]] = [[] for _ in range(L)]
    gW: list[Any] = [None] * L
    gb: list[Any] = [None] * L
    W_now = [[row[:] for row in W] for W in Ws]
    for l in range(L - 1, -1, -1):
        for e in range(m):
            z, a = Z[l][e], A[l][e]
            if l == L - 1:
                g = g_out[e]
            else:
                W_up, d_up = (W_now if mistake == "updated_before_backprop" else Ws)[l + 1], D[l + 1][e]
                if mistake == "W_not_transposed" and len(W_up) == len(W_up[0]):
                    g = [sum(W_up[j][k] * d_up[k] for k in range(len(d_up))) for j in range(len(z))]
                else:
                    g = [sum(W_up[k][j] * d_up[k] for k in range(len(d_up))) for j in range(len(z))]
            D[l].append(_delta(acts[l], z, a, g, Y[e], per, mistake, fused and l == L - 1))
        n_in = len(Ws[l][0])
        below = [list(map(float, x)) for x in X] if l == 0 else A[l - 1]
        source = A[l] if mistake == "wrong_layer_activations" and len(A[l][0]) == n_in else below
        scale = 1.0 / m if mistake == "mean_doubled" else 1.0
        gW[l] = [
            [scale * sum(D[l][e][j] * source[e][k] for e in range(m)) for k in range(n_in)]
            for j in range(len(Ws[l]))
        ]
        if mistake == "gradient_transposed":
            gW[l] = [list(col) for col in zip(*gW[l], strict=True)]
        gb[l] = [scale * sum(D[l][e][j] for e in range(m)) for j in range(len(Ws[l]))]
        sign = 1.0 if mistake == "update_sign" else -1.0
        if len(gW[l]) == len(Ws[l]) and len(gW[l][0]) == n_in:
            W_now[l] = [
                [Ws[l][j][k] + sign * alpha * gW[l][j][k] for k in range(n_in)] for j in range(len(Ws[l]))
            ]
    layers = []
    for l in range(L):
        moves = update_bias != (mistake == "bias_update_flipped")
        sign = 1.0 if mistake == "update_sign" else -1.0
        b_after = [b + sign * alpha * g for b, g in zip(bs[l], gb[l], strict=True)] if moves else bs[l]
        one = (lambda v: v) if batch else (lambda v: v[0])
        layers.append(
            {
                "z": one(Z[l]),
                "a": one(A[l]),
                "delta": one(D[l]),
                "grad_weights": gW[l],
                "grad_bias": gb[l],
                "weights_after": W_now[l] if mistake != "gradient_transposed" else None,
                "bias_after": b_after,
            }
        )
    return {"loss": C, "layers": layers}


def _delta(
    act: str,
    z: list[float],
    a: list[float],
    g: list[float],
    y: list[float],
    per: float,
    mistake: Any,
    fused: bool,
) -> list[float]:
    n = len(z)
    if mistake == "phi_prime_left_out":
        return list(g)
    if act == "softmax":
        if mistake == "softmax_diagonal":
            return [g[i] * a[i] * (1 - a[i]) for i in range(n)]
        if fused:  # note 004's table: delta[L] is the error
            return [per * (a[i] - y[i]) for i in range(n)]
        return [sum(g[j] * a[j] * ((i == j) - a[i]) for j in range(n)) for i in range(n)]
    if mistake == "phi_prime_of_a":
        return [g[i] * fprime(act, a[i]) for i in range(n)]
    if mistake == "a_form_on_z":  # a (1 - a) written, z put in
        return [g[i] * (z[i] * (1 - z[i]) if act == "sigmoid" else 1 - z[i] ** 2) for i in range(n)]
    kink = 1.0 if mistake == "relu_kink" else 0.0
    return [g[i] * fprime(act, z[i], kink) for i in range(n)]
