"""The compile layer: compiled steps give the eager step's numbers bit for bit, or run eagerly and say why."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from chainrule import ops
from chainrule.errors import CompileWarning, DataError, GradientError
from chainrule.jit import Compiler, LearningRate, random_input
from chainrule.layers import Dense, Dropout, Module, Sequential, mlp
from chainrule.losses import get_loss
from chainrule.optim import SGD, StepLR
from chainrule.tensor import Tensor
from chainrule.train import Trainer


def _data(rng: np.random.Generator, m: int = 100, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    return rng.random((m, n), dtype=np.float32), rng.integers(0, 3, m)


def _compiled(trainer: Trainer) -> int:
    """How many kinds of batch run a compiled step."""
    return sum(e.step is not None for e in trainer.compiler.entries.values())


# ------------------------------------------------------------------ the model zoo
# (activation, output, loss, optimizer, options, bias, dropout): every activation, loss and
# optimizer at least once, with and without bias and dropout.
ZOO = [
    ("relu", "softmax", "cross_entropy", "sgd", {}, True, 0.0),
    ("relu", "softmax", "cross_entropy", "adam", {}, True, 0.3),
    ("sigmoid", "sigmoid", "sse", "sgd", {"momentum": 0.9}, False, 0.0),
    ("tanh", "identity", "mse", "sgd", {"momentum": 0.9, "nesterov": True}, True, 0.2),
    ("leaky_relu", "sigmoid", "binary_cross_entropy", "rmsprop", {}, True, 0.0),
    ("softplus", "identity", "half_sse", "adamw", {}, False, 0.5),
    ("elu", "identity", "softmax_cross_entropy", "rmsprop", {"momentum": 0.5}, True, 0.0),
    ("gelu", "identity", "sigmoid_binary_cross_entropy", "adam", {"weight_decay": 0.01}, True, 0.1),
    ("identity", "softmax", "cross_entropy", "sgd", {"weight_decay": 1e-3}, False, 0.0),
    ("tanh", "tanh", "half_sse", "adamw", {}, True, 0.0),
]


def _targets(loss: str, y: np.ndarray, k: int) -> np.ndarray:
    if "cross_entropy" in loss and "binary" not in loss:
        return y  # class labels
    onehot = np.eye(k, dtype=np.float32)[y]
    return onehot if "binary" in loss else onehot * 2 - 1


@pytest.mark.parametrize(("act", "out", "loss", "opt", "options", "bias", "dropout"), ZOO)
def test_compiled_training_equals_eager_bit_for_bit(
    rng: np.random.Generator,
    act: str,
    out: str,
    loss: str,
    opt: str,
    options: dict[str, Any],
    bias: bool,
    dropout: float,
) -> None:
    x, labels = _data(rng)
    y = _targets(loss, labels, 3)
    finals = []
    for compiled in (False, True):
        model = mlp([6, 8, 5, 3], act, out, bias=bias, dropout=dropout, seed=1)
        trainer = Trainer(
            model, loss, opt, 0.01, batch_size=16, seed=2, compiled=compiled, optimizer_options=options
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error", CompileWarning)  # every one of these compiles
            history = trainer.fit(x, y, epochs=3, verbose=0)
        finals.append(([p.data.copy() for p in model.parameters()], history["loss"], model.rng_state()))
        assert _compiled(trainer) == (2 if compiled else 0)  # 16-row batches, and the last of 4 rows
    (w_eager, loss_eager, rng_eager), (w_compiled, loss_compiled, rng_compiled) = finals
    assert loss_eager == loss_compiled
    assert str(rng_eager) == str(rng_compiled)  # dropout drew the same masks, as many
    for a, b in zip(w_eager, w_compiled, strict=True):
        np.testing.assert_array_equal(a, b)


def test_clipping_and_a_schedule_compile_to_the_same_weights(rng: np.random.Generator) -> None:
    x, y = _data(rng)
    finals = []
    for compiled in (False, True):
        model = mlp([6, 8, 3], "relu", "softmax", seed=1, dropout=0.2)
        trainer = Trainer(
            model,
            "cross_entropy",
            "sgd",
            0.5,
            batch_size=10,
            clip_norm=0.1,
            schedule=lambda o: StepLR(o, 1, 0.5),
            compiled=compiled,
        )
        trainer.fit(x, y, epochs=3, verbose=0)
        finals.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*finals, strict=True):
        np.testing.assert_array_equal(a, b)


def test_every_gradient_is_kept_after_a_compiled_fit(rng: np.random.Generator) -> None:
    x, y = _data(rng)
    model = mlp([6, 8, 3], "relu", "softmax", seed=0)
    trainer = Trainer(model, "cross_entropy", "sgd", 0.1, batch_size=20)
    trainer.fit(x, y, epochs=2, verbose=0)
    assert _compiled(trainer) == 1
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


# -------------------------------------------------------- what cannot be compiled says so
class Jitter(Module):
    """Adds noise of a non-batch shape on every forward, drawn behind the recorder's back."""

    def __init__(self, n: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = n

    def forward(self, x: Tensor) -> Tensor:
        return x + Tensor(self.rng.normal(size=(self.n,)).astype(np.float32))


def test_per_step_randomness_the_recorder_cannot_see_runs_eagerly_and_says_so(
    rng: np.random.Generator,
) -> None:
    x, y = _data(rng)
    finals = []
    for compiled in (False, True):
        model = Sequential(Dense(6, 4, activation="relu", seed=0), Jitter(4, seed=5), Dense(4, 3, seed=1))
        trainer = Trainer(model, "softmax_cross_entropy", "sgd", 0.1, batch_size=20, compiled=compiled)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(x, y, epochs=2, verbose=0)
        said = [str(w.message) for w in caught if issubclass(w.category, CompileWarning)]
        if compiled:
            assert len(said) == 1  # once, not once per step
            assert "runs on the eager engine" in said[0] and "an input of op 'add'" in said[0]
            assert "constant that changed between two steps" in said[0]
        else:
            assert said == []
        finals.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*finals, strict=True):
        np.testing.assert_array_equal(a, b)


