"""The notes, literally: backprop written index by index as an oracle for the engine.

The oracle below implements the equations of the notes (004 and 000) with
explicit per-index Python loops, one example at a time, and nothing else:

    z_j[l] = sum_k w_jk[l] a_k[l-1] + b_j[l],    a_j[l] = phi(z_j[l])
    delta_j[L] = dC/da_j[L] phi'(z_j[L])                      (elementwise phi)
    delta_j[L] = sum_i dC/da_i[L] a_i (delta_ij - a_j)        (softmax, note 000)
    delta_j[l] = sum_k w_kj[l+1] delta_k[l+1] phi'(z_j[l])
    dC/dw_jk[l] = delta_j[l] a_k[l-1],    dC/db_j[l] = delta_j[l]

summed over the batch and scaled by 1/m for ``reduction="mean"``. It is used
only as a test oracle: for small random networks with every activation and
every loss, the engine's gradients must equal the oracle's and PyTorch's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as tnf

from chainrule.functional import ACTIVATIONS
from chainrule.layers import Dense, Sequential
from chainrule.losses import LOSSES, get_loss
from chainrule.train import Trainer

TOL = 1e-10
SLOPE = 0.01  # leaky_relu
GELU_C = math.sqrt(2.0 / math.pi)


# ------------------------------------------------------------------ the oracle
def phi(name: str, z: float) -> float:
    """Elementwise activation of one number."""
    if name == "identity":
        return z
    if name == "sigmoid":
        return 1.0 / (1.0 + math.exp(-z))
    if name == "tanh":
        return math.tanh(z)
    if name == "relu":
        return z if z > 0 else 0.0
    if name == "leaky_relu":
        return z if z > 0 else SLOPE * z
    if name == "softplus":
        return math.log(1.0 + math.exp(z))
    if name == "gelu":
        return 0.5 * z * (1.0 + math.tanh(GELU_C * (z + 0.044715 * z**3)))
    if name == "elu":
        return z if z > 0 else math.exp(z) - 1.0
    raise KeyError(name)


def phi_prime(name: str, z: float) -> float:
    """``phi'(z)`` by hand; at kinks relu'(0) = 0, leaky'(0) = slope, elu'(0) = 1."""
    if name == "identity":
        return 1.0
    if name == "sigmoid":
        s = phi("sigmoid", z)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - math.tanh(z) ** 2
    if name == "relu":
        return 1.0 if z > 0 else 0.0
    if name == "leaky_relu":
        return 1.0 if z > 0 else SLOPE
    if name == "softplus":
        return phi("sigmoid", z)
    if name == "gelu":
        u = GELU_C * (z + 0.044715 * z**3)
        du = GELU_C * (1.0 + 3 * 0.044715 * z**2)
        return 0.5 * (1.0 + math.tanh(u)) + 0.5 * z * (1.0 - math.tanh(u) ** 2) * du
    if name == "elu":
        return 1.0 if z > 0 else math.exp(z)
    raise KeyError(name)


def layer_forward(W: list[list[float]], b: list[float], a_prev: list[float], act: str) -> tuple[list, list]:
    """``z_j = sum_k w_jk a_k + b_j`` and ``a_j = phi(z_j)`` (softmax over the whole row)."""
    z = [sum(W[j][k] * a_prev[k] for k in range(len(a_prev))) + b[j] for j in range(len(W))]
    if act == "softmax":
        top = max(z)
        e = [math.exp(zj - top) for zj in z]
        return z, [ej / sum(e) for ej in e]
    return z, [phi(act, zj) for zj in z]


def dC_da(loss: str, a: list[float], y: list[float]) -> list[float]:
    """``dC/da_j[L]`` of one example (the loss module's table)."""
    k = len(a)
    if loss == "sse":
        return [2.0 * (a[j] - y[j]) for j in range(k)]
    if loss == "half_sse":
        return [a[j] - y[j] for j in range(k)]
    if loss == "mse":  # mean over the k outputs of each example (the 1/m comes later)
        return [2.0 * (a[j] - y[j]) / k for j in range(k)]
    if loss == "cross_entropy":
        return [-y[j] / a[j] for j in range(k)]
    if loss == "binary_cross_entropy":
        return [(a[j] - y[j]) / (a[j] * (1.0 - a[j])) for j in range(k)]
    raise KeyError(loss)


def output_delta(loss: str, act: str, z: list[float], a: list[float], y: list[float]) -> list[float]:
    """``delta_j[L]``: the loss on logits gives ``a - y``; otherwise ``dC/da`` through ``phi'``."""
    k = len(z)
    if loss in ("softmax_cross_entropy", "sigmoid_binary_cross_entropy"):
        # z[L] are logits; a = softmax(z) or sigmoid(z); delta[L] = a - y (note 004's table)
        if loss == "softmax_cross_entropy":
            top = max(z)
            e = [math.exp(zj - top) for zj in z]
            p = [ej / sum(e) for ej in e]
        else:
            p = [phi("sigmoid", zj) for zj in z]
        return [p[j] - y[j] for j in range(k)]
    return through_phi(act, z, a, dC_da(loss, a, y))


def through_phi(act: str, z: list[float], a: list[float], g: list[float]) -> list[float]:
    """``delta_j = g_j phi'(z_j)``, or for softmax ``sum_i g_i a_i (delta_ij - a_j)`` (``g = dC/da``)."""
    k = len(z)
    if act == "softmax":  # full Jacobian: da_i/dz_j = a_i (delta_ij - a_j)
        return [sum(g[i] * a[i] * ((1.0 if i == j else 0.0) - a[j]) for i in range(k)) for j in range(k)]
    return [g[j] * phi_prime(act, z[j]) for j in range(k)]


def oracle_gradients(
    Ws: list[np.ndarray], bs: list[np.ndarray], acts: list[str], x: np.ndarray, y: np.ndarray, loss: str
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``dC/dW[l]`` and ``dC/db[l]`` of the mean loss over the ``m`` rows of ``x``, index by index."""
    L = len(Ws)
    W = [w.tolist() for w in Ws]
    b = [bb.tolist() for bb in bs]
    dW = [[[0.0] * len(W[ell][0]) for _ in W[ell]] for ell in range(L)]
    db = [[0.0] * len(W[ell]) for ell in range(L)]
    m = x.shape[0]
    for e in range(m):
        a_list, z_list = [list(x[e])], []
        for ell in range(L):
            z, a = layer_forward(W[ell], b[ell], a_list[-1], acts[ell])
            z_list.append(z)
            a_list.append(a)
        delta = output_delta(loss, acts[-1], z_list[-1], a_list[-1], list(y[e]))
        for ell in range(L - 1, -1, -1):
            for j in range(len(W[ell])):
                db[ell][j] += delta[j] / m
                for k in range(len(W[ell][0])):
                    dW[ell][j][k] += delta[j] * a_list[ell][k] / m  # dC/dw_jk[l] = delta_j[l] a_k[l-1]
            if ell > 0:  # delta_j[l] = sum_k w_kj[l+1] delta_k[l+1] phi'(z_j[l])
                g = [sum(W[ell][k][j] * delta[k] for k in range(len(W[ell]))) for j in range(len(W[ell - 1]))]
                delta = through_phi(acts[ell - 1], z_list[ell - 1], a_list[ell], g)
    return [np.array(g) for g in dW], [np.array(g) for g in db]


# ------------------------------------------------------------ torch reference
TORCH_ACT = {
    "identity": lambda z: z,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda z: tnf.leaky_relu(z, SLOPE),
    "softplus": tnf.softplus,
    "gelu": lambda z: tnf.gelu(z, approximate="tanh"),
    "elu": tnf.elu,
    "softmax": lambda z: torch.softmax(z, dim=-1),
}


def torch_loss(loss: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The mean-reduced loss in PyTorch, each written from its definition."""
    if loss == "sse":
        return ((out - y) ** 2).sum(-1).mean()
    if loss == "half_sse":
        return (0.5 * (out - y) ** 2).sum(-1).mean()
    if loss == "mse":
        return tnf.mse_loss(out, y)
    if loss == "cross_entropy":
        return -(y * torch.log(out)).sum(-1).mean()
    if loss == "binary_cross_entropy":
        return tnf.binary_cross_entropy(out, y, reduction="none").sum(-1).mean()
    if loss == "softmax_cross_entropy":
        return tnf.cross_entropy(out, y)
    if loss == "sigmoid_binary_cross_entropy":
        return tnf.binary_cross_entropy_with_logits(out, y, reduction="none").sum(-1).mean()
    raise KeyError(loss)


def torch_gradients(Ws, bs, acts, x, y, loss):  # type: ignore[no-untyped-def]
    tW = [torch.tensor(w, requires_grad=True) for w in Ws]
    tb = [torch.tensor(b, requires_grad=True) for b in bs]
    a = torch.tensor(x)
    for w, b, act in zip(tW, tb, acts, strict=True):
        a = TORCH_ACT[act](a @ w.T + b)
    torch_loss(loss, a, torch.tensor(y)).backward()
    return [w.grad.numpy() for w in tW], [b.grad.numpy() for b in tb]


# ------------------------------------------------------------------- the grid
ELEMENTWISE = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "gelu", "elu"]
ALL_ACTS = [*ELEMENTWISE, "softmax"]
CASES = (
    [(h, o, loss) for loss in ("sse", "half_sse", "mse") for h in ALL_ACTS for o in ALL_ACTS]
    + [(h, "softmax", "cross_entropy") for h in ALL_ACTS]
    + [(h, "sigmoid", "binary_cross_entropy") for h in ALL_ACTS]
    + [(h, "identity", "softmax_cross_entropy") for h in ALL_ACTS]
    + [(h, "identity", "sigmoid_binary_cross_entropy") for h in ALL_ACTS]
)


def test_grid_covers_every_activation_and_loss() -> None:
    assert {h for h, _, _ in CASES} == set(ACTIVATIONS)
    assert {o for _, o, _ in CASES} == set(ACTIVATIONS)
    assert {loss for _, _, loss in CASES} == set(LOSSES)


def make_problem(hidden: str, output: str, loss: str, bias: bool, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    sizes = [3, 4, 3, 2]
    Ws = [rng.normal(0, 0.8, (sizes[i + 1], sizes[i])) for i in range(3)]
    bs = [rng.normal(0, 0.5, sizes[i + 1]) if bias else np.zeros(sizes[i + 1]) for i in range(3)]
    x = rng.normal(size=(5, 3))
    if loss in ("cross_entropy", "softmax_cross_entropy"):
        y = np.eye(2)[rng.integers(0, 2, 5)]
    elif loss in ("binary_cross_entropy", "sigmoid_binary_cross_entropy"):
        y = rng.uniform(0.0, 1.0, (5, 2))  # soft targets exercise every term
    else:
        y = rng.normal(size=(5, 2))
    return Ws, bs, [hidden, hidden, output], x, y


def engine_gradients(Ws, bs, acts, x, y, loss, bias):  # type: ignore[no-untyped-def]
    layers = [
        Dense(w.shape[1], w.shape[0], bias=b if bias else False, activation=act, weights=w, dtype=np.float64)
        for w, b, act in zip(Ws, bs, acts, strict=True)
    ]
    model = Sequential(*layers)
    get_loss(loss)(model(x), y).backward()
    dW = [layer.W.grad for layer in layers]
    db = [layer.b.grad if bias else np.zeros(layer.out_features) for layer in layers]
    return model, dW, db


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize(("hidden", "output", "loss"), CASES)
def test_engine_equals_notes_and_torch(hidden: str, output: str, loss: str, bias: bool, rel_err) -> None:
    Ws, bs, acts, x, y = make_problem(hidden, output, loss, bias, seed=len(hidden) * 31 + len(output) * 7)
    _, dW, db = engine_gradients(Ws, bs, acts, x, y, loss, bias)
    oW, ob = oracle_gradients(Ws, bs, acts, x, y, loss)
    tW, tb = torch_gradients(Ws, bs, acts, x, y, loss)
    for ell in range(3):
        assert rel_err(dW[ell], oW[ell]) < TOL, f"dC/dW[{ell + 1}] vs the notes"
        assert rel_err(oW[ell], tW[ell]) < TOL, f"notes vs torch at dC/dW[{ell + 1}]"
        if bias:
            assert rel_err(db[ell], ob[ell]) < TOL, f"dC/db[{ell + 1}] vs the notes"
            assert rel_err(ob[ell], tb[ell]) < TOL, f"notes vs torch at dC/db[{ell + 1}]"


@pytest.mark.parametrize(
    ("output", "loss"), [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy")]
)
@pytest.mark.parametrize("hidden", ["tanh", "relu"])
def test_fused_training_step_equals_the_full_jacobian(hidden: str, output: str, loss: str, rel_err) -> None:
    """The Trainer fuses softmax + cross-entropy (delta[L] = a - y); the notes use the full Jacobian."""
    Ws, bs, acts, x, y = make_problem(hidden, output, loss, True, seed=5)
    if loss == "binary_cross_entropy":
        y = np.round(y)
    model, _, _ = engine_gradients(Ws, bs, acts, x, y, loss, True)
    trainer = Trainer(model, loss, "sgd", lr=0.1)
    assert trainer.logits and trainer.step_loss.from_logits
    model.zero_grad()
    trainer.step_loss(model(x, logits=True), y).backward()
    oW, ob = oracle_gradients(Ws, bs, acts, x, y, loss)
    for layer, gW, gb in zip(model.dense_layers(), oW, ob, strict=True):
        assert rel_err(layer.W.grad, gW) < TOL
        assert rel_err(layer.b.grad, gb) < TOL


def test_sum_reduction_is_m_times_the_mean(rel_err) -> None:
    Ws, bs, acts, x, y = make_problem("tanh", "sigmoid", "sse", True, seed=3)
    oW, _ = oracle_gradients(Ws, bs, acts, x, y, "sse")
    layers = [
        Dense(w.shape[1], w.shape[0], bias=b, activation=a, weights=w, dtype=np.float64)
        for w, b, a in zip(Ws, bs, acts, strict=True)
    ]
    get_loss("sse", reduction="sum")(Sequential(*layers)(x), y).backward()
    for layer, g in zip(layers, oW, strict=True):
        assert rel_err(layer.W.grad, x.shape[0] * g) < TOL


def test_oracle_reproduces_a_hand_computed_example() -> None:
    """One sigmoid neuron, note 004's exercise style: x = 1, w = 0.5, b = 0, t = 1.0, half_sse.

    z = 0.5, a = sigmoid(0.5) = 0.622459..., dC/da = a - t = -0.377541...,
    phi'(z) = a (1 - a) = 0.235004..., delta = -0.0887235, dC/dw = delta * x.
    """
    dW, db = oracle_gradients(
        [np.array([[0.5]])], [np.array([0.0])], ["sigmoid"], np.array([[1.0]]), np.array([[1.0]]), "half_sse"
    )
    a = 1 / (1 + math.exp(-0.5))
    assert dW[0][0, 0] == pytest.approx((a - 1) * a * (1 - a), rel=1e-15)
    assert db[0][0] == pytest.approx(-0.0887235, abs=1e-7)
