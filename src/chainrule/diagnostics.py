"""Training diagnostics: what a network that will not learn shows, per layer and per epoch (level 5).

:class:`Diagnostics` is a callback: ``Trainer(diagnostics=True)`` (or
``chainrule train --diagnose``) runs it after every epoch. On a fixed probe
batch drawn once from the training set it runs one forward and one backward
pass, in eval mode and without any update (the gradients the trainer left are
put back), and records for each dense layer ``l`` (``W[1]`` is layer 1):

    grad_norm[l]     ||dC/dW[l]||_F on the probe batch
    weight_norm[l]   ||W[l]||_F
    update_ratio[l]  ||W[l] after the epoch - W[l] before it||_F / ||W[l] before it||_F
    dead_relu[l]     ReLU layers: fraction of units with z <= 0 on every probe example
    saturated[l]     sigmoid and tanh layers: fraction of the probe's z[l] where
                     phi'(z) < phi'(0) / 10 (|z| > 3.7 for sigmoid, |z| > 1.8 for tanh)

The numbers go into the epoch's logs (so into ``History`` and ``metrics.json``),
:func:`plot_panel` draws the gradient norms as the training plot's extra panel,
and each problem is warned about once, in plain words with its numbers
(:class:`DiagnosticWarning`):

- vanishing gradients: a lower layer's gradient norm below ``vanishing`` times
  the largest one above it; exploding: a lower one above ``exploding`` times
  the output layer's;
- dead ReLUs or saturated units: a fraction of at least ``dead`` / ``saturated``;
- weights that barely move (``update_ratio < still``) or jump (``> jumpy``).

The update ratio is measured from the weights themselves, before and after
the epoch, so it is the same for every optimizer (``alpha |dC/dW| / |W|`` is
not, under Adam); it covers all the epoch's steps, not one.

This module knows the model only through its layers' ``W``, ``pre_activation``
and ``activation`` (a :class:`~chainrule.layers.Dense` has them; an
``Activation`` layer only the last), so the trainer can use it from below.
"""

# ruff: noqa: E741
from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule import backend
from chainrule.autograd import enable_grad
from chainrule.errors import ConfigError
from chainrule.functional import get_activation
from chainrule.tensor import Tensor

KEYS = ("grad_norm", "weight_norm", "update_ratio", "dead_relu", "saturated")
SATURATION = {"sigmoid": 0.025, "tanh": 0.1}  # phi'(z) below a tenth of phi'(0)


class DiagnosticWarning(UserWarning):
    """A plain-language warning about training: vanishing gradients, dead units, ..."""


@dataclass
class LayerStats:
    """One dense layer's numbers for one epoch (``dead``/``saturated`` None where they do not apply)."""

    layer: int
    activation: str
    grad_norm: float
    weight_norm: float
    update_ratio: float
    dead: float | None = None
    saturated: float | None = None

    def logs(self) -> dict[str, float]:
        out = {
            f"grad_norm[{self.layer}]": self.grad_norm,
            f"weight_norm[{self.layer}]": self.weight_norm,
            f"update_ratio[{self.layer}]": self.update_ratio,
        }
        if self.dead is not None:
            out[f"dead_relu[{self.layer}]"] = self.dead
        if self.saturated is not None:
            out[f"saturated[{self.layer}]"] = self.saturated
        return out


def _norm(a: Any) -> float:
    return float(math.sqrt(float((a * a).sum()))) if a is not None else 0.0


def _saturated(act: str, z: np.ndarray) -> float | None:
    if act not in SATURATION:
        return None
    if act == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-np.abs(z)))
        slope = s * (1 - s)
    else:
        slope = 1 - np.tanh(z) ** 2
    return float(np.mean(slope < SATURATION[act]))


