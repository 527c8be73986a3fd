"""What every command shares: the argument parser whose errors are one line, argument types, the device.

Part of :mod:`chainrule.cli` (level 9).
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

import numpy as np

from chainrule import backend, datasets
from chainrule.errors import ConfigError, DataError


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (status 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_list(text: str) -> list[int]:
    """``"128,64"`` -> ``[128, 64]``: positive integers separated by commas; ``"none"`` -> ``[]``.

    An empty string, an empty item (``"16,,8"``, a trailing comma) or anything
    that is not an integer is refused: a typo must not silently drop a layer.
    ``none`` asks for no hidden layer (a linear model).
    """
    if text.strip().lower() == "none":
        return []
    items = [s.strip() for s in text.split(",")]
    if "" in items:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 128,64, got {text!r}: an empty item "
            "(for no hidden layer at all, pass --layers none)"
        )
    try:
        sizes = [int(s) for s in items]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 128,64, got {text!r}"
        ) from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_device(parser: argparse.ArgumentParser) -> None:
    """The ``--device cpu|gpu`` option."""
    parser.add_argument(
        "--device",
        choices=["cpu", "gpu"],
        default="cpu",
        help="where to compute; gpu needs CuPy (default: cpu)",
    )


def use_device(device: str) -> None:
    """Make ``device`` (``cpu`` or ``gpu``) the backend of the run."""
    backend.set_device(device)


def say(line: str, quiet: bool) -> None:
    """Print ``line`` unless ``quiet``."""
    if not quiet:
        print(line, flush=True)


def load_data(name: str, **options: Any) -> datasets.Dataset:
    """``datasets.load(name, **options)``; an opt-in data set not yet downloaded names the command to run."""
    if name in datasets.SHA256 and not options.get("download"):
        if not datasets.downloaded(name):
            folder = datasets.default_cache_dir() / name
            raise DataError(
                f"{name} is not downloaded yet (looked in {folder}); run `chainrule download {name}` "
                "once, or pass --data a folder holding the four IDX files."
            )
    return datasets.load(name, **options)


def target_option(text: str) -> str | int:
    """``--target``: a header name, or a 1-based column number (negative counts from the end) -> 0-based."""
    try:
        index = int(text)
    except ValueError:
        return text
    if index == 0:
        raise ConfigError(
            "--target 0: columns are numbered from 1, as in error messages (-1 is the last column)."
        )
    return index - 1 if index > 0 else index


# Regression targets are trained standardized: y' = (y - mean) / std, with the training split's
# mean and std per target column, saved in the model's metadata as {"mean": [...], "std": [...]}.
def fit_target_scaling(y_train: np.ndarray) -> dict[str, list[float]]:
    """Mean and std per target column of the training split (a constant column keeps std 1)."""
    y = np.asarray(y_train, dtype=np.float64).reshape(len(y_train), -1)
    std = y.std(axis=0)
    return {"mean": y.mean(axis=0).tolist(), "std": np.where(std > 0, std, 1.0).tolist()}


def scale_target(y: np.ndarray, scaling: dict[str, Any]) -> np.ndarray:
    """``(y - mean) / std`` as float32 ``(m, k)``."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    return ((y - np.asarray(scaling["mean"])) / np.asarray(scaling["std"])).astype(np.float32)


def unscale_target(out: np.ndarray, scaling: dict[str, Any] | None) -> np.ndarray:
    """Predictions in the target's units, ``a * std + mean`` (float64); unchanged without scaling."""
    if not scaling:
        return out
    return np.asarray(out, dtype=np.float64) * np.asarray(scaling["std"]) + np.asarray(scaling["mean"])
