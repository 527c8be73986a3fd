"""The known mistakes of backprop by hand, as one table (level 7).

Each row names a mistake, the notes' equation it breaks, and how to recompute
a step the wrong way: a few rules of :mod:`chainrule.check.steps` replaced.
:mod:`chainrule.check` reruns the steps once per row and names the row whose
numbers are the learner's. A row that gives the right numbers for a network
(``phi'`` left out of an identity layer, the ``1/m`` of one example) cannot
be told apart there and simply never matches.

The notes are those of ``../shared/seeds`` (their README maps them): 000
(partials per activation and loss), 002 (bracket notation, update, batching),
003 (sum of squared errors, averaging over samples), 004 (the delta form).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from chainrule.check.steps import CORRECT, At, Rule, phi_prime
from chainrule.explain import handwork as hw

Array = np.ndarray

# The notes' equations, each with where it stands.
DELTA_OUT = "delta[L] = dC/da[L] * phi'(z[L])  (note 004: delta_j^L = dC/da_j^L sigma'(z_j^L))"
DELTA_HIDDEN = (
    "delta[l] = (W[l+1]^T delta[l+1]) * phi'(z[l])  "
    "(note 004: delta_j^l = sum_k w_kj^(l+1) delta_k^(l+1) sigma'(z_j^l))"
)
EQUATIONS: dict[str, str] = {
    "z": "z[l] = W[l] a[l-1] + b[l]  (note 002; note 004: z_j^l = sum_k w_jk^l a_k^(l-1) + b_j^l)",
    "a": "a[l] = phi[l](z[l])  (note 002)",
    "loss": "C = 1/m sum over the examples of the loss's C_i  (note 002, 'Batching'; note 004: 1/(2n) sum_x)",
    "dC_da_L": "dC/da[L] of the loss's convention, with its 1/m  (notes 000, 002, 003)",
    "W_next_T_delta_next": "dC/da[l] = W[l+1]^T delta[l+1]  (note 002: dJ/da^[l-1] = (W^[l])^T dJ/dz^[l])",
    "phi_prime": "phi'(z[l]); for the sigmoid sigma'(z) = sigma(z) (1 - sigma(z)) = a (1 - a)  (note 004)",
    "delta": DELTA_HIDDEN,
    "grad_weights": "dC/dW[l] = delta[l] a[l-1]^T  (note 004: dC/dw_jk^l = delta_j^l a_k^(l-1); note 002)",
    "grad_bias": "dC/db[l] = delta[l], summed over the examples  (notes 002, 004)",
    "weights_after": "W[l] <- W[l] - alpha dC/dW[l]  (note 002)",
    "bias_after": "b[l] <- b[l] - alpha dC/db[l]  (note 002); fixed biases (update_bias: false) stay",
}


@dataclass(frozen=True)
class Mistake:
    """One known mistake: its name, the equation it breaks, and the rules that make it.

    Attributes
    ----------
    name : str
        Identifier, e.g. ``"phi_prime_left_out"``.
    title : str
        The mistake in plain words.
    equation : str
        The notes' equation it breaks, with the note it comes from.
    wrong : str
        What the learner computed instead.
    rules : mapping
        Step name -> the wrong rule (see :data:`chainrule.check.steps.CORRECT`).
    """

    name: str
    title: str
    equation: str
    wrong: str
    rules: Mapping[str, Rule]

    def __repr__(self) -> str:
        return f"Mistake({self.name!r}: {self.title})"

    def steps(self) -> dict[str, Rule]:
        """The full rule set with this mistake in it."""
        return {**CORRECT, **self.rules}


def _only(acts: tuple[str, ...], wrong: Rule, step: str) -> Rule:
    """``wrong`` for layers with one of ``acts``, the right rule elsewhere."""
    return lambda s: wrong(s) if s.act in acts else CORRECT[step](s)


def _scaled(step: str, factor: Callable[[At], float]) -> Rule:
    return lambda s: CORRECT[step](s) * factor(s)


def _phi_at_a(s: At) -> Array:
    """phi' evaluated at ``a`` as if it were ``z``: ``sigma(a) (1 - sigma(a))``."""
    return phi_prime(s.act, s.a, np.asarray(hw.phi_of(s.act).f(s.a)))