class Diagnostics:
    """Per-layer gradient and weight norms, update ratios, dead and saturated units, and warnings.

    Parameters
    ----------
    probe_size : int
        Examples in the fixed probe batch (fewer if the training set is smaller).
    seed : int
        Seeds the choice of the probe examples (the trainer's own generator is not touched).
    vanishing, exploding : float
        Gradient-norm ratios that count as vanishing (lower layer / largest above it)
        or exploding (lower layer / output layer).
    dead, saturated : float
        Fractions of dead ReLU units or saturated sigmoid/tanh outputs worth a warning.
    still, jumpy : float
        Update ratios per epoch below (barely moving) or above (too large a step) which to warn.
    warn : bool
        Emit :class:`DiagnosticWarning` (once per problem and layer); False only records them.

    Attributes
    ----------
    history : list of list of LayerStats
        One list per epoch measured.
    warnings : list of (epoch, str)
        Every warning, in order.
    """

    def __init__(
        self,
        probe_size: int = 256,
        seed: int = 0,
        vanishing: float = 1e-3,
        exploding: float = 1e3,
        dead: float = 0.5,
        saturated: float = 0.5,
        still: float = 1e-6,
        jumpy: float = 1.0,
        warn: bool = True,
    ) -> None:
        if isinstance(probe_size, bool) or not isinstance(probe_size, int) or probe_size < 1:
            raise ConfigError(f"Diagnostics: probe_size must be an integer >= 1, got {probe_size!r}.")
        for name, value in (("dead", dead), ("saturated", saturated)):
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"Diagnostics: {name} must be a fraction in (0, 1], got {value!r}.")
        self.probe_size, self.seed, self.warn = probe_size, seed, warn
        self.limits = {"vanishing": vanishing, "exploding": exploding, "dead": dead, "saturated": saturated}
        self.limits |= {"still": still, "jumpy": jumpy}
        self.history: list[list[LayerStats]] = []
        self.warnings: list[tuple[int, str]] = []
        self._said: set[tuple[str, int]] = set()
        self._probe: tuple[Any, Any] | None = None
        self._before: list[Any] = []
        self._epochs: list[int] = []  # the trainer's epoch number of each entry of history

    def __repr__(self) -> str:
        return f"Diagnostics(probe_size={self.probe_size}, seed={self.seed}, epochs={len(self.history)})"

    # ------------------------------------------------------------ callback
    def start(self, trainer: Any, x: Any, y: Any) -> Diagnostics:
        """Draw the probe batch from ``(x, y)`` and remember the weights; returns itself (a callback)."""
        m = x.shape[0]
        rows = np.sort(np.random.default_rng(self.seed).permutation(m)[: self.probe_size])
        idx = backend.xp_of(x).asarray(rows)
        self._probe = (x[idx], y[idx])
        self._before = [layer.W.data.copy() for layer in _dense(trainer.model)]
        return self

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> bool:
        """Measure on the probe batch, add the numbers to ``logs``, warn; never stops training."""
        if self._probe is None:
            raise ConfigError("Diagnostics: start(trainer, x, y) must run before the first epoch ends.")
        stats = self.measure(trainer.model, trainer.step_loss, trainer.logits, *self._probe)
        self._before = [layer.W.data.copy() for layer in _dense(trainer.model)]
        self.history.append(stats)
        self._epochs.append(epoch)
        for s in stats:
            logs.update(s.logs())
        for kind, layer, text in problems(stats, self.limits):
            self.warnings.append((epoch, text))
            if self.warn and (kind, layer) not in self._said:
                warnings.warn(f"epoch {epoch}: {text}", DiagnosticWarning, stacklevel=_callers_level())
            self._said.add((kind, layer))
        return False

    # ------------------------------------------------------------- probing
    def measure(self, model: Any, loss: Any, logits: bool, x: Any, y: Any) -> list[LayerStats]:
        """One forward and backward pass on ``(x, y)`` in eval mode; the model is left as it was."""
        dense = _dense(model)
        params = model.parameters()
        saved = [p.grad for p in params]
        was_training = model.training
        model.eval()
        try:
            for p in params:
                p.grad = None
            with enable_grad():
                out, zs = _forward(model, Tensor(x), logits)
                loss(out, y).backward()
            stats = []
            for l, (layer, (act, z)) in enumerate(zip(dense, zs, strict=True), start=1):
                W = layer.W.data
                before = self._before[l - 1] if len(self._before) == len(dense) else W
                weight = _norm(W)
                ratio = _norm(W - before) / _norm(before) if _norm(before) > 0 else 0.0
                z_host = np.asarray(backend.to_numpy(z), dtype=np.float64)
                dead = float(np.mean(np.all(z_host <= 0, axis=0))) if act == "relu" else None
                stats.append(
                    LayerStats(l, act, _norm(layer.W.grad), weight, ratio, dead, _saturated(act, z_host))
                )
            return stats
        finally:
            for p, g in zip(params, saved, strict=True):
                p.grad = g
            model.train(was_training)

    def report(self) -> str:
        """The last epoch's numbers per layer and its warnings."""
        if not self.history:
            return "Diagnostics: nothing measured yet."
        epoch, probe = self._epochs[-1], self._probe[0].shape[0] if self._probe else 0
        lines = [f"after epoch {epoch} (probe batch of {probe} examples)"]
        lines.append("layer  activation  grad_norm  weight_norm  update_ratio  dead_relu  saturated")
        for s in self.history[-1]:
            frac = ["-" if v is None else f"{v:.0%}" for v in (s.dead, s.saturated)]
            lines.append(
                f"{s.layer:>5}  {s.activation:<10}  {s.grad_norm:9.2e}  {s.weight_norm:11.3g}  "
                f"{s.update_ratio:12.2e}  {frac[0]:>9}  {frac[1]:>9}"
            )
        lines += [f"warning: {text}" for e, text in self.warnings if e == epoch] or ["no warnings"]
        return "\n".join(lines)


def _callers_level() -> int:
    """The stack level of the first frame outside chainrule: a warning points at the user's ``fit``."""
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("chainrule."):
        frame, level = frame.f_back, level + 1
    return level


