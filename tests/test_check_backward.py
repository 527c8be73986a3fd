"""Tests of chainrule.check.backward: a learner's own backward functions against the engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from chainrule.check import backward
from chainrule.errors import ConfigError
from chainrule.layers import Dense

Array = np.ndarray


def sigmoid(z: Array) -> Array:
    return 0.5 * (1 + np.tanh(z / 2))  # stable for any z


def softmax(z: Array) -> Array:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def dense(delta: Array, A: Array, W: Array) -> tuple[Array, Array, Array]:
    return delta @ W, delta.T @ A, delta.sum(axis=0)


def dense_sigmoid(dA: Array, A_prev: Array, W: Array, b: Array, mistake: str = "") -> Any:
    A = sigmoid(A_prev @ W.T + b)
    slope = sigmoid(A) * (1 - sigmoid(A)) if mistake == "phi_prime_of_a" else A * (1 - A)
    dZ = dA if mistake == "phi_prime_left_out" else dA * slope
    dW = dZ.T @ (A if mistake == "wrong_layer_activations" else A_prev)
    return dZ @ W, dW, dZ.sum(axis=0)


RIGHT: dict[str, Callable[..., Any]] = {
    "dense": dense,
    "dense:sigmoid": dense_sigmoid,
    "sigmoid": lambda dA, Z: dA * sigmoid(Z) * (1 - sigmoid(Z)),
    "tanh": lambda dA, Z, A: dA * (1 - A**2),
    "relu": lambda dA, Z: dA * (Z > 0),
    "identity": lambda dA, Z: dA,
    "softmax": lambda dA, Z: softmax(Z) * (dA - (dA * softmax(Z)).sum(axis=1, keepdims=True)),
    "half_sse": lambda A, Y: (A - Y) / len(A),
    "sse": lambda A, Y: 2 * (A - Y) / len(A),
    "mse": lambda A, Y: 2 * (A - Y) / A.size,
    "cross_entropy": lambda A, Y: -Y / A / len(A),
    "binary_cross_entropy": lambda A, Y: (A - Y) / (A * (1 - A)) / len(A),
    "softmax_cross_entropy": lambda Z, Y: (softmax(Z) - Y) / len(Z),
    "sigmoid_binary_cross_entropy": lambda Z, Y: (sigmoid(Z) - Y) / len(Z),
}

WRONG: list[tuple[str, Callable[..., Any], str]] = [
    ("dense", lambda d, A, W: (d @ W.T, d.T @ A, d.sum(axis=0)), "W_not_transposed"),
    ("dense", lambda d, A, W: (d @ W, d.T @ A / len(A), d.sum(axis=0) / len(A)), "mean_doubled"),
    ("dense", lambda d, A, W: (d @ W, A.T @ d, d.sum(axis=0)), "gradient_transposed"),
    ("dense:sigmoid", lambda *a: dense_sigmoid(*a, mistake="phi_prime_left_out"), "phi_prime_left_out"),
    ("dense:sigmoid", lambda *a: dense_sigmoid(*a, mistake="phi_prime_of_a"), "phi_prime_of_a"),
    (
        "dense:sigmoid",
        lambda *a: dense_sigmoid(*a, mistake="wrong_layer_activations"),
        "wrong_layer_activations",
    ),
    ("sigmoid", lambda dA, Z, A: dA * A * (1 - A) * 0 + dA * Z * (1 - Z), "a_form_on_z"),
    ("relu", lambda dA, Z: dA * (Z >= 0), "relu_kink"),
    ("softmax", lambda dA, Z: dA * softmax(Z) * (1 - softmax(Z)), "softmax_diagonal"),
    ("half_sse", lambda A, Y: 2 * (A - Y) / len(A), "factor_2"),
    ("sse", lambda A, Y: (A - Y) / len(A), "factor_2"),
    ("half_sse", lambda A, Y: A - Y, "mean_missing"),
    ("cross_entropy", lambda A, Y: -Y / A, "mean_missing"),
]


@pytest.mark.parametrize("layer", list(RIGHT))
def test_right_functions_pass(layer: str) -> None:
    report = backward(RIGHT[layer], layer=layer)
    assert report.ok, str(report)
    assert len(report.cases) >= 2 and "All outputs right" in str(report)
    assert report.to_dict()["ok"] is True


@pytest.mark.parametrize(("layer", "fn", "name"), WRONG, ids=[f"{w[0]}-{w[2]}" for w in WRONG])
def test_each_mistake_is_named(layer: str, fn: Callable[..., Any], name: str) -> None:
    report = backward(fn, layer=layer)
    assert not report.ok
    assert report.mistake is not None and report.mistake.name == name, str(report)
    assert f"Mistake: {report.mistake.title}" in str(report) and "(note" in str(report)
    assert report.to_dict()["mistake"] == name


def test_relu_kink_is_found_at_zero_only() -> None:
    report = backward(lambda dA, Z: dA * (Z >= 0), layer="relu")
    assert report.case.startswith("zeros") and report.output == "dC/dZ"
    assert report.expected == 0.0 and report.yours != 0.0


def test_dense_layer_object_and_sizes() -> None:
    layer = Dense(4, 2, activation="tanh")

    def fn(dA: Array, A_prev: Array, W: Array, b: Array) -> Any:
        assert W.shape[1] in (4, 5) and W.shape[0] == 2  # the layer's sizes (then one more input)
        dZ = dA * (1 - np.tanh(A_prev @ W.T + b) ** 2)
        return dZ @ W, dZ.T @ A_prev, dZ.sum(axis=0)

    assert backward(fn, layer=layer).ok


def test_shape_is_named_when_it_is_wrong() -> None:
    report = backward(lambda d, A, W: (d @ W, d.T @ A, d.sum(axis=0, keepdims=True)), layer="dense")
    assert report.output == "dC/db" and report.shape == (1, 3) and report.expected_shape == (3,)
    assert "dC/db has shape (1, 3), expected (3,)" in str(report)


def test_unknown_mistake_and_first_wrong_number() -> None:
    report = backward(lambda A, Y: (A - Y) / len(A) + 0.1, layer="half_sse")
    assert report.mistake is None and report.output == "dC/dA" and report.index == (0, 0)
    assert "Not one of the known mistakes" in str(report)


def test_learner_errors_are_reported_not_raised() -> None:
    report = backward(lambda d, A, W: d @ W, layer="dense")
    assert not report.ok and "expected a tuple" in report.error
    report = backward(lambda dA, Z: 1 / 0, layer="sigmoid")
    assert "your function raised ZeroDivisionError" in str(report)


def test_overflow_is_named() -> None:
    naive = lambda dA, Z: dA * np.exp(-Z) / (1 + np.exp(-Z)) ** 2  # inf / inf at z = -800
    report = backward(naive, layer="sigmoid")
    assert report.case.startswith("large z") and "an overflow?" in report.error
    assert "subtract the max" in str(report)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fn": 3}, "fn must be a function, got int"),
        ({"layer": "convolution"}, "unknown layer 'convolution'"),
        ({"layer": 7}, "layer must be a name or a Dense layer"),
        ({"m": 1}, "m must be an integer >= 2"),
    ],
)
def test_bad_calls(kwargs: dict[str, Any], message: str) -> None:
    args = {"fn": dense, "layer": "dense", **kwargs}
    with pytest.raises(ConfigError, match=message):
        backward(args.pop("fn"), **args)


def test_report_repr() -> None:
    report = backward(dense, layer="dense")
    assert repr(report) == "BackwardReport(dense layer, ok=True, output='', case='')"


def test_the_docs_example_prints_what_the_docs_show(capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "check.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(block, "docs/check.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.strip() and printed in text
