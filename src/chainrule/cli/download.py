"""``chainrule download NAME``: fetch an opt-in data set (MNIST, Fashion-MNIST) into the cache once.

Part of :mod:`chainrule.cli` (level 9). The files are verified by their published
SHA-256 digests (:data:`chainrule.datasets.SHA256`); afterwards ``chainrule train
--data NAME`` finds them in the cache folder without the network.
"""

from __future__ import annotations

import argparse

from chainrule import datasets

NAME = "download"
HELP = "fetch an opt-in data set (mnist, fashion-mnist) into the cache folder, verified"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``chainrule download``."""
    parser.add_argument(
        "name",
        choices=sorted(datasets.SHA256),
        help="the data set; it goes to <cache>/NAME, where <cache> is $CHAINRULE_CACHE, else "
        "~/.cache/chainrule (where --data NAME looks)",
    )
    parser.add_argument(
        "--mirror",
        action="append",
        metavar="URL",
        help="a base URL to fetch the .gz files from, instead of the built-in mirrors (repeatable; "
        "default: the mirrors in docs/datasets.md)",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds for each connection and read (default: 30)"
    )


def run(args: argparse.Namespace) -> int:
    """Download and verify; print where the files are and the command that uses them."""
    before = datasets.downloaded(args.name)
    folder = datasets.download(args.name, mirrors=args.mirror, timeout=args.timeout)
    state = "already there" if before else "downloaded"
    print(f"{args.name}: the four files are {state} and match their SHA-256 digests, in {folder}")
    print(f"train on it: chainrule train --data {args.name}")
    return 0
