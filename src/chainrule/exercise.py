"""Exercises in backprop by hand: a fresh network with numbers of few digits, per seed (level 7).

:func:`generate` draws the spec of an exercise like note 004's (one forward
pass, one backward pass and one update of a small network), every weight,
bias, input and target a number with one decimal, from a seed, so a teacher
hands every learner a different one. :func:`template` is the answer to fill
in (the layout of ``explain --format json``, ``null`` for every number) and
:func:`write` puts the spec, the template and the worked solution (``explain``
as Markdown and JSON) in one folder per seed, ready for ``chainrule check``.

Examples
--------
>>> from chainrule.exercise import generate
>>> spec = generate(7)
>>> [len(layer["weights"]) for layer in spec["layers"]], spec["loss"]
([2, 2], 'half_sse')
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.errors import ConfigError
from chainrule.explain import explain, render
from chainrule.explain.handwork import PHI
from chainrule.losses import LOSSES

MAX_NEURONS = 6  # by hand
MAX_LAYERS = 5
MAX_BATCH = 8
KINK_GAP = 0.05  # no relu-family z closer than this to the kink (its derivative is a convention there)
TRIES = 200
CLASSES = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}
ON_LOGITS = ("softmax_cross_entropy", "sigmoid_binary_cross_entropy")


def _check(layers: list[int], activation: str, loss: str, batch: int, output: str | None) -> str:
    """Validate the options; returns the output activation."""
    if len(layers) < 2 or any(not isinstance(n, int) or not 1 <= n <= MAX_NEURONS for n in layers):
        raise ConfigError(
            f"exercise: layers must be 2 to {MAX_LAYERS + 1} sizes n[0], ..., n[L] from 1 to {MAX_NEURONS} "
            f"(work done by hand), got {layers}."
        )
    if len(layers) > MAX_LAYERS + 1:
        raise ConfigError(f"exercise: at most {MAX_LAYERS} weight layers by hand, got {len(layers) - 1}.")
    if activation not in PHI:
        raise ConfigError(f"exercise: activation must be one of {sorted(PHI)}, got {activation!r}.")
    if loss not in LOSSES:
        raise ConfigError(f"exercise: unknown loss {loss!r}; expected one of {sorted(LOSSES)}.")
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ConfigError(f"exercise: batch must be 1 to {MAX_BATCH} examples, got {batch!r}.")
    if ("cross_entropy" in loss and "binary" not in loss) and layers[-1] < 2:
        raise ConfigError(f"exercise: {loss} needs at least 2 outputs (classes), got n[L] = {layers[-1]}.")
    default = CLASSES.get(loss) or ("identity" if loss in ON_LOGITS else None)
    if default is None:
        default = activation if activation in ("sigmoid", "tanh", "identity") else "identity"
    if output is not None and output not in (*PHI, "softmax"):
        raise ConfigError(
            f"exercise: output activation must be one of {sorted((*PHI, 'softmax'))}, got {output!r}."
        )
    return output or default


def _tenths(rng: np.random.Generator, shape: Any, low: int, high: int, zero: bool = True) -> list[Any]:
    """Numbers with one decimal, ``low/10 .. high/10`` (without 0 unless ``zero``)."""
    values = [v / 10 for v in range(low, high + 1) if zero or v]
    return np.asarray(rng.choice(values, size=shape)).round(1).tolist()


def _targets(rng: np.random.Generator, loss: str, output: str, m: int, k: int) -> list[Any]:
    if loss in ("cross_entropy", "softmax_cross_entropy"):
        return np.eye(k)[rng.integers(0, k, m)].tolist()
    if "binary" in loss:
        return rng.integers(0, 2, (m, k)).astype(float).tolist()
    low = 0 if output == "sigmoid" else -10
    return _tenths(rng, (m, k), low, 10)


def _draw(
    rng: np.random.Generator, layers: list[int], acts: list[str], loss: str, batch: int
) -> dict[str, Any]:
    spec_layers = [
        {"weights": _tenths(rng, (n, k), -9, 9, zero=False), "bias": _tenths(rng, n, -5, 5), "activation": a}
        for k, n, a in zip(layers[:-1], layers[1:], acts, strict=True)
    ]
    x = _tenths(rng, (batch, layers[0]), -10, 10)
    y = _targets(rng, loss, acts[-1], batch, layers[-1])
    return {"layers": spec_layers, "input": x if batch > 1 else x[0], "target": y if batch > 1 else y[0]}


def _clear_of_kinks(spec: dict[str, Any]) -> bool:
    expl = explain(spec)
    return all(
        layer.activation not in ("relu", "leaky_relu", "elu") or bool(np.all(np.abs(layer.z) >= KINK_GAP))
        for layer in expl.layers
    )


def generate(
    seed: int,
    layers: list[int] | tuple[int, ...] = (2, 2, 2),
    activation: str = "sigmoid",
    loss: str = "half_sse",
    batch: int = 1,
    output: str | None = None,
    learning_rate: float = 0.5,
) -> dict[str, Any]:
    """The spec of exercise ``seed``: weights, biases, inputs and targets with one decimal.

    Parameters
    ----------
    seed : int
        The same seed (and options) gives the same exercise.
    layers : list of int
        ``n[0], ..., n[L]`` (2 to 6 sizes, each 1 to 6).
    activation : str
        ``phi`` of the hidden layers (and of the output for squared errors, if
        it is sigmoid, tanh or identity).
    loss : str
        The loss; ``cross_entropy`` gets a softmax output and one-hot targets,
        ``binary_cross_entropy`` a sigmoid output and 0/1 targets.
    batch : int
        ``m``, the number of examples (1 to 8).
    output : str, optional
        ``phi[L]``, instead of the default above.
    learning_rate : float
        ``alpha``.

    Returns
    -------
    dict
        A spec for :func:`chainrule.explain.explain` and :func:`chainrule.check.answer`.

    Raises
    ------
    ConfigError
        For sizes, batch, activation or loss out of range.
    """
    layers = [int(n) if isinstance(n, int | np.integer) else n for n in layers]
    out_act = _check(layers, activation, loss, batch, output)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"exercise: seed must be an integer >= 0, got {seed!r}.")
    acts = [activation] * (len(layers) - 2) + [out_act]
    rng = np.random.default_rng(seed)
    for _ in range(TRIES):  # redraw until no relu-family z sits on its kink
        spec = _draw(rng, layers, acts, loss, batch)
        spec.update(loss=loss, learning_rate=learning_rate, update_bias=True)
        if _clear_of_kinks(spec):
            break
    shape = "-".join(map(str, layers))
    who = f", m = {batch} examples" if batch > 1 else ""
    what = f"({shape}, {activation}, {loss}{who})"
    title = f"Exercise {seed}: one forward pass, one backward pass and one update {what}"
    return {"title": title, **spec}


def template(spec: dict[str, Any]) -> dict[str, Any]:
    """The answer to fill in: the quantities of ``explain --format json``, every number ``null``."""
    solved = json.loads(str(render(explain(spec), "json")))
    keys = ("z", "a", "delta", "grad_weights", "grad_bias", "weights_after", "bias_after")

    def blank(v: Any) -> Any:
        return [blank(e) for e in v] if isinstance(v, list) else None

    layers = [{k: blank(layer[k]) for k in keys if layer.get(k) is not None} for layer in solved["layers"]]
    return {"sizes": solved["sizes"], "examples": solved["examples"], "loss": None, "layers": layers}


def dumps(value: Any, indent: int = 0) -> str:
    """JSON with every innermost list (a vector, a matrix row) on one line: easy to read and fill in."""
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {dumps(v, indent + 2).lstrip()}" for k, v in value.items()]
        return pad + "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(v, list | dict) for v in value):
        return pad + "[\n" + ",\n".join(dumps(v, indent + 2) for v in value) + "\n" + pad + "]"
    return pad + json.dumps(value)


def write(out: str | os.PathLike[str], seed: int, count: int = 1, **options: Any) -> list[Path]:
    """Write exercises ``seed .. seed + count - 1`` into ``out/seed-N/``.

    Each folder gets ``spec.json`` (for the learner), ``answer.json`` (the
    template to fill in), ``solution.md`` and ``solution.json`` (the worked
    solution from ``explain``: keep them from the learner). Returns the folders.

    Raises
    ------
    ConfigError
        For bad options or a ``count`` below 1.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"exercise: count must be an integer >= 1, got {count!r}.")
    folders = []
    for n in range(seed, seed + count):
        spec = generate(n, **options)
        folder = Path(out) / f"seed-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        expl = explain(spec)
        files = {
            "spec.json": dumps(spec) + "\n",
            "answer.json": dumps(template(spec)) + "\n",
            "solution.md": str(render(expl, "markdown")),
            "solution.json": str(render(expl, "json")),
        }
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        folders.append(folder)
    return folders


__all__ = ["dumps", "generate", "template", "write"]
