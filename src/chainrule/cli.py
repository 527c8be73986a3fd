"""The ``chainrule`` command line (level 7): train, evaluate, predict, explain, ops.

Every error in arguments or data prints one line to stderr and exits with
status 2; ``--debug`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from chainrule import backend, datasets, serialize
from chainrule.errors import ChainruleError, ConfigError, DataError
from chainrule.layers import mlp
from chainrule.losses import get_loss
from chainrule.optim import CosineAnnealingLR
from chainrule.train import EarlyStopping, Trainer, evaluate, plot_history, predict

# Default recipe per dataset: chosen on a validation split cut from the training set.
RECIPES: dict[str, dict[str, Any]] = {
    # chosen by mean validation accuracy over seeds 0-4 (docs/datasets.md, "digits: the default recipe")
    "digits": {
        "layers": [256, 256],
        "activation": "relu",
        "optimizer": "adam",
        "lr": 1e-3,
        "epochs": 80,
        "batch_size": 32,
        "dropout": 0.2,
    },
    # the 1-D regression curve: chosen on validation loss (0.010, against 0.029 for 128-relu-300)
    "regression": {
        "layers": [64, 64],
        "activation": "tanh",
        "optimizer": "adam",
        "lr": 1e-3,
        "epochs": 300,
        "batch_size": 32,
    },
    # benchmarks/mnist1d_recipe.py; dropout, weight_decay (AdamW, decoupled) and a cosine
    # schedule over all epochs are part of the recipe: see docs/datasets.md, "MNIST-1D".
    "mnist1d": {
        "layers": [512, 512, 512],
        "activation": "relu",
        "optimizer": "adamw",
        "lr": 3e-3,
        "epochs": 100,
        "batch_size": 100,
        "dropout": 0.4,
        "weight_decay": 0.05,
        "schedule": "cosine",
    },
}
DEFAULT_RECIPE: dict[str, Any] = {
    "layers": [128],
    "activation": "relu",
    "optimizer": "adam",
    "lr": 1e-3,
    "epochs": 30,
    "batch_size": 32,
    "dropout": 0.0,
    "weight_decay": 0.0,
    "schedule": "none",
}


def _int_list(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 128,64, got {text!r}"
        ) from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (status 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="chainrule", description="Neural networks trained by the chain rule.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an MLP and write model, metrics.json and a plot")
    train.add_argument("--data", default="digits", help="dataset name or path (default: digits)")
    train.add_argument("--layers", type=_int_list, help="hidden layer sizes, e.g. 128,64")
    train.add_argument("--activation", help="hidden activation (relu, sigmoid, tanh, ...)")
    train.add_argument("--loss", help="loss name (default: cross_entropy, or mse for regression)")
    train.add_argument("--optimizer", help="sgd, adam, adamw or rmsprop")
    train.add_argument("--lr", type=float, help="learning rate alpha")
    train.add_argument("--epochs", type=_positive_int)
    train.add_argument("--dropout", type=float, help="dropout after each hidden layer (0: none)")
    train.add_argument("--weight-decay", type=float, help="L2 (AdamW: decoupled) weight decay")
    train.add_argument(
        "--schedule", choices=["none", "cosine"], help="learning-rate schedule over the epochs"
    )
    train.add_argument("--batch-size", type=_positive_int)
    train.add_argument("--validation-split", type=float, default=0.1)
    train.add_argument("--patience", type=int, default=0, help="early-stopping patience on val_loss (0: off)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    train.add_argument("--out", default="runs/latest", help="output folder (default: runs/latest)")
    train.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")

    ev = sub.add_parser("evaluate", help="test metrics of a saved model on a dataset")
    ev.add_argument("model")
    ev.add_argument("--data", default=None, help="dataset (default: the one it was trained on)")
    ev.add_argument("--device", choices=["cpu", "gpu"], default="cpu")

    pr = sub.add_parser("predict", help="predictions of a saved model for inputs in a .npy or .csv file")
    pr.add_argument("model")
    pr.add_argument("inputs", help=".npy file or headerless numeric .csv of shape (m, n_features)")
    pr.add_argument("--output", help="write predictions here (.npy or .csv) instead of stdout")
    pr.add_argument("--device", choices=["cpu", "gpu"], default="cpu")

    ex = sub.add_parser("explain", help="show one forward, backward and update in the notes' notation")
    ex.add_argument("spec", help="JSON spec file (see docs/explain.md)")
    ex.add_argument("--format", choices=["text", "markdown", "json", "png"], default="text")
    ex.add_argument("--output", help="write to this file instead of stdout")
    ex.add_argument(
        "--weight",
        action="append",
        help="a weight to write out as a chain of factors: L:j,k (1-based; repeatable)",
    )
    ex.add_argument("--steps", type=int, default=0, help="also run N gradient-descent steps")

    sub.add_parser("ops", help="print the table of primitives and their derivative rules")
    return parser


def _use_device(device: str) -> None:
    backend.set_backend("cupy" if device == "gpu" else "numpy")


def _say(line: str, quiet: bool) -> None:
    if not quiet:
        print(line, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    """Train on ``--data`` and write model.safetensors, metrics.json and history.png to ``--out``."""
    _use_device(args.device)
    data = datasets.load(args.data)
    recipe = {**RECIPES.get(data.name, DEFAULT_RECIPE)}
    recipe.update({k: v for k, v in vars(args).items() if k in DEFAULT_RECIPE and v is not None})
    regression = data.task == "regression"
    n_out = data.y_train.shape[1] if regression and data.y_train.ndim == 2 else (data.n_classes or 1)
    loss = args.loss or ("mse" if regression else "cross_entropy")
    # a loss on logits (softmax_cross_entropy, ...) gets the logits: no output activation
    output = "identity" if regression or get_loss(loss).from_logits else "softmax"
    sizes = [data.x_train.shape[1], *recipe["layers"], n_out]
    model = mlp(sizes, recipe["activation"], output, dropout=recipe.get("dropout", 0.0), seed=args.seed)
    epochs = recipe["epochs"]  # after any --epochs override, so a cosine schedule spans the real run
    trainer = Trainer(
        model,
        loss,
        recipe["optimizer"],
        recipe["lr"],
        recipe["batch_size"],
        seed=args.seed,
        optimizer_options={"weight_decay": recipe.get("weight_decay", 0.0)},
        schedule=(lambda opt: CosineAnnealingLR(opt, t_max=epochs))
        if recipe.get("schedule") == "cosine"
        else None,
    )
    _say(f"data: {data!r}", args.quiet)
    _say(f"model: {model!r}\n{trainer!r}", args.quiet)
    if args.patience and not args.validation_split:
        raise ConfigError("--patience needs a validation split to watch (--validation-split > 0).")
    callbacks = [EarlyStopping(patience=args.patience)] if args.patience else []
    started = time.perf_counter()
    history = trainer.fit(
        data.x_train,
        data.y_train,
        recipe["epochs"],
        validation_split=args.validation_split,
        callbacks=callbacks,
        verbose=0 if args.quiet else 1,
    )
    seconds = time.perf_counter() - started
    x_test = backend.asarray(data.x_test.astype(model.parameters()[0].dtype))
    test = evaluate(model, x_test, backend.asarray(data.y_test), loss)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"loss": loss, "data": args.data, "n_classes": data.n_classes, "task": data.task}
    serialize.save(out / "model.safetensors", model, meta)
    metrics: dict[str, Any] = {f"test_{k}": v for k, v in test.items()}
    metrics.update(
        recipe=recipe, loss_name=loss, seconds=seconds, epochs_run=len(history), history=history.epochs
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_history(history, str(out / "history.png"))
    _report(history, test, seconds, out, args.quiet)
    return 0


def _report(history: Any, test: dict[str, float], seconds: float, out: Path, quiet: bool) -> None:
    for i, logs in enumerate(history.epochs, 1):
        _say(f"epoch {i:3d}  " + "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "lr"), quiet)
    scores = "  ".join(f"test_{k} {v:.4f}" for k, v in test.items())
    print(f"{scores}  ({seconds:.1f} s)  saved to {out}/", flush=True)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Print the test metrics of a saved model as JSON."""
    _use_device(args.device)
    model = serialize.load(args.model)
    meta = serialize.load_metadata(args.model)
    data = datasets.load(args.data or meta.get("data", "digits"))
    x_test = backend.asarray(data.x_test.astype(model.parameters()[0].dtype))
    scores = evaluate(model, x_test, backend.asarray(data.y_test), meta.get("loss", "cross_entropy"))
    print(json.dumps({f"test_{k}": v for k, v in scores.items()}))
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
    _use_device(args.device)
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


def cmd_explain(args: argparse.Namespace) -> int:
    """Run ``explain`` on a spec file."""
    from chainrule import explain

    return int(
        explain.run(args.spec, fmt=args.format, output=args.output, weight=args.weight, steps=args.steps)
    )


def cmd_ops(args: argparse.Namespace) -> int:
    """Print the table of primitives: name and VJP rule."""
    from chainrule import ops

    width = max(len(name) for name in ops.PRIMITIVES)
    for name, formula in ops.table():
        print(f"{name:<{width}}  {formula}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "explain": cmd_explain,
    "ops": cmd_ops,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``chainrule`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # output piped into e.g. head, which stopped reading: not an error
        sys.stdout = open(os.devnull, "w")  # NOTE: stays open: Python flushes stdout at exit
        return 0
    except (ChainruleError, OSError) as exc:
        if args.debug:
            raise
        print(f"chainrule {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
