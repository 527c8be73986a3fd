"""Metrics computed from model outputs (level 5): no gradients, plain arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import backend
from chainrule.errors import ShapeError
from chainrule.tensor import Tensor


def predicted_classes(output: Any) -> np.ndarray:
    """Class of each row: ``argmax`` over outputs, or ``output > 0.5`` for one sigmoid output.

    Shapes: ``output (m, k) -> (m,)``. For ``k = 1`` the output is taken as a
    probability (pass logits through sigmoid first, or compare with 0).
    """
    a = backend.to_numpy(output.data if isinstance(output, Tensor) else output)
    if a.ndim != 2:
        raise ShapeError(f"predicted_classes: expected outputs of shape (m, k), got {a.shape}.")
    return (a[:, 0] > 0.5).astype(np.int64) if a.shape[1] == 1 else a.argmax(axis=1)


def true_classes(target: Any) -> np.ndarray:
    """Integer labels ``(m,)`` from labels ``(m,)``, one-hot rows ``(m, k)`` or 0/1 targets ``(m, 1)``."""
    y = backend.to_numpy(target.data if isinstance(target, Tensor) else target)
    if y.ndim == 2:
        return (y[:, 0] > 0.5).astype(np.int64) if y.shape[1] == 1 else y.argmax(axis=1)
    return y.astype(np.int64)


def accuracy(output: Any, target: Any) -> float:
    """Fraction of rows whose predicted class equals the true class.

    Examples
    --------
    >>> import numpy as np
    >>> accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]))
    0.5
    """
    pred, true = predicted_classes(output), true_classes(target)
    if pred.shape != true.shape:
        raise ShapeError(f"accuracy: {pred.shape[0]} predictions but {true.shape[0]} targets.")
    return float((pred == true).mean()) if pred.size else float("nan")


def regression_scores(output: Any, target: Any) -> dict[str, float]:
    """Mean absolute error, root mean squared error and R^2 of predictions ``(m, k)`` against targets.

    Math
    ----
    MAE = mean |a - y|,  RMSE = sqrt(mean (a - y)^2),
    R^2 = 1 - sum (a - y)^2 / sum (y - mean(y))^2, per output, averaged over the k outputs
    (scikit-learn's ``r2_score``; a constant target gives 1 for a perfect fit, else 0).

    Examples
    --------
    >>> regression_scores(np.array([[1.0], [2.0], [4.0]]), np.array([1.0, 3.0, 4.0]))
    {'mae': 0.3333333333333333, 'rmse': 0.5773502691896257, 'r2': 0.7857142857142857}
    """
    a = np.asarray(backend.to_numpy(output.data if isinstance(output, Tensor) else output), dtype=np.float64)
    y = np.asarray(backend.to_numpy(target.data if isinstance(target, Tensor) else target), dtype=np.float64)
    a, y = a.reshape(len(a), -1), y.reshape(len(y), -1)
    if a.shape != y.shape:
        raise ShapeError(f"regression_scores: predictions of shape {a.shape} but targets of shape {y.shape}.")
    err = a - y
    total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    residual = (err**2).sum(axis=0)
    constant = total == 0
    r2 = np.where(constant, np.where(residual == 0, 1.0, 0.0), 1 - residual / np.where(constant, 1, total))
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "r2": float(r2.mean()),
    }


def confusion_matrix(output: Any, target: Any, n_classes: int) -> np.ndarray:
    """``M[i, j]`` = number of examples of class ``i`` predicted as ``j``; shape ``(k, k)``."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (true_classes(target), predicted_classes(output)), 1)
    return matrix


__all__ = ["accuracy", "confusion_matrix", "predicted_classes", "regression_scores", "true_classes"]
