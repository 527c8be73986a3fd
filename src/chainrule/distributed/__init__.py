"""Data-parallel training over MPI: N ranks give the weights of one process (level 8).

Run with ``mpiexec -n 4 python train.py`` (or ``mpiexec -n 4 chainrule train
--distributed``); every rank runs the same script::

    import chainrule as cr
    from chainrule.distributed import Communicator

    comm = Communicator()                       # MPI.COMM_WORLD, through mpi4py
    model = cr.mlp([784, 256, 128, 10], dropout=0.2, seed=0)
    trainer = cr.Trainer(model, "cross_entropy", "adam", 1e-3, batch_size=128, distributed=comm)
    trainer.fit(x, y, epochs=3)                  # only rank 0 shows the progress bar
    if comm.rank == 0:
        cr.save("model.safetensors", model)

What it does, and why the numbers are one process's:

- every rank sees the same data (arrays, or the same memory-mapped file) and the
  same seeded order of rows each epoch; a global batch of ``batch_size`` rows is
  cut into one contiguous part per rank (:mod:`~chainrule.distributed.shards`), and a
  rank reads only its rows, so a memory map is never read whole;
- each rank's dropout masks are its rows of the mask one process draws for the
  global batch (:func:`chainrule.jit.batch_rows`), so they agree too;
- the gradients are averaged over the global batch with ``Allreduce`` (the notes'
  ``1/m`` is the global ``m``, uneven parts included), then every rank takes the
  same optimizer step (:mod:`~chainrule.distributed.comm`);
- metrics are reduced over ranks; checkpoints hold no per-rank state and resume on
  any number of ranks (:mod:`~chainrule.distributed.checkpoint`);
- a rank that raises or hangs ends the job with one line naming it.

``docs/distributed.md`` has the commands for one machine and for several hosts,
the measurements, the cost model (:mod:`~chainrule.distributed.cost`) and the GPU plan.
"""

from chainrule.distributed.checkpoint import load_checkpoint
from chainrule.distributed.comm import Communicator, describe, mpi
from chainrule.distributed.cost import Projection, project, ring_allreduce
from chainrule.distributed.shards import Rows, part

__all__ = [
    "Communicator",
    "Projection",
    "Rows",
    "describe",
    "load_checkpoint",
    "mpi",
    "part",
    "project",
    "ring_allreduce",
]
