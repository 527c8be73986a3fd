"""Tests for chainrule.train: steps, epochs, fit, history, callbacks, early stopping, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from chainrule.errors import ConfigError, DataError, GradientError, ShapeError
from chainrule.layers import Dense, Sequential, mlp
from chainrule.losses import SoftmaxCrossEntropy
from chainrule.optim import SGD, StepLR
from chainrule.train import EarlyStopping, History, Trainer, check_data, evaluate, fit, plot_history, predict

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the non-finite runs overflow on purpose


def blobs(m: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, m)
    x = rng.normal(size=(m, 4)) + 2.0 * np.eye(3, 4)[y]
    return x.astype(np.float32), y


def weights(model: Sequential) -> list[bytes]:
    return [p.data.tobytes() for p in model.parameters()]


# ------------------------------------------------------------------ step
def test_one_step_with_l2_weight_decay_matches_torch(rel_err) -> None:
    """Trainer step: MSE, SGD with weight_decay lambda (g + lambda W), against torch."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    model = mlp([3, 5, 2], "tanh", dtype=np.float64, seed=0)
    tw = [torch.tensor(p.data, requires_grad=True) for p in model.parameters()]
    trainer = Trainer(model, "mse", "sgd", lr=0.1, batch_size=8, optimizer_options={"weight_decay": 0.05})
    loss = trainer.train_step(x, y)
    h = torch.tanh(torch.tensor(x) @ tw[0].T + tw[1])
    tloss = torch.nn.functional.mse_loss(h @ tw[2].T + tw[3], torch.tensor(y))
    tloss.backward()
    topt = torch.optim.SGD(tw, lr=0.1, weight_decay=0.05)
    topt.step()
    assert loss == pytest.approx(float(tloss.detach()), rel=1e-13)
    for p, t in zip(model.parameters(), tw, strict=True):
        assert rel_err(p.data, t.detach().numpy()) < 1e-13


def test_softmax_and_cross_entropy_are_fused() -> None:
    trainer = Trainer(mlp([4, 3], output="softmax"), "cross_entropy")
    assert trainer.logits and isinstance(trainer.step_loss, SoftmaxCrossEntropy)
    assert repr(trainer).endswith("batch_size=32, fused=True)")
    assert not Trainer(mlp([4, 3], output="softmax"), "mse").logits


def test_batches_cover_every_example_once() -> None:
    trainer = Trainer(mlp([1, 1]), "mse", batch_size=4, seed=0)
    x, y = np.arange(10.0).reshape(-1, 1), np.arange(10)
    batches = list(trainer.batches(x, y))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate([b[1] for b in batches])) == list(range(10))
    assert not np.array_equal(np.concatenate([b[1] for b in batches]), np.arange(10))  # shuffled
    ordered = np.concatenate([b[1] for b in trainer.batches(x, y, shuffle=False)])
    np.testing.assert_array_equal(ordered, np.arange(10))


# ------------------------------------------------------------------- fit
def test_fit_learns_and_records_history() -> None:
    x, y = blobs()
    model = mlp([4, 16, 3], "relu", "softmax", seed=0)
    history = fit(
        model, x, y, "cross_entropy", "adam", 0.02, epochs=15, batch_size=16, verbose=0, validation_split=0.25
    )
    assert len(history) == 15
    assert set(history.epochs[0]) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert history["loss"][-1] < history["loss"][0]
    assert history["accuracy"][-1] > 0.9
    assert history["val_accuracy"][-1] > 0.7


def test_validation_data_scores_equal_evaluate() -> None:
    x, y = blobs()
    xv, yv = blobs(30, seed=1)
    model = mlp([4, 8, 3], "tanh", "softmax", seed=0)
    history = fit(model, x, y, "cross_entropy", epochs=2, validation_data=(xv, yv), verbose=0)
    scores = evaluate(model, xv, yv, "cross_entropy")
    assert history["val_loss"][-1] == pytest.approx(scores["loss"], rel=1e-6)
    assert history["val_accuracy"][-1] == scores["accuracy"]


