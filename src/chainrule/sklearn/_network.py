"""The network behind the estimators: sklearn's initial weights, the training loss, output functions.

Part of :mod:`chainrule.sklearn` (level 8).

The estimators train a :class:`~chainrule.layers.Sequential` that ends in the
logits ``z[L]`` (an identity output). The output activation ``phi[L]`` (softmax,
sigmoid or identity) is part of the loss during training, fused with it where
chainrule has a fused loss, and applied by :func:`probabilities` to predict.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special

from chainrule.functional import get_activation
from chainrule.layers import Dense, Dropout, Module, Sequential
from chainrule.losses import Loss
from chainrule.tensor import Tensor

# sklearn's activation names -> chainrule's (sklearn calls the sigmoid "logistic")
SKLEARN_NAMES = {"logistic": "sigmoid"}
# chainrule's output activation names -> sklearn's ``out_activation_``
OUT_ACTIVATION = {"softmax": "softmax", "sigmoid": "logistic", "identity": "identity"}


def initial_weights(
    layer_units: Sequence[int], activation: str, random_state: np.random.RandomState
) -> list[tuple[np.ndarray, np.ndarray]]:
    """sklearn's initial ``(coef, intercept)`` per layer, drawn from ``random_state`` as sklearn draws them.

    Math: Glorot uniform, ``U(-r, r)`` with ``r = sqrt(f / (n[l-1] + n[l]))``, ``f = 2`` for a
    sigmoid (logistic) hidden activation and ``f = 6`` otherwise, for the weights and the
    intercepts alike (``BaseMultilayerPerceptron._init_coef``); per layer the weights are
    drawn first, then the intercepts, so the same ``random_state`` gives sklearn's numbers.

    Shapes: ``coef (n[l-1], n[l])`` (sklearn's ``coefs_[l-1]``, the transpose of ``W[l]``),
    ``intercept (n[l],)``.
    """
    factor = 2.0 if activation == "sigmoid" else 6.0
    weights = []
    for fan_in, fan_out in itertools.pairwise(layer_units):
        bound = np.sqrt(factor / (fan_in + fan_out))
        coef = random_state.uniform(-bound, bound, (fan_in, fan_out))
        intercept = random_state.uniform(-bound, bound, fan_out)
        weights.append((coef, intercept))
    return weights


def build_network(
    weights: Sequence[tuple[np.ndarray, np.ndarray]],
    activation: str,
    dropout: float,
    dtype: Any,
    random_state: np.random.RandomState,
) -> Sequential:
    """Dense layers with the given ``(coef, intercept)``, ``activation`` on the hidden ones, logits out.

    With ``dropout > 0`` a :class:`~chainrule.layers.Dropout` follows every hidden layer,
    its mask generator seeded from ``random_state`` (after the weights were drawn).
    """
    layers: list[Module] = []
    for i, (coef, intercept) in enumerate(weights):
        last = i == len(weights) - 1
        n_in, n_out = coef.shape
        phi = "identity" if last else activation
        layers.append(Dense(n_in, n_out, bias=intercept, activation=phi, weights=coef.T, dtype=dtype))
        if dropout and not last:
            layers.append(Dropout(dropout, seed=int(random_state.randint(np.iinfo(np.int32).max))))
    return Sequential(*layers)


def with_output(model: Sequential, activation: str) -> Sequential:
    """The same network (the same parameter tensors) with ``activation`` on its last Dense layer.

    Used to save a complete model (``a[L] = phi[L](z[L])``) from the logits network and
    to turn a loaded one back into logits. Layers before the last are shared as they are.
    """
    last = model[len(model) - 1]
    if not isinstance(last, Dense):
        raise TypeError(f"with_output: the last layer is {last!r}, not a Dense layer")
    swapped = Dense(
        last.in_features, last.out_features, activation=activation, weights=np.zeros(last.W.shape)
    )
    swapped.W, swapped.b = last.W, last.b
    return Sequential(*model.layers[:-1], swapped)


class MLPLoss(Loss):
    """The estimators' training cost: ``base(phi[L](z[L]), y, w) + alpha / (2 sum(w)) sum_l ||W[l]||^2``.

    sklearn's L2 convention: the penalty on the weights ``W[l]`` only (not the
    intercepts), divided by the batch's ``m`` (``sum(w)`` with sample weights), so
    its gradient is ``alpha W[l] / m`` added to each batch's ``dC/dW[l]``.

    Parameters
    ----------
    base : Loss
        A chainrule loss, on the logits if it is fused (``from_logits``), else on ``a[L]``.
    output : str
        ``phi[L]`` applied before ``base`` (``"identity"`` for a loss on logits).
    alpha : float
        L2 strength; 0 adds nothing to the graph.
    weights : list of Tensor
        The ``W[l]`` the penalty acts on.
    """

    def __init__(self, base: Loss, output: str, alpha: float, weights: Sequence[Tensor]) -> None:
        super().__init__(base.reduction)
        self.base, self.output, self.alpha = base, output, float(alpha)
        self.phi = get_activation(output)
        self.weights = list(weights)

    def __repr__(self) -> str:
        return f"MLPLoss(base={self.base!r}, output={self.output!r}, alpha={self.alpha})"

    def __call__(self, output: Tensor, target: Any, weight: Any = None) -> Tensor:
        a = self.phi(output)
        cost = self.base(a, target) if weight is None else self.base(a, target, weight)
        if not self.alpha:
            return cost
        squares = (self.weights[0] * self.weights[0]).sum()
        for w in self.weights[1:]:
            squares = squares + (w * w).sum()
        # NOTE: sum(w) as an op of the step, not a Python number: a compiled step sums each batch's weights
        m = output.shape[0] if weight is None else Tensor(weight).sum()
        return cost + (0.5 * self.alpha) * squares / m


def probabilities(z: np.ndarray, output: str, log: bool = False) -> np.ndarray:
    """``phi[L](z)`` (or its log) for logits ``z (m, k)``: stable for any logit (SciPy's special functions).

    ``output`` ``"softmax"``, ``"sigmoid"`` (independent units) or ``"ovr"`` (sigmoid units
    of a multiclass problem, normalised per row as one-vs-rest classifiers are:
    ``p_j / sum_i p_i``, computed as ``softmax(log sigmoid(z))``).
    """
    if output == "softmax":
        return special.log_softmax(z, axis=1) if log else special.softmax(z, axis=1)
    if output == "ovr":
        log_p = special.log_expit(z)
        return special.log_softmax(log_p, axis=1) if log else special.softmax(log_p, axis=1)
    return special.log_expit(z) if log else special.expit(z)


def batch_size_for(batch_size: int | str, n_samples: int) -> int:
    """sklearn's rule: ``"auto"`` is ``min(200, n_samples)``; a number is clipped to ``[1, n_samples]``."""
    if batch_size == "auto":
        return min(200, n_samples)
    return int(np.clip(int(batch_size), 1, n_samples))


def is_finite_number(value: Any) -> bool:
    """True for a real, finite number (not a bool)."""
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and (math.isfinite(float(value)))
    )
