"""A saved or imported model in other commands: ``explain --model`` and ``train --init-from``.

Part of :mod:`chainrule.cli` (level 9). A model file (chainrule's
``.safetensors``, or an ``.onnx`` MLP read by :mod:`chainrule.onnx`) becomes
an explain spec for one example, with its own weights, or the starting point
of a training run (fine-tuning).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import backend
from chainrule.cli.onnx import read_model
from chainrule.errors import ConfigError, DataError, ShapeError
from chainrule.explain.spec import spec_from_model
from chainrule.layers import Activation, Dense, Dropout, Module, Sequential
from chainrule.losses import LOSSES


def default_loss(
    model: Sequential, meta: dict[str, Any], classification: bool, regression: str = "mse"
) -> str:
    """The training loss recorded with the model, else the one its output calls for.

    softmax -> ``cross_entropy``, sigmoid -> ``binary_cross_entropy``; a linear
    output (logits, as PyTorch classifiers end) -> ``softmax_cross_entropy``
    (or ``sigmoid_binary_cross_entropy`` for one unit) for classes, else ``regression``.
    """
    if meta.get("loss") in LOSSES:
        return str(meta["loss"])
    output = model.output_activation
    if output == "softmax":
        return "cross_entropy"
    if output == "sigmoid":
        return "binary_cross_entropy"
    if classification and output == "identity":
        n_out = model.dense_layers()[-1].out_features
        return "softmax_cross_entropy" if n_out > 1 else "sigmoid_binary_cross_entropy"
    return regression


def start_from(path: str, data: Any, loss: str | None) -> tuple[Sequential, str]:
    """``chainrule train --init-from MODEL``: the model to fine-tune on ``data``, and its loss.

    Raises
    ------
    ShapeError
        If the model's input or output size does not fit the data.
    """
    model, meta = read_model(path)
    dense = model.dense_layers()
    n_in, n_out = dense[0].in_features, dense[-1].out_features
    regression = data.task == "regression"
    want = data.y_train.shape[1] if regression and data.y_train.ndim == 2 else (data.n_classes or 1)
    if (n_in, n_out) != (data.x_train.shape[1], want):
        kind = "targets" if regression else "classes"
        raise ShapeError(
            f"--init-from {path}: the model maps {n_in} inputs to {n_out} outputs, but {data.name} has "
            f"{data.x_train.shape[1]} features and {want} {kind}."
        )
    return model, loss or default_loss(model, meta, classification=not regression)


def add_arguments(ex: argparse.ArgumentParser) -> None:
    """The options of ``chainrule explain --model MODEL --input X --target Y``."""
    group = ex.add_argument_group("explain a saved or imported model (instead of a spec)")
    group.add_argument(
        "--model",
        help="a model file: .safetensors (chainrule train, chainrule import) or .onnx (default: none)",
    )
    group.add_argument(
        "--input",
        help="one example: numbers separated by commas, or a .npy/.csv file (see --row; default: none)",
    )
    group.add_argument(
        "--target", help="a class index, numbers separated by commas, or a .npy/.csv file (default: none)"
    )
    group.add_argument(
        "--row", type=int, default=0, help="the row of --input/--target files, 0-based (default: 0)"
    )
    group.add_argument("--loss", help="loss name (default: the model's training loss, else from its output)")
    group.add_argument(
        "--learning-rate", type=float, help="alpha of the gradient-descent step (default: 0.5)"
    )


def _dense_only(model: Sequential) -> Sequential:
    """The model at inference as Dense layers only: Dropout left out, an Activation folded into its Dense."""
    layers: list[Module] = []
    for layer in model.layers:
        last = layers[-1] if layers else None
        if isinstance(layer, Dropout):
            continue
        if isinstance(layer, Activation) and isinstance(last, Dense) and last.activation == "identity":
            bias = False if last.b is None else backend.to_numpy(last.b.data)
            W = backend.to_numpy(last.W.data)
            layers[-1] = Dense(
                last.in_features, last.out_features, bias, layer.activation, weights=W, dtype=W.dtype
            )
            continue
        layers.append(layer)
    return Sequential(*layers)


def _values(text: str, row: int, what: str) -> np.ndarray:
    """Numbers from ``"0.1,0.2"``, or row ``row`` of a .npy/.csv file."""
    if Path(text).suffix.lower() not in (".npy", ".csv"):
        try:
            return np.array([float(v) for v in text.split(",")], dtype=np.float64)
        except ValueError:
            raise ConfigError(
                f"{what}: expected numbers separated by commas, or a .npy/.csv file, got {text!r}."
            ) from None
    if not os.path.isfile(text):
        raise DataError(f"{what}: no such file {text!r}.")
    try:
        table = (
            np.load(text, allow_pickle=False)
            if text.lower().endswith(".npy")
            else np.loadtxt(text, delimiter=",", ndmin=1)
        )
    except ValueError as exc:
        raise DataError(f"{what}: cannot read {text!r} as numbers: {exc}") from None
    if table.dtype.kind not in "biuf" or table.ndim not in (1, 2):
        raise DataError(
            f"{what}: {text!r} holds {table.dtype} of shape {table.shape}; expected a table of numbers."
        )
    if table.ndim == 2 or what == "--target":
        if not 0 <= row < table.shape[0]:
            raise DataError(f"{what}: --row {row} is out of range: {text!r} has {table.shape[0]} rows.")
        table = table[row]
    return np.atleast_1d(np.asarray(table, dtype=np.float64))


def _target(values: np.ndarray, n_out: int) -> tuple[np.ndarray, bool]:
    """The target vector ``y (n[L],)``; a class index for a multi-unit output becomes one-hot."""
    if values.size == n_out:
        return values, False
    c = values[0]
    if values.size == 1 and float(c).is_integer() and 0 <= c < n_out:
        return np.eye(n_out)[int(c)], True
    raise ShapeError(
        f"--target: the model has n[L] = {n_out} outputs; give {n_out} numbers or a class index "
        f"0..{n_out - 1}, got {values.tolist()}."
    )


def explain_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The explain spec of ``--model`` on one example: its weights, ``--input``, ``--target`` and loss."""
    if args.spec is not None:
        raise ConfigError("give a spec file or --model, not both.")
    if args.model is None or args.input is None or args.target is None:
        raise ConfigError(
            "give a spec file, or --model MODEL with --input X and --target Y (see docs/deploy.md)."
        )
    model, meta = read_model(args.model)
    model = _dense_only(model)
    n_in, n_out = model.dense_layers()[0].in_features, model.dense_layers()[-1].out_features
    x = _values(args.input, args.row, "--input")
    if x.size != n_in:
        raise ShapeError(f"--input: the model takes n[0] = {n_in} numbers per example, got {x.size}.")
    y, is_class = _target(_values(args.target, args.row, "--target"), n_out)
    spec = spec_from_model(model, x, y)
    spec["loss"] = args.loss or default_loss(model, meta, classification=is_class, regression="half_sse")
    if args.learning_rate is not None:
        spec["learning_rate"] = args.learning_rate
    spec["title"] = f"{Path(args.model).name}, one example"
    return spec


__all__ = ["add_arguments", "default_loss", "explain_spec", "start_from"]
