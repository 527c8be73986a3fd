"""Tests for chainrule.metrics."""

from __future__ import annotations

import numpy as np
import pytest

from chainrule.errors import ShapeError
from chainrule.metrics import accuracy, confusion_matrix, predicted_classes, true_classes
from chainrule.tensor import Tensor


def test_predicted_classes() -> None:
    np.testing.assert_array_equal(predicted_classes(np.array([[0.1, 0.7, 0.2], [3.0, 1.0, 2.0]])), [1, 0])
    np.testing.assert_array_equal(predicted_classes(Tensor(np.array([[0.6], [0.4], [0.5]]))), [1, 0, 0])


def test_true_classes() -> None:
    np.testing.assert_array_equal(true_classes(np.array([[0, 1], [1, 0]])), [1, 0])
    np.testing.assert_array_equal(true_classes(np.array([[1.0], [0.0]])), [1, 0])
    np.testing.assert_array_equal(true_classes(np.array([2, 0])), [2, 0])


def test_accuracy_by_hand() -> None:
    # predictions 1, 0, 1; truth 1, 1, 1 -> 2/3
    out = np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]])
    assert accuracy(out, np.array([1, 1, 1])) == pytest.approx(2 / 3)
    assert accuracy(out, np.eye(2)[[1, 0, 1]]) == 1.0
    assert np.isnan(accuracy(np.zeros((0, 2)), np.zeros(0, dtype=np.int64)))


def test_confusion_matrix() -> None:
    out = np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]])
    np.testing.assert_array_equal(confusion_matrix(out, np.array([1, 1, 0]), 2), [[0, 1], [1, 1]])


def test_errors() -> None:
    with pytest.raises(
        ShapeError, match=r"predicted_classes: expected outputs of shape \(m, k\), got \(3,\)"
    ):
        predicted_classes(np.zeros(3))
    with pytest.raises(ShapeError, match=r"accuracy: 2 predictions but 3 targets"):
        accuracy(np.zeros((2, 2)), np.zeros(3, dtype=np.int64))


def test_regression_scores_match_scikit_learn() -> None:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    from chainrule.metrics import regression_scores

    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 2))
    a = y + rng.normal(scale=0.3, size=(50, 2))
    scores = regression_scores(a, y)
    assert scores["mae"] == pytest.approx(mean_absolute_error(y, a))
    assert scores["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, a)))
    assert scores["r2"] == pytest.approx(r2_score(y, a))
    assert regression_scores(a[:, :1], y[:, 0])["r2"] == pytest.approx(r2_score(y[:, 0], a[:, 0]))
    constant = np.ones(4)
    assert regression_scores(constant, constant)["r2"] == 1.0  # as r2_score(force_finite=True)
    assert regression_scores(constant * 2, constant)["r2"] == 0.0
    with pytest.raises(ShapeError, match=r"regression_scores: predictions of shape \(4, 1\) but targets"):
        regression_scores(constant, np.ones((4, 2)))