def test_regression_history_has_no_accuracy() -> None:
    x, _ = blobs()
    history = fit(mlp([4, 1]), x, x[:, :1] * 2.0, "mse", epochs=2, verbose=0)
    assert set(history.epochs[0]) == {"loss", "lr", "seconds"}


def test_same_seed_gives_a_bit_identical_run() -> None:
    x, y = blobs()

    def run(seed: int) -> list[bytes]:
        model = mlp([4, 8, 3], "relu", "softmax", dropout=0.3, seed=seed)
        fit(model, x, y, "cross_entropy", "adam", 0.01, epochs=3, batch_size=16, seed=seed, verbose=0)
        return weights(model)

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_fit_continues_to_the_total_epoch_count() -> None:
    x, y = blobs()
    trainer = Trainer(mlp([4, 3], output="softmax"), "cross_entropy", batch_size=32)
    trainer.fit(x, y, 2, verbose=0)
    history = trainer.fit(x, y, 5, verbose=0)
    assert len(history) == 5 and trainer.epoch == 5


def test_schedule_is_stepped_per_epoch() -> None:
    x, y = blobs()
    trainer = Trainer(
        mlp([4, 3], output="softmax"),
        "cross_entropy",
        lr=0.1,
        schedule=lambda o: StepLR(o, step_size=1, gamma=0.5),
    )
    history = trainer.fit(x, y, 3, verbose=0)
    assert history["lr"] == [0.1, 0.05, 0.025]


def test_callback_can_stop_training() -> None:
    class StopAt:
        def __init__(self) -> None:
            self.seen: list[int] = []

        def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
            self.seen.append(epoch)
            return epoch == 2

    x, y = blobs()
    cb = StopAt()
    history = fit(mlp([4, 3], output="softmax"), x, y, "cross_entropy", epochs=10, callbacks=[cb], verbose=0)
    assert cb.seen == [1, 2] and len(history) == 2


def test_early_stopping_restores_the_best_weights() -> None:
    x, y = blobs()
    recorded: list[list[bytes]] = []

    class Recorder:
        def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
            recorded.append(weights(trainer.model))

    model = mlp([4, 8, 3], "relu", "softmax", seed=0)
    stop = EarlyStopping(patience=2)
    # flipped validation labels: val_loss gets worse as training fits the real labels
    history = fit(
        model,
        x,
        y,
        "cross_entropy",
        "adam",
        0.02,
        epochs=50,
        verbose=0,
        validation_data=(x, (y + 1) % 3),
        callbacks=[Recorder(), stop],
    )
    assert len(history) == stop.best_epoch + 2 < 50
    assert stop.best == min(history["val_loss"])
    assert history["val_loss"][stop.best_epoch - 1] == stop.best
    assert weights(model) == recorded[stop.best_epoch - 1]
    assert weights(model) != recorded[-1]
    assert repr(stop) == "EarlyStopping(monitor='val_loss', patience=2, min_delta=0.0)"


def test_early_stopping_on_accuracy_maximises() -> None:
    stop = EarlyStopping(monitor="accuracy", patience=1, restore_best_weights=False)
    trainer = Trainer(mlp([4, 3]), "mse")
    assert stop.on_epoch_end(trainer, 1, {"accuracy": 0.5}) is False
    assert stop.on_epoch_end(trainer, 2, {"accuracy": 0.4}) is True
    assert stop.best == 0.5 and stop.best_epoch == 1


def test_early_stopping_unknown_metric() -> None:
    with pytest.raises(ConfigError, match=r"EarlyStopping: metric 'val_loss' not in this epoch's \['loss'\]"):
        EarlyStopping().on_epoch_end(Trainer(mlp([4, 3]), "mse"), 1, {"loss": 1.0})


