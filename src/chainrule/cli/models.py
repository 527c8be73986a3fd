"""``chainrule evaluate`` and ``chainrule predict``: use a saved model.

Part of :mod:`chainrule.cli` (level 8).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from chainrule import backend, datasets, serialize
from chainrule.cli.common import add_device, use_device
from chainrule.errors import ConfigError, DataError
from chainrule.fileio import strict_json
from chainrule.train import evaluate, predict


def add_evaluate(ev: argparse.ArgumentParser) -> None:
    """The options of ``chainrule evaluate``."""
    ev.add_argument("model")
    ev.add_argument("--data", default=None, help="dataset (default: the one it was trained on)")
    add_device(ev)


def add_predict(pr: argparse.ArgumentParser) -> None:
    """The options of ``chainrule predict``."""
    pr.add_argument("model")
    pr.add_argument("inputs", help=".npy file or headerless numeric .csv of shape (m, n_features)")
    pr.add_argument("--output", help="write predictions here (.npy or .csv) instead of stdout")
    add_device(pr)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Print the test metrics of a saved model as strict JSON (a non-finite score: ``null``, and an error)."""
    use_device(args.device)
    model = serialize.load(args.model)
    meta = serialize.load_metadata(args.model)
    data = datasets.load(args.data or meta.get("data", "digits"))
    x_test = backend.asarray(data.x_test.astype(model.parameters()[0].dtype))
    scores = evaluate(model, x_test, backend.asarray(data.y_test), meta.get("loss", "cross_entropy"))
    results = {f"test_{k}": v for k, v in scores.items()}
    print(strict_json(results))  # valid JSON always: a non-finite score is null
    bad = [k for k, v in results.items() if not math.isfinite(v)]
    if bad:
        raise DataError(
            f"{args.model}: {bad[0]} is {results[bad[0]]} on {data.name} (printed as null): the model's "
            "outputs overflow on these inputs; check that they are scaled as the training data were."
        )
    return 0


def _read_inputs(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file.")
    if p.suffix == ".npy":
        try:
            x = np.load(p, allow_pickle=False)
        except ValueError as exc:  # pickled or object arrays, or not a .npy file at all
            raise DataError(f"{path}: cannot read as .npy: {exc}") from exc
    elif p.suffix == ".csv":
        try:
            x = np.loadtxt(p, delimiter=",", ndmin=2)
        except ValueError as exc:
            raise DataError(f"{path}: not a numeric CSV: {exc}") from exc
    else:
        raise ConfigError(f"{path}: expected a .npy or .csv file, got {p.suffix or 'no extension'!r}.")
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: expected numbers, got an array of dtype {x.dtype}.")
    if x.ndim != 2 or x.shape[0] == 0 or not np.isfinite(x).all():
        raise DataError(f"{path}: expected finite inputs of shape (m, n_features), got shape {x.shape}.")
    return x


def cmd_predict(args: argparse.Namespace) -> int:
    """Print (or write) the outputs of a saved model; classes too for classifiers."""
    use_device(args.device)
    model = serialize.load(args.model)
    out = predict(model, _read_inputs(args.inputs))
    if args.output:
        target = Path(args.output)
        if target.suffix == ".npy":
            np.save(target, out)
        else:
            np.savetxt(target, out, delimiter=",")
        return 0
    classes = out.argmax(axis=1) if out.shape[1] > 1 else None
    for i, row in enumerate(out):
        label = f"class {classes[i]}  " if classes is not None else ""
        print(label + " ".join(f"{v:.6g}" for v in row))
    return 0
