"""Tests of chainrule.diagnostics: numbers against PyTorch, warnings, the lesson, no side effects."""

# ruff: noqa: E741  (l is the layer index, as in the notes)
from __future__ import annotations

import itertools
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from chainrule import datasets
from chainrule.cli import main
from chainrule.diagnostics import Diagnostics, DiagnosticWarning, LayerStats, problems
from chainrule.errors import ConfigError
from chainrule.layers import Activation, Dense, Sequential, mlp
from chainrule.train import Trainer, evaluate, fit, plot_history

LIMITS = Diagnostics().limits


def deep(activation: str, std: float | None, depth: int = 10, width: int = 32, seed: int = 0) -> Sequential:
    """64 -> width x (depth - 1) -> 10 on digits; N(0, std^2) weights, or He init when std is None."""
    rng = np.random.default_rng(seed)
    sizes = [64] + [width] * (depth - 1) + [10]
    layers = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        act = activation if i < depth - 1 else "softmax"
        w = None if std is None else rng.normal(0.0, std, (n_out, n_in))
        layers.append(Dense(n_in, n_out, activation=act, weights=w, init="he_normal", seed=rng))
    return Sequential(*layers)


def test_the_classic_lesson_vanishing_sigmoid_against_relu_with_he_init() -> None:
    """10 sigmoid layers with N(0, 0.01^2) weights do not learn, and say why; ReLU with He init learns."""
    data = datasets.load("digits")
    x_test, y_test = data.x_test.astype(np.float32), data.y_test
    runs = {}
    for name, model in (("sigmoid", deep("sigmoid", 0.01)), ("relu", deep("relu", None))):
        trainer = Trainer(model, "cross_entropy", "sgd", lr=0.1, batch_size=32, diagnostics=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(data.x_train, data.y_train, epochs=15, verbose=0)
        said = [str(w.message) for w in caught if issubclass(w.category, DiagnosticWarning)]
        runs[name] = (trainer, said, evaluate(model, x_test, y_test, "cross_entropy")["accuracy"])
    sig, said, acc = runs["sigmoid"]
    assert any("layer 1's gradient norm is" in s and "of layer 10's: vanishing gradients" in s for s in said)
    g = [sig.history.epochs[-1][f"grad_norm[{l}]"] for l in range(1, 11)]
    assert g[0] / g[-1] < 1e-10 and all(a < b for a, b in itertools.pairwise(g))
    assert acc < 0.25  # it does not learn
    relu, said, acc = runs["relu"]
    assert not [s for s in said if "vanishing" in s or "exploding" in s], said
    g = [relu.history.epochs[-1][f"grad_norm[{l}]"] for l in range(1, 11)]
    assert min(g) / max(g) > 1e-2
    assert acc > 0.9  # it learns


def test_numbers_match_pytorch_and_the_weights() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 5)).astype(np.float64)
    y = rng.integers(0, 3, 40)
    model = Sequential(
        Dense(5, 6, activation="relu", seed=0, dtype=np.float64),
        Dense(6, 4, seed=1, dtype=np.float64),
        Activation("tanh"),
        Dense(4, 3, activation="softmax", seed=2, dtype=np.float64),
    )
    start = [layer.W.data.copy() for layer in model.dense_layers()]
    trainer = Trainer(
        model, "cross_entropy", "sgd", lr=0.5, batch_size=8, diagnostics=Diagnostics(probe_size=500)
    )
    logs = trainer.fit(x, y, epochs=1, verbose=0).epochs[0]
    W = [torch.tensor(layer.W.data.copy(), requires_grad=True) for layer in model.dense_layers()]
    b = [torch.tensor(layer.b.data.copy()) for layer in model.dense_layers()]
    z1 = torch.tensor(x) @ W[0].T + b[0]
    z2 = torch.relu(z1) @ W[1].T + b[1]
    z3 = torch.tanh(z2) @ W[2].T + b[2]
    torch.nn.functional.cross_entropy(z3, torch.tensor(y)).backward()
    for l, w in enumerate(W, start=1):
        assert logs[f"grad_norm[{l}]"] == pytest.approx(float(w.grad.norm()), rel=1e-10)
        assert logs[f"weight_norm[{l}]"] == pytest.approx(float(w.detach().norm()), rel=1e-12)
        moved = np.linalg.norm(w.detach().numpy() - start[l - 1]) / np.linalg.norm(start[l - 1])
        assert logs[f"update_ratio[{l}]"] == pytest.approx(moved, rel=1e-12)
    assert logs["dead_relu[1]"] == pytest.approx(float(np.mean(np.all(z1.detach().numpy() <= 0, axis=0))))
    slope = 1 - np.tanh(z2.detach().numpy()) ** 2  # the Activation layer belongs to dense layer 2
    assert logs["saturated[2]"] == pytest.approx(float(np.mean(slope < 0.1)))
    assert "saturated[3]" not in logs and "dead_relu[2]" not in logs


def test_diagnostics_change_nothing_in_training() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(96, 4)).astype(np.float32), rng.integers(0, 2, 96)
    runs = []
    for diagnose in (False, True):
        model = mlp([4, 16, 16, 2], "relu", "softmax", dropout=0.3, seed=3)
        trainer = Trainer(model, "cross_entropy", "adam", lr=0.01, batch_size=16, diagnostics=diagnose)
        history = trainer.fit(x, y, epochs=3, validation_split=0.25, verbose=0)
        runs.append((history, [p.data.copy() for p in model.parameters()], trainer))
    (plain, w0, _), (diag, w1, trainer) = runs
    for a, b in zip(w0, w1, strict=True):
        np.testing.assert_array_equal(a, b)
    assert plain["loss"] == diag["loss"] and plain["val_accuracy"] == diag["val_accuracy"]
    assert "grad_norm[1]" in diag.epochs[0] and "grad_norm[1]" not in plain.epochs[0]
    assert trainer.model.training  # back in training mode after each probe