def test_verbose_progress_bar_does_not_crash_without_a_tty(capsys) -> None:
    x, y = blobs()
    history = fit(mlp([4, 3], output="softmax"), x, y, "cross_entropy", epochs=2, verbose=1)
    assert len(history) == 2
    capsys.readouterr()


def test_plot_history_writes_a_png(tmp_path) -> None:
    history = History(
        [
            {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.2, "val_accuracy": 0.4},
            {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.9, "val_accuracy": 0.6},
        ]
    )
    path = tmp_path / "history.png"
    plot_history(history, str(path))
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"matplotlib" in data[:200]  # the Software text chunk
    plot_history(History([{"loss": 1.0}, {"loss": 0.5}]), str(tmp_path / "loss_only.png"))
    assert (tmp_path / "loss_only.png").read_bytes().startswith(b"\x89PNG")


# ------------------------------------------------------------- predict/evaluate
def test_predict_in_eval_mode_and_batches() -> None:
    x, _ = blobs()
    model = mlp([4, 8, 3], "relu", "softmax", dropout=0.5, seed=0)
    out = predict(model, x, batch_size=10)
    assert out.shape == (96, 3) and isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, predict(model, x))  # dropout off
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-6)


def test_evaluate_sum_reduction_and_binary_accuracy() -> None:
    x, y = blobs()
    y2 = (y == 0).astype(np.int64)
    model = mlp([4, 1], output="sigmoid", seed=0)
    fit(model, x, y2, "binary_cross_entropy", "adam", 0.05, epochs=10, verbose=0)
    scores = evaluate(model, x, y2, "binary_cross_entropy")
    prob = predict(model, x)[:, 0]
    assert scores["accuracy"] == np.mean((prob > 0.5) == y2)
    from chainrule.losses import get_loss

    total = evaluate(model, x, y2, get_loss("binary_cross_entropy", "sum"))["loss"]
    assert total == pytest.approx(96 * scores["loss"], rel=1e-5)


def test_evaluate_accuracy_of_a_logit_output_with_a_loss_on_logits() -> None:
    """An identity output trained with sigmoid_binary_cross_entropy outputs logits: z > 0 means class 1."""
    x = np.array([[0.2], [0.4], [-0.3]], dtype=np.float32)
    model = Sequential(Dense(1, 1, weights=[[1.0]]))  # z = x: classes 1, 1, 0
    scores = evaluate(model, x, np.array([1, 1, 0]), "sigmoid_binary_cross_entropy")
    assert scores["accuracy"] == 1.0


# ---------------------------------------------------------------- errors
def test_non_finite_loss_from_a_huge_learning_rate_names_epoch_step_and_layer() -> None:
    x, y = blobs()
    trainer = Trainer(
        mlp([4, 8, 8, 3], "relu", "softmax", seed=0),
        "cross_entropy",
        "sgd",
        lr=1e12,
        batch_size=16,
        allow_divergence=True,  # past the divergence guard (a warning), on to the NaN
    )
    with (
        pytest.warns(RuntimeWarning, match=r"training diverged: .* \(allowed: training goes on\)"),
        pytest.raises(
            GradientError,
            match=r"training stopped: the loss became nan at epoch 1, step \d+; "
            r"first non-finite gradient: layers\[0\] Dense\(in_features=4, out_features=8, "
            r"activation='relu'\), dC/dW\. Try a smaller learning rate or gradient clipping",
        ),
    ):
        trainer.fit(x, y, 3, verbose=0)


