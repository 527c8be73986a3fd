"""The communicator of data-parallel training: MPI ranks that step one model together.

Part of :mod:`chainrule.distributed` (level 8).

:class:`Communicator` wraps an mpi4py communicator and is what
``Trainer(distributed=...)`` calls (the protocol
:class:`chainrule.train.Distributed`):

- ``attach``: the trainer's weights and random generators come from rank 0, so all
  replicas start equal; each rank uses one BLAS thread unless told otherwise (the
  ranks of a machine share its cores); a fused SGD update is refused, because it
  would move the weights inside the backward pass, before the gradients are averaged.
- ``part`` and ``step``: a rank computes its part of every global batch, inside
  :func:`chainrule.jit.batch_rows`, so its dropout masks are its rows of the mask one
  process would draw; a rank whose part is empty runs the forward pass on no rows,
  so its generators move as the others'.
- ``reduce_gradients``: ``dC/dW = sum_r (m_r / m) dC_r/dW`` with ``m = sum_r m_r``, the
  global batch (the notes' ``1/m`` is the global ``m``; with per-example weights, ``m_r``
  is the sum of the part's weights), in one ``Allreduce`` per contiguous bucket of a flat
  buffer; a parameter no rank has a gradient for keeps none.
- ``sum``, ``any``, ``evaluate``, ``predict``: reductions over ranks.

Faults. Every collective is watched: a rank that waits longer than ``timeout``
seconds in one prints one line naming itself and what it waited for, and ends the
job with ``MPI_Abort``. A rank that raises (a bad shard, a non-finite loss) prints one
line ``rank r of N: <cause>`` and aborts the job at once (the communicator installs
this as ``sys.excepthook``, as ``python -m mpi4py`` does; with ``with comm:`` it
happens on leaving the block). A killed rank ends the job through ``mpiexec``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Literal

import numpy as np

from chainrule import backend
from chainrule.autograd import no_grad
from chainrule.distributed import shards
from chainrule.errors import ChainruleError, ConfigError, DataError, DistributedError
from chainrule.jit import batch_rows
from chainrule.losses import get_loss
from chainrule.metrics import regression_scores
from chainrule.tensor import Tensor
from chainrule.train import Trainer, _default_loss, _is_classification
from chainrule.train import evaluate as evaluate_here
from chainrule.train import predict as predict_here

OTHERS_FIRST = 1.0  # seconds a failing rank other than 0 waits before it aborts: one line when all fail
ABORT_AFTER = 0.2  # seconds between a rank's line and MPI_Abort


def mpi() -> Any:
    """mpi4py's ``MPI`` module (importing it starts MPI).

    Raises
    ------
    DistributedError
        If mpi4py or an MPI library cannot be loaded, saying what to install.
    """
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as exc:
        raise DistributedError(
            f"chainrule.distributed needs mpi4py and an MPI library ({exc}); install them with "
            "pip install 'chainrule[mpi]' (mpi4py and Open MPI), or build mpi4py against your "
            "cluster's MPI."
        ) from exc
    return MPI


class Communicator:
    """The ranks of one data-parallel job (an mpi4py communicator), for ``Trainer(distributed=...)``.

    Parameters
    ----------
    comm : mpi4py communicator, optional
        Default ``MPI.COMM_WORLD``: every rank ``mpiexec`` started.
    timeout : float
        Seconds a rank may wait in one collective before it ends the job (a rank
        that hangs or went silent); the wait is the others' time to reach it.
    threads : int
        BLAS threads per rank when the trainer was given none (ranks share the cores).
    bucket_mb : float
        Largest bucket of the gradients' allreduce, in MiB (PyTorch DDP's default, 25).
    excepthook : bool
        Install the hook that turns an uncaught exception on any rank into one line and
        the end of the job (without it the other ranks would wait ``timeout`` seconds).

    Raises
    ------
    DistributedError
        Without mpi4py or an MPI library.
    ConfigError
        A timeout, thread count or bucket size that is not positive.
    """

    def __init__(
        self,
        comm: Any = None,
        timeout: float = 300.0,
        threads: int = 1,
        bucket_mb: float = 25.0,
        excepthook: bool = True,
    ) -> None:
        for name, value in (("timeout", timeout), ("threads", threads), ("bucket_mb", bucket_mb)):
            kinds = int if name == "threads" else int | float
            if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
                raise ConfigError(f"Communicator: {name} must be a positive number, got {value!r}.")
        self.MPI = mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.comm.Set_errhandler(self.MPI.ERRORS_RETURN)  # an MPI error is a Python exception here
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout, self.threads = float(timeout), int(threads)
        self.bucket_bytes = int(bucket_mb * 2**20)
        # what part() cut for the next step: (offset, rows, size) of the global batch (size: rows or
        # the sum of its weights); and the last step's (size of this rank's part, global size or None)
        self._next: tuple[int, int, float] | None = None
        self._last: tuple[float, float | None] = (0.0, None)
        self._value = 0.0  # the loss of this rank's part in the last step
        self.batch_loss = 0.0  # the loss of the last global batch (the divergence guard reads it)
        self._watch: tuple[float, str] | None = None  # deadline and name of the collective waited in
        self._watchdog = threading.Thread(target=self._guard, name="chainrule-mpi-watchdog", daemon=True)
        self._watchdog.start()
        if excepthook and self.size > 1:
            sys.excepthook = self._excepthook

    def __repr__(self) -> str:
        return (
            f"Communicator(rank={self.rank}, size={self.size}, timeout={self.timeout:g}, "
            f"threads={self.threads}, bucket_mb={self.bucket_bytes / 2**20:g})"
        )

    # ------------------------------------------------------------- faults
    def __enter__(self) -> Communicator:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is not None and not (isinstance(exc, SystemExit) and exc.code in (0, None)):
            self.fail(describe(exc))

    def fail(self, message: str, prefix: str = "", code: int = 2) -> None:
        """Print ``<prefix>rank r of N: message`` on one line and end the whole job (``MPI_Abort``).

        A rank other than 0 waits :data:`OTHERS_FIRST` seconds first: when every rank
        fails alike, rank 0's line is the one printed.
        """
        if self.rank != 0 and self.size > 1:
            time.sleep(OTHERS_FIRST)
        print(f"{prefix}rank {self.rank} of {self.size}: {message}", file=sys.stderr, flush=True)
        time.sleep(ABORT_AFTER)  # mpiexec forwards the line before its own notice of the abort
        self.comm.Abort(code)

    def _excepthook(self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        self.fail(describe(exc))

    def _guard(self) -> None:
        """The watchdog thread: end the job when a collective has waited past its deadline."""
        period = min(1.0, self.timeout / 10)
        while True:
            time.sleep(period)
            watch = self._watch
            if watch is not None and time.monotonic() > watch[0]:
                print(
                    f"rank {self.rank} of {self.size}: no answer from the other ranks for {self.timeout:g} s "
                    f"in {watch[1]}: a rank failed, hangs or was killed",
                    file=sys.stderr,
                    flush=True,
                )
                if self.MPI.Query_thread() == self.MPI.THREAD_MULTIPLE:  # mpi4py's default
                    self.comm.Abort(3)
                os._exit(3)  # MPI may not be called from this thread: mpiexec ends a job a rank left

    @contextlib.contextmanager
    def watched(self, what: str) -> Iterator[None]:
        """Run a collective under the watchdog: past ``timeout`` seconds the job ends."""
        self._watch = (time.monotonic() + self.timeout, what)
        try:
            yield
        finally:
            self._watch = None

    # -------------------------------------------------------- collectives
    def sum(self, *values: float) -> tuple[float, ...]:
        """Each value summed over ranks (float64)."""
        buf = np.array(values, dtype=np.float64)
        with self.watched("a sum of metrics"):
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return tuple(float(v) for v in buf)

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any (all ranks stop training together)."""
        return self.sum(float(bool(flag)))[0] > 0

    def broadcast(self, arrays: Sequence[Any], what: str) -> None:
        """Overwrite each array (NumPy or CuPy) with rank 0's, in place; shapes must agree."""
        host = [backend.to_numpy(a) for a in arrays]
        self.agree(sum(a.size for a in host), f"the number of values in {what}")
        flat = np.concatenate([a.reshape(-1) for a in host]) if host else np.empty(0)
        with self.watched(f"the broadcast of {what}"):
            self.comm.Bcast(flat, root=0)
        start = 0
        for a in arrays:
            a[...] = backend.to_device(flat[start : start + a.size].reshape(a.shape).astype(a.dtype))
            start += a.size

    def broadcast_bytes(self, data: bytes | None, what: str) -> bytes:
        """Rank 0's ``data`` on every rank (the others pass None)."""
        n = np.array([len(data) if self.rank == 0 and data is not None else 0], dtype=np.int64)
        with self.watched(f"the broadcast of {what}"):
            self.comm.Bcast(n, root=0)
            buf = np.empty(int(n[0]), dtype=np.uint8)
            if self.rank == 0 and data:
                buf[:] = np.frombuffer(data, dtype=np.uint8)
            self.comm.Bcast(buf, root=0)
        return buf.tobytes()

    def broadcast_json(self, value: Any, what: str) -> Any:
        """Rank 0's JSON value (generator states), on every rank."""
        data = json.dumps(value).encode() if self.rank == 0 else None
        return json.loads(self.broadcast_bytes(data, what))

    def agree(self, value: int, what: str) -> None:
        """Check every rank has the same ``value``; rank 0 reports a difference, the others wait for its end.

        Raises
        ------
        DistributedError
            On rank 0, naming ``what`` and the smallest and largest values.
        """
        buf = np.array([value, -value], dtype=np.int64)
        with self.watched(f"the check of {what}"):
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.MIN)
        low, high = int(buf[0]), -int(buf[1])
        if low != high:
            if self.rank == 0:
                raise DistributedError(
                    f"the ranks disagree on {what} (from {low} to {high}); every rank must build the same "
                    "model and trainer"
                )
            with self.watched(f"rank 0's report on {what}"):
                time.sleep(self.timeout * 2)

    # -------------------------------------------------------- the trainer
    def attach(self, trainer: Trainer) -> None:
        """Join ``trainer`` to the job: weights and generator states from rank 0, one BLAS thread a rank.

        Raises
        ------
        ConfigError
            If the trainer fuses the SGD update into the backward pass (``fused_update``).
        """
        if trainer.fused_update:
            raise ConfigError(
                "Trainer: fused_update moves the weights inside the backward pass, before the gradients "
                "could be averaged over ranks; pass fused_update=False with distributed."
            )
        if trainer.threads is None:
            trainer.threads = self.threads
        trainer.distributed = self
        self.broadcast([p.data for p in trainer.model.parameters()], "the weights")
        states = self.broadcast_json(
            {"rng": trainer.rng.bit_generator.state, "model_rng": trainer.model.rng_state()},
            "the random generators",
        )
        trainer.rng.bit_generator.state = states["rng"]
        trainer.model.set_rng_state(states["model_rng"])

    def inputs(
        self, trainer: Trainer, x: Any, y: Any, val: Any, split: float, weight: Any = None
    ) -> tuple[Any, Any, Any, Any]:
        """:func:`chainrule.distributed.shards.inputs`: the data of ``fit``, this rank's rows checked."""
        return shards.inputs(trainer, x, y, val, split, weight)

    def part(self, rows: Any, w: Any = None) -> Any:
        """This rank's part of the global batch ``rows`` (a slice or row numbers), for its next step.

        None when every weight of the batch is 0: no rank steps on it, as one process does not.
        """
        n = rows.stop - rows.start if isinstance(rows, slice) else int(rows.shape[0])
        size = float(n) if w is None else float(w[rows].sum())
        if size == 0:
            return None
        lo, hi = shards.part(n, self.size, self.rank)
        self._next = (lo, n, size)
        return slice(rows.start + lo, rows.start + hi) if isinstance(rows, slice) else rows[lo:hi]

    def step(self, compiler: Any, batch: dict[str, Any], model: Any) -> float:
        """Forward, loss and backward on this rank's part of the global batch; returns its loss."""
        cut, self._next = self._next, None
        w = batch.get("w")
        size = float(batch["x"].shape[0]) if w is None else float(w.sum())
        self._last = (size, None if cut is None else cut[2])
        self._value = 0.0
        with batch_rows(cut[0], cut[1]) if cut is not None else contextlib.nullcontext():
            if size:
                self._value = float(compiler(batch, model.training))
            else:
                with no_grad():  # no rows (or weights) here: draw as the others do, give no gradient
                    model(Tensor(batch["x"]))
        return self._value

    def reduce_gradients(self, params: Sequence[Tensor], reduction: str) -> None:
        """Every ``grad`` becomes the gradient of the global batch's loss, the same on every rank.

        The batch's loss (``batch_loss``) travels in the same buffer.
        """
        if self.size == 1:
            self.batch_loss = self._value
            return
        wanted = [p for p in params if p.requires_grad]
        local, total = self._last
        if total is None:  # a step outside fit: the global size is the sum of the parts
            total = self.sum(local)[0]
        scale = local / total if reduction == "mean" and total else 1.0
        dtype = np.result_type(*(p.data.dtype for p in wanted))
        ends = np.cumsum([p.data.size for p in wanted])
        flat = np.empty(int(ends[-1]) + len(wanted) + 1, dtype=dtype)  # gradients, who has one, the loss
        flat[-1] = self._value * scale
        for i, (p, end) in enumerate(zip(wanted, ends, strict=True)):
            part = flat[end - p.data.size : end].reshape(p.data.shape, order=_order(p.data))
            if p.grad is None:
                part[...] = 0
            else:
                np.multiply(backend.to_numpy(p.grad), scale, out=part)
            flat[ends[-1] + i] = p.grad is not None
        self.allreduce(flat, "the allreduce of the gradients")
        self.batch_loss = float(flat[-1])
        for i, (p, end) in enumerate(zip(wanted, ends, strict=True)):
            has = flat[ends[-1] + i] > 0
            part = flat[end - p.data.size : end].reshape(p.data.shape, order=_order(p.data))
            p.grad = backend.to_device(part) if has else None  # laid out as the parameter, for its update

    def allreduce(self, flat: np.ndarray, what: str) -> None:
        """Sum ``flat`` over ranks in place, one ``Allreduce`` per contiguous bucket of ``bucket_mb``."""
        step = max(1, self.bucket_bytes // flat.itemsize)
        with self.watched(what):
            for start in range(0, flat.size, step):
                self.comm.Allreduce(self.MPI.IN_PLACE, flat[start : start + step], op=self.MPI.SUM)

    # --------------------------------------------------------- evaluation
    def evaluate(
        self, model: Any, x: Any, y: Any, loss: Any = None, batch_size: int = 1024
    ) -> dict[str, float]:
        """:func:`chainrule.train.evaluate` over every rank's block of ``(x, y)``, the same on every rank.

        Loss and accuracy are reduced from each block's; a regression's MAE, RMSE and R^2
        come from the predictions gathered (:meth:`predict`).
        """
        loss = get_loss(_default_loss(model) if loss is None else loss)
        y = np.asarray(backend.to_numpy(y))
        lo, hi = shards.part(x.shape[0], self.size, self.rank)
        where = shards.first_non_finite(x, lo, hi)
        if where is not None:
            raise DataError(f"evaluate: inputs contain NaN or infinite values (first at index {where}).")
        local = evaluate_here(model, x[lo:hi], y[lo:hi], loss, batch_size) if hi > lo else {}
        n = hi - lo
        weight = n if loss.reduction == "mean" else 1
        total, correct, seen = self.sum(local.get("loss", 0.0) * weight, local.get("accuracy", 0.0) * n, n)
        scores = {"loss": total / seen if loss.reduction == "mean" else total}
        if _is_classification(y, loss):
            scores["accuracy"] = correct / seen
        else:
            scores.update(regression_scores(self.predict(model, x, batch_size), y))
        return scores

    def predict(self, model: Any, x: Any, batch_size: int = 1024) -> np.ndarray:
        """:func:`chainrule.train.predict` of all rows of ``x``: each rank computes its block, all get all."""
        m = x.shape[0]
        lo, hi = shards.part(m, self.size, self.rank)
        k = model.dense_layers()[-1].out_features
        dtype = model.parameters()[0].dtype
        out = predict_here(model, x[lo:hi], batch_size) if hi > lo else np.empty((0, k), dtype)
        out = np.ascontiguousarray(out, dtype=dtype)
        counts = [(hi - lo) * k for lo, hi in (shards.part(m, self.size, r) for r in range(self.size))]
        full = np.empty((m, k), dtype=dtype)
        with self.watched("the gathering of predictions"):
            self.comm.Allgatherv(out, [full, counts])
        return full


def _order(a: Any) -> Literal["C", "F"]:
    """``"F"`` for a column-major array (a weight matrix, see ``backend.rows``), else ``"C"``."""
    flags = getattr(a, "flags", None)
    return "F" if flags is not None and flags.f_contiguous and not flags.c_contiguous else "C"


def describe(exc: BaseException) -> str:
    """One line for an exception: chainrule's own message, or the type and message of anything else."""
    if isinstance(exc, ChainruleError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {where[0].filename}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}".replace("\n", " ")


__all__ = ["Communicator", "describe", "mpi"]
