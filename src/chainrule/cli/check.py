"""``chainrule check``: check hand-worked answers against a spec, naming the first mistake.

Part of :mod:`chainrule.cli` (level 9).
"""

from __future__ import annotations

import argparse

from chainrule.cli.common import positive_int

NAME = "check"
HELP = "check a hand-worked answer (explain's JSON layout) and name the first mistake"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``chainrule check``."""
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="SPEC then ANSWER.json files, or exercise folders (each with spec.json and answer.json)",
    )
    parser.add_argument(
        "--format", choices=["text", "markdown", "json"], default="text", help="the report (default: text)"
    )
    parser.add_argument(
        "--digits", type=positive_int, default=3, help="significant digits that must agree (default: 3)"
    )
    parser.add_argument("--output", help="write the report to this file (default: stdout)")


def run(args: argparse.Namespace) -> int:
    """Exit status 0: every answer right; 1: a mistake; 2: a bad file."""
    from chainrule import check

    return check.run(args.paths, fmt=args.format, output=args.output, digits=args.digits)
