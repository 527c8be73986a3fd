"""What every command shares: the argument parser whose errors are one line, argument types, the device.

Part of :mod:`chainrule.cli` (level 8).
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from chainrule import backend


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (status 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_list(text: str) -> list[int]:
    """``"128,64"`` -> ``[128, 64]``: positive integers separated by commas."""
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
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
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")


def use_device(device: str) -> None:
    """Make ``device`` (``cpu`` or ``gpu``) the backend of the run."""
    backend.set_device(device)


def say(line: str, quiet: bool) -> None:
    """Print ``line`` unless ``quiet``."""
    if not quiet:
        print(line, flush=True)