def _dense(model: Any) -> list[Any]:
    return [layer for layer in model.layers if hasattr(layer, "pre_activation")]


def _forward(model: Any, a: Tensor, logits: bool) -> tuple[Tensor, list[tuple[str, Any]]]:
    """The model's output (``z[L]`` with ``logits``) and each dense layer's ``(activation, z[l])``."""
    zs: list[tuple[str, Any]] = []
    layers = model.layers
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        if hasattr(layer, "pre_activation"):
            z = layer.pre_activation(a)
            zs.append((layer.activation, z.data))
            a = z if last and logits else get_activation(layer.activation)(z)
        elif hasattr(layer, "activation"):  # an Activation layer: the activation of the dense layer before it
            if zs and zs[-1][0] == "identity":
                zs[-1] = (layer.activation, zs[-1][1])
            if not (last and logits):
                a = layer(a)
        else:
            a = layer(a)
    return a, zs


def problems(stats: list[LayerStats], limits: dict[str, float]) -> list[tuple[str, int, str]]:
    """``(kind, layer, message)`` for each problem the numbers show."""
    g = [s.grad_norm for s in stats]
    if not all(math.isfinite(v) for v in g):
        bad = next(s.layer for s in stats if not math.isfinite(s.grad_norm))
        return [
            ("nonfinite", bad, f"layer {bad}'s gradient is not finite: exploding gradients or a bad input")
        ]
    out = _gradient_flow(stats, g, limits)
    for s in stats:
        l, r = s.layer, s.update_ratio
        if s.dead is not None and s.dead >= limits["dead"]:
            text = f"{s.dead:.0%} of its ReLU units are dead (z <= 0 on every probe example)"
            out.append(("dead", l, f"layer {l}: {text}"))
        if s.saturated is not None and s.saturated >= limits["saturated"]:
            text = f"{s.saturated:.0%} of its {s.activation} units are saturated (phi'(z) < phi'(0)/10)"
            out.append(("saturated", l, f"layer {l}: {text}, so little gradient passes through them"))
        if r > limits["jumpy"]:
            text = f"layer {l}'s weights changed by {r:.2g} times their norm this epoch"
            out.append(("jumpy", l, text + ": the learning rate may be too large"))
    still = [s for s in stats if s.update_ratio < limits["still"]]
    if still:
        moved = ", ".join(f"layer {s.layer}: {s.update_ratio:.1g}" for s in still)
        who = (
            f"layer {still[0].layer} is"
            if len(still) == 1
            else f"layers {', '.join(str(s.layer) for s in still)} are"
        )
        text = f"{who} not learning: the weights moved by less than {limits['still']:.0e} of their norm"
        text += " this epoch"
        out.append(("still", still[0].layer, f"{text} ({moved})"))
    return out


def _gradient_flow(
    stats: list[LayerStats], g: list[float], limits: dict[str, float]
) -> list[tuple[str, int, str]]:
    """Vanishing (a lower layer's norm far below the largest above it) or exploding gradients."""
    out: list[tuple[str, int, str]] = []
    top = int(np.argmax(g))
    if g[top] == 0:
        return [("vanishing", 1, "every layer's dC/dW is exactly zero: no weight can learn")]
    if top > 0:
        low = int(np.argmin(g[:top]))
        ratio = g[low] / g[top]
        if ratio < limits["vanishing"]:
            text = f"layer {low + 1}'s gradient norm is {ratio:.1g} of layer {top + 1}'s: vanishing gradients"
            sat = stats[low].saturated
            if sat is not None and sat >= limits["saturated"]:
                text += f"; {sat:.0%} of its {stats[low].activation} units are saturated"
            out.append(("vanishing", low + 1, text))
    if len(g) > 1 and g[-1] > 0 and g[0] / g[-1] > limits["exploding"]:
        text = f"layer 1's gradient norm is {g[0] / g[-1]:.2g} times layer {len(g)}'s: exploding gradients"
        out.append(("exploding", 1, text))
    return out


def layers_in(history: Any) -> list[int]:
    """The layer numbers with diagnostics in a ``History`` (empty if it has none)."""
    first = history.epochs[0] if getattr(history, "epochs", None) else {}
    return sorted(int(k[10:-1]) for k in first if k.startswith("grad_norm["))


def plot_panel(ax: Any, history: Any) -> None:
    """Draw ``grad_norm[l]`` per epoch for every layer on a log scale (the training plot's extra panel)."""
    epochs = range(1, len(history) + 1)
    for l in layers_in(history):
        values = [max(v, 1e-300) for v in history[f"grad_norm[{l}]"]]
        ax.semilogy(epochs, values, label=f"layer {l}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("||dC/dW[l]|| (probe batch)")
    ax.set_title("gradient norm per layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)


__all__ = ["KEYS", "DiagnosticWarning", "Diagnostics", "LayerStats", "layers_in", "plot_panel", "problems"]
