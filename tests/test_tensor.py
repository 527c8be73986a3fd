"""Tests of :mod:`chainrule.tensor`: the graph, the backward driver, grad modes, functional forms."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import ops
from chainrule.tensor import Primitive, Tensor, _unbroadcast


# ------------------------------------------------------------ construction
def test_tensor_wraps_arrays_and_lists() -> None:
    t = Tensor([[1.0, 2.0], [3.0, 4.0]], name="x")
    assert t.shape == (2, 2) and t.ndim == 2 and t.size == 4 and len(t) == 2
    assert t.dtype == np.float64
    assert t.is_leaf and t.op is None and t.grad is None and not t.requires_grad
    assert Tensor(t).data is t.data
    assert Tensor([1, 2], dtype=np.float32).dtype == np.float32


def test_repr_shows_values_dtype_grad_op_and_name() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True, name="w")
    assert repr(x) == "Tensor([1., 2.], dtype=float64, requires_grad=True, name='w')"
    y = x * 2.0
    assert repr(y) == "Tensor([2., 4.], dtype=float64, requires_grad=True, op='multiply')"
    assert repr(Tensor([1, 2])) == "Tensor([1, 2], dtype=int64)"


def test_item_and_numpy() -> None:
    assert Tensor([[3.5]]).item() == 3.5
    assert isinstance(Tensor([1.0]).numpy(), np.ndarray)
    with pytest.raises(cr.ShapeError, match=r"item: expected a tensor with one element, got shape \(2,\)"):
        Tensor([1.0, 2.0]).item()


# ---------------------------------------------------------------- backward
def test_backward_accumulates_across_two_calls() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [5.0, 7.0])
    x.zero_grad()
    assert x.grad is None


def test_tensor_used_twice_accumulates() -> None:
    x = Tensor([1.0, -2.0], requires_grad=True)
    y = x * x + x  # x reaches y along three paths
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data + 1)


def test_diamond_graph() -> None:
    x = Tensor(3.0, requires_grad=True)
    a = x * 2.0
    b = ops.exp(a)
    c = a * b  # a reaches c directly and through b
    c.backward()
    # dc/dx = 2 (e^{2x} + 2x e^{2x})
    assert np.isclose(x.grad, 2 * (np.exp(6.0) + 6.0 * np.exp(6.0)))


def test_leaf_grads_are_writable_and_not_aliased() -> None:
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    g = np.array([1.0, 1.0])
    (a + b).backward(g)  # add hands the same g to both inputs
    assert a.grad is not b.grad
    assert not np.shares_memory(a.grad, b.grad)
    assert not np.shares_memory(a.grad, g)
    a.grad[0] = 100.0
    assert b.grad[0] == 1.0 and g[0] == 1.0
    assert a.grad.flags.writeable and b.grad.flags.writeable


def test_broadcast_view_gradients_are_writable_copies() -> None:
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    x.sum().backward()  # the sum rule returns a read-only broadcast view
    assert x.grad.flags.writeable and x.grad.shape == (2, 3)
    x.grad *= 2.0
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 2.0))


def test_broadcast_gradients_reduce_to_input_shapes() -> None:
    a = Tensor(np.ones((2, 1, 4)), requires_grad=True)
    b = Tensor(np.ones((3, 1)), requires_grad=True)
    c = Tensor(2.0, requires_grad=True)
    (a * b * c).sum().backward()
    assert a.grad.shape == (2, 1, 4) and b.grad.shape == (3, 1) and c.grad.shape == ()
    np.testing.assert_array_equal(a.grad, np.full((2, 1, 4), 6.0))
    np.testing.assert_array_equal(b.grad, np.full((3, 1), 16.0))
    assert c.grad == 24.0


def test_unbroadcast_sums_added_and_stretched_axes() -> None:
    g = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(_unbroadcast(g, (3, 1)), g.sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(_unbroadcast(g, ()), g.sum())
    assert _unbroadcast(g, (2, 3, 4)) is g


def test_backward_on_non_scalar_without_gradient_raises() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(cr.GradientError, match=r"a tensor of shape \(2,\) needs an explicit gradient"):
        (x * 2.0).backward()


def test_backward_gradient_of_wrong_shape_raises() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(cr.ShapeError, match=r"gradient must have the tensor's shape \(2,\), got \(3,\)"):
        (x * 2.0).backward(np.ones(3))


def test_backward_without_requires_grad_raises() -> None:
    with pytest.raises(cr.GradientError, match="this tensor does not require gradients"):
        (Tensor([1.0]) * 2.0).backward()


def test_backward_with_explicit_gradient_tensor() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * x).backward(Tensor([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 40.0])


def test_long_chain_has_no_recursion_error() -> None:
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0000001
    y.backward()
    assert np.isclose(x.grad, 1.0000001**100_000, rtol=1e-9)


def test_only_leaves_get_grad_unless_retained() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    (h * h).sum().backward()
    assert h.grad is None and not h.is_leaf and h.op == "multiply"


def test_retain_grad_gives_delta() -> None:
    # one dense layer with a sigmoid output and squared error: delta = dC/dz = (a - y) a (1 - a)
    rng = np.random.default_rng(1)
    a_prev = Tensor(rng.standard_normal((4, 3)))
    w = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = Tensor(np.zeros(2), requires_grad=True)
    y = rng.standard_normal((4, 2))
    z = ops.linear(a_prev, w, b).retain_grad()
    a = ops.sigmoid(z)
    (((a - y) ** 2.0).sum() * 0.5).backward()
    delta = (a.data - y) * a.data * (1 - a.data)
    np.testing.assert_allclose(z.grad, delta, rtol=1e-12)
    np.testing.assert_allclose(w.grad, delta.T @ a_prev.data, rtol=1e-12)
    np.testing.assert_allclose(b.grad, delta.sum(axis=0), rtol=1e-12)


def test_retain_grad_on_constant_raises() -> None:
    with pytest.raises(cr.GradientError, match="retain_grad: this tensor does not require gradients"):
        Tensor([1.0]).retain_grad()


def test_rule_returning_wrong_count_or_shape_raises() -> None:
    bad_count = Primitive("bad_count", lambda x: x * 2, lambda g, out, x: (g, g), "wrong")
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(cr.GradientError, match="bad_count: VJP rule returned 2 gradients for 1 inputs"):
        bad_count(x).sum().backward()
    bad_shape = Primitive("bad_shape", lambda x: x * 2, lambda g, out, x: (np.ones(5),), "wrong")
    with pytest.raises(cr.ShapeError, match=r"bad_shape: VJP rule returned a gradient of shape \(5,\)"):
        bad_shape(x).sum().backward()


# --------------------------------------------------------------- grad modes
def test_no_grad_records_nothing_and_enable_grad_restores() -> None:
    x = Tensor([1.0], requires_grad=True)
    with cr.no_grad():
        assert not cr.is_grad_enabled()
        y = x * 2.0
        with cr.enable_grad():
            assert cr.is_grad_enabled()
            z = x * 2.0
        assert not cr.is_grad_enabled()
    assert cr.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad and z.op == "multiply"


def test_no_grad_restores_after_exception() -> None:
    with pytest.raises(RuntimeError), cr.no_grad():
        raise RuntimeError("boom")
    assert cr.is_grad_enabled()


def test_detach_cuts_the_graph_and_shares_data() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2.0).detach()
    assert not d.requires_grad and d.is_leaf
    y = x * d
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, d.data)  # no gradient through d
    assert x.detach().data is x.data


def test_constants_do_not_get_grads() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    c = Tensor([3.0, 4.0])
    (x * c).sum().backward()
    assert c.grad is None


# ------------------------------------------------------------------- dtypes
def test_float32_stays_float32_through_ops_and_gradients() -> None:
    x = Tensor(np.array([0.5, -1.5, 2.0], dtype=np.float32), requires_grad=True)
    y = 2.0 * x + 1.0
    y = y / 3.0 - 0.5
    y = ops.sigmoid(y) * ops.tanh(x) + ops.relu(x) ** 2.0 + ops.leaky_relu(x, slope=0.1)
    y = ops.maximum(y, 0.1) + ops.exp(x * 0.5) + ops.softmax(x) + ops.log_softmax(x)
    y = y.mean() + ops.logsumexp(x) + x.max()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


def test_float32_losses_and_matmul_keep_float32() -> None:
    rng = np.random.default_rng(0)
    a = Tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    y = np.eye(2, dtype=np.float32)[[0, 1, 1, 0]]
    z = ops.linear(a, w)
    c = ops.softmax_cross_entropy(z, y).sum() + ops.sigmoid_binary_cross_entropy(z, y).mean()
    c = c + (a @ w.T).sum()
    assert c.dtype == np.float32
    c.backward()
    assert a.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_requires_grad_on_int_raises() -> None:
    with pytest.raises(
        cr.DTypeError, match="only floating-point tensors can require gradients, got dtype int"
    ):
        Tensor([1, 2], requires_grad=True)


# ----------------------------------------------------------- functional form
def test_grad_and_value_and_grad() -> None:
    vg = cr.value_and_grad(lambda x: (x * x).sum())
    value, g = vg(np.array([1.0, 3.0]))
    assert float(value) == 10.0
    np.testing.assert_array_equal(g, [2.0, 6.0])
    np.testing.assert_array_equal(cr.grad(lambda x: (x * x * x).sum())([2.0]), [12.0])


def test_value_and_grad_with_argnums_tuple() -> None:
    def f(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
        return (a * b + c).sum()

    a, b, c = np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([5.0, 6.0])
    value, (ga, gc) = cr.value_and_grad(f, argnums=(0, 2))(a, b, c)
    assert float(value) == 3 + 8 + 11
    np.testing.assert_array_equal(ga, b)
    np.testing.assert_array_equal(gc, [1.0, 1.0])
    gb = cr.grad(f, argnums=1)(a, b, c)
    np.testing.assert_array_equal(gb, a)


def test_value_and_grad_converts_ints_and_gives_zero_for_unused() -> None:
    g0, g1 = cr.grad(lambda x, y: (x * 2.0).sum(), argnums=[0, 1])([1, 2], [3.0])
    assert g0.dtype == np.float64
    np.testing.assert_array_equal(g0, [2.0, 2.0])
    np.testing.assert_array_equal(g1, [0.0])


def test_value_and_grad_errors() -> None:
    with pytest.raises(cr.ConfigError, match=r"value_and_grad: argnums \(3,\) out of range for 1 args"):
        cr.grad(lambda x: x.sum(), argnums=3)([1.0])
    with pytest.raises(
        cr.ShapeError, match=r"f must return a one-element Tensor, got Tensor of shape \(2,\)"
    ):
        cr.grad(lambda x: x * 2.0)([1.0, 2.0])
    with pytest.raises(cr.ShapeError, match="f must return a one-element Tensor, got float"):
        cr.grad(lambda x: 1.0)([1.0])  # type: ignore[arg-type, return-value]


def test_grad_works_inside_no_grad() -> None:
    with cr.no_grad():
        g = cr.grad(lambda x: (x * x).sum())([3.0])
    np.testing.assert_array_equal(g, [6.0])


# ---------------------------------------------------------------- operators
def test_operators_and_methods_route_through_the_table() -> None:
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert (x + 1).op == "add" and (1 + x).op == "add"
    assert (x - 1).op == "subtract" and (1 - x).op == "subtract"
    assert (x * 2).op == "multiply" and (x / 2).op == "divide" and (2 / x).op == "divide"
    assert (x**2).op == "power" and (2**x).op == "power"
    assert (x @ x).op == "matmul" and (np.eye(2) @ x).op == "matmul"
    assert (-x).op == "negative" and abs(x).op == "abs"
    assert x[0].op == "getitem" and x.T.op == "transpose"
    assert x.reshape(4).shape == (4,) and x.reshape((1, 4)).shape == (1, 4)
    assert x.transpose(1, 0).op == "transpose"
    assert (
        x.sum(axis=0).shape == (2,) and x.mean().shape == () and x.max(axis=1, keepdims=True).shape == (2, 1)
    )
    assert x.exp().op == "exp" and x.log().op == "log" and x.sqrt().op == "sqrt"
    np.testing.assert_array_equal((1 - x).numpy(), 1 - x.data)
    np.testing.assert_array_equal((np.ones(2) + x).numpy(), 1 + x.data)  # ndarray defers to Tensor


def test_getitem_with_tensor_index() -> None:
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    idx = Tensor(np.array([2, 2, 0]))
    x[idx].sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 0.0, 2.0])


def test_where_helper_sends_gradient_to_the_chosen_branch() -> None:
    a = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = Tensor([10.0, 20.0, 30.0], requires_grad=True)
    out = ops.where(a > 1.5, a, b)
    np.testing.assert_array_equal(out.numpy(), [10.0, 2.0, 3.0])
    out.sum().backward()
    np.testing.assert_array_equal(a.grad, [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(b.grad, [1.0, 0.0, 0.0])


def test_primitive_repr() -> None:
    assert repr(ops.PRIMITIVES["exp"]) == "Primitive('exp', differentiable)"
    assert repr(ops.PRIMITIVES["argmax"]) == "Primitive('argmax', non-differentiable)"
    assert ops.PRIMITIVES["exp"].__doc__ == ops.exp.forward.__doc__


def test_no_two_gradients_share_memory_in_a_network(rng: np.random.Generator) -> None:
    """Rules may return views (dW as (A^T delta)^T); stored gradients still never alias."""
    from chainrule.layers import mlp
    from chainrule.losses import get_loss

    model = mlp([5, 4, 4, 3], "tanh", seed=0, dtype=np.float64)
    x = cr.Tensor(rng.standard_normal((6, 5)), requires_grad=True)
    h = model(x)
    loss = get_loss("softmax_cross_entropy")(h + h, rng.integers(0, 3, 6))  # h reaches the loss twice
    loss.backward()
    grads = [p.grad for p in model.parameters()] + [x.grad]
    assert all(g is not None and g.flags.writeable for g in grads)
    for i, a in enumerate(grads):
        for b in grads[i + 1 :]:
            assert not np.shares_memory(a, b)
    assert model[0].W.data.flags.f_contiguous  # Dense keeps W column-major (see layers.Dense)


def test_equality_is_elementwise_like_the_other_comparisons() -> None:
    a, b = cr.Tensor([1.0, 2.0, 3.0]), cr.Tensor([1.0, 0.0, 3.0])
    assert (a == b).numpy().tolist() == [True, False, True]
    assert (a != b).numpy().tolist() == [False, True, False]
    assert (a == 2.0).numpy().tolist() == [False, True, False]
    assert (a == b).op is None and not (a == b).requires_grad  # comparisons record nothing
    with pytest.raises(cr.ShapeError, match=r"the truth value of a tensor of shape \(3,\) is ambiguous"):
        bool(a == b)
    assert bool(cr.Tensor([2.0]) == 2.0)
    assert len({a, b, a}) == 2  # hashing stays by identity (membership in a list compares, as in torch)
