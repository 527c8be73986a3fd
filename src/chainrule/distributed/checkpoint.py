"""Checkpoints of a data-parallel run: one writer, and a resume on any number of ranks.

Part of :mod:`chainrule.distributed` (level 8).

A checkpoint of a data-parallel run holds nothing per rank: every replica has the
same weights, optimizer state and generator states (the dropout generators move
past the whole global batch on every rank), so the file written by rank 0
(:class:`chainrule.serialize.Checkpoint` writes on rank 0 only, atomically) resumes
on any number of ranks, or on one process, to the numbers of an uninterrupted run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from chainrule import serialize
from chainrule.distributed.comm import Communicator
from chainrule.train import Trainer


def load_checkpoint(path: str | os.PathLike[str], comm: Communicator, schedule: Any = None) -> Trainer:
    """Rank 0 reads and verifies the checkpoint and sends it; every rank rebuilds the trainer and joins it.

    The other ranks need not see the file (hosts without a shared file system).
    ``schedule`` is the run's schedule factory, as for :func:`chainrule.serialize.load_checkpoint`.

    Raises
    ------
    SerializationError
        On rank 0, if the file is missing, truncated, altered or not a checkpoint.
    """
    path = Path(path)
    if comm.rank == 0:
        trainer = serialize.load_checkpoint(path, schedule)  # verified here: errors name the real path
        comm.broadcast_bytes(path.read_bytes(), f"the checkpoint {path.name}")
    else:
        data = comm.broadcast_bytes(None, f"the checkpoint {path.name}")
        with tempfile.TemporaryDirectory(prefix="chainrule-checkpoint-") as folder:
            copy = Path(folder) / path.name
            copy.write_bytes(data)
            trainer = serialize.load_checkpoint(copy, schedule)
    comm.attach(trainer)
    return trainer


__all__ = ["load_checkpoint"]
