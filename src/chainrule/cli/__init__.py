"""The ``chainrule`` command line (level 9): one module per command, one error boundary.

Every error in arguments or data prints one line to stderr and exits with
status 2; ``--debug`` shows the full traceback instead.

A command is one entry of :data:`COMMANDS`: its name, its help line, a function
that adds its options to a parser, and the function that runs it (``run(args) ->
exit status``). Adding a command is one module and one line here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from chainrule.cli import check, download, exercise, explain, models, onnx, playground, train
from chainrule.cli.common import Parser
from chainrule.errors import ChainruleError

Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]

COMMANDS: list[Command] = [
    (train.NAME, train.HELP, train.add_arguments, train.run),
    ("evaluate", "test metrics of a saved model on a dataset", models.add_evaluate, models.cmd_evaluate),
    (
        "predict",
        "predictions of a saved model for inputs in a .npy or .csv file",
        models.add_predict,
        models.cmd_predict,
    ),
    (
        "explain",
        "show one forward, backward and update in the notes' notation",
        explain.add_explain,
        explain.cmd_explain,
    ),
    ("ops", "print the table of primitives and their derivative rules", explain.add_ops, explain.cmd_ops),
    (download.NAME, download.HELP, download.add_arguments, download.run),
    ("export", "write a saved model as ONNX, to run anywhere", onnx.add_export, onnx.cmd_export),
    (
        "import",
        "read an ONNX MLP (PyTorch, skl2onnx, ...) into a chainrule model",
        onnx.add_import,
        onnx.cmd_import,
    ),
    (playground.NAME, playground.HELP, playground.add_arguments, playground.run),
    (check.NAME, check.HELP, check.add_arguments, check.run),
    (exercise.NAME, exercise.HELP, exercise.add_arguments, exercise.run),
]


def version() -> str:
    """``chainrule 0.1.0 (Python 3.11.7, NumPy 2.4.6)``: what a bug report needs."""
    import platform
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    import numpy

    try:
        ours = installed("chainrule")
    except PackageNotFoundError:  # run from a source tree that was never installed
        ours = "(not installed)"
    return f"chainrule {ours} (Python {platform.python_version()}, NumPy {numpy.__version__})"


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="chainrule", description="Neural networks trained by the chain rule.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=version())
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, add_arguments, _ in COMMANDS:
        add_arguments(sub.add_parser(name, help=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``chainrule`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    run = {name: fn for name, _, _, fn in COMMANDS}[args.command]
    try:
        return run(args)
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
