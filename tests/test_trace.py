"""Traced training steps replay the eager engine's arithmetic bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from chainrule import ops
from chainrule.errors import ConfigError, DataError, GradientError
from chainrule.layers import mlp
from chainrule.losses import get_loss
from chainrule.optim import SGD
from chainrule.tensor import Tensor
from chainrule.trace import trace
from chainrule.train import Trainer


def _data(rng: np.random.Generator, m: int = 100) -> tuple[np.ndarray, np.ndarray]:
    return rng.random((m, 6), dtype=np.float32), rng.integers(0, 3, m)


@pytest.mark.parametrize(
    ("loss", "output", "activation"),
    [
        ("cross_entropy", "softmax", "relu"),
        ("sse", "sigmoid", "tanh"),
        ("mse", "identity", "gelu"),
        ("binary_cross_entropy", "sigmoid", "leaky_relu"),
    ],
)
def test_traced_training_equals_eager_bit_for_bit(
    rng: np.random.Generator, loss: str, output: str, activation: str
) -> None:
    x, y = _data(rng)
    finals = []
    for traced in (False, True):
        model = mlp([6, 8, 5, 3], activation, output, seed=1)
        trainer = Trainer(model, loss, "adam", 0.01, batch_size=16, seed=2, traced=traced)
        history = trainer.fit(x, y, epochs=3, verbose=0)
        finals.append(([p.data.copy() for p in model.parameters()], history["loss"]))
        assert any(trainer._traces.values()) == traced  # the partial last batch gets its own trace
    (w_eager, loss_eager), (w_traced, loss_traced) = finals
    assert loss_eager == loss_traced
    for a, b in zip(w_eager, w_traced, strict=True):
        np.testing.assert_array_equal(a, b)


def test_trace_sets_the_same_gradients_as_backward(rng: np.random.Generator) -> None:
    x, y = _data(rng, 8)
    model = mlp([6, 4, 3], "sigmoid", "identity", seed=0, dtype=np.float64)
    loss = get_loss("softmax_cross_entropy")
    step = trace(lambda xt, yb: loss(model(xt), yb), model.parameters(), x.astype(np.float64), y)
    value = step(x.astype(np.float64), y)
    traced = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    eager = loss(model(x.astype(np.float64)), y)
    eager.backward()
    assert float(value) == eager.item()
    for a, p in zip(traced, model.parameters(), strict=True):
        np.testing.assert_array_equal(a, p.grad)
        assert a.flags.writeable


def test_dropout_is_not_traced_and_still_trains(rng: np.random.Generator) -> None:
    x, y = _data(rng)
    trainer = Trainer(mlp([6, 8, 3], dropout=0.5, output="softmax", seed=0), "cross_entropy", batch_size=20)
    trainer.fit(x, y, epochs=2, verbose=0)
    assert trainer._traces and not any(trainer._traces.values())  # fell back to the eager engine


def test_batch_sized_constants_refuse_to_trace(rng: np.random.Generator) -> None:
    x, y = _data(rng, 10)
    model = mlp([6, 3], seed=0)
    mask = Tensor(np.ones((10, 3), dtype=np.float32))
    with pytest.raises(ConfigError, match=r"trace: a constant of shape \(10, 3\) the size of the batch"):
        trace(lambda xt, yb: (model(xt) * mask).sum(), model.parameters(), x, y)


def test_trace_needs_a_scalar_that_depends_on_the_parameters(rng: np.random.Generator) -> None:
    x, y = _data(rng, 4)
    model = mlp([6, 3], seed=0)
    with pytest.raises(GradientError, match="one-element tensor that depends on the parameters"):
        trace(lambda xt, yb: model(xt), model.parameters(), x, y)


def test_trace_with_an_optimizer_over_some_parameters_matches_eager(rng: np.random.Generator) -> None:
    x, y = _data(rng)
    finals = []
    for traced in (False, True):
        model = mlp([6, 8, 3], output="softmax", seed=1)
        optimizer = SGD(model.parameters()[2:], lr=0.1)  # fine-tune the last layer only
        Trainer(model, "cross_entropy", optimizer, batch_size=20, traced=traced).fit(
            x, y, epochs=2, verbose=0
        )
        finals.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*finals, strict=True):
        np.testing.assert_array_equal(a, b)


def test_freezing_and_replacing_a_parameter_after_tracing_matches_eager(rng: np.random.Generator) -> None:
    x, y = _data(rng)
    finals = []
    for traced in (False, True):
        model = mlp([6, 8, 3], output="softmax", seed=1)
        trainer = Trainer(model, "cross_entropy", "sgd", 0.1, batch_size=20, traced=traced)
        trainer.fit(x, y, epochs=1, verbose=0)
        w = model[0].W
        w.requires_grad = False  # freeze layer 0, then replace its data
        w.data = np.asfortranarray(np.zeros_like(w.data))
        trainer.fit(x, y, epochs=2, verbose=0)
        w.requires_grad = True  # and unfreeze it again
        trainer.fit(x, y, epochs=3, verbose=0)
        finals.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*finals, strict=True):
        np.testing.assert_array_equal(a, b)


def test_replay_with_fan_out_broadcasts_constants_and_a_returned_gradient_matches_backward(
    rng: np.random.Generator,
) -> None:
    x = rng.standard_normal((5, 4))
    y = rng.standard_normal((5, 3))
    w = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    scale = Tensor(rng.standard_normal((1, 3)), requires_grad=True)  # broadcast over the rows
    offset = Tensor(np.full((1, 3), 0.5))  # a constant, baked into the replay

    def fn(xt: Tensor, yb: np.ndarray) -> Tensor:
        z = xt @ w.T  # z feeds three ops: its gradients are added up
        return (((z * scale + z) - offset - yb) ** 2).sum() + z.sum()

    step = trace(fn, [w, scale], x, y)
    assert step.source.startswith("def replay(x, y, lr):")
    assert step.source.count(" = F") == len(step.forward)  # one line per recorded op
    for batch in range(2):  # fresh data each call: nothing of the first batch is baked in
        xb, yb = x + batch, y - batch
        value = step(xb, yb)
        traced = [w.grad.copy(), scale.grad.copy()]
        w.grad = scale.grad = None
        eager = fn(Tensor(xb), yb)
        eager.backward()
        assert float(value) == eager.item()
        np.testing.assert_array_equal(traced[0], w.grad)
        np.testing.assert_array_equal(traced[1], scale.grad)
        assert traced[1].shape == (1, 3)
        w.grad = scale.grad = None


def test_an_error_inside_the_replay_shows_the_replay_line(rng: np.random.Generator) -> None:
    import traceback

    x, y = _data(rng, 8)
    model = mlp([6, 3], seed=0)
    loss = get_loss("softmax_cross_entropy")
    step = trace(lambda xt, yb: loss(model(xt), yb), model.parameters(), x, y)
    with pytest.raises(DataError, match="labels") as caught:
        step(x, np.full(8, 7))  # label 7 of 3 classes: the op's own check fails inside the replay
    shown = "".join(traceback.format_tb(caught.value.__traceback__))
    assert "chainrule.trace" in shown and "# softmax_cross_entropy_labels" in shown


def test_a_collected_trace_leaves_no_source_behind(rng: np.random.Generator) -> None:
    import gc
    import linecache

    x, y = _data(rng, 8)
    model = mlp([6, 3], seed=0)
    step = trace(lambda xt, yb: model(xt).sum(), model.parameters(), x, y)
    name = f"<chainrule.trace {id(step):x}>"
    assert name in linecache.cache
    del step
    gc.collect()
    assert name not in linecache.cache


def test_generated_replay_takes_odd_names_and_checks_the_rule_count(rng: np.random.Generator) -> None:
    from chainrule.tensor import Primitive

    count = [1]

    def doubled(a: np.ndarray, **params: object) -> np.ndarray:
        return a * 2.0

    def doubled_vjp(g: np.ndarray, out: np.ndarray, a: np.ndarray, **kw: object) -> tuple[np.ndarray, ...]:
        return (g * 2.0,) * count[0]

    doubled.__name__ = "doubled\n    return 42"  # a name is a comment in the replay, never code
    op = Primitive("doubled\n    return 42", doubled, doubled_vjp)
    x, y = _data(rng, 4)
    model = mlp([6, 3], seed=0)
    # a y-valued parameter named like a Python keyword must still reach the op
    step = trace(lambda xt, yb: op(model(xt), **{"lambda": yb}).sum(), model.parameters(), x, y)
    value = step(x, y)
    assert float(value) == 2.0 * float(model(x).sum().item())
    assert model[0].W.grad is not None
    count[0] = 2  # a rule returning two gradients for one input
    with pytest.raises(GradientError, match="returned 2 gradients for 1 inputs"):
        step(x, y)


def test_a_loss_that_ignores_x_is_refused_by_name(rng: np.random.Generator) -> None:
    x, y = _data(rng, 4)
    model = mlp([6, 3], seed=0)
    with pytest.raises(ConfigError, match="does not depend on x"):
        trace(lambda xt, yb: (model[0].W * model[0].W).sum(), model.parameters(), x, y)


# ------------------------------------------------- the SGD step inside the backward pass
def _eager_step(model: Any, x: np.ndarray, y: np.ndarray, lr: float) -> list[np.ndarray]:
    """What plain SGD gives: ``p - lr dC/dp`` from the eager engine, for every parameter."""
    loss = get_loss("softmax_cross_entropy")
    model.zero_grad()
    loss(model(x), y).backward()
    stepped = [p.data - lr * p.grad for p in model.parameters()]
    model.zero_grad()
    return stepped


def test_descend_takes_the_sgd_step_in_the_backward_pass(rng: np.random.Generator) -> None:
    x, y = _data(rng, 8)
    x = x.astype(np.float64)
    model = mlp([6, 5, 4, 3], "relu", "identity", seed=0, dtype=np.float64)
    loss = get_loss("softmax_cross_entropy")
    params = model.parameters()
    step = trace(lambda xt, yb: loss(model(xt), yb), params, x, y, descend=params)
    assert {id(p) for p in step.descended} == {id(p) for p in params}
    assert step.source.count("descend=(None, d, d)") == 3  # two dense ops and the last linear
    assert "_fresh" not in step.source  # no gradient is kept
    for batch in range(3):
        xb = x + batch
        expected = _eager_step(model, xb, y, 0.1)
        value = step(xb, y, 0.1)
        assert np.isfinite(value)
        for p, want in zip(params, expected, strict=True):
            assert p.grad is None
            np.testing.assert_allclose(p.data, want, rtol=1e-13, atol=1e-15)


def test_a_shared_weight_is_not_stepped_in_place(rng: np.random.Generator) -> None:
    x = rng.standard_normal((5, 4))
    y = rng.integers(0, 4, 5)
    w = Tensor(rng.standard_normal((4, 4)), requires_grad=True)  # feeds two ops: gradients add up
    b = Tensor(rng.standard_normal(4), requires_grad=True)
    loss = get_loss("softmax_cross_entropy")

    def fn(xt: Tensor, yb: np.ndarray) -> Tensor:
        return loss(ops.linear(ops.linear(xt, w), w, b), yb)

    step = trace(fn, [w, b], x, y, descend=[w, b])
    assert len(step.descended) == 1 and step.descended[0] is b
    w0, b0 = w.data.copy(), b.data.copy()
    step(x, y, 0.5)
    stepped_b, grad_w = b.data.copy(), w.grad.copy()
    w.data[...], b.data[...] = w0, b0
    w.grad = b.grad = None
    fn(Tensor(x), y).backward()
    np.testing.assert_array_equal(w.data, w0)  # only its gradient: the optimizer steps it
    np.testing.assert_allclose(grad_w, w.grad, rtol=1e-13)
    np.testing.assert_allclose(stepped_b, b0 - 0.5 * b.grad, rtol=1e-13)


def test_a_descending_step_needs_a_learning_rate(rng: np.random.Generator) -> None:
    x, y = _data(rng, 4)
    model = mlp([6, 3], seed=0)
    loss = get_loss("softmax_cross_entropy")
    step = trace(lambda xt, yb: loss(model(xt), yb), model.parameters(), x, y, descend=model.parameters())
    with pytest.raises(ConfigError, match="updates 2 parameters in place; pass lr"):
        step(x, y)


def test_a_non_finite_loss_steps_nothing(rng: np.random.Generator) -> None:
    x, y = _data(rng, 4)
    model = mlp([6, 4, 3], seed=0)
    loss = get_loss("softmax_cross_entropy")
    params = model.parameters()
    step = trace(lambda xt, yb: loss(model(xt), yb), params, x, y, descend=params)
    before = [p.data.copy() for p in params]
    x[1, 2] = np.nan
    assert np.isnan(step(x, y, 0.1))
    for p, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(p.data, b)
        assert p.grad is None


def test_only_parameters_of_stepping_ops_are_stepped(rng: np.random.Generator) -> None:
    x = rng.standard_normal((5, 4))
    y = rng.integers(0, 3, 5)
    scale = Tensor(rng.standard_normal(4), requires_grad=True)  # used once, by mul: no rule steps it
    w_first = Tensor(rng.standard_normal((3, 4)), requires_grad=True)  # linear's input a, not its W
    w = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    loss = get_loss("softmax_cross_entropy")

    def fn(xt: Tensor, yb: np.ndarray) -> Tensor:
        return loss(ops.linear(w_first, xt * scale).T + ops.linear(xt, w), yb)

    params = [scale, w_first, w]
    step = trace(fn, params, x, y, descend=params)
    assert len(step.descended) == 1 and step.descended[0] is w
    before = [p.data.copy() for p in params]
    value = step(x, y, 0.5)
    kept = [scale.grad.copy(), w_first.grad.copy()]
    stepped = w.data.copy()
    for p, b in zip(params, before, strict=True):
        p.data[...], p.grad = b, None
    eager = fn(Tensor(x), y)
    eager.backward()
    assert float(value) == eager.item()
    np.testing.assert_array_equal(kept[0], scale.grad)
    np.testing.assert_array_equal(kept[1], w_first.grad)
    np.testing.assert_allclose(stepped, before[2] - 0.5 * w.grad, rtol=1e-13)


def test_parameters_sharing_memory_are_not_stepped_in_place(rng: np.random.Generator) -> None:
    x, y = _data(rng, 8)
    model = mlp([6, 6, 6, 3], "tanh", "identity", seed=0, dtype=np.float64)
    model[1].W.data = model[0].W.data  # tied through one array: stepping one would move the other
    loss = get_loss("softmax_cross_entropy")
    params = model.parameters()
    step = trace(lambda xt, yb: loss(model(xt), yb), params, x.astype(np.float64), y, descend=params)
    assert not any(p is model[0].W or p is model[1].W for p in step.descended)
    assert len(step.descended) == 4  # the biases and the last layer's W


def test_a_one_element_loss_of_any_shape_can_descend(rng: np.random.Generator) -> None:
    x, y = _data(rng, 4)
    model = mlp([6, 3], seed=0)
    loss = get_loss("softmax_cross_entropy")
    params = model.parameters()
    step = trace(lambda xt, yb: loss(model(xt), yb).reshape((1, 1)), params, x, y, descend=params)
    assert step(x, y, 0.1).shape == (1, 1)
