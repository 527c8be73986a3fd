"""Tests for chainrule.losses: each convention by hand, against PyTorch, and its errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as tnf

from chainrule.errors import ConfigError, DataError, ShapeError
from chainrule.functional import one_hot
from chainrule.losses import (
    LOSSES,
    CrossEntropy,
    SoftmaxCrossEntropy,
    fused,
    get_loss,
)
from chainrule.tensor import Tensor

A = np.array([[0.5, 0.2], [0.1, 0.9]])
Y = np.array([[1.0, 0.0], [0.0, 1.0]])


def value_and_grad(name: str, a: np.ndarray, y: np.ndarray, reduction: str = "mean"):  # type: ignore[no-untyped-def]
    t = Tensor(a, requires_grad=True)
    c = get_loss(name, reduction)(t, y)
    c.backward()
    return float(c.data), t.grad


# -------------------------------------------------------------- by hand
def test_sse_by_hand() -> None:
    # C1 = (0.5-1)^2 + 0.2^2 = 0.29, C2 = 0.1^2 + (0.9-1)^2 = 0.02; mean 0.155, sum 0.31
    c, g = value_and_grad("sse", A, Y)
    assert c == pytest.approx(0.155, abs=1e-15)
    np.testing.assert_allclose(g, 2 * (A - Y) / 2, atol=1e-15)  # dC/da = 2(a - y), / m
    c, g = value_and_grad("sse", A, Y, "sum")
    assert c == pytest.approx(0.31, abs=1e-15)
    np.testing.assert_allclose(g, [[-1.0, 0.4], [0.2, -0.2]], atol=1e-15)


def test_half_sse_by_hand() -> None:
    # C = 1/2 (0.29 + 0.02) / 2 = 0.0775; dC/da = (a - y) / m
    c, g = value_and_grad("half_sse", A, Y)
    assert c == pytest.approx(0.0775, abs=1e-15)
    np.testing.assert_allclose(g, [[-0.25, 0.1], [0.05, -0.05]], atol=1e-15)
    c, g = value_and_grad("half_sse", A, Y, "sum")
    assert c == pytest.approx(0.155, abs=1e-15)
    np.testing.assert_allclose(g, A - Y, atol=1e-15)


def test_mse_by_hand() -> None:
    # mean over the 4 entries: 0.31 / 4 = 0.0775; dC/da = 2 (a - y) / 4
    c, g = value_and_grad("mse", A, Y)
    assert c == pytest.approx(0.0775, abs=1e-15)
    np.testing.assert_allclose(g, (A - Y) / 2, atol=1e-15)
    c, _ = value_and_grad("mse", A, Y, "sum")
    assert c == pytest.approx(0.31, abs=1e-15)


def test_cross_entropy_by_hand() -> None:
    # a = [[.25, .75], [.5, .5]], labels [1, 0]: C1 = -log .75 = 0.2876821, C2 = -log .5 = 0.6931472
    a = np.array([[0.25, 0.75], [0.5, 0.5]])
    c, g = value_and_grad("cross_entropy", a, np.array([1, 0]))
    assert c == pytest.approx((0.2876821 + 0.6931472) / 2, abs=1e-7)
    # dC/da = -y / a, / m: [[0, -1/.75/2], [-1/.5/2, 0]]
    np.testing.assert_allclose(g, [[0.0, -2 / 3], [-1.0, 0.0]], atol=1e-15)


def test_binary_cross_entropy_by_hand() -> None:
    # a = [.8, .4], y = [1, 0]: C1 = -log .8 = 0.2231436, C2 = -log .6 = 0.5108256
    a = np.array([[0.8], [0.4]])
    c, g = value_and_grad("binary_cross_entropy", a, np.array([[1.0], [0.0]]))
    assert c == pytest.approx((0.2231436 + 0.5108256) / 2, abs=1e-7)
    # dC/da = (a - y) / (a (1 - a)) / m: -0.2/0.16/2 = -0.625, 0.4/0.24/2 = 0.8333...
    np.testing.assert_allclose(g, [[-0.625], [0.4 / 0.24 / 2]], atol=1e-15)


def test_softmax_cross_entropy_by_hand() -> None:
    # z = [0, ln 3] -> softmax [.25, .75]; label 1: C = -log .75; delta = a - y = [.25, -.25]
    c, g = value_and_grad("softmax_cross_entropy", np.array([[0.0, math.log(3.0)]]), np.array([1]))
    assert c == pytest.approx(-math.log(0.75), rel=1e-15)
    np.testing.assert_allclose(g, [[0.25, -0.25]], atol=1e-15)


def test_sigmoid_binary_cross_entropy_by_hand() -> None:
    # z = 0 -> a = .5; y = 1: C = log 2; delta = a - y = -0.5
    c, g = value_and_grad("sigmoid_binary_cross_entropy", np.array([[0.0]]), np.array([[1.0]]))
    assert c == pytest.approx(math.log(2.0), rel=1e-15)
    np.testing.assert_allclose(g, [[-0.5]], atol=1e-15)


# --------------------------------------------------------------- torch
def torch_grad(fn, a: np.ndarray):  # type: ignore[no-untyped-def]
    t = torch.tensor(a, requires_grad=True)
    c = fn(t)
    c.backward()
    return float(c.detach()), t.grad.numpy()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_losses_match_torch(reduction: str, rng: np.random.Generator, rel_err) -> None:
    z = rng.normal(size=(6, 4))
    labels = rng.integers(0, 4, 6)
    y = rng.normal(size=(6, 4))
    p = rng.uniform(0.05, 0.95, (6, 1))
    yb = rng.integers(0, 2, (6, 1)).astype(np.float64)
    softmax = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    cases = [
        ("mse", z, y, lambda t: tnf.mse_loss(t, torch.tensor(y), reduction=reduction)),
        (
            "softmax_cross_entropy",
            z,
            labels,
            lambda t: tnf.cross_entropy(t, torch.tensor(labels), reduction=reduction),
        ),
        (
            "cross_entropy",
            softmax,
            labels,
            lambda t: tnf.nll_loss(torch.log(t), torch.tensor(labels), reduction=reduction),
        ),
        (
            "binary_cross_entropy",
            p,
            yb,
            lambda t: tnf.binary_cross_entropy(t, torch.tensor(yb), reduction=reduction),
        ),
        (
            "sigmoid_binary_cross_entropy",
            z[:, :1],
            yb,
            lambda t: tnf.binary_cross_entropy_with_logits(t, torch.tensor(yb), reduction=reduction),
        ),
    ]
    for name, a, target, fn in cases:
        c, g = value_and_grad(name, a, target, reduction)
        tc, tg = torch_grad(fn, a)
        assert c == pytest.approx(tc, rel=1e-12), name
        assert rel_err(g, tg) < 1e-12, name


def test_integer_labels_and_one_hot_agree(rng: np.random.Generator) -> None:
    z = rng.normal(size=(5, 3))
    labels = np.array([0, 2, 1, 2, 0])
    for name in ("softmax_cross_entropy", "sse", "half_sse", "mse"):
        c1, g1 = value_and_grad(name, z, labels)
        c2, g2 = value_and_grad(name, z, np.eye(3)[labels])
        # labels take the fused label op for softmax_cross_entropy (other rounding): equal to 1e-14
        np.testing.assert_allclose(c1, c2, rtol=1e-14, err_msg=name)
        np.testing.assert_allclose(g1, g2, rtol=1e-14, atol=1e-17, err_msg=name)


def test_one_output_takes_labels_of_shape_m() -> None:
    c1, _ = value_and_grad("sigmoid_binary_cross_entropy", np.array([[0.3], [-1.2]]), np.array([1, 0]))
    c2, _ = value_and_grad(
        "sigmoid_binary_cross_entropy", np.array([[0.3], [-1.2]]), np.array([[1.0], [0.0]])
    )
    assert c1 == c2


def test_one_hot_rows() -> None:
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])


# ------------------------------------------------------------- stability
def test_logits_of_plus_minus_1e4_stay_finite() -> None:
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]])
    c, g = value_and_grad("softmax_cross_entropy", z, np.array([0, 0]))
    assert c == pytest.approx(1e4, rel=1e-12)  # row 2 costs 2e4, row 1 costs 0
    assert np.isfinite(g).all()
    c, g = value_and_grad("sigmoid_binary_cross_entropy", z, np.ones_like(z))
    assert np.isfinite(c) and np.isfinite(g).all()


def test_exact_zero_one_probabilities_with_matching_targets_cost_nothing() -> None:
    c, g = value_and_grad("cross_entropy", np.array([[1.0, 0.0]]), np.array([0]))
    assert c == 0.0 and np.isfinite(g).all()
    c, g = value_and_grad("binary_cross_entropy", np.array([[1.0], [0.0]]), np.array([[1.0], [0.0]]))
    assert c == 0.0 and np.isfinite(g).all()


# ------------------------------------------------------------ registry
def test_every_loss_is_registered_and_has_a_repr() -> None:
    assert set(LOSSES) == {
        "sse",
        "half_sse",
        "mse",
        "cross_entropy",
        "binary_cross_entropy",
        "softmax_cross_entropy",
        "sigmoid_binary_cross_entropy",
    }
    assert repr(get_loss("sse", "sum")) == "SSE(reduction='sum')"
    loss = CrossEntropy()
    assert get_loss(loss) is loss


def test_fused_pairs() -> None:
    f = fused(CrossEntropy("sum"), "softmax")
    assert isinstance(f, SoftmaxCrossEntropy) and f.reduction == "sum"
    assert fused(get_loss("binary_cross_entropy"), "sigmoid").name == "sigmoid_binary_cross_entropy"
    assert fused(get_loss("mse"), "softmax") is None
    assert fused(get_loss("cross_entropy"), "sigmoid") is None


# --------------------------------------------------------------- errors
def test_unknown_loss() -> None:
    with pytest.raises(ConfigError, match=r"unknown loss 'hinge'; expected one of \['binary_cross_entropy'"):
        get_loss("hinge")


def test_bad_reduction() -> None:
    with pytest.raises(ConfigError, match=r"SSE: reduction must be one of \('mean', 'sum'\), got 'avg'"):
        get_loss("sse", "avg")


def test_target_of_wrong_shape() -> None:
    with pytest.raises(
        ShapeError, match=r"expected target of shape \(2, 2\) or integer labels of shape \(2,\), got \(3,\)"
    ):
        get_loss("mse")(Tensor(A), np.zeros(3))
    with pytest.raises(  # float labels are not class labels: say so, not that the shape is wrong
        DataError,
        match=r"got float64 targets of shape \(2,\), but one target per row must be an integer class",
    ):
        get_loss("mse")(Tensor(A), np.array([0.0, 1.0]))
    with pytest.raises(DataError, match=r"CrossEntropy\(reduction='mean'\): got <U5 targets of shape \(2,\)"):
        get_loss("cross_entropy")(Tensor(A), np.array(["cat", "mouse"]))


def test_label_out_of_range() -> None:
    with pytest.raises(
        DataError,
        match=r"SoftmaxCrossEntropy\(reduction='mean'\): labels\[1\] = 2 is out of range for n_classes=2 "
        r"\(expected 0 .. 1\)",
    ):
        get_loss("softmax_cross_entropy")(Tensor(A), np.array([0, 2]))
    with pytest.raises(
        DataError, match=r"one_hot: labels\[0\] = -1 is out of range for n_classes=3 \(expected 0 .. 2\)"
    ):
        one_hot(np.array([-1, 1]), 3)


# ------------------------------------------------- binary cross-entropy targets lie in [0, 1]
@pytest.mark.parametrize("name", ["binary_cross_entropy", "sigmoid_binary_cross_entropy"])
def test_binary_cross_entropy_names_a_target_outside_the_unit_interval(name: str) -> None:
    loss = get_loss(name)
    out = Tensor(np.full((4, 1), 0.5), requires_grad=True)
    assert np.isfinite(loss(out, np.array([0.0, 0.3, 1.0, 0.7])).item())  # soft labels are fine
    with pytest.raises(DataError, match=r"targets must lie in \[0, 1\] .*; target\[2, 0\] = 2\.0\."):
        loss(out, np.array([0, 1, 2, 1]))
    with pytest.raises(DataError, match=r"target\[1, 0\] = -0\.5\."):
        loss(out, np.array([[0.0], [-0.5], [1.0], [1.0]]))


def test_fit_refuses_labels_a_sigmoid_output_cannot_learn() -> None:
    from chainrule.layers import mlp
    from chainrule.train import fit

    x = np.random.default_rng(0).random((20, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 1] * 5)  # three classes for one sigmoid unit
    with pytest.raises(DataError, match=r"SigmoidBinaryCrossEntropy.*target\[2, 0\] = 2\.0"):
        fit(mlp([3, 4, 1], output="sigmoid"), x, y, "binary_cross_entropy", "sgd", 0.1, epochs=1, verbose=0)


# ------------------------------------------------------ per-example weights
W8 = np.array([1, 2, 0, 3, 1, 2])  # integer weights, a zero among them: row i counts W8[i] times
_REP = np.repeat(np.arange(6), W8)  # the rows of the repeated batch


def _torch_unweighted(name: str, reduction: str):  # type: ignore[no-untyped-def]
    """PyTorch's own batch loss for chainrule's convention ``name``, no weights, on any batch."""

    def per_batch(sum_fn, t, y):  # type: ignore[no-untyped-def]
        # a loss PyTorch only offers as a sum over entries: / m for chainrule's mean over examples
        return sum_fn(t, y) if reduction == "sum" else sum_fn(t, y) / t.shape[0]

    return {
        "sse": lambda t, y: per_batch(lambda a, b: tnf.mse_loss(a, b, reduction="sum"), t, y),
        "half_sse": lambda t, y: 0.5 * per_batch(lambda a, b: tnf.mse_loss(a, b, reduction="sum"), t, y),
        "mse": lambda t, y: tnf.mse_loss(t, y, reduction=reduction),
        "cross_entropy": lambda t, y: tnf.nll_loss(torch.log(t), y, reduction=reduction),
        "binary_cross_entropy": lambda t, y: per_batch(
            lambda a, b: tnf.binary_cross_entropy(a, b, reduction="sum"), t, y
        ),
        "softmax_cross_entropy": lambda t, y: tnf.cross_entropy(t, y, reduction=reduction),
        "sigmoid_binary_cross_entropy": lambda t, y: per_batch(
            lambda a, b: tnf.binary_cross_entropy_with_logits(a, b, reduction="sum"), t, y
        ),
    }[name]


def _loss_case(name: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An output ``(6, 3)`` in the loss's domain and a target (labels where the loss takes them)."""
    z = rng.normal(size=(6, 3))
    if name == "cross_entropy":
        return np.exp(z) / np.exp(z).sum(1, keepdims=True), rng.integers(0, 3, 6)
    if name == "binary_cross_entropy":
        return rng.uniform(0.05, 0.95, (6, 3)), rng.integers(0, 2, (6, 3)).astype(np.float64)
    if name == "sigmoid_binary_cross_entropy":
        return z, rng.integers(0, 2, (6, 3)).astype(np.float64)
    if name == "softmax_cross_entropy":
        return z, rng.integers(0, 3, 6)
    return z, rng.normal(size=(6, 3))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_weight_k_equals_the_row_repeated_k_times_against_torch(
    name: str, reduction: str, rng: np.random.Generator, rel_err
) -> None:
    a, y = _loss_case(name, rng)
    t = Tensor(a, requires_grad=True)
    c = get_loss(name, reduction)(t, y, W8)
    c.backward()
    # PyTorch's unweighted loss on the batch with row i repeated W8[i] times; indexing the leaf
    # makes autograd add the copies' gradients back onto row i
    leaf = torch.tensor(a, requires_grad=True)
    tc = _torch_unweighted(name, reduction)(leaf[torch.tensor(_REP)], torch.tensor(y)[torch.tensor(_REP)])
    tc.backward()
    assert float(c.data) == pytest.approx(float(tc.detach()), rel=1e-13), name
    assert rel_err(t.grad, leaf.grad.numpy()) < 1e-13, name
    assert np.all(t.grad[2] == 0)  # weight 0: the row is not there


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_unit_weights_change_nothing(name: str, rng: np.random.Generator) -> None:
    a, y = _loss_case(name, rng)
    for reduction in ("mean", "sum"):
        plain = float(get_loss(name, reduction)(Tensor(a), y).data)
        ones = float(get_loss(name, reduction)(Tensor(a), y, np.ones(6)).data)
        assert ones == pytest.approx(plain, rel=1e-14), (name, reduction)


