"""The ``chainrule`` command line (level 9): one module per command, one error boundary.

Exit statuses:

- 0: done;
- 2: a mistake in the arguments or the input (a file, a spec, a data set), or a
  limit reached: one line on stderr, ``chainrule <command>: error: ...``, naming
  the file, the position (line, column, byte offset, tensor) and the fix;
- 70 (``EX_SOFTWARE``): an internal error, a bug in chainrule rather than in the
  input: one line asking for a report;
- 130: interrupted (Ctrl-C).

``--debug`` (before the command) shows the full traceback instead of the one line.

A command is one entry of :data:`COMMANDS`: its name, its help line, a function
that adds its options to a parser, and the function that runs it (``run(args) ->
exit status``). Adding a command is one module and one line here. The options
that raise the limits of :mod:`chainrule.limits` are added to the commands that
meet them (:data:`LIMIT_OPTIONS`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from chainrule import limits
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

_MODEL = ("max_parameters", "max_layer_width", "max_nesting_depth")
_DATA = ("max_classes", "max_decompressed_bytes", "max_csv_field")
_DOWNLOAD = ("max_download_bytes", "download_deadline")
LIMIT_OPTIONS: dict[str, tuple[str, ...]] = {  # command -> the limits its input can reach
    "train": _MODEL + _DATA + _DOWNLOAD,
    "evaluate": _MODEL + _DATA + _DOWNLOAD,
    "predict": _MODEL + _DATA,
    "explain": ("max_explain_parameters", "max_explain_steps", "max_nesting_depth"),
    "download": _DATA + _DOWNLOAD,
}

EXIT_ERROR = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE in sysexits.h: the program, not its input, is at fault
EXIT_INTERRUPTED = 130


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
        command = sub.add_parser(name, help=help_text)
        add_arguments(command)
        _add_limit_options(command, LIMIT_OPTIONS.get(name, ()))
    return parser


def _add_limit_options(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    if not names:
        return
    group = parser.add_argument_group("limits", "checked before memory is allocated (docs/guarantees.md)")
    for name in names:
        limit = limits.LIMITS[name]
        group.add_argument(
            limit.option,
            dest=f"limit_{name}",
            metavar="N",
            type=_positive_number(name),
            help=f"{limit.what} (default {limit.default} {limit.unit})",
        )


def _positive_number(name: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return limits.parse(name, text)
        except ChainruleError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _one_line(exc: BaseException) -> str:
    """The message on one line; an OSError as ``path: reason``."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        text = f"{where}{exc.strerror}" + (f" (and {exc.filename2})" if exc.filename2 is not None else "")
    elif isinstance(exc, MemoryError):
        text = (
            "out of memory: the data or the model do not fit this machine; use a smaller model, "
            "fewer rows, or lower limits (docs/guarantees.md)"
        )
    else:
        text = str(exc)
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``chainrule`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    run = {name: fn for name, _, _, fn in COMMANDS}[args.command]
    chosen = {k.removeprefix("limit_"): v for k, v in vars(args).items() if k.startswith("limit_")}
    previous = limits.set_limits(**{k: v for k, v in chosen.items() if v is not None})
    try:
        return run(args)
    except BrokenPipeError:  # output piped into e.g. head, which stopped reading: not an error
        sys.stdout = open(os.devnull, "w")  # NOTE: stays open: Python flushes stdout at exit
        return 0
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"chainrule {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ChainruleError, OSError, MemoryError) as exc:
        if args.debug:
            raise
        print(f"chainrule {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # the last resort: a bug in chainrule, not in the input
        if args.debug:
            raise
        print(
            f"chainrule {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)}. This is a "
            "bug in chainrule, not a mistake in your input: please report it with the command line and "
            f"the traceback that `chainrule --debug {args.command} ...` prints.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        limits.set_limits(**previous)


if __name__ == "__main__":
    sys.exit(main())