class Drawn(Module):
    """The same noise, drawn through the library's random input: it compiles."""

    def __init__(self, n: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = n

    def forward(self, x: Tensor) -> Tensor:
        return x + random_input(lambda: self.rng.normal(size=(self.n,)).astype(np.float32))


def test_randomness_drawn_through_random_input_compiles_to_the_eager_numbers(
    rng: np.random.Generator,
) -> None:
    x, y = _data(rng)
    finals = []
    for compiled in (False, True):
        model = Sequential(Dense(6, 4, activation="relu", seed=0), Drawn(4, seed=5), Dense(4, 3, seed=1))
        trainer = Trainer(model, "softmax_cross_entropy", "sgd", 0.1, batch_size=20, compiled=compiled)
        with warnings.catch_warnings():
            warnings.simplefilter("error", CompileWarning)
            trainer.fit(x, y, epochs=2, verbose=0)
        assert _compiled(trainer) == int(compiled)
        finals.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*finals, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_model_changed_between_epochs_is_recorded_again(rng: np.random.Generator) -> None:
    x, y = _data(rng)
    finals = []
    for compiled in (False, True):
        model = mlp([6, 8, 3], "relu", "softmax", seed=1)
        trainer = Trainer(model, "cross_entropy", "sgd", 0.1, batch_size=20, compiled=compiled)
        trainer.fit(x, y, epochs=2, verbose=0)
        model[0].activation = "tanh"  # the graph is another one now: the compiled step must not replay
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(x, y, epochs=4, verbose=0)
        said = [str(w.message) for w in caught if issubclass(w.category, CompileWarning)]
        assert bool(said) == compiled and all("changed since it was compiled" in s for s in said)
        assert _compiled(trainer) == int(compiled)  # and it compiled the new graph
        finals.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*finals, strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_optimizer_over_some_parameters_and_frozen_layers_match_eager(rng: np.random.Generator) -> None:
    x, y = _data(rng)
    finals = []
    for compiled in (False, True):
        model = mlp([6, 8, 3], output="softmax", seed=1)
        optimizer = SGD(model.parameters()[2:], lr=0.1)  # fine-tune the last layer only
        trainer = Trainer(model, "cross_entropy", optimizer, batch_size=20, compiled=compiled)
        trainer.fit(x, y, epochs=2, verbose=0)
        w = model[0].W
        w.requires_grad = False  # freeze layer 0, then replace its data
        w.data = np.zeros_like(w.data)
        trainer.optimizer = SGD(model.parameters(), lr=0.1)
        trainer.fit(x, y, epochs=3, verbose=0)
        w.requires_grad = True  # and unfreeze it again
        trainer.fit(x, y, epochs=4, verbose=0)
        finals.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*finals, strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ the Compiler itself
def _run(compiler: Compiler, batches: list[dict[str, np.ndarray]]) -> list[float]:
    return [float(compiler(b)) for b in batches]


def _step_of(compiler: Compiler) -> Any:
    (entry,) = compiler.entries.values()
    return entry.step


def test_compiled_gradients_equal_backward_with_fan_out_and_broadcast(rng: np.random.Generator) -> None:
    w = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    scale = Tensor(rng.standard_normal((1, 3)), requires_grad=True)  # broadcast over the rows
    offset = Tensor(np.full((1, 3), 0.5))  # a constant, baked in

    def fn(x: Tensor, y: np.ndarray) -> Tensor:
        z = x @ w.T  # z feeds three ops: its gradients add up
        return (((z * scale + z) - offset - y) ** 2).sum() + z.sum()

    compiler = Compiler(fn, lambda: [w, scale])
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    for batch in range(4):  # two recordings, then the compiled step: fresh data each call
        xb, yb = x + batch, y - batch
        w.grad = scale.grad = None
        value = compiler({"x": xb, "y": yb})
        got = [w.grad.copy(), scale.grad.copy()]
        w.grad = scale.grad = None
        eager = fn(Tensor(xb), yb)
        eager.backward()
        assert float(value) == eager.item()
        np.testing.assert_array_equal(got[0], w.grad)
        np.testing.assert_array_equal(got[1], scale.grad)
        assert got[1].shape == (1, 3) and got[1].flags.writeable
    assert _step_of(compiler) is not None


def test_ops_on_the_input_alone_are_replayed_not_frozen(rng: np.random.Generator) -> None:
    model = mlp([4, 3], seed=0, dtype=np.float64)
    loss = get_loss("softmax_cross_entropy")
    compiler = Compiler(lambda x, y: loss(model(x * 2.0 - 1.0), y), model.parameters)
    batches = [{"x": rng.standard_normal((6, 4)), "y": rng.integers(0, 3, 6)} for _ in range(4)]
    values = _run(compiler, batches)
    assert _step_of(compiler) is not None
    for b, v in zip(batches, values, strict=True):
        assert v == loss(model(Tensor(b["x"]) * 2.0 - 1.0), b["y"]).item()


def test_a_label_out_of_range_inside_a_compiled_step_is_a_data_error(rng: np.random.Generator) -> None:
    model = mlp([6, 3], seed=0)
    loss = get_loss("softmax_cross_entropy")
    compiler = Compiler(lambda x, y: loss(model(x), y), model.parameters)
    x, y = _data(rng, 8)
    _run(compiler, [{"x": x, "y": y}, {"x": x + 1, "y": y}])
    assert _step_of(compiler) is not None
    with pytest.raises(DataError, match=r"softmax_cross_entropy_labels: labels\[0\] = 7 is out of range"):
        compiler({"x": x, "y": np.full(8, 7)})


def test_a_rule_returning_the_wrong_count_fails_in_a_compiled_step(rng: np.random.Generator) -> None:
    from chainrule.tensor import Primitive

    count = [1]
    op = Primitive("doubled", lambda a: a * 2.0, lambda g, out, a: (g * 2.0,) * count[0])
    model = mlp([6, 3], seed=0)
    compiler = Compiler(lambda x, y: op(model(x)).sum(), model.parameters)
    x, y = _data(rng, 4)
    _run(compiler, [{"x": x, "y": y}, {"x": x + 1, "y": y}])
    assert _step_of(compiler) is not None
    count[0] = 2
    with pytest.raises(GradientError, match="doubled: VJP rule returned 2 gradients for 1 inputs"):
        compiler({"x": x, "y": y})


def test_the_step_must_return_a_one_element_loss(rng: np.random.Generator) -> None:
    model = mlp([6, 3], seed=0)
    x, y = _data(rng, 4)
    with pytest.raises(GradientError, match="one-element tensor"):
        Compiler(lambda x, y: model(x), model.parameters)({"x": x, "y": y})


def test_a_loss_that_wants_no_gradient_fails_as_backward_does(rng: np.random.Generator) -> None:
    model = mlp([6, 3], seed=0)
    for p in model.parameters():
        p.requires_grad = False
    compiler = Compiler(lambda x, y: model(x).sum(), model.parameters)
    x, y = _data(rng, 4)
    with pytest.raises(GradientError, match="backward: this tensor does not require gradients"):
        compiler({"x": x, "y": y})


# ---------------------------------------------------- plain SGD fused into the backward pass
def _fused(fn: Callable[..., Tensor], params: list[Tensor], batches: list[dict[str, Any]], lr: float) -> Any:
    rate = LearningRate(lr)
    compiler = Compiler(fn, lambda: params, fuse=params, lr=rate)
    for b in batches[:2]:
        compiler(b)  # the recordings: eager steps, nothing stepped (no optimizer here)
    return compiler, _step_of(compiler)


def test_fused_sgd_takes_the_step_in_the_backward_pass(rng: np.random.Generator) -> None:
    x, y = _data(rng, 8)
    x = x.astype(np.float64)
    model = mlp([6, 5, 4, 3], "relu", "identity", seed=0, dtype=np.float64)
    loss = get_loss("softmax_cross_entropy")
    params = model.parameters()
    compiler, step = _fused(lambda x, y: loss(model(x), y), params, [{"x": x, "y": y}] * 2, 0.1)
    assert {id(p) for p in step.stepped} == {id(p) for p in params}
    for batch in range(3):
        xb = x + batch
        model.zero_grad()
        loss(model(Tensor(xb)), y).backward()
        expected = [p.data - 0.1 * p.grad for p in params]
        model.zero_grad()
        value = compiler({"x": xb, "y": y})
        assert np.isfinite(value)
        for p, want in zip(params, expected, strict=True):
            assert p.grad is None
            np.testing.assert_allclose(p.data, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("bias", [True, False])
def test_the_stepping_rule_equals_the_proven_gradient_step(
    rng: np.random.Generator, order: str, activation: str | None, bias: bool
) -> None:
    """W := W - alpha dC/dW with dC/dW from the rule proven against torch (tests/test_ops_table.py)."""
    from chainrule.jit.passes import _stepping_rule

    prim = ops.linear if activation is None else ops.dense
    params = {} if activation is None else {"activation": activation}
    a = rng.standard_normal((7, 5))
    w = np.asarray(rng.standard_normal((4, 5)), order=order)
    b = [rng.standard_normal(4)] if bias else []
    out = prim.forward(a, w, *b, **params)
    g = rng.standard_normal(out.shape)
    grads = prim.vjp(g, out, a, w, *b, **params, needs=(True, True, True))
    w1, b1 = w.copy(order=order), [v.copy() for v in b]
    returned = _stepping_rule(LearningRate(0.3), activation)(
        g, out, a, w1, *b1, needs=(True, True, True), **params
    )
    np.testing.assert_allclose(returned[0], grads[0], rtol=1e-13)  # dC/dA_prev, before W moved
    assert all(r is None for r in returned[1:])
    np.testing.assert_allclose(w1, w - 0.3 * grads[1], rtol=1e-13)
    if bias:
        np.testing.assert_allclose(b1[0], b[0] - 0.3 * grads[2], rtol=1e-13)


def test_a_shared_weight_is_not_stepped_in_place(rng: np.random.Generator) -> None:
    w = Tensor(rng.standard_normal((4, 4)), requires_grad=True)  # feeds two ops: gradients add up
    b = Tensor(rng.standard_normal(4), requires_grad=True)
    loss = get_loss("softmax_cross_entropy")

    def fn(x: Tensor, y: np.ndarray) -> Tensor:
        return loss(ops.linear(ops.linear(x, w), w, b), y)

    x, y = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    compiler, step = _fused(fn, [w, b], [{"x": x, "y": y}] * 2, 0.5)
    assert step.stepped == []  # b's op has W, which is shared: the op steps neither
    w0 = w.data.copy()
    compiler({"x": x, "y": y})
    np.testing.assert_array_equal(w.data, w0)  # only gradients: the optimizer steps them
    assert w.grad is not None and b.grad is not None


def test_parameters_sharing_memory_are_not_stepped_in_place(rng: np.random.Generator) -> None:
    x, y = _data(rng, 8)
    model = mlp([6, 6, 6, 3], "tanh", "identity", seed=0, dtype=np.float64)
    model[1].W.data = model[0].W.data  # tied through one array: stepping one would move the other
    loss = get_loss("softmax_cross_entropy")
    params = model.parameters()
    batch = {"x": x.astype(np.float64), "y": y}
    _, step = _fused(lambda x, y: loss(model(x), y), params, [batch] * 2, 0.1)
    assert not any(p is model[0].W or p is model[1].W for p in step.stepped)
    assert {id(p) for p in step.stepped} == {id(model[2].W), id(model[2].b)}


def test_a_non_finite_loss_steps_nothing(rng: np.random.Generator) -> None:
    x, y = _data(rng, 4)
    model = mlp([6, 4, 3], seed=0)
    loss = get_loss("softmax_cross_entropy")
    params = model.parameters()
    compiler, step = _fused(lambda x, y: loss(model(x), y), params, [{"x": x, "y": y}] * 2, 0.1)
    assert step.stepped
    before = [p.data.copy() for p in params]
    x[1, 2] = np.nan
    model.zero_grad()
    assert np.isnan(compiler({"x": x, "y": y}))
    for p, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(p.data, b)
        assert p.grad is None


# -------------------------------------------------------------- Dropout as an input
def test_dropout_masks_are_drawn_per_step_in_a_compiled_step(rng: np.random.Generator) -> None:
    drop = Dropout(0.5, seed=3)
    model = Sequential(Dense(6, 8, activation="relu", seed=0), drop, Dense(8, 3, seed=1))
    trainer = Trainer(model, "softmax_cross_entropy", "sgd", 0.1, batch_size=10)
    x, y = _data(rng, 40)
    trainer.fit(x, y, epochs=2, verbose=0)
    assert _compiled(trainer) == 1
    step = next(e.step for e in trainer.compiler.entries.values() if e.step is not None)
    assert len(step.draws) == 1  # one random input: the mask
    state = drop.rng_state()
    step({"x": x[:10], "y": y[:10]})
    assert drop.rng_state() != state  # the replay drew a fresh mask from the layer's generator


def test_two_threads_train_at_once_with_the_numbers_of_one_at_a_time(rng: np.random.Generator) -> None:
    """Grad mode and recording are per thread: a fit in one thread cannot switch off another's graph."""
    import threading

    x, y = _data(rng, 200)

    def train(seed: int, out: list[list[np.ndarray]]) -> None:
        model = mlp([6, 16, 3], "relu", "softmax", dropout=0.2, seed=seed)
        Trainer(model, "cross_entropy", "adam", 0.01, batch_size=8, seed=seed).fit(x, y, epochs=3, verbose=0)
        out.append([p.data.copy() for p in model.parameters()])

    alone: list[list[np.ndarray]] = []
    for seed in (0, 1):
        train(seed, alone)
    together: list[list[np.ndarray]] = [[], []]
    threads = [threading.Thread(target=train, args=(seed, together[seed])) for seed in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for seed in (0, 1):
        for a, b in zip(alone[seed], together[seed][0], strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_weighted_steps_compile_to_the_eager_numbers(rng: np.random.Generator, loss: str) -> None:
    x, labels = _data(rng)
    y = _targets(loss, labels, 3)
    w = rng.integers(0, 4, x.shape[0]).astype(np.float64)
    finals = []
    for compiled in (False, True):
        model = mlp(
            [6, 8, 3], "relu", "softmax" if loss == "cross_entropy" else "identity", seed=1, dropout=0.2
        )
        trainer = Trainer(model, loss, "adam", 0.01, batch_size=16, compiled=compiled)
        with warnings.catch_warnings():
            warnings.simplefilter("error", CompileWarning)
            trainer.fit(x, y, epochs=3, sample_weight=w, verbose=0)
        assert _compiled(trainer) == (2 if compiled else 0)
        finals.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*finals, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_constant_that_agreed_by_chance_is_caught_by_the_later_checks(rng: np.random.Generator) -> None:
    """A Python number computed from the batch is a constant to the recorder; equal in the two
    recordings by chance, it compiles, and the check at the 4th compiled call finds it changed."""
    model = mlp([6, 3], seed=0, dtype=np.float64)
    loss = get_loss("softmax_cross_entropy")

    def fn(x: Tensor, y: np.ndarray) -> Tensor:
        return loss(model(x), y) * float(y[0] + 1)  # the batch's first label, outside the ops

    compiler = Compiler(fn, model.parameters)
    x = rng.standard_normal((8, 6))
    ys = [np.full(8, 1)] * 5 + [np.full(8, 2), np.full(8, 0), np.full(8, 2)]  # the 4th compiled call sees 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for y in ys:
            compiler({"x": x, "y": y})
    said = [str(w.message) for w in caught if issubclass(w.category, CompileWarning)]
    assert len(said) == 2 and "changed since it was compiled" in said[0]
    assert "runs on the eager engine" in said[1]
    (entry,) = compiler.entries.values()
    assert entry.step is None and entry.eager is not None


def test_a_frozen_middle_layer_is_not_stepped_by_the_fused_update(rng: np.random.Generator) -> None:
    """requires_grad=False on one layer: the fused backward pass leaves it where it is, as eager SGD does."""
    x, y = _data(rng, 40)
    finals = []
    for fused in (False, True):
        model = mlp([6, 8, 8, 3], output="softmax", seed=2, dtype=np.float64)
        model[1].W.requires_grad = model[1].b.requires_grad = False
        frozen = model[1].W.data.copy()
        optimizer = SGD(model.parameters(), lr=0.1)
        trainer = Trainer(model, "cross_entropy", optimizer, batch_size=10, fused_update=fused)
        trainer.fit(x.astype(np.float64), y, epochs=3, verbose=0)
        np.testing.assert_array_equal(model[1].W.data, frozen)
        finals.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*finals, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_a_buffer_refilled_in_place_each_step_is_not_baked_in(rng: np.random.Generator) -> None:
    """An array the step refills in place (outside the ops) differs between the recordings: eager, said."""
    model = mlp([6, 3], seed=0, dtype=np.float64)
    loss = get_loss("softmax_cross_entropy")
    buffer = np.zeros((8, 3))

    def fn(x: Tensor, y: np.ndarray) -> Tensor:
        buffer[...] = y[:, None]  # the same array object every step, new values
        return loss(model(x) + Tensor(buffer), y)

    compiler = Compiler(fn, model.parameters)
    x = rng.standard_normal((8, 6))
    values = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in range(5):
            y = np.full(8, k % 3)
            values.append(float(compiler({"x": x, "y": y})))
            buffer[...] = y[:, None]
            assert values[-1] == loss(model(Tensor(x)) + Tensor(buffer.copy()), y).item()
    said = [str(w.message) for w in caught if issubclass(w.category, CompileWarning)]
    assert said and "constant that changed" in said[0]
    assert _step_of(compiler) is None


def test_a_tensor_outside_the_model_that_wants_its_gradient_is_compiled(rng: np.random.Generator) -> None:
    """A requires_grad tensor that is not among the watched parameters is a leaf, not a constant."""
    model = mlp([6, 3], seed=0, dtype=np.float64)
    temperature = Tensor(np.array(2.0), requires_grad=True)
    loss = get_loss("softmax_cross_entropy")
    optimizer = SGD([*model.parameters(), temperature], lr=0.1)

    def fn(x: Tensor, y: np.ndarray) -> Tensor:
        return loss(model(x) * temperature, y)

    compiler = Compiler(fn, model.parameters)  # the temperature is not watched
    x, y = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    for _ in range(4):
        optimizer.zero_grad()
        compiler({"x": x, "y": y})
        got = temperature.grad.copy()
        optimizer.zero_grad()
        loss(model(Tensor(x)) * temperature, y).backward()
        np.testing.assert_array_equal(got, temperature.grad)
        optimizer.step()  # the temperature moves: a baked-in constant would go stale
    assert _step_of(compiler) is not None


def test_a_step_that_keeps_an_intermediate_gradient_runs_eagerly(rng: np.random.Generator) -> None:
    """retain_grad asks for a tensor that a replay never makes: the step stays eager and says why."""
    model = mlp([6, 4, 3], seed=0, dtype=np.float64)
    loss = get_loss("softmax_cross_entropy")
    kept: list[Tensor] = []

    def fn(x: Tensor, y: np.ndarray) -> Tensor:
        h = model[0](x)
        h.retain_grad()
        kept.append(h)
        return loss(model[1](h), y)

    compiler = Compiler(fn, model.parameters)
    x, y = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(4):
            model.zero_grad()
            compiler({"x": x, "y": y})
            assert kept[-1].grad is not None and kept[-1].grad.shape == (8, 4)
    said = [str(w.message) for w in caught if issubclass(w.category, CompileWarning)]
    assert said and "retain_grad" in said[0]
    assert _step_of(compiler) is None