def _kink(s: At) -> Array:
    """relu'(0) = 1 (and leaky_relu'(0) = 1): the derivative of the right-hand branch at the kink."""
    return np.where(s.z >= 0, 1.0, 0.0 if s.act == "relu" else 0.01)


def _two(s: At) -> float:
    return {"sse": 0.5, "mse": 0.5, "half_sse": 2.0}.get(s.loss, 1.0)


def _first_update(s: At) -> Array:
    """``W[l+1]^T delta[l+1]`` with ``W[l+1]`` already moved by its own gradient ``delta[l+1]^T a[l]``."""
    return s.delta_next @ (s.W_next - s.alpha * (s.delta_next.T @ s.a))


MISTAKES: tuple[Mistake, ...] = (
    Mistake(
        "phi_prime_left_out",
        "phi'(z) left out of delta",
        "delta[l] = dC/da[l] * phi'(z[l])  (note 004: delta_j^L = dC/da_j^L sigma'(z_j^L), "
        "delta_j^l = sum_k w_kj^(l+1) delta_k^(l+1) sigma'(z_j^l); note 002)",
        "delta[l] = dC/da[l], without the factor phi'(z[l])",
        {"delta": lambda s: np.asarray(s.g)},
    ),
    Mistake(
        "phi_prime_of_a",
        "phi' applied to a instead of z",
        "a[l] = phi(z[l]), so da/dz = phi'(z[l]); for the sigmoid phi'(z) = sigma(z) (1 - sigma(z)) "
        "= a (1 - a)  (note 004, 'Useful Formulae')",
        "phi'(a[l]), e.g. sigma(a) (1 - sigma(a)) for the sigmoid, 1 - tanh(a)^2 for tanh",
        {"phi_prime": _phi_at_a},
    ),
    Mistake(
        "a_form_on_z",
        "phi' written in terms of a, but fed z",
        "sigma'(z) = sigma(z) (1 - sigma(z)) = a (1 - a), with a = sigma(z)  (note 004, 'Useful Formulae')",
        "z (1 - z) for the sigmoid, 1 - z^2 for tanh",
        {"phi_prime": lambda s: phi_prime(s.act, s.z, s.z)},
    ),
    Mistake(
        "relu_kink",
        "relu'(0) taken as 1",
        "relu'(z) = 1 if z > 0, 0 otherwise  (note 000, 'Partials for Activations')",
        "relu'(0) = 1 at the kink",
        {"phi_prime": _only(("relu", "leaky_relu"), _kink, "phi_prime")},
    ),
    Mistake(
        "W_not_transposed",
        "W instead of W^T in the delta recursion",
        DELTA_HIDDEN + "; the sum runs over the rows k of W[l+1]",
        "W[l+1] delta[l+1] instead of W[l+1]^T delta[l+1] (possible only for a square W[l+1])",
        {"W_next_T_delta_next": lambda s: s.delta_next @ s.W_next.T},
    ),
    Mistake(
        "factor_2",
        "the factor 2 of sse against half_sse",
        "sse: C = sum_j (a_j - y_j)^2, so dC/da = 2 (a - y)  (notes 003, 000); "
        "half_sse: C = 1/2 sum_j (a_j - y_j)^2, so dC/da = a - y  (notes 002, 004)",
        "the other convention's C and dC/da[L]: the 2 dropped from sse (and mse), or added to half_sse",
        {"loss": _scaled("loss", _two), "dC_da_L": _scaled("dC_da_L", _two)},
    ),
    Mistake(
        "mean_missing",
        "the 1/m of the batch mean missing",
        "C = 1/m sum_i C_i, so dC/da[L] carries 1/m and every delta and gradient with it  "
        "(note 002, 'Batching'; note 003: dC/dw = 1/n sum_i dC_i/dw)",
        "C and dC/da[L] summed over the examples instead of averaged (per-example deltas)",
        {
            "loss": _scaled("loss", lambda s: s.m),
            "dC_da_L": _scaled("dC_da_L", lambda s: s.m),
            "delta": _scaled("delta", lambda s: s.m if s.fused else 1),
        },
    ),
    Mistake(
        "mean_doubled",
        "the 1/m of the batch mean taken twice",
        "dC/dW[l] = delta[l] A[l-1]^T sums over the examples; the 1/m is already in delta[l]  (note 002)",
        "dC/dW[l] and dC/db[l] divided by m once more",
        {
            "grad_weights": _scaled("grad_weights", lambda s: 1 / s.m),
            "grad_bias": _scaled("grad_bias", lambda s: 1 / s.m),
        },
    ),
    Mistake(
        "update_sign",
        "the update's sign",
        "W[l] <- W[l] - alpha dC/dW[l]: gradient descent steps against the gradient  (note 002)",
        "W[l] + alpha dC/dW[l] (and the same for b[l])",
        {
            "weights_after": lambda s: s.W + s.alpha * s.grad,
            "bias_after": lambda s: s.b + s.alpha * s.grad if s.update_bias else np.array(s.b),
        },
    ),
    Mistake(
        "updated_before_backprop",
        "upper weights updated before the lower deltas were computed",
        DELTA_HIDDEN + " uses W[l+1] of the forward pass; every weight moves after the backward pass  "
        "(note 002: 'Update parameters for every layer')",
        "W[l+1] - alpha dC/dW[l+1] in place of W[l+1] in the delta recursion",
        {"W_next_T_delta_next": _first_update},
    ),
    Mistake(
        "softmax_diagonal",
        "the softmax Jacobian's diagonal only",
        "da_j/dz_i = a_j (delta_ij - a_i)  (note 000): every a_j depends on every z_i, so "
        "dC/dz_i = sum_j dC/da_j a_j (delta_ij - a_i)",
        "dC/dz_i = dC/da_i a_i (1 - a_i), the diagonal only",
        {"delta": _only(("softmax",), lambda s: s.g * s.a * (1 - s.a), "delta")},
    ),
    Mistake(
        "bias_update_flipped",
        "the bias updated when it should not be, or not when it should",
        EQUATIONS["bias_after"],
        "b[l] moved although the spec keeps it fixed, or left where it was although it is trained",
        {"bias_after": lambda s: np.array(s.b) if s.update_bias else s.b - s.alpha * s.grad},
    ),
    Mistake(
        "wrong_layer_activations",
        "activations of the wrong layer in dC/dW",
        EQUATIONS["grad_weights"],
        "delta[l] a[l]^T: the layer's own output instead of its input a[l-1]",
        {"grad_weights": lambda s: s.delta.T @ s.a},
    ),
    Mistake(
        "gradient_transposed",
        "dC/dW transposed",
        EQUATIONS["grad_weights"] + "; dC/dW[l] has the shape of W[l], (n[l], n[l-1])",
        "a[l-1] delta[l]^T, of shape (n[l-1], n[l])",
        {"grad_weights": lambda s: s.a_prev.T @ s.delta},
    ),
)

BY_NAME: dict[str, Mistake] = {mistake.name: mistake for mistake in MISTAKES}


def table() -> list[tuple[str, str, str, str]]:
    """``(name, title, equation, wrong)`` per mistake: the table of ``docs/check.md``."""
    return [(m.name, m.title, m.equation, m.wrong) for m in MISTAKES]


__all__ = ["BY_NAME", "EQUATIONS", "MISTAKES", "Mistake", "table"]
