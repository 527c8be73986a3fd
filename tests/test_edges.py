"""Edge values: kinks, huge logits, -inf entries, ties, exact 0/1 probabilities.

Each case states the convention it pins down and, where PyTorch has one, is
compared with PyTorch autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as tnf

from chainrule import ops
from chainrule.tensor import Tensor

TOL = 1e-10


def _grad(fn: Callable[[Tensor], Tensor], x: np.ndarray, g: np.ndarray | None = None) -> tuple[Any, Any]:
    t = Tensor(np.array(x, dtype=np.float64), requires_grad=True)
    out = fn(t)
    out.backward(np.ones(out.shape) if g is None else g)
    return out.numpy(), t.grad


def _torch_grad(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, g: np.ndarray) -> tuple[Any, Any]:
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = fn(t)
    out.backward(torch.as_tensor(g))
    return out.detach().numpy(), t.grad.numpy()


# ------------------------------------------------------------------- kinks
def test_relu_derivative_at_zero_is_zero() -> None:
    _, g = _grad(ops.relu, np.array([-1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0, 1.0])
    _, tg = _torch_grad(torch.relu, np.array([-1.0, 0.0, 1.0]), np.ones(3))
    np.testing.assert_array_equal(g, tg)


@pytest.mark.parametrize("slope", [0.01, 0.2])
def test_leaky_relu_derivative_at_zero_is_slope(slope: float) -> None:
    x = np.array([-1.0, 0.0, 1.0])
    _, g = _grad(lambda t: ops.leaky_relu(t, slope=slope), x)
    np.testing.assert_array_equal(g, [slope, slope, 1.0])
    _, tg = _torch_grad(lambda t: tnf.leaky_relu(t, slope), x, np.ones(3))
    np.testing.assert_array_equal(g, tg)


def test_abs_derivative_at_zero_is_zero() -> None:
    _, g = _grad(ops.abs, np.array([-2.0, 0.0, 2.0]))
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0])


def test_max_splits_gradient_among_ties_like_torch_amax() -> None:
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    g = np.array([6.0, 9.0])
    _, mine = _grad(lambda t: t.max(axis=1), x, g)
    np.testing.assert_array_equal(mine, [[0.0, 3.0, 3.0], [3.0, 3.0, 3.0]])
    _, ref = _torch_grad(lambda t: torch.amax(t, dim=1), x, g)
    np.testing.assert_array_equal(mine, ref)
    _, whole = _grad(lambda t: t.max(), x)
    np.testing.assert_array_equal(whole, [[0.0, 0.5, 0.5], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize(("name", "ref"), [("maximum", torch.maximum), ("minimum", torch.minimum)])
def test_maximum_minimum_split_ties_like_torch(name: str, ref: Any) -> None:
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([2.0, 2.0, 2.0])
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    ops.PRIMITIVES[name](ta, tb).backward(np.ones(3))
    pa, pb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    ref(pa, pb).backward(torch.ones(3))
    np.testing.assert_array_equal(ta.grad, pa.grad.numpy())
    np.testing.assert_array_equal(tb.grad, pb.grad.numpy())
    assert ta.grad[1] == 0.5 and tb.grad[1] == 0.5


# ---------------------------------------------------------- huge logits
BIG = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4], [0.0, 0.0, 0.0]])
ROW_OPS = {
    "softmax": (ops.softmax, lambda t: torch.softmax(t, dim=-1)),
    "log_softmax": (ops.log_softmax, lambda t: torch.log_softmax(t, dim=-1)),
    "logsumexp": (ops.logsumexp, lambda t: torch.logsumexp(t, dim=-1)),
}


@pytest.mark.parametrize("name", list(ROW_OPS))
def test_huge_logits_give_finite_values_and_gradients(name: str, rel_err: Any) -> None:
    mine_fn, torch_fn = ROW_OPS[name]
    g = np.random.default_rng(0).standard_normal(mine_fn(Tensor(BIG)).shape)
    out, grad = _grad(mine_fn, BIG, g)
    t_out, t_grad = _torch_grad(torch_fn, BIG, g)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(grad))
    assert rel_err(out, t_out) <= TOL and rel_err(grad, t_grad) <= TOL


def test_softmax_cross_entropy_with_huge_logits(rel_err: Any) -> None:
    y = np.eye(3)[[1, 0, 2, 1]]  # exact 0/1 probabilities, the true class often at -1e4
    z = Tensor(BIG, requires_grad=True)
    c = ops.softmax_cross_entropy(z, y)
    c.sum().backward()
    tz = torch.tensor(BIG, requires_grad=True)
    tc = tnf.cross_entropy(tz, torch.as_tensor(y.argmax(axis=1)), reduction="none")
    tc.sum().backward()
    assert np.all(np.isfinite(c.numpy())) and np.all(np.isfinite(z.grad))
    assert rel_err(c.numpy(), tc.detach().numpy()) <= TOL
    assert rel_err(z.grad, tz.grad.numpy()) <= TOL
    assert c.numpy()[0] == 2e4  # -log softmax = 1e4 - (-1e4): exact, no overflow


@pytest.mark.parametrize("z", [1e4, -1e4, 800.0, -800.0])
def test_sigmoid_is_finite_with_exact_limits(z: float) -> None:
    out, grad = _grad(ops.sigmoid, np.array([z]))
    assert out[0] == (1.0 if z > 0 else 0.0)
    assert grad[0] == 0.0


def test_sigmoid_matches_torch_over_a_wide_range(rel_err: Any) -> None:
    x = np.linspace(-40, 40, 81)
    out, grad = _grad(ops.sigmoid, x)
    t_out, t_grad = _torch_grad(torch.sigmoid, x, np.ones_like(x))
    assert rel_err(out, t_out) <= TOL and rel_err(grad, t_grad) <= TOL


@pytest.mark.parametrize("y_value", [0.0, 1.0])
def test_sigmoid_bce_with_exact_labels_and_huge_logits(y_value: float, rel_err: Any) -> None:
    z_np = np.array([1e4, -1e4, 0.0, 30.0, -30.0])
    y = np.full(5, y_value)
    z = Tensor(z_np, requires_grad=True)
    c = ops.sigmoid_binary_cross_entropy(z, y)
    c.sum().backward()
    tz = torch.tensor(z_np, requires_grad=True)
    tc = tnf.binary_cross_entropy_with_logits(tz, torch.as_tensor(y), reduction="none")
    tc.sum().backward()
    assert np.all(np.isfinite(c.numpy())) and np.all(np.isfinite(z.grad))
    assert rel_err(c.numpy(), tc.detach().numpy()) <= TOL
    assert rel_err(z.grad, tz.grad.numpy()) <= TOL
    right = 0 if y_value == 1.0 else 1  # the confidently right logit costs exactly 0
    assert c.numpy()[right] == 0.0


def test_zero_logits_give_uniform_softmax_and_log_k_loss() -> None:
    z = np.zeros((2, 4))
    np.testing.assert_allclose(ops.softmax(Tensor(z)).numpy(), 0.25)
    c = ops.softmax_cross_entropy(Tensor(z), np.eye(4)[[0, 3]])
    np.testing.assert_allclose(c.numpy(), np.log(4.0), rtol=1e-15)


# ------------------------------------------------------------- -inf entries
NEG_INF = np.array([[0.5, -np.inf, 1.5, -0.3], [-np.inf, -np.inf, 2.0, -np.inf], [1.0, 2.0, 3.0, 4.0]])


@pytest.mark.parametrize("name", list(ROW_OPS))
def test_minus_inf_entries_give_no_nan(name: str, rel_err: Any) -> None:
    mine_fn, torch_fn = ROW_OPS[name]
    g = np.random.default_rng(1).standard_normal(mine_fn(Tensor(NEG_INF)).shape)
    out, grad = _grad(mine_fn, NEG_INF, g)
    t_out, t_grad = _torch_grad(torch_fn, NEG_INF, g)
    assert not np.any(np.isnan(out)) and np.all(np.isfinite(grad))
    finite = np.isfinite(t_out)
    np.testing.assert_array_equal(np.isfinite(out), finite)  # -inf only where log(0) is the answer
    assert rel_err(out[finite], t_out[finite]) <= TOL
    assert rel_err(grad, t_grad) <= TOL


def test_softmax_cross_entropy_with_minus_inf_on_wrong_classes(rel_err: Any) -> None:
    y = np.eye(4)[[2, 2, 3]]
    z = Tensor(NEG_INF, requires_grad=True)
    c = ops.softmax_cross_entropy(z, y)
    c.sum().backward()
    assert np.all(np.isfinite(c.numpy())) and np.all(np.isfinite(z.grad))
    tz = torch.tensor(NEG_INF, requires_grad=True)
    tc = tnf.cross_entropy(tz, torch.as_tensor(y.argmax(axis=1)), reduction="none")
    tc.sum().backward()
    assert rel_err(c.numpy(), tc.detach().numpy()) <= TOL
    assert rel_err(z.grad, tz.grad.numpy()) <= TOL
    assert c.numpy()[1] == 0.0  # the only finite logit is the right class: exactly 0 loss


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_many_rows_take_the_transposed_reduction_and_stay_exact(name: str, rng: np.random.Generator) -> None:
    """Batches of >= 64 rows reduce a short class axis through a transposed copy (ops._reduce)."""
    z = rng.standard_normal((300, 10)) * 3
    z[::7, 3] = -np.inf
    z[::11, 0] = 1e4
    x = Tensor(z, requires_grad=True)
    out = getattr(ops, name)(x)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    t = torch.tensor(z, requires_grad=True)
    ref = getattr(torch, name)(t, -1) if name != "logsumexp" else torch.logsumexp(t, -1)
    ref.backward(torch.tensor(g))
    finite = np.isfinite(ref.detach().numpy())
    np.testing.assert_allclose(out.numpy()[finite], ref.detach().numpy()[finite], rtol=1e-12, atol=1e-300)
    assert np.isfinite(x.grad).all()
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-10, atol=1e-12)
