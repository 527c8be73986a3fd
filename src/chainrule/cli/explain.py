"""``chainrule explain`` and ``chainrule ops``: backprop by hand, and the table of rules.

Part of :mod:`chainrule.cli` (level 8).
"""

from __future__ import annotations

import argparse


def add_explain(ex: argparse.ArgumentParser) -> None:
    """The options of ``chainrule explain``."""
    ex.add_argument("spec", help="JSON spec file (see docs/explain.md)")
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


def cmd_explain(args: argparse.Namespace) -> int:
    """Run ``explain`` on a spec file."""
    from chainrule import explain

    return int(
        explain.run(
            args.spec,
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
