"""``chainrule explain`` and ``chainrule ops``: backprop by hand, and the table of rules.

Part of :mod:`chainrule.cli` (level 9).
"""

from __future__ import annotations

import argparse

from chainrule.cli import saved


def add_explain(ex: argparse.ArgumentParser) -> None:
    """The options of ``chainrule explain``."""
    ex.add_argument("spec", nargs="?", help="JSON spec file (see docs/explain.md), or give --model")
    ex.add_argument(
        "--format",
        choices=["text", "markdown", "json", "png", "html"],
        default="text",
        help="(default: text)",
    )
    ex.add_argument("--output", help="write to this file instead of stdout (default: stdout; png needs it)")
    ex.add_argument(
        "--weight",
        action="append",
        help="a weight to write out as a chain of factors: L:j,k (1-based; repeatable)",
    )
    ex.add_argument(
        "--steps",
        type=int,
        default=0,
        help="also run N gradient-descent steps and show C over them (default: 0)",
    )
    ex.add_argument(
        "--all",
        action="store_true",
        help="print every value of a long loss curve (default: the first, every k-th and the last, 21 lines)",
    )
    saved.add_arguments(ex)


def cmd_explain(args: argparse.Namespace) -> int:
    """Run ``explain`` on a spec file."""
    from chainrule import explain

    spec = args.spec if args.spec is not None and args.model is None else saved.explain_spec(args)
    return int(
        explain.run(
            spec,
            fmt=args.format,
            output=args.output,
            weight=args.weight,
            steps=args.steps,
            all_steps=args.all,
        )
    )


def add_ops(ops: argparse.ArgumentParser) -> None:
    """``chainrule ops`` takes no options."""


def cmd_ops(args: argparse.Namespace) -> int:
    """Print the table of primitives: name and VJP rule."""
    from chainrule import ops

    width = max(len(name) for name in ops.PRIMITIVES)
    for name, formula in ops.table():
        print(f"{name:<{width}}  {formula}")
    return 0
