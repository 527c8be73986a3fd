"""``chainrule evaluate`` and ``chainrule predict``: use a saved model.

Part of :mod:`chainrule.cli` (level 9). ``predict`` reads its inputs as ``train``
reads a table (the same CSV reader: a header picks the columns by name, errors
name the line and column), and writes a header, then one row per example:
``class`` and one probability per class name for a classifier (``--logits`` for
the logits ``z[L]`` instead), the value of each target in its own units for a
regression. The output format comes from the file's extension.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import backend, datasets
from chainrule.autograd import no_grad
from chainrule.cli.common import (
    add_device,
    load_data,
    scale_target,
    target_option,
    unscale_target,
    use_device,
)
from chainrule.cli.onnx import read_model
from chainrule.cli.saved import default_loss
from chainrule.errors import ConfigError, DataError
from chainrule.fileio import strict_json
from chainrule.layers import Sequential
from chainrule.metrics import regression_scores
from chainrule.tables import FLOAT32_MAX
from chainrule.train import evaluate, predict

INPUTS = (".npy", ".csv", ".tsv")
OUTPUTS = {
    ".csv": "CSV: a header, then one row per example",
    ".tsv": "the same, tab-separated",
    ".npy": "the numbers only",
}


def add_evaluate(ev: argparse.ArgumentParser) -> None:
    """The options of ``chainrule evaluate``."""
    ev.add_argument("model", help="a model file: .safetensors (chainrule train, chainrule import) or .onnx")
    ev.add_argument(
        "--data",
        default=None,
        help="data set name or file; its test split is used (default: the one the model was trained on)",
    )
    add_device(ev)


def add_predict(pr: argparse.ArgumentParser) -> None:
    """The options of ``chainrule predict``."""
    pr.add_argument("model", help="a model file: .safetensors (chainrule train, chainrule import) or .onnx")
    pr.add_argument(
        "inputs",
        help="a .csv/.tsv table (a header row picks the model's columns by name; without one, every "
        "column is an input, in the training order) or a .npy array of shape (m, n_features)",
    )
    pr.add_argument(
        "--output",
        help="write here instead of stdout; the format comes from the extension: "
        + "; ".join(f"{ext} {what}" for ext, what in OUTPUTS.items())
        + " (default: CSV on stdout)",
    )
    pr.add_argument(
        "--logits",
        action="store_true",
        help="for a classifier, the logits z[L] instead of the probabilities (default: probabilities)",
    )
    add_device(pr)


# ------------------------------------------------------------------ evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    """Print the test metrics of a saved model as strict JSON (a non-finite score: ``null``, and an error)."""
    use_device(args.device)
    model, meta = read_model(args.model)
    name = args.data or meta.get("data", "digits")
    options: dict[str, Any] = {}
    if name not in datasets.DATASETS and Path(name).suffix.lower() in (".csv", ".tsv"):
        if meta.get("target_column") is not None:
            options["target"] = target_option(str(meta["target_column"]))
        if model.classes is not None:
            options["classes"] = model.classes
        elif meta.get("task") in ("classification", "regression"):
            options["task"] = meta["task"]
    data = load_data(name, **options)
    x_test = backend.asarray(data.x_test.astype(model.parameters()[0].dtype))
    scaling = meta.get("target_scaling")
    y_test = data.y_test
    if scaling:
        y_test = scale_target(y_test, scaling)
    loss = default_loss(model, meta, classification=data.task != "regression")  # the recorded one, if any
    scores = evaluate(model, x_test, backend.asarray(y_test), loss)
    if scaling:
        scores.update(regression_scores(unscale_target(predict(model, x_test), scaling), data.y_test))
    results = {f"test_{k}": v for k, v in scores.items()}
    print(strict_json(results))  # valid JSON always: a non-finite score is null
    bad = [k for k, v in results.items() if not math.isfinite(v)]
    if bad:
        raise DataError(
            f"{args.model}: {bad[0]} is {results[bad[0]]} on {data.name} (printed as null): the model's "
            "outputs overflow on these inputs; check that they are scaled as the training data were."
        )
    return 0


# ------------------------------------------------------------------ predict
def _read_inputs(path: str, model: Sequential, meta: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """The inputs and the name of each row for messages (``line 7`` of a CSV, ``row 6`` of an array)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file.")
    suffix = p.suffix.lower()
    if suffix not in INPUTS:
        raise ConfigError(f"{path}: expected a .csv, .tsv or .npy file, got {p.suffix or 'no extension'!r}.")
    if suffix in (".csv", ".tsv"):
        target = meta.get("target")
        x, lines = datasets.read_inputs(
            p,
            features=model.feature_names,
            n_features=model.dense_layers()[0].in_features,
            skip=(target,) if isinstance(target, str) else (),
            delimiter="\t" if suffix == ".tsv" else ",",
        )
        return x, [f"line {line} of {p.name}" for line in lines]
    x = datasets.read_npy(p, mmap=False)  # the header checked against the file before anything is read
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: expected numbers, got an array of dtype {x.dtype}.")
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError(f"{path}: expected inputs of shape (m, n_features) with m >= 1, got shape {x.shape}.")
    _check_cells(x, p.name)
    return x, [f"row {i} of {p.name} (counting from 0)" for i in range(len(x))]


