"""One playground session: a data set, a network and its trainer, stepped and measured.

Part of :mod:`chainrule.cli` (level 9).

A :class:`Session` holds everything one browser tab trains: the validated
:class:`Config`, the data (training and validation split of a data set from
:mod:`chainrule.datasets`), the :class:`~chainrule.layers.Sequential` and its
:class:`~chainrule.train.Trainer` (chainrule's own engine; ``fused_update`` off so
every ``dC/dW[l]`` is kept and its norm can be shown). Nothing here knows HTTP:
:mod:`chainrule.cli.playground.server` calls these methods from one worker thread.

Shapes
------
2-D data sets: ``x (m, 2)``, labels ``y (m,)``; the boundary is the model's output
on a ``GRID x GRID`` grid over the data's bounding box. The 1-D regression:
``x (m, 1)``, ``y (m, 1)``; the curve is the output at ``CURVE`` points.
"""

from __future__ import annotations

import base64
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from chainrule import backend, serialize
from chainrule.datasets import load
from chainrule.errors import ConfigError
from chainrule.explain import explain, render
from chainrule.layers import Sequential, mlp
from chainrule.tensor import Tensor
from chainrule.train import Trainer, evaluate, predict

DATASETS = ("moons", "circles", "spirals", "xor", "regression")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu", "elu", "gelu", "softplus", "identity")
LOSSES = {"classification": ("cross_entropy", "mse", "half_sse"), "regression": ("mse", "half_sse")}
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop")
MAX_LAYERS, MAX_WIDTH = 6, 16  # a network the explain view can still draw
GRID, CURVE = 48, 160


@dataclass
class Config:
    """What a session trains; every field is checked by :func:`parse_config`."""

    dataset: str = "moons"
    noise: float = 0.1
    n_train: int = 400
    n_val: int = 200
    hidden: list[int] = field(default_factory=lambda: [8, 8])
    activation: str = "tanh"
    loss: str = "cross_entropy"
    optimizer: str = "adam"
    lr: float = 0.03
    batch_size: int = 16
    l2: float = 0.0
    dropout: float = 0.0
    seed: int = 0

    def __repr__(self) -> str:
        return f"Config({', '.join(f'{k}={v!r}' for k, v in asdict(self).items())})"

    @property
    def task(self) -> str:
        """``"regression"`` for the 1-D curve, else ``"classification"``."""
        return "regression" if self.dataset == "regression" else "classification"


def _number(data: dict[str, Any], key: str, lo: float, hi: float, kind: type, default: Any) -> Any:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and value != int(value)):
        raise ConfigError(
            f"config: {key} must be {'an integer' if kind is int else 'a number'}, got {value!r}."
        )
    if not (lo <= value <= hi) or not math.isfinite(value):
        raise ConfigError(f"config: {key} must be in [{lo}, {hi}], got {value!r}.")
    return kind(value)


def _choice(data: dict[str, Any], key: str, options: tuple[str, ...], default: str) -> str:
    value = data.get(key, default)
    if value not in options:
        raise ConfigError(f"config: {key} must be one of {list(options)}, got {value!r}.")
    return str(value)