@pytest.mark.parametrize("fused_update", [False, True])
def test_inf_in_a_weight_stops_training_at_that_step_and_moves_no_weight(fused_update: bool) -> None:
    x, y = blobs()
    model = mlp([4, 8, 3], "tanh", "softmax", seed=0)
    trainer = Trainer(model, "cross_entropy", batch_size=32, fused_update=fused_update)
    trainer.fit(x, y, 1, verbose=0)
    model[1].W.data[0, 0] = np.inf
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(
        GradientError, match=r"at epoch 2, step 1; first non-finite gradient: layers\[\d\] Dense"
    ):
        trainer.fit(x, y, 3, verbose=0)
    stepped = [e.step.stepped for e in trainer.compiler.entries.values() if e.step is not None]
    assert stepped and all(bool(s) == fused_update for s in stepped)  # a fused step with fused_update
    for p, b in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.data, b)  # the step returned before moving anything


def test_bad_input_width_names_the_layer() -> None:
    x, y = blobs()
    msg = (
        "layers[0] Dense(in_features=5, out_features=3, activation='softmax'): "
        "expected input of shape (m, 5), got (32, 4)."
    )
    with pytest.raises(ShapeError, match=re.escape(msg)):
        fit(mlp([5, 3], output="softmax"), x, y, "cross_entropy", epochs=1, verbose=0)


def test_bad_data_errors() -> None:
    x, y = blobs(8)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(
        DataError, match=r"fit: inputs contain NaN or infinite values \(first at index \(3, 1\)\)"
    ):
        check_data(bad, y)
    with pytest.raises(ShapeError, match=r"fit: 8 inputs but 7 targets"):
        check_data(x, y[:7])
    with pytest.raises(DataError, match=r"fit: the dataset is empty \(0 examples\)"):
        check_data(x[:0], y[:0])
    with pytest.raises(ShapeError, match=r"fit: expected inputs of shape \(m, n_features\), got \(8,\)"):
        check_data(x[:, 0], y)
    with pytest.raises(DataError, match=r"fit validation_data: targets contain NaN"):
        fit(
            mlp([4, 1]), x, x[:, :1], "mse", epochs=1, verbose=0, validation_data=(x, np.full((8, 1), np.nan))
        )


def test_labels_out_of_range() -> None:
    x, y = blobs(8)
    with pytest.raises(
        DataError,
        match=r"SoftmaxCrossEntropy\(reduction='mean'\): labels\[\d+\] = 2 is out of range for n_classes=2",
    ):
        fit(mlp([4, 2], output="softmax"), x, y, "cross_entropy", epochs=1, verbose=0, batch_size=8)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"Trainer: batch_size must be an integer >= 1, got 0"):
        Trainer(mlp([4, 3]), "mse", batch_size=0)
    x, y = blobs(8)
    with pytest.raises(ConfigError, match=r"fit: validation_split must be in \(0, 1\), got 1.5"):
        fit(mlp([4, 3]), x, y, "mse", epochs=1, verbose=0, validation_split=1.5)


def test_a_loss_on_logits_after_a_softmax_output_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"Trainer: loss 'softmax_cross_entropy' takes logits, but the model ends in 'softmax'",
    ):
        Trainer(mlp([4, 3], output="softmax"), "softmax_cross_entropy")


def test_sum_reduction_logs_the_training_loss_on_the_evaluate_scale() -> None:
    x, y = blobs(64)
    model = mlp([4, 3], output="identity", seed=0)  # the loss takes logits
    trainer = Trainer(model, SoftmaxCrossEntropy(reduction="sum"), "sgd", lr=1e-12, batch_size=16)
    history = trainer.fit(x, y, 1, validation_data=(x, y), shuffle=False, verbose=0)
    # lr ~ 0: the weights barely move, so the epoch's summed loss equals evaluate's on the same data
    assert history["loss"][0] == pytest.approx(history["val_loss"][0], rel=1e-6)


def test_evaluate_and_predict_restore_the_training_mode() -> None:
    x, y = blobs(8)
    model = mlp([4, 3], output="softmax", dropout=0.5)
    model.train()
    predict(model, x)
    evaluate(model, x, y, "cross_entropy")
    assert model.training and all(layer.training for layer in model)
    with pytest.raises(DataError, match=r"predict: no examples \(0 rows\)"):
        predict(model, x[:0])