def test_class_weights_as_sample_weights_equal_torch_class_weighted_cross_entropy(
    rng: np.random.Generator, rel_err
) -> None:
    # torch's weight= is per class; its mean divides by sum_i weight[y_i]: the same 1/sum(w)
    z, labels = rng.normal(size=(7, 3)), rng.integers(0, 3, 7)
    class_weight = np.array([0.5, 3.0, 1.25])
    t = Tensor(z, requires_grad=True)
    c = get_loss("softmax_cross_entropy")(t, labels, class_weight[labels])
    c.backward()
    leaf = torch.tensor(z, requires_grad=True)
    tc = tnf.cross_entropy(leaf, torch.tensor(labels), weight=torch.tensor(class_weight))
    tc.backward()
    assert float(c.data) == pytest.approx(float(tc.detach()), rel=1e-14)
    assert rel_err(t.grad, leaf.grad.numpy()) < 1e-14


def test_bad_sample_weights_are_named() -> None:
    loss = get_loss("mse")
    with pytest.raises(
        ShapeError, match=r"MSE\(reduction='mean'\): expected sample weights of shape \(2,\), got \(3,\)"
    ):
        loss(Tensor(A), Y, np.ones(3))
    with pytest.raises(DataError, match=r"sample weights must be finite and >= 0; weight\[1\] = -1\.0\."):
        loss(Tensor(A), Y, np.array([1.0, -1.0]))
    with pytest.raises(DataError, match=r"weight\[0\] = nan\."):
        loss(Tensor(A), Y, np.array([np.nan, 1.0]))
    with pytest.raises(DataError, match=r"the sample weights sum to 0\.0; at least one must be positive"):
        loss(Tensor(A), Y, np.zeros(2))
    assert float(get_loss("mse", "sum")(Tensor(A), Y, np.zeros(2)).data) == 0.0  # a sum of nothing is 0