def parse_config(data: Any) -> Config:
    """A :class:`Config` from a JSON object, every field checked (missing fields take the defaults).

    Raises
    ------
    ConfigError
        Naming the field, what it must be and what came.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a JSON object, got {type(data).__name__}.")
    d = Config()
    unknown = sorted(set(data) - set(asdict(d)))
    if unknown:
        raise ConfigError(f"config: unknown field {unknown[0]!r}; expected some of {list(asdict(d))}.")
    dataset = _choice(data, "dataset", DATASETS, d.dataset)
    task = "regression" if dataset == "regression" else "classification"
    hidden = data.get("hidden", d.hidden)
    if (
        not isinstance(hidden, list)
        or len(hidden) > MAX_LAYERS
        or not all(isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= MAX_WIDTH for h in hidden)
    ):
        raise ConfigError(
            f"config: hidden must be a list of at most {MAX_LAYERS} layer widths, each 1 to {MAX_WIDTH}, "
            f"got {hidden!r}."
        )
    loss_default = LOSSES[task][0]
    return Config(
        dataset=dataset,
        noise=_number(data, "noise", 0.0, 1.0, float, d.noise),
        n_train=_number(data, "n_train", 10, 2000, int, d.n_train),
        n_val=_number(data, "n_val", 10, 1000, int, d.n_val),
        hidden=list(hidden),
        activation=_choice(data, "activation", ACTIVATIONS, d.activation),
        loss=_choice(data, "loss", LOSSES[task], loss_default),
        optimizer=_choice(data, "optimizer", OPTIMIZERS, d.optimizer),
        lr=_number(data, "lr", 1e-6, 10.0, float, d.lr),
        batch_size=_number(data, "batch_size", 1, 512, int, d.batch_size),
        l2=_number(data, "l2", 0.0, 1.0, float, d.l2),
        dropout=_number(data, "dropout", 0.0, 0.9, float, d.dropout),
        seed=_number(data, "seed", 0, 2**31 - 1, int, d.seed),
    )


def _dataset(cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    options: dict[str, Any] = {"n_train": cfg.n_train, "n_test": cfg.n_val, "seed": cfg.seed}
    if cfg.dataset != "spirals":
        options["noise"] = cfg.noise
    else:
        options["noise"] = cfg.noise * 2  # spirals' noise is an angle: the same slider, a similar blur
    ds = load(cfg.dataset, **options)
    k = 1 if ds.n_classes is None else int(ds.n_classes)
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test, k


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode("ascii")


class Session:
    """A network training on a data set, one step at a time (not thread-safe: one worker calls it).

    Parameters
    ----------
    sid : str
        The session's id (what the browser tab names it by).
    config : Config
    """

    def __init__(self, sid: str, config: Config) -> None:
        self.id = sid
        self.created = time.time()
        self.configure(config)

    def __repr__(self) -> str:
        return f"Session(id={self.id!r}, step={self.step}, {self.config!r})"

    # ----------------------------------------------------------- building
    def configure(self, config: Config) -> None:
        """Build data, network and trainer anew from ``config`` (step count back to 0)."""
        self.config = cfg = config
        x, y, xv, yv, k = _dataset(cfg)
        self.x, self.y, self.xv, self.yv, self.k = x, y, xv, yv, k
        output = (
            "identity"
            if cfg.task == "regression"
            else ("softmax" if cfg.loss == "cross_entropy" else "sigmoid")
        )
        self.model: Sequential = mlp(
            [x.shape[1], *cfg.hidden, k],
            activation=cfg.activation,
            output=output,
            dropout=cfg.dropout,
            seed=cfg.seed,
        )
        name, options = cfg.optimizer, {"weight_decay": cfg.l2}
        if name == "momentum":
            name, options["momentum"] = "sgd", 0.9
        self.trainer = Trainer(
            self.model,
            loss=cfg.loss,
            optimizer=name,
            lr=cfg.lr,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            optimizer_options=options,
            fused_update=False,  # keep every dC/dW[l]: the page shows their norms
        )
        self.xb = backend.asarray(x.astype(np.float32))
        k_out = self.model.dense_layers()[-1].out_features
        self.y_targets = self.trainer.step_loss.targets(Tensor(np.empty((x.shape[0], k_out), np.float32)), y)
        self.step = 0
        self.epoch = 0
        self._batches: Iterator[tuple[Any, Any]] = iter(())
        self.grad_norms = [0.0] * len(self.model.dense_layers())
        self.history: list[dict[str, float]] = []
        lo, hi = np.min(np.concatenate([x, xv]), axis=0), np.max(np.concatenate([x, xv]), axis=0)
        pad = 0.1 * (hi - lo) + 0.1
        self.bounds = [float(v) for v in np.stack([lo - pad, hi + pad], axis=1).ravel()]
        self.history.append(self.metrics())

    # ----------------------------------------------------------- training
    def train_step(self) -> tuple[int, float]:
        """One step of the trainer on the next mini-batch; returns ``(step, batch loss)``."""
        batch = next(self._batches, None)
        if batch is None:
            self.epoch += 1
            self._batches = self.trainer.batches(self.xb, self.y_targets)
            batch = next(self._batches)
        self.model.train()
        loss = self.trainer.train_step(batch[0], batch[1], self.step)
        self.step += 1
        return self.step, loss

    def train_for(self, max_steps: int, budget_s: float) -> list[tuple[int, float, float]]:
        """Steps until ``max_steps`` are done or ``budget_s`` seconds passed.

        Returns ``(step, batch loss, wall time at its end)`` for each step, and keeps
        ``grad_norms``: ``||dC/dW[l]||`` (with ``dC/db[l]``) of the last step, per layer.
        """
        done: list[tuple[int, float, float]] = []
        start = time.perf_counter()
        while len(done) < max_steps and (not done or time.perf_counter() - start < budget_s):
            step, loss = self.train_step()
            done.append((step, loss, time.time()))
        self.grad_norms = [
            math.sqrt(sum(float(np.sum(np.square(p.grad))) for p in layer.parameters() if p.grad is not None))
            for layer in self.model.dense_layers()
        ]
        return done

    def metrics(self) -> dict[str, float]:
        """Loss (and accuracy) on the training and validation sets, now."""
        out: dict[str, float] = {"step": self.step}
        for prefix, (x, y) in (("train", (self.x, self.y)), ("val", (self.xv, self.yv))):
            scores = evaluate(self.model, x, y, self.config.loss)
            out.update({f"{prefix}_{k}": float(v) for k, v in scores.items()})
        return out

    # ----------------------------------------------------------- pictures
    def picture(self) -> dict[str, Any]:
        """The decision boundary (class and confidence per grid cell) or the regression curve."""
        if self.config.task == "regression":
            xs = np.linspace(self.bounds[0], self.bounds[1], CURVE, dtype=np.float32)[:, None]
            return {
                "kind": "curve",
                "x": xs[:, 0].round(4).tolist(),
                "y": predict(self.model, xs)[:, 0].round(4).tolist(),
            }
        x0, x1, y0, y1 = self.bounds
        gx, gy = np.meshgrid(np.linspace(x0, x1, GRID), np.linspace(y1, y0, GRID))  # row 0 at the top
        grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
        out = predict(self.model, grid)
        if self.k == 1 or out.shape[1] == 1:
            p = out[:, 0]
            cls, conf = (p > 0.5).astype(np.uint8), np.maximum(p, 1 - p)
        else:
            if self.config.loss != "cross_entropy":  # sigmoid outputs: compare them, as accuracy does
                out = out / np.maximum(out.sum(axis=1, keepdims=True), 1e-12)
            cls, conf = out.argmax(axis=1).astype(np.uint8), out.max(axis=1)
        level = np.clip((conf - 1.0 / self.k) / (1 - 1.0 / self.k), 0, 1) * 255
        return {"kind": "grid", "size": GRID, "classes": _b64(cls), "confidence": _b64(np.round(level))}

    def points(self) -> dict[str, Any]:
        """The data, rounded for the page: training and validation inputs and targets."""

        def rows(a: np.ndarray) -> list[Any]:
            return np.asarray(a, dtype=np.float64).round(4).tolist()

        return {"x": rows(self.x), "y": rows(self.y), "x_val": rows(self.xv), "y_val": rows(self.yv)}

    def state(self) -> dict[str, Any]:
        """Everything the page draws on (re)connect."""
        return {
            "id": self.id,
            "config": asdict(self.config),
            "task": self.config.task,
            "classes": self.k,
            "sizes": [self.x.shape[1], *self.config.hidden, self.k],
            "bounds": self.bounds,
            "step": self.step,
            "history": self.history,
            "grad_norms": self.grad_norms,
            "points": self.points(),
            "picture": self.picture(),
            "summary": str(self.model.summary()),
        }

    # ----------------------------------------------------------- explain and export
    def example(self, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Input and target row (one-hot for a class) of example ``index`` of ``split`` (train or val)."""
        if split not in ("train", "val"):
            raise ConfigError(f"example: split must be 'train' or 'val', got {split!r}.")
        x, y = (self.x, self.y) if split == "train" else (self.xv, self.yv)
        if not 0 <= index < x.shape[0]:
            raise ConfigError(
                f"example: index must be 0 to {x.shape[0] - 1} for the {split} split, got {index}."
            )
        target = (
            np.eye(self.k)[int(y[index])] if self.config.task == "classification" else np.atleast_1d(y[index])
        )
        return np.asarray(x[index], dtype=np.float64), np.asarray(target, dtype=np.float64)

    def spec(self, split: str = "train", index: int = 0) -> dict[str, Any]:
        """The ``chainrule explain`` spec of the current network on one example.

        The spec holds the Dense layers (dropout is the identity outside training).
        """
        x, y = self.example(split, index)
        layers = []
        for layer in self.model.dense_layers():
            entry: dict[str, Any] = {"weights": backend.to_numpy(layer.W.data).astype(np.float64).tolist()}
            if layer.b is not None:
                entry["bias"] = backend.to_numpy(layer.b.data).astype(np.float64).tolist()
            entry["activation"] = layer.activation
            layers.append(entry)
        return {
            "title": f"chainrule playground: {self.config.dataset}, step {self.step}, "
            f"{split} example {index}",
            "layers": layers,
            "input": x.tolist(),
            "target": y.tolist(),
            "loss": self.config.loss,
            "learning_rate": self.config.lr,
        }

    def explain_html(self, split: str, index: int) -> str:
        """The interactive explain page of the current network on one example."""
        return str(render(explain(self.spec(split, index)), "html"))

    def model_bytes(self) -> bytes:
        """The model as a chainrule ``.safetensors`` file (:func:`chainrule.serialize.save`)."""
        with tempfile.TemporaryDirectory(prefix="chainrule-playground-") as tmp:
            path = os.path.join(tmp, "model.safetensors")
            meta = {"playground": asdict(self.config), "step": self.step}
            serialize.save(path, self.model, metadata=json.loads(json.dumps(meta)))
            with open(path, "rb") as fh:
                return fh.read()


__all__ = ["ACTIVATIONS", "DATASETS", "LOSSES", "OPTIMIZERS", "Config", "Session", "parse_config"]