# ------------------------------------------------------ plain SGD fused into the backward pass
def _trained(fused_update: bool, **options: object) -> tuple[Trainer, list[np.ndarray]]:
    x, y = blobs()
    model = mlp([4, 8, 8, 3], "relu", "softmax", seed=0)
    trainer = Trainer(model, "cross_entropy", "sgd", 0.1, batch_size=16, fused_update=fused_update, **options)
    trainer.fit(x, y, 3, verbose=0)
    return trainer, [p.data.copy() for p in model.parameters()]


def _stepped(trainer: Trainer) -> list[list[object]]:
    return [e.step.stepped for e in trainer.compiler.entries.values() if e.step is not None]


def test_plain_sgd_steps_inside_the_backward_pass_with_the_same_weights() -> None:
    fused, w_fused = _trained(True)
    kept, w_kept = _trained(False)
    assert _stepped(fused) and all(_stepped(fused))  # every batch shape
    assert _stepped(kept) and not any(_stepped(kept))
    assert all(p.grad is None for p in fused.optimizer.params)  # the gradients were never stored
    assert all(p.grad is not None for p in kept.optimizer.params)
    for a, b in zip(w_fused, w_kept, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fused.history["loss"], kept.history["loss"], rtol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        {"optimizer_options": {"momentum": 0.9}},
        {"optimizer_options": {"weight_decay": 1e-3}},
        {"clip_norm": 1.0},
    ],
    ids=["momentum", "weight_decay", "clip_norm"],
)
def test_a_fused_update_takes_plain_sgd_only(options: dict[str, object]) -> None:
    with pytest.raises(
        ConfigError, match=r"Trainer: fused_update takes plain SGD \(no momentum, weight decay"
    ):
        _trained(True, **options)
    trainer, _ = _trained(False, **options)
    assert all(p.grad is not None for p in trainer.optimizer.params)


def test_a_replaced_optimizer_steps_only_its_own_parameters() -> None:
    x, y = blobs()
    for fused_update in (True, False):
        model = mlp([4, 8, 3], "relu", "softmax", seed=0)
        trainer = Trainer(model, "cross_entropy", "sgd", 0.1, batch_size=32, fused_update=fused_update)
        trainer.fit(x, y, 1, verbose=0)
        first = model[0].W.data.copy()
        trainer.optimizer = SGD(model[1].parameters(), lr=0.1)  # fine-tune the head only
        head = model[1].W.data.copy()
        trainer.fit(x, y, 2, verbose=0)
        np.testing.assert_array_equal(model[0].W.data, first)
        assert not np.array_equal(model[1].W.data, head)


