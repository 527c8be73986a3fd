"""``explain``: one forward, one backward and one update, with every number (level 6)."""

# ruff: noqa: E741  (l is the layer index, as in the notes: z[l], a[l], W[l])
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule import limits
from chainrule.errors import ConfigError
from chainrule.explain import handwork as hw
from chainrule.explain.spec import Spec, load_spec, spec_from_model
from chainrule.layers import Module

FD_EPS = 1e-6
WeightRef = tuple[int, int, int]  # (l, j, k), 1-based: w_jk[l]
# activations with a kink at z = 0: their one-sided derivatives there (left, right)
KINKS: dict[str, tuple[float, float]] = {"relu": (0.0, 1.0), "leaky_relu": (0.01, 1.0)}
LIPSCHITZ = 1.2  # a bound on |phi'| of every activation but elu with a large alpha (gelu's is 1.13)


@dataclass
class Explanation:
    """Everything ``explain`` computed, ready for :func:`chainrule.explain.render`.

    Attributes
    ----------
    spec : Spec
        The validated network, examples and settings.
    layers : list of Layer
        ``z[l], a[l], phi'(z[l]), delta[l], dC/dW[l], dC/db[l]`` and the weights
        after one step, for ``l = 1..L`` (``layers[0]`` is layer 1).
    loss : float
        ``C`` under the chosen convention (batch mean).
    dCda : ndarray
        ``dC/da[L]``, shape ``(m, n[L])``, including the ``1/m``.
    fused : str or None
        The library's fused loss on logits (``delta[L] = a[L] - y``), if any.
    chains : list of dict
        One per named weight: its gradient as a chain of factors.
    losses : list of float or None
        ``C`` before each of ``steps`` steps and after the last.
    check : dict
        Largest ``|hand - autodiff|`` and ``|hand - finite differences|``.
    kinks : list of dict
        Units of a ReLU-like layer whose ``z`` is 0, or close enough to 0 that a
        finite-difference step of ``FD_EPS`` on some parameter may cross it:
        ``layer``, ``unit``, ``example`` (1-based), ``z``, ``activation``. There
        the central difference averages two one-sided derivatives and disagrees
        with the hand derivation, which takes ``phi'(0)`` by the convention.
    """

    spec: Spec
    layers: list[hw.Layer]
    loss: float
    dCda: np.ndarray  # noqa: N815
    fused: str | None
    chains: list[dict[str, Any]] = field(default_factory=list)
    losses: list[float] | None = None
    check: dict[str, float] = field(default_factory=dict)
    kinks: list[dict[str, Any]] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Explanation(sizes={self.spec.sizes}, loss={self.spec.loss!r}, C={self.loss:.9g})"

    def _repr_html_(self) -> str | None:  # Jupyter, JupyterLab and VS Code show the interactive view
        from chainrule.explain.html import fragment

        try:
            return fragment(self)
        except ConfigError:  # too large to draw: the notebook falls back to the repr
            return None

    @property
    def m(self) -> int:
        """Number of examples."""
        return int(self.spec.x.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: full-precision floats; per-example arrays drop the batch axis for one example."""
        ex = (lambda v: v.tolist()) if self.spec.batch else (lambda v: v[0].tolist())
        layers = []
        for layer in self.layers:
            entry: dict[str, Any] = {
                "layer": layer.index,
                "activation": layer.activation,
                "weights": layer.W.tolist(),
                "z": ex(layer.z),
                "a": ex(layer.a),
                "delta": ex(layer.delta),
            }
            if layer.dphi is not None:
                entry["phi_prime"] = ex(layer.dphi)
            if layer.jacobian is not None:
                entry["softmax_jacobian"] = ex(layer.jacobian)
            if layer.back is not None:
                entry["W_next_T_delta_next"] = ex(layer.back)
            entry["grad_weights"] = layer.grad_W.tolist()  # type: ignore[union-attr]
            if layer.b is not None:
                entry["bias"] = layer.b.tolist()
                entry["grad_bias"] = layer.grad_b.tolist()  # type: ignore[union-attr]
            entry["weights_after"] = layer.W_after.tolist()  # type: ignore[union-attr]
            entry["bias_after"] = None if layer.b_after is None else layer.b_after.tolist()
            layers.append(entry)
        out: dict[str, Any] = {
            "sizes": self.spec.sizes,
            "examples": self.m,
            "input": ex(self.spec.x),
            "target": ex(self.spec.y),
            "loss_name": self.spec.loss,
            "fused": self.fused,
            "learning_rate": self.spec.learning_rate,
            "update_bias": self.spec.update_bias,
            "loss": self.loss,
            "dC_da_L": ex(self.dCda),
            "layers": layers,
        }
        if self.chains:
            out["weight_chains"] = self.chains
        if self.losses is not None:
            out["losses"] = self.losses
        out["check"] = {**self.check, "kinks": self.kinks}
        return out


def parse_weight(ref: str | Sequence[int], sizes: list[int]) -> WeightRef:
    """``"2:1,2"`` (layer 2, row 1, column 2, 1-based) -> ``(2, 1, 2)``, checked against the network.

    Raises
    ------
    ConfigError
        If ``ref`` is malformed or names a weight the network does not have.
    """
    if isinstance(ref, str):
        match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*", ref)
        if match is None:
            raise ConfigError(
                f"--weight {ref!r}: expected LAYER:ROW,COLUMN (1-based, as in the notes), e.g. 2:1,2."
            )
        l, j, k = (int(g) for g in match.groups())
    else:
        if len(ref) != 3:
            raise ConfigError(f"weight {ref!r}: expected (layer, row, column), 1-based.")
        l, j, k = (int(v) for v in ref)
    L = len(sizes) - 1
    if not 1 <= l <= L:
        raise ConfigError(f"--weight {l}:{j},{k}: layer {l} does not exist; the layers are 1 to {L}.")
    shape = (sizes[l], sizes[l - 1])
    if not (1 <= j <= shape[0] and 1 <= k <= shape[1]):
        raise ConfigError(
            f"--weight {l}:{j},{k}: W[{l}] has shape {shape}; the row must be 1 to {shape[0]} "
            f"and the column 1 to {shape[1]}."
        )
    return l, j, k


def chain(expl: Explanation, ref: WeightRef) -> dict[str, Any]:
    """``dC/dw_jk[l] = sum over examples of delta_j[l] a_k[l-1]``, with every factor of ``delta_j[l]``."""
    l, j, k = ref
    layers = expl.layers
    layer = layers[l - 1]
    a_prev = expl.spec.x if l == 1 else layers[l - 2].a
    out_layer = l == len(layers)
    examples = []
    for e in range(expl.m):
        row: dict[str, Any] = {"a_prev": float(a_prev[e, k - 1]), "delta": float(layer.delta[e, j - 1])}  # type: ignore[index]
        if out_layer and expl.fused is not None:
            row["a"] = float(layer.a[e, j - 1])
            row["y"] = float(expl.spec.y[e, j - 1])
        else:
            g = expl.dCda if out_layer else layer.back
            assert g is not None
            if out_layer:
                row["dC_da"] = float(g[e, j - 1])
            else:
                above = layers[l]
                assert above.delta is not None
                row["terms"] = [
                    [float(above.W[i, j - 1]), float(above.delta[e, i])] for i in range(above.W.shape[0])
                ]
                row["back"] = float(g[e, j - 1])
            if layer.jacobian is not None:
                row["softmax_terms"] = [
                    [float(g[e, i]), float(layer.jacobian[e, j - 1, i])]
                    for i in range(layer.jacobian.shape[1])
                ]
            else:
                row["phi_prime"] = float(layer.dphi[e, j - 1])  # type: ignore[index]
        row["product"] = row["delta"] * row["a_prev"]
        examples.append(row)
    return {
        "layer": l,
        "row": j,
        "column": k,
        "value": float(layer.W[j - 1, k - 1]),
        "grad": float(layer.grad_W[j - 1, k - 1]),  # type: ignore[index]
        "after": float(layer.W_after[j - 1, k - 1]),  # type: ignore[index]
        "examples": examples,
    }


def explain(
    model_or_spec: Module | dict[str, Any] | str | os.PathLike[str],
    x: Any = None,
    y: Any = None,
    loss: str = "half_sse",
    learning_rate: float = 0.5,
    steps: int = 0,
    weight: str | Sequence[int] | Sequence[str | Sequence[int]] | None = None,
    update_bias: bool = True,
) -> Explanation:
    """Explain one forward pass, one backward pass and one gradient-descent step.

    Parameters
    ----------
    model_or_spec : dict, str, path or Sequential
        A spec (see :mod:`chainrule.explain.spec`), a path to a JSON spec, or
        a :class:`~chainrule.layers.Sequential` of Dense layers.
    x, y : array_like, optional
        Input ``(n[0],)`` or ``(m, n[0])`` and target, for a model.
    loss, learning_rate, update_bias
        The loss name, ``alpha`` and whether biases move; a spec's own
        ``"loss"``, ``"learning_rate"`` and ``"update_bias"`` take precedence.
    steps : int
        With ``steps > 0``, also record ``C`` over that many steps.
    weight : str or tuple, or a list of them
        Weights to write out as a chain, ``"2:1,2"`` or ``(2, 1, 2)`` =
        ``w_12[2]`` (1-based).

    Returns
    -------
    Explanation

    Raises
    ------
    ConfigError, ShapeError
        For a spec with a mistake (one line naming the layer and the shapes).

    Examples
    --------
    >>> from chainrule.explain import explain
    >>> spec = {"layers": [{"weights": [[0.5]], "bias": [0.0], "activation": "sigmoid"}],
    ...         "input": [1.0], "target": [1.0]}
    >>> round(explain(spec).loss, 6)
    0.071268
    """
    if isinstance(model_or_spec, Module):
        if x is None or y is None:
            raise ConfigError("explain: a model needs an input x and a target y.")
        model_or_spec = spec_from_model(model_or_spec, x, y)
    if isinstance(model_or_spec, dict | str | os.PathLike):
        data = model_or_spec if isinstance(model_or_spec, dict) else load_spec_dict(model_or_spec)
        data = {"loss": loss, "learning_rate": learning_rate, "update_bias": update_bias, **data}
        spec = load_spec(data)
    else:
        raise ConfigError(
            f"explain: expected a spec dict, a spec path or a Sequential, got {type(model_or_spec).__name__}."
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"explain: steps must be an integer >= 0, got {steps!r}.")
    limits.check("max_explain_steps", steps, "explain --steps", " (each a forward and a backward pass)")
    return _explain(spec, steps, _weights(weight, spec.sizes))


def load_spec_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw JSON object of a spec file (validated later by :func:`load_spec`)."""
    from chainrule.explain.spec import _read

    return _read(path)


def _weights(weight: Any, sizes: list[int]) -> list[WeightRef]:
    if weight is None:
        return []
    if isinstance(weight, str) or (len(weight) == 3 and all(isinstance(v, int) for v in weight)):
        return [parse_weight(weight, sizes)]
    return [parse_weight(w, sizes) for w in weight]


def _explain(spec: Spec, steps: int, refs: list[WeightRef]) -> Explanation:
    params: hw.Params = [(layer.W, layer.b) for layer in spec.layers]
    acts = [layer.activation for layer in spec.layers]
    x, y = spec.x, spec.y
    layers, C, dCda = hw.passes(params, acts, x, y, spec.loss)
    params_after = hw.step(layers, spec.learning_rate, spec.update_bias)
    expl = Explanation(spec, layers, C, dCda, hw.fused_name(spec.loss, acts[-1]))
    expl.chains = [chain(expl, ref) for ref in refs]
    if steps > 0:
        losses = [C]
        current = params_after
        for _ in range(steps - 1):
            more, c, _ = hw.passes(current, acts, x, y, spec.loss)
            losses.append(c)
            current = hw.step(more, spec.learning_rate, spec.update_bias)
        losses.append(hw.loss_at(current, acts, x, y, spec.loss))
        expl.losses = losses
    C_engine, engine = hw.engine_gradients(params, acts, x, y, spec.loss)
    numeric = hw.finite_differences(params, acts, x, y, spec.loss, FD_EPS)
    expl.check = {
        "autodiff": hw.max_difference(layers, engine),
        "autodiff_loss": abs(C - C_engine),
        "finite_differences": hw.max_difference(layers, numeric),
        "eps": FD_EPS,
    }
    expl.kinks = kinks(layers, x, FD_EPS)
    return expl


def kinks(layers: list[hw.Layer], x: np.ndarray, eps: float) -> list[dict[str, Any]]:
    """Units at (or within a finite-difference step of) the kink of a ReLU-like activation.

    A step of ``eps`` on one parameter of layer k moves ``z[k]`` by at most
    ``eps max(1, |a[k-1]|)``, and each layer above multiplies that by at most
    ``||W[i]||_inf`` times the activation's Lipschitz bound; a unit with ``|z|``
    under that reach may be crossed by a central difference.
    """
    found: list[dict[str, Any]] = []
    a_prev, reach = x, 0.0
    for layer in layers:
        reach = max(reach * float(np.abs(layer.W).sum(axis=1).max()) * LIPSCHITZ, eps)
        reach = max(reach, eps * float(np.abs(a_prev).max(initial=1.0)))
        if layer.activation in KINKS:
            for e, j in np.argwhere(np.abs(layer.z) <= reach):
                found.append(
                    {
                        "layer": layer.index,
                        "unit": int(j) + 1,
                        "example": int(e) + 1,
                        "z": float(layer.z[e, j]),
                        "activation": layer.activation,
                    }
                )
        a_prev = layer.a
    return found


__all__ = ["KINKS", "Explanation", "chain", "explain", "kinks", "parse_weight"]
