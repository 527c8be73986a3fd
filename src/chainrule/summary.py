"""A model's summary: layers, output shapes and parameter counts, as Keras's ``summary()`` (level 4).

It reads a model through the methods every :class:`~chainrule.layers.Module`
has (``config()`` and ``named_parameters()``), so it imports no layer class
and :class:`~chainrule.layers.Sequential` can offer it as
``model.summary()`` and, in Jupyter, as its ``_repr_html_``.

Shapes
------
Output shapes are written with ``m`` for the batch axis, as in the notes:
a Dense layer maps ``(m, n[l-1])`` to ``(m, n[l])``; Activation and Dropout
keep the shape of their input.

Examples
--------
>>> from chainrule.layers import mlp
>>> print(mlp([2, 16, 2], activation="tanh", output="softmax").summary())
Sequential: 2 -> 16 -> 2, 2 layers
  #  layer                                                        output shape  params
  0  Dense(in_features=2, out_features=16, activation='tanh')     (m, 16)           48
  1  Dense(in_features=16, out_features=2, activation='softmax')  (m, 2)            34
Total params: 82 (328 B as float32)
Trainable params: 82
Non-trainable params: 0
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Row:
    """One layer of the summary: its position, repr, output shape and parameters."""

    index: int
    layer: str
    shape: str
    params: int
    trainable: int
    detail: str  # e.g. "W (16, 2), b (16,)"


@dataclass
class ModelSummary:
    """What :func:`summarize` found; ``str()`` and ``repr()`` give the text table, Jupyter the HTML one.

    Attributes
    ----------
    name : str
        The model's class name.
    sizes : list of int
        ``n[0], n[1], ..., n[L]`` of its Dense layers.
    rows : list of Row
        One per layer, in order.
    nbytes : int
        Memory held by the parameters.
    dtype : str
        The parameters' dtype (``"mixed"`` if they differ).
    """

    name: str
    sizes: list[int]
    rows: list[Row] = field(default_factory=list)
    nbytes: int = 0
    dtype: str = "float32"

    @property
    def total(self) -> int:
        """Number of parameters."""
        return sum(r.params for r in self.rows)

    @property
    def trainable(self) -> int:
        """Number of parameters that receive gradients (``requires_grad``)."""
        return sum(r.trainable for r in self.rows)

    def __repr__(self) -> str:
        return self.text()

    def __str__(self) -> str:
        return self.text()

    def _header(self) -> str:
        arrows = " -> ".join(str(n) for n in self.sizes) if self.sizes else "no Dense layer"
        n = len(self.rows)
        return f"{self.name}: {arrows}, {n} layer{'s' if n != 1 else ''}"

    def _footer(self) -> list[str]:
        return [
            f"Total params: {self.total:,} ({_bytes(self.nbytes)} as {self.dtype})",
            f"Trainable params: {self.trainable:,}",
            f"Non-trainable params: {self.total - self.trainable:,}",
        ]

    def text(self) -> str:
        """The summary as a plain-text table (what ``print(model.summary())`` shows)."""
        head = ("#", "layer", "output shape", "params")
        body = [(str(r.index), r.layer, r.shape, f"{r.params:,}") for r in self.rows]
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(4)]

        def line(cells: tuple[str, ...]) -> str:
            return (
                f"  {cells[0]:>{widths[0]}}  {cells[1]:<{widths[1]}}  {cells[2]:<{widths[2]}}  "
                f"{cells[3]:>{widths[3]}}"
            ).rstrip()

        return "\n".join([self._header(), line(head), *map(line, body), *self._footer()])

    def _repr_html_(self) -> str:
        """The summary as an HTML table, for Jupyter, JupyterLab and VS Code notebooks."""
        esc = html.escape
        cells = "".join(
            f"<tr><td>{r.index}</td><td><code>{esc(r.layer)}</code></td><td><code>{esc(r.shape)}</code></td>"
            f"<td style='text-align:right' title='{esc(r.detail)}'>{r.params:,}</td></tr>"
            for r in self.rows
        )
        foot = "<br>".join(esc(line) for line in self._footer())
        return (
            f"<div class='chainrule-summary'><strong>{esc(self._header())}</strong>"
            "<table><thead><tr><th>#</th><th>layer</th><th>output shape</th><th>params</th></tr></thead>"
            f"<tbody>{cells}</tbody></table><div>{foot}</div></div>"
        )


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


def summarize(model: Any) -> ModelSummary:
    """The :class:`ModelSummary` of a model whose ``config()`` lists its layers.

    Parameters
    ----------
    model : Sequential or Module
        A Sequential (one row per layer), or a single layer (one row).

    Returns
    -------
    ModelSummary
    """
    config = model.config()
    layers = list(model.layers) if config.get("type") == "Sequential" else [model]
    rows: list[Row] = []
    sizes: list[int] = []
    dtypes: set[str] = set()
    nbytes = 0
    width: int | None = None
    for i, layer in enumerate(layers):
        cfg = layer.config()
        if cfg.get("type") == "Dense":
            if not sizes:
                sizes.append(int(cfg["in_features"]))
            width = int(cfg["out_features"])
            sizes.append(width)
        params = layer.named_parameters()
        count = sum(int(np.prod(p.shape)) for _, p in params)
        trainable = sum(int(np.prod(p.shape)) for _, p in params if p.requires_grad)
        nbytes += sum(int(np.prod(p.shape)) * np.dtype(p.dtype).itemsize for _, p in params)
        dtypes.update(str(np.dtype(p.dtype)) for _, p in params)
        detail = ", ".join(f"{n} {tuple(p.shape)}" for n, p in params)
        shape = "(m, ?)" if width is None else f"(m, {width})"
        rows.append(Row(i, repr(layer), shape, count, trainable, detail))
    dtype = dtypes.pop() if len(dtypes) == 1 else ("mixed" if dtypes else "float32")
    return ModelSummary(type(model).__name__, sizes, rows, nbytes, dtype)


__all__ = ["ModelSummary", "Row", "summarize"]