def test_dead_and_saturated_units_are_warned_once() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3)).astype(np.float32), rng.integers(0, 2, 64)
    dead = Dense(3, 8, activation="relu", bias=np.full(8, -50.0), seed=0)
    flat = Dense(3, 8, activation="sigmoid", weights=rng.normal(0, 40, (8, 3)), seed=0)
    for first, needle in (
        (dead, "100% of its ReLU units are dead"),
        (flat, "of its sigmoid units are saturated"),
    ):
        model = Sequential(first, Dense(8, 2, activation="softmax", seed=1))
        trainer = Trainer(model, "cross_entropy", "sgd", lr=0.01, diagnostics=True)
        with pytest.warns(DiagnosticWarning) as caught:
            trainer.fit(x, y, epochs=3, verbose=0)
        said = [str(w.message) for w in caught if needle in str(w.message)]
        assert len(said) == 1 and said[0].startswith("epoch 1: layer 1: ")
        assert sum(needle in text for _, text in trainer.diagnostics.warnings) == 3
        report = trainer.diagnostics.report()
        assert report.startswith("after epoch 3 (probe batch of 64 examples)") and needle in report


def stats(g: list[float], **extra: float | None) -> list[LayerStats]:
    out = [LayerStats(i + 1, "sigmoid", v, 1.0, 1e-2) for i, v in enumerate(g)]
    for key, value in extra.items():
        name, layer = key.split("_")
        setattr(out[int(layer) - 1], {"update": "update_ratio"}.get(name, name), value)
    return out


@pytest.mark.parametrize(
    ("layers", "kind", "text"),
    [
        (
            stats([3e-7, 1e-3, 1.0, 0.5, 0.2, 0.1]),
            "vanishing",
            "layer 1's gradient norm is 3e-07 of layer 3's",
        ),
        (
            stats([3e-7, 1.0], saturated_1=0.84),
            "vanishing",
            "vanishing gradients; 84% of its sigmoid units are saturated",
        ),
        (stats([5e4, 1.0, 2.0]), "exploding", "layer 1's gradient norm is 2.5e+04 times layer 3's"),
        (stats([0.0, 0.0]), "vanishing", "every layer's dC/dW is exactly zero"),
        (stats([float("nan"), 1.0]), "nonfinite", "layer 1's gradient is not finite"),
        (stats([1.0, 1.0], dead_2=0.75), "dead", "layer 2: 75% of its ReLU units are dead"),
        (
            stats([1.0, 1.0], update_2=0.0),
            "still",
            "layer 2 is not learning: the weights moved by less than 1e-06",
        ),
        (stats([1.0, 1.0], update_1=3e-9, update_2=0.0), "still", "layers 1, 2 are not learning"),
        (stats([1.0, 1.0], update_1=3e-9, update_2=0.0), "still", "this epoch (layer 1: 3e-09, layer 2: 0)"),
        (stats([1.0, 1.0], update_1=2.5), "jumpy", "changed by 2.5 times their norm this epoch"),
    ],
)
def test_problems_in_plain_words(layers: list[LayerStats], kind: str, text: str) -> None:
    found = problems(layers, LIMITS)
    assert any(k == kind and text in message for k, _, message in found), found


def test_healthy_numbers_give_no_warning() -> None:
    assert problems(stats([0.3, 0.5, 0.2], dead_1=0.1, saturated_2=0.2), LIMITS) == []


def test_plot_gets_a_gradient_panel(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)).astype(np.float32), rng.integers(0, 2, 32)
    plain = fit(mlp([3, 4, 2], "relu", "softmax"), x, y, "cross_entropy", epochs=2, verbose=0)
    diag = fit(
        mlp([3, 4, 2], "relu", "softmax"), x, y, "cross_entropy", epochs=2, verbose=0, diagnostics=True
    )
    widths = []
    for name, history in (("plain", plain), ("diag", diag)):
        plot_history(history, str(tmp_path / f"{name}.png"))
        header = (tmp_path / f"{name}.png").read_bytes()[:24]
        widths.append(struct.unpack(">I", header[16:20])[0])
    assert widths[1] == widths[0] * 3 // 2  # loss, accuracy and the gradient norms


def test_train_diagnose_command(tmp_path: Path) -> None:
    args = ["train", "--layers", "16", "--epochs", "2", "--quiet", "--out", str(tmp_path), "--diagnose"]
    assert main(args) == 0
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert {"grad_norm[1]", "grad_norm[2]", "update_ratio[1]", "dead_relu[1]"} <= set(history[-1])


def test_bad_settings() -> None:
    with pytest.raises(ConfigError, match="probe_size must be an integer >= 1"):
        Diagnostics(probe_size=0)
    with pytest.raises(ConfigError, match=r"dead must be a fraction in \(0, 1\]"):
        Diagnostics(dead=0.0)
    with pytest.raises(ConfigError, match="start"):
        Diagnostics().on_epoch_end(object(), 1, {})
    assert repr(Diagnostics()) == "Diagnostics(probe_size=256, seed=0, epochs=0)"
    assert Diagnostics().report() == "Diagnostics: nothing measured yet."
