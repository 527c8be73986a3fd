"""Tests of :mod:`chainrule.functional`: the activation registry and ``linear``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as tnf

import chainrule as cr
from chainrule import functional
from chainrule.tensor import Tensor

TORCH_ACTIVATIONS = {
    "identity": lambda t: t,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda t: tnf.leaky_relu(t, 0.01),
    "softplus": tnf.softplus,
    "elu": tnf.elu,
    "gelu": lambda t: tnf.gelu(t, approximate="tanh"),
    "softmax": lambda t: torch.softmax(t, dim=-1),
}


def test_every_activation_has_a_torch_reference() -> None:
    assert set(functional.ACTIVATIONS) == set(TORCH_ACTIVATIONS)
    assert functional.ELEMENTWISE == set(functional.ACTIVATIONS) - {"softmax"}


@pytest.mark.parametrize("name", list(TORCH_ACTIVATIONS))
def test_activation_matches_torch(name: str, rng: np.random.Generator, rel_err: Any) -> None:
    x = np.concatenate([rng.standard_normal((3, 4)) * 3, [[-1e4, -1.0, 0.0, 1e4]]])
    g = rng.standard_normal(x.shape)
    t = Tensor(x, requires_grad=True)
    out = functional.get_activation(name)(t)
    out.backward(g)
    tt = torch.tensor(x, requires_grad=True)
    t_out = TORCH_ACTIVATIONS[name](tt)
    t_out.backward(torch.as_tensor(g))
    assert np.all(np.isfinite(out.numpy())) and np.all(np.isfinite(t.grad))
    assert rel_err(out.numpy(), t_out.detach().numpy()) <= 1e-10
    assert rel_err(t.grad, tt.grad.numpy()) <= 1e-10


@pytest.mark.parametrize("name", list(TORCH_ACTIVATIONS))
def test_activation_passes_finite_differences(name: str, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3)) + 0.1  # away from the kink at 0
    assert cr.check_grad(functional.get_activation(name), x).ok


def test_elu_derivative_at_zero_is_alpha() -> None:
    z = Tensor([0.0], requires_grad=True)
    functional.elu(z, alpha=2.0).backward(np.ones(1))
    assert z.grad[0] == 2.0


def test_unknown_activation_lists_known_names() -> None:
    with pytest.raises(cr.ConfigError, match=r"unknown activation 'swish'; expected one of \['elu', 'gelu'"):
        functional.get_activation("swish")


def test_registering_an_activation_makes_it_findable_by_name() -> None:
    try:

        @functional.activation("square_test", elementwise=True)
        def square(z: Tensor) -> Tensor:
            return z * z

        assert functional.get_activation("square_test") is square
        assert "square_test" in functional.ELEMENTWISE
    finally:
        functional.ACTIVATIONS.pop("square_test", None)
        functional.ELEMENTWISE.discard("square_test")


def test_linear_shapes_and_gradients(rng: np.random.Generator) -> None:
    # Z = A_prev @ W.T + b: A_prev (m, n[l-1]) = (5, 3), W (n[l], n[l-1]) = (2, 3), b (2,)
    a_prev = Tensor(rng.standard_normal((5, 3)), requires_grad=True)
    w = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal(2), requires_grad=True)
    z = functional.linear(a_prev, w, b)
    assert z.shape == (5, 2) and z.op == "linear"
    delta = rng.standard_normal((5, 2))
    z.backward(delta)
    np.testing.assert_allclose(w.grad, delta.T @ a_prev.data, rtol=1e-13)
    np.testing.assert_allclose(b.grad, delta.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(a_prev.grad, delta @ w.data, rtol=1e-13)
    no_bias = functional.linear(a_prev, w)
    np.testing.assert_allclose(no_bias.numpy(), a_prev.data @ w.data.T, rtol=1e-13)


def test_linear_worked_example() -> None:
    # one example, n[0] = 2 inputs, n[1] = 1 unit:
    # z = w . a + b = 1*3 + 2*4 + 0.5 = 11.5; dC/dw = delta * a = [3, 4]; dC/db = delta = 1
    a = Tensor([[3.0, 4.0]])
    w = Tensor([[1.0, 2.0]], requires_grad=True)
    b = Tensor([0.5], requires_grad=True)
    z = functional.linear(a, w, b)
    assert z.numpy().tolist() == [[11.5]]
    z.backward()
    assert w.grad.tolist() == [[3.0, 4.0]] and b.grad.tolist() == [1.0]


def test_linear_shape_error_names_shapes() -> None:
    with pytest.raises(
        cr.ShapeError, match=r"linear: .*expected input of shape \(m, 3\) for W of shape \(2, 3\)"
    ):
        functional.linear(Tensor(np.ones((4, 5))), Tensor(np.ones((2, 3))))
