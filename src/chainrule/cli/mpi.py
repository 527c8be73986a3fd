"""``chainrule train --distributed``: the run on every rank ``mpiexec`` started, and its error boundary.

Part of :mod:`chainrule.cli` (level 9). Every rank loads the data and builds the
same model; each trains on its rows of every global batch
(:mod:`chainrule.distributed`); only rank 0 prints, and writes the model,
``metrics.json`` and the plot. An error on any rank prints one line,
``chainrule train: error: rank r of N: <cause>``, and ends the job (status 2).
"""

from __future__ import annotations

import argparse
import traceback
import warnings
from collections.abc import Callable
from typing import Any

from chainrule.cli.common import positive_int
from chainrule.errors import ChainruleWarning


def add_arguments(train: argparse.ArgumentParser) -> None:
    """``--distributed`` and ``--mpi-timeout``."""
    train.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training over the ranks mpiexec started, e.g. `mpiexec -n 4 chainrule train "
        "--distributed`: the numbers of one process, --batch-size is the global batch; needs the mpi "
        "extra (default: off)",
    )
    train.add_argument(
        "--mpi-timeout",
        type=positive_int,
        default=300,
        metavar="SECONDS",
        help="with --distributed: end the job when a rank waits this long for the others (default: 300)",
    )


def run(args: argparse.Namespace, train: Callable[[argparse.Namespace, Any], int]) -> int:
    """``train(args, comm)`` on this rank; any error ends the whole job with one line."""
    from chainrule.distributed import Communicator, describe

    comm = Communicator(timeout=args.mpi_timeout)
    if comm.rank != 0:  # only rank 0 prints: the others' warnings are its own (the same model, the same step)
        args.quiet = True
        warnings.filterwarnings("ignore", category=ChainruleWarning)
    try:
        return train(args, comm)
    except BaseException as exc:
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            raise
        if args.debug:
            traceback.print_exc()
        comm.fail(describe(exc), prefix="chainrule train: error: ")
        raise  # not reached: fail() ends the job


__all__ = ["add_arguments", "run"]
