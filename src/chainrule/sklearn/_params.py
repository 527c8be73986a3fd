"""The estimators' parameters: what each may be, and how they are kept as JSON in a saved file.

Part of :mod:`chainrule.sklearn` (level 8).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from chainrule.functional import ACTIVATIONS
from chainrule.optim import OPTIMIZERS
from chainrule.sklearn import _network

SOLVERS = tuple(sorted(OPTIMIZERS))  # adam, adamw, rmsprop, sgd
LEARNING_RATES = ("constant", "invscaling", "adaptive")
DEVICES = ("cpu", "gpu")


def _number(low: float, high: float = np.inf, closed: str = "both", integer: bool = False) -> Any:
    """A check: a finite number (an integer if asked) in ``[low, high]`` (``closed`` says which ends)."""

    def check(v: Any) -> bool:
        kind = (int, np.integer) if integer else (int, float, np.integer, np.floating)
        if (
            isinstance(v, bool)
            or not isinstance(v, kind)
            or (not integer and not _network.is_finite_number(v))
        ):
            return False
        lo_ok = v >= low if closed in ("both", "left") else v > low
        hi_ok = v <= high if closed in ("both", "right") else v < high
        return bool(lo_ok and hi_ok)

    return check


def _one_of(*options: Any) -> Any:
    return lambda v: isinstance(v, str) and v in options


def _flag(v: Any) -> bool:
    return isinstance(v, bool | np.bool_)


def _hidden_sizes(v: Any) -> bool:
    sizes = [v] if np.ndim(v) == 0 else list(v)
    return all(_number(1, integer=True)(s) for s in sizes)


PARAMETERS: dict[str, tuple[Any, str]] = {
    "hidden_layer_sizes": (_hidden_sizes, "a positive int or a sequence of positive ints"),
    "activation": (_one_of("logistic", *sorted(ACTIVATIONS)), f"one of {['logistic', *sorted(ACTIVATIONS)]}"),
    "solver": (
        _one_of(*SOLVERS),
        f"one of {list(SOLVERS)} (lbfgs is not offered: the estimators are stochastic)",
    ),
    "alpha": (_number(0.0), "a number >= 0"),
    "batch_size": (lambda v: v == "auto" or _number(1, integer=True)(v), "'auto' or an int >= 1"),
    "learning_rate": (_one_of(*LEARNING_RATES), f"one of {list(LEARNING_RATES)}"),
    "learning_rate_init": (_number(0.0, closed="right"), "a number > 0"),
    "power_t": (_number(0.0), "a number >= 0"),
    "max_iter": (_number(1, integer=True), "an int >= 1"),
    "shuffle": (_flag, "True or False"),
    "tol": (_number(0.0), "a number >= 0"),
    "verbose": (lambda v: _flag(v) or _number(0, integer=True)(v), "a bool or an int >= 0"),
    "warm_start": (_flag, "True or False"),
    "momentum": (_number(0.0, 1.0), "a number in [0, 1]"),
    "nesterovs_momentum": (_flag, "True or False"),
    "early_stopping": (_flag, "True or False"),
    "validation_fraction": (_number(0.0, 1.0, "neither"), "a number in (0, 1)"),
    "beta_1": (_number(0.0, 1.0, "left"), "a number in [0, 1)"),
    "beta_2": (_number(0.0, 1.0, "left"), "a number in [0, 1)"),
    "epsilon": (_number(0.0, closed="right"), "a number > 0"),
    "n_iter_no_change": (lambda v: v == np.inf or _number(1, integer=True)(v), "an int >= 1 or numpy.inf"),
    "dropout": (_number(0.0, 1.0, "left"), "a number in [0, 1)"),
    "optimizer_options": (lambda v: v is None or isinstance(v, dict), "None or a dict of optimizer keywords"),
    "device": (_one_of(*DEVICES), f"one of {list(DEVICES)}"),
    "threads": (lambda v: v is None or _number(1, integer=True)(v), "None (chosen per epoch) or an int >= 1"),
}


FITTED = (
    "n_features_in_", "n_layers_", "n_outputs_", "out_activation_", "loss_curve_", "loss_", "n_iter_", "t_",
    "best_loss_", "validation_scores_", "best_validation_score_", "_no_improvement_count",
)  # fmt: skip


def to_json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def params_to_json(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON: tuples as lists, dict keys kept by pairs; a random generator is left out."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key == "class_weight" and isinstance(value, dict):
            value = {"pairs": [[to_json(k) if isinstance(k, np.generic) else k, v] for k, v in value.items()]}
        elif key == "random_state" and not (value is None or isinstance(value, int | np.integer)):
            continue  # a RandomState's stream is not a parameter one can save: the loaded one has None
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = json.loads(json.dumps(value, default=to_json))
    return out


def params_from_json(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    if isinstance(out.get("hidden_layer_sizes"), list):
        out["hidden_layer_sizes"] = tuple(out["hidden_layer_sizes"])
    if isinstance(out.get("class_weight"), dict) and "pairs" in out["class_weight"]:
        out["class_weight"] = {k: v for k, v in out["class_weight"]["pairs"]}
    return out
