"""Tests of chainrule.summary: a model's layers, output shapes and parameter counts, as text and HTML."""

from __future__ import annotations

import numpy as np

from chainrule.layers import Activation, Dense, Dropout, Sequential, mlp
from chainrule.summary import summarize


def test_counts_shapes_and_text() -> None:
    model = mlp([2, 16, 16, 3], activation="relu", output="softmax", dropout=0.1)
    s = model.summary()
    # Dense(2, 16): 2*16 + 16 = 48; Dense(16, 16): 272; Dense(16, 3): 51; dropouts: 0
    assert [r.params for r in s.rows] == [48, 0, 272, 0, 51]
    assert [r.shape for r in s.rows] == ["(m, 16)", "(m, 16)", "(m, 16)", "(m, 16)", "(m, 3)"]
    assert s.total == 371 and s.trainable == 371 and s.sizes == [2, 16, 16, 3]
    text = str(s)
    assert text.splitlines()[0] == "Sequential: 2 -> 16 -> 16 -> 3, 5 layers"
    assert "Total params: 371 (1.45 KiB as float32)" in text
    assert "Non-trainable params: 0" in text
    assert "Dropout(p=0.1)" in text and repr(s) == text


def test_frozen_parameters_and_dtype() -> None:
    model = Sequential(
        Dense(4, 3, dtype=np.float64, seed=0), Activation("tanh"), Dense(3, 1, bias=False, seed=1)
    )
    model[0].W.requires_grad = False  # type: ignore[attr-defined]
    s = summarize(model)
    assert s.total == 4 * 3 + 3 + 3 and s.trainable == 3 + 3
    assert s.dtype == "mixed"
    assert s.rows[1].shape == "(m, 3)" and s.rows[2].detail == "W (1, 3)"
    assert "Non-trainable params: 12" in str(s)


def test_html_for_notebooks() -> None:
    model = mlp([2, 4, 2])
    html = model._repr_html_()
    assert html.startswith("<div class='chainrule-summary'>") and html.count("<tr>") == 3
    assert "Dense(in_features=2, out_features=4, activation=&#x27;relu&#x27;)" in html
    assert "Total params: 22" in html


def test_a_single_layer_and_a_leading_dropout() -> None:
    assert summarize(Dense(3, 2)).rows[0].params == 8
    s = summarize(Sequential(Dropout(0.5), Dense(3, 2)))
    assert s.rows[0].shape == "(m, ?)" and s.rows[1].shape == "(m, 2)"