def test_an_sgd_subclass_with_its_own_rule_is_not_fused() -> None:
    class SignSGD(SGD):
        def update(self, w: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
            w -= self.lr * np.sign(g)

    model = mlp([4, 8, 3], "relu", "softmax", seed=0)
    with pytest.raises(ConfigError, match="fused_update takes plain SGD"):
        Trainer(model, "cross_entropy", SignSGD(model.parameters(), lr=0.1), fused_update=True)
    trainer = Trainer(model, "cross_entropy", SignSGD(model.parameters(), lr=0.1), batch_size=32)
    before = model[0].W.data.copy()
    x, y = blobs()
    trainer.train_step(x[:32], y[:32])
    steps = np.abs(model[0].W.data - before) / np.float32(0.1)
    np.testing.assert_allclose(steps[steps > 0], 1, rtol=1e-4)  # sign steps, not gradient steps


# ------------------------------------------------------------ an API people can guess
def test_a_misspelt_option_names_the_nearest_valid_one() -> None:
    x, y = blobs(16)
    with pytest.raises(ConfigError, match=r"^fit: unknown option 'epoch'; did you mean 'epochs'\?"):
        fit(mlp([4, 3], output="softmax"), x, y, "cross_entropy", epoch=3)
    with pytest.raises(
        ConfigError, match=r"^fit: unknown option 'validaton_split'; did you mean 'validation_split'"
    ):
        fit(mlp([4, 3], output="softmax"), x, y, "cross_entropy", validaton_split=0.2)
    trainer = Trainer(mlp([4, 3], output="softmax"), "cross_entropy")
    with pytest.raises(
        ConfigError, match=r"^Trainer.fit: unknown option 'verbosity'; did you mean 'verbose'\?"
    ):
        trainer.fit(x, y, 1, verbosity=0)
    with pytest.raises(ConfigError, match=r"unknown option 'zzz'; valid options: \["):
        fit(mlp([4, 3], output="softmax"), x, y, "cross_entropy", zzz=1)


def test_evaluate_takes_what_predict_takes() -> None:
    x, y = blobs(16)
    model = mlp([4, 3], output="softmax", seed=0)  # float32 parameters
    as_arrays = evaluate(model, x.astype(np.float32), y, "cross_entropy")
    for xs, ys in [
        (x.astype(np.float64), y),
        (x.tolist(), y.tolist()),
        (x.astype(np.float16), y.astype(np.int32)),
    ]:
        got = evaluate(model, xs, ys)  # any array-like, any dtype; the loss the softmax output suggests
        assert got["accuracy"] == as_arrays["accuracy"]
        assert got["loss"] == pytest.approx(as_arrays["loss"], rel=1e-3)
    np.testing.assert_allclose(predict(model, x.tolist()), predict(model, x), rtol=1e-6)


def test_the_public_api_is_reachable_from_the_top() -> None:
    import chainrule as cr

    for name in (
        "Dense",
        "Sequential",
        "Dropout",
        "mlp",
        "Trainer",
        "fit",
        "evaluate",
        "predict",
        "save",
        "load",
    ):
        assert name in cr.__all__ and getattr(cr, name) is not None
    for module in ("optim", "losses", "layers", "train", "jit", "ops", "functional", "serialize"):
        assert getattr(cr, module).__name__ == f"chainrule.{module}"
    assert cr.Dense is cr.layers.Dense and cr.Trainer is cr.train.Trainer and cr.mlp is cr.layers.mlp


# ------------------------------------------------------- per-example weights
def _float64_blobs(m: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = blobs(m)
    return x.astype(np.float64), y, np.random.default_rng(1).integers(0, 4, m)  # weights 0 .. 3


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_a_weighted_step_equals_a_step_on_repeated_rows(loss: str) -> None:
    x, y, w = _float64_blobs()
    stepped = []
    for xb, yb, wb in ((x, y, w), (np.repeat(x, w, axis=0), np.repeat(y, w), None)):
        model = mlp([4, 6, 3], "tanh", "softmax", seed=0, dtype=np.float64)
        trainer = Trainer(model, loss, "sgd", lr=0.5, batch_size=len(xb))
        value = trainer.train_step(xb, yb if loss == "cross_entropy" else np.eye(3)[yb], wb=wb)
        stepped.append((value, [p.data.copy() for p in model.parameters()]))
    assert stepped[0][0] == pytest.approx(stepped[1][0], rel=1e-13)
    for a, b in zip(stepped[0][1], stepped[1][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_fit_with_sample_weight_equals_fit_on_repeated_rows() -> None:
    x, y, w = _float64_blobs()
    runs = []
    for xs, ys, ws in ((x, y, w), (np.repeat(x, w, axis=0), np.repeat(y, w), None)):
        model = mlp([4, 6, 3], "tanh", "softmax", seed=0, dtype=np.float64)
        trainer = Trainer(model, "cross_entropy", "sgd", lr=0.5, batch_size=1000)
        history = trainer.fit(xs, ys, 5, shuffle=False, verbose=0, sample_weight=ws)
        runs.append((history["loss"], [p.data.copy() for p in model.parameters()]))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-12)  # the epoch loss is the weighted mean
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


def test_weighted_batches_carry_each_rows_weight() -> None:
    trainer = Trainer(mlp([1, 1]), "mse", batch_size=4, seed=0)
    x, y = np.arange(10.0).reshape(-1, 1), np.arange(10)
    for shuffle in (True, False):
        batches = list(trainer.batches(x, y, shuffle, w=100.0 + np.arange(10)))
        assert [len(b) for b in batches] == [3, 3, 3]
        for xb, yb, wb in batches:
            np.testing.assert_array_equal(wb, 100.0 + yb)
            np.testing.assert_array_equal(xb[:, 0], yb)


def test_validation_split_keeps_each_weight_with_its_row() -> None:
    from chainrule.train import _split

    x, y = np.arange(40.0).reshape(-1, 2), np.arange(20) % 2
    x_train, y_train, w_train, (x_val, y_val) = _split(x, y, 0.25, 3, w=x[:, 0] + 0.5)
    np.testing.assert_array_equal(w_train, x_train[:, 0] + 0.5)
    np.testing.assert_array_equal(y_train, (x_train[:, 0] // 2) % 2)  # row r holds [2r, 2r + 1], label r % 2
    np.testing.assert_array_equal(y_val, (x_val[:, 0] // 2) % 2)
    assert len(x_val) == 5 and len(x_train) == 15
    model = mlp([2, 2], output="softmax", seed=0)
    Trainer(model, "cross_entropy").fit(x, y, 1, validation_split=0.25, sample_weight=np.ones(20), verbose=0)


def test_zero_weights_leave_their_rows_out_of_the_step() -> None:
    x, y, _ = _float64_blobs()
    w = np.ones(len(x))
    w[::2] = 0.0
    moved = []
    for xs, ys, ws in ((x, y, w), (x[1::2], y[1::2], None)):
        model = mlp([4, 3], output="softmax", seed=0, dtype=np.float64)
        Trainer(model, "cross_entropy", "sgd", lr=0.5, batch_size=100).train_step(xs, ys, wb=ws)
        moved.append(model[0].W.data.copy())
    np.testing.assert_allclose(moved[0], moved[1], rtol=1e-13)


def test_bad_sample_weight_in_fit() -> None:
    x, y = blobs(10)
    trainer = Trainer(mlp([4, 3], output="softmax"), "cross_entropy")
    with pytest.raises(
        ShapeError, match=r"fit sample_weight: expected sample weights of shape \(10,\), got \(9,\)"
    ):
        trainer.fit(x, y, 1, verbose=0, sample_weight=np.ones(9))
    with pytest.raises(
        DataError, match=r"fit sample_weight: sample weights must be finite and >= 0; weight\[3\]"
    ):
        trainer.fit(x, y, 1, verbose=0, sample_weight=np.r_[np.ones(3), -2.0, np.ones(6)])


def test_a_batch_of_zero_weights_takes_no_step() -> None:
    x, y, _ = _float64_blobs()
    w = np.r_[np.zeros(8), np.ones(16)]  # the first batch of 8 weighs nothing
    model = mlp([4, 3], output="softmax", seed=0, dtype=np.float64)
    trainer = Trainer(model, "cross_entropy", "sgd", lr=0.5, batch_size=8)
    loss = trainer.train_epoch(x, y, shuffle=False, w=w)
    alone = mlp([4, 3], output="softmax", seed=0, dtype=np.float64)
    alone_loss = Trainer(alone, "cross_entropy", "sgd", lr=0.5, batch_size=8).train_epoch(
        x[8:], y[8:], shuffle=False
    )
    np.testing.assert_allclose(model[0].W.data, alone[0].W.data, rtol=1e-13)  # two engines: round-off
    assert loss == pytest.approx(alone_loss, rel=1e-13)


# ------------------------------------------------------------------ settings and divergence (issue 14)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"clip_norm": -1}, r"clip_norm must be a finite number > 0 \(None: no clipping\), got -1"),
        ({"clip_norm": 0}, r"clip_norm must be a finite number > 0 .*, got 0"),
        ({"clip_norm": float("nan")}, r"clip_norm must be a finite number > 0 .*, got nan"),
        ({"clip_norm": True}, r"clip_norm must be a finite number > 0 .*, got True"),
        ({"batch_size": 2.5}, r"batch_size must be an integer >= 1, got 2.5"),
        ({"seed": -1}, r"seed must be an integer >= 0 \(or None\), got -1"),
        ({"seed": 1.5}, r"seed must be an integer >= 0 \(or None\), got 1.5"),
    ],
)
def test_settings_that_would_train_silently_wrong_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Trainer(mlp([4, 3]), "mse", **options)


def test_good_settings_still_pass() -> None:
    trainer = Trainer(mlp([4, 3]), "mse", batch_size=np.int64(8), clip_norm=np.float32(1.0), seed=None)
    assert trainer.batch_size == 8


def test_a_diverging_loss_is_an_error_naming_the_step_while_still_finite() -> None:
    """lr = 1e6 with Adam: the loss climbs to ~1e18 and stays finite; it must not pass as a run."""
    x, y = blobs()
    trainer = Trainer(
        mlp([4, 16, 3], "relu", "softmax", seed=0), "cross_entropy", "adam", lr=1e6, batch_size=16
    )
    with pytest.raises(GradientError) as info:
        trainer.fit(x, y, 20, verbose=0)
    message = str(info.value)
    assert re.match(
        r"training diverged: the loss grew from [\d.]+ \(epoch 1, step 1\) to [\d.e+]+ at epoch \d+, "
        r"step \d+, more than 1000 times; lower the learning rate \(alpha = 1e\+06\), clip the gradients "
        r"\(clip_norm\), or allow it with allow_divergence=True \(chainrule train --allow-divergence\)\.",
        message,
    ), message
    loss = float(re.search(r"to ([\d.e+]+) at", message).group(1))  # type: ignore[union-attr]
    assert np.isfinite(loss) and loss > 1000


def test_allow_divergence_warns_once_and_trains_on() -> None:
    x, y = blobs()
    trainer = Trainer(
        mlp([4, 16, 3], "relu", "softmax", seed=0), "cross_entropy", "adam", lr=1e6, batch_size=16,
        allow_divergence=True,
    )  # fmt: skip
    with pytest.warns(RuntimeWarning, match=r"training diverged: .* \(allowed: training goes on\)") as record:
        trainer.fit(x, y, 3, verbose=0)
    assert len([w for w in record if "diverged" in str(w.message)]) == 1
    assert len(trainer.history) == 3


def test_the_guard_takes_a_resumed_runs_reference_from_its_history() -> None:
    x, y = blobs()
    trainer = Trainer(mlp([4, 16, 3], "relu", "softmax", seed=0), "cross_entropy", "adam", lr=0.01)
    trainer.fit(x, y, 2, verbose=0)
    first = trainer.history.epochs[0]["loss"]
    trainer.fit(x, y, 3, verbose=0)  # a continued run: the reference is epoch 1's loss, not this batch's
    assert trainer.divergence.reference == first
    assert "DivergenceGuard(allow=False, factor=1000" in repr(trainer.divergence)


def test_a_normal_run_with_losses_near_zero_does_not_trip_the_guard() -> None:
    """Batch losses that fall by orders of magnitude and jitter there are not a divergence."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 192)
    x = (0.3 * rng.normal(size=(192, 4)) + 4.0 * np.eye(3, 4)[y]).astype(np.float32)
    history = fit(
        mlp([4, 32, 3], "relu", "softmax", seed=0), x, y, "cross_entropy", "adam", 0.05, epochs=30, verbose=0
    )
    assert len(history) == 30 and history["loss"][-1] < history["loss"][0] / 1000
