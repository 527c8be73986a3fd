"""Property tests (hypothesis): broadcasting, reductions, softmax and logsumexp identities."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from chainrule import ops
from chainrule.tensor import Tensor

SETTINGS = settings(max_examples=50, deadline=None)
BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "power"]
FLOATS = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(
    name=st.sampled_from(BINARY),
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
    seed=st.integers(0, 2**32 - 1),
)
def test_broadcast_gradients_reduce_to_input_shapes(
    name: str, shapes: hnp.BroadcastableShapes, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    (shape_a, shape_b), result = shapes.input_shapes, shapes.result_shape
    a_np = rng.uniform(0.5, 2.0, shape_a)  # positive: valid for divide and power
    b_np = rng.uniform(0.5, 2.0, shape_b)
    a, b = Tensor(a_np, requires_grad=True), Tensor(b_np, requires_grad=True)
    out = ops.PRIMITIVES[name](a, b)
    assert out.shape == result
    g = rng.standard_normal(result)
    out.backward(g)
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    ta, tb = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    ref = {"add": torch.add, "subtract": torch.sub, "multiply": torch.mul, "divide": torch.div,
           "maximum": torch.maximum, "minimum": torch.minimum, "power": torch.pow}[name]  # fmt: skip
    ref(ta, tb).backward(torch.as_tensor(g))
    np.testing.assert_allclose(a.grad, ta.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.grad, tb.grad.numpy(), rtol=1e-10, atol=1e-12)


@st.composite
def _array_and_axis(draw: st.DrawFn) -> tuple[np.ndarray, int | tuple[int, ...] | None]:
    x = draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), elements=FLOATS))
    axes = draw(st.none() | st.lists(st.integers(0, x.ndim - 1), min_size=1, max_size=x.ndim, unique=True))
    if axes is None:
        return x, None
    negative = draw(st.booleans())  # exercise negative axes too
    axes = [a - x.ndim if negative else a for a in axes]
    return x, (axes[0] if len(axes) == 1 else tuple(axes))


@SETTINGS
@given(data=_array_and_axis(), name=st.sampled_from(["sum", "mean", "max"]), keepdims=st.booleans())
def test_reductions_values_and_gradient_shapes(
    data: tuple[np.ndarray, int | tuple[int, ...] | None], name: str, keepdims: bool
) -> None:
    x_np, axis = data
    x = Tensor(x_np, requires_grad=True)
    out = getattr(x, name)(axis=axis, keepdims=keepdims)
    expected = getattr(np, "max" if name == "max" else name)(x_np, axis=axis, keepdims=keepdims)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(g)
    assert x.grad.shape == x_np.shape
    dims = tuple(range(x_np.ndim)) if axis is None else axis
    t = torch.tensor(x_np, requires_grad=True)
    ref = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax}[name](t, dim=dims, keepdim=keepdims)
    ref.backward(torch.as_tensor(g))  # torch.amax also splits the gradient evenly among ties
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12, atol=1e-15)


@SETTINGS
@given(
    x=hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=st.floats(-1e4, 1e4)
    )
)
def test_softmax_rows_sum_to_one(x: np.ndarray) -> None:
    a = ops.softmax(Tensor(x)).numpy()
    assert np.all(a >= 0) and np.all(np.isfinite(a))
    np.testing.assert_allclose(a.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(ops.log_softmax(Tensor(x)).numpy()), a, rtol=1e-9, atol=1e-300)


@SETTINGS
@given(
    x=hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=st.floats(-100, 100)
    ),
    c=st.floats(-1e3, 1e3),
)
def test_logsumexp_shift_identity(x: np.ndarray, c: float) -> None:
    lhs = ops.logsumexp(Tensor(x + c)).numpy()
    rhs = ops.logsumexp(Tensor(x)).numpy() + c
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-9)
    assert np.all(lhs >= (x + c).max(axis=-1) - 1e-9)  # logsumexp is at least the max
