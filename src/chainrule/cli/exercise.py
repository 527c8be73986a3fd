"""``chainrule exercise``: write a fresh backprop exercise per seed (spec, answer template, solution).

Part of :mod:`chainrule.cli` (level 9).
"""

from __future__ import annotations

import argparse

from chainrule.cli.common import int_list, positive_int

NAME = "exercise"
HELP = "write a backprop exercise per seed: spec, answer template and worked solution"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``chainrule exercise``."""
    parser.add_argument(
        "--seed", type=int, required=True, help="the exercise's number (the same seed, the same one)"
    )
    parser.add_argument(
        "--count", type=positive_int, default=1, help="write COUNT exercises: seeds N, N+1, ... (default: 1)"
    )
    parser.add_argument(
        "--layers", type=int_list, default=[2, 2, 2], help="sizes n[0],...,n[L] (default: 2,2,2)"
    )
    parser.add_argument("--activation", default="sigmoid", help="hidden activation (default: sigmoid)")
    parser.add_argument(
        "--output-activation",
        help="output activation (default: softmax for cross_entropy, sigmoid for binary_cross_entropy, "
        "identity for a loss on logits, else the hidden one if sigmoid, tanh or identity, else identity)",
    )
    parser.add_argument("--loss", default="half_sse", help="loss (default: half_sse)")
    parser.add_argument("--batch", type=positive_int, default=1, help="examples m (default: 1)")
    parser.add_argument("--learning-rate", type=float, default=0.5, help="alpha (default: 0.5)")
    parser.add_argument(
        "--out", default="exercises", help="folder for the seed-N/ subfolders (default: exercises)"
    )


def run(args: argparse.Namespace) -> int:
    """Write the exercises and print one line per folder."""
    from chainrule import exercise

    folders = exercise.write(
        args.out,
        args.seed,
        args.count,
        layers=args.layers,
        activation=args.activation,
        loss=args.loss,
        batch=args.batch,
        output=args.output_activation,
        learning_rate=args.learning_rate,
    )
    for folder in folders:
        print(f"{folder}/: spec.json, answer.json (to fill in), solution.md, solution.json")
    return 0