def _check_cells(x: np.ndarray, name: str) -> None:
    """Every input finite and within float32's range, in which the model computes; else name the cell."""
    if x.dtype.kind != "f":
        return
    bad = ~np.isfinite(x) | (np.abs(x) > FLOAT32_MAX)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        what = (
            "NaN or infinite" if not np.isfinite(x[i, j]) else f"beyond float32's range (+-{FLOAT32_MAX:.4g})"
        )
        raise DataError(
            f"{name}: row {i}, column {j} (counting from 0) is {float(x[i, j])!r}, {what}; "
            "clean or drop this row."
        )


def _classifier(model: Sequential, meta: dict[str, Any]) -> bool:
    task = meta.get("task")
    if task in ("classification", "regression"):
        return bool(task == "classification")
    return model.classes is not None or model.output_activation in ("softmax", "sigmoid")


def _logits(model: Sequential, x: np.ndarray) -> np.ndarray:
    """``z[L]`` of every row, in eval mode, in batches."""
    x = backend.asarray(x.astype(model.parameters()[0].dtype))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            parts = [
                backend.to_numpy(model(x[i : i + 1024], logits=True).data) for i in range(0, len(x), 1024)
            ]
    finally:
        model.train(was_training)
    return np.concatenate(parts).astype(np.float64)


def _table(
    model: Sequential, meta: dict[str, Any], x: np.ndarray, logits: bool
) -> tuple[list[str], list[list[Any]], np.ndarray]:
    """The header, the rows and the numbers of the predictions."""
    if not _classifier(model, meta):
        if logits:
            raise ConfigError("--logits: this is a regression model; its outputs are the predictions.")
        out = unscale_target(predict(model, x), meta.get("target_scaling"))
        target = meta.get("target")
        names = (
            [target]
            if isinstance(target, str) and out.shape[1] == 1
            else [f"output_{j + 1}" for j in range(out.shape[1])]
        )
        return names, [list(row) for row in out], out
    z = _logits(model, x)
    if z.shape[1] == 1:  # one sigmoid output: p(class 1) = sigmoid(z)
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        probs = np.stack([1.0 - p1, p1], axis=1)
    else:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
    classes = model.classes if model.classes is not None else list(range(probs.shape[1]))
    numbers = z if logits else probs
    prefix = "logit_" if logits else ""
    header = ["class", *[f"{prefix}{c}" for c in classes]][: numbers.shape[1] + 1]
    if logits and z.shape[1] == 1:
        header = ["class", "logit"]
    chosen = probs.argmax(axis=1)
    return header, [[classes[c], *row] for c, row in zip(chosen, numbers, strict=True)], numbers


def _check_finite(numbers: np.ndarray, rows: list[str]) -> None:
    bad = ~np.isfinite(numbers).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"predict: the model's output for {rows[i]} is NaN or infinite ({int(bad.sum())} of "
            f"{len(rows)} rows); the inputs may be far outside the training data, or the weights broken."
        )


def _cell(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{float(value):.9g}"
    return str(value)


def cmd_predict(args: argparse.Namespace) -> int:
    """Print (or write) the predictions of a saved model, with a header."""
    use_device(args.device)
    target = Path(args.output) if args.output else None
    if target is not None and target.suffix.lower() not in OUTPUTS:
        raise ConfigError(
            f"--output {args.output}: unknown format {target.suffix or 'no extension'!r}; use "
            + ", ".join(f"{ext} ({what})" for ext, what in OUTPUTS.items())
            + "."
        )
    model, meta = read_model(args.model)
    x, rows = _read_inputs(args.inputs, model, meta)
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite outputs are named just below
        header, table, numbers = _table(model, meta, x, args.logits)
    _check_finite(numbers, rows)
    if target is not None and target.suffix.lower() == ".npy":
        np.save(target, numbers)
        return 0
    text = io.StringIO()
    writer = csv.writer(
        text,
        delimiter="\t" if target is not None and target.suffix.lower() == ".tsv" else ",",
        lineterminator="\n",
    )
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in table])
    if target is None:
        sys.stdout.write(text.getvalue())
    else:
        target.write_text(text.getvalue(), encoding="utf-8")
    return 0
