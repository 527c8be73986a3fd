"""How many BLAS threads a step uses: from the size of its matrix products and how busy the machine is.

Part of :mod:`chainrule.backend` (level 1).

OpenBLAS splits even a small matrix product over every core, and its idle
threads spin while they wait for the next one. Alone on a machine that costs
little; beside other multi-threaded work (a second training run, a test
suite, a browser) the spinning threads fight the other process for the cores,
and a small model trains many times slower than on one thread (measured in
``docs/benchmarks.md``). So, like PyTorch's grain sizes and scikit-learn's thread
limits:

- a step whose largest matrix product is below :data:`MIN_FLOPS` uses one BLAS
  thread: more cannot pay for their synchronisation;
- a larger step uses every core this process may run on, unless the machine is
  busy: other processes used more than :data:`BUSY` of a core on average during
  the last epoch (Linux's ``/proc/stat``; before the first epoch, and elsewhere,
  the 1-minute load average), in which case it uses one.

The choice is made per epoch and applied with threadpoolctl for that epoch
only: the process's own setting is restored after it. ``Trainer(threads=N)``,
:func:`set_threads` and ``chainrule train --threads N`` override it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from chainrule.errors import ConfigError

MIN_FLOPS = 5e6  # 2 m n k of the largest product below which a second thread gains nothing (measured)
BUSY = 0.5  # cores' worth of other processes' work that makes the machine busy
_state: dict[str, Any] = {"default": None, "controller": None, "owner": None}  # owner: the setting thread
_local = threading.local()  # this thread's stack of limit() blocks
_lock = threading.Lock()


def _active() -> list[int]:
    if not hasattr(_local, "active"):
        _local.active = []
    return _local.active


def cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_threads(n: int | None) -> None:
    """Use ``n`` BLAS threads in every training step from now on (None: choose per step, the default).

    Raises
    ------
    ConfigError
        If ``n`` is not None or a positive integer.
    """
    _state["default"] = check_threads(n)


def check_threads(n: Any) -> int | None:
    """``n`` if it is None or a positive integer; a ConfigError otherwise."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"threads must be a positive integer or None (chosen per step), got {n!r}.")
    return n


class CpuMeter:
    """Cores' worth of CPU time that *other* processes used while this one worked.

    :meth:`begin` and :meth:`end` bracket a piece of work (an epoch); :meth:`others`
    then gives the other processes' use over it: on Linux, the machine's busy time
    from ``/proc/stat`` less this process's own (``os.times``), over the wall time.
    Only time this process spent working counts, so work that ran while it waited
    (another framework's turn in a benchmark) does not. Before any measurement, and
    off Linux, it is the 1-minute load average less one (this process).
    """

    def __init__(self) -> None:
        self._start: tuple[float, float, float] | None = None
        self._busy: float | None = None

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as f:
                fields = [float(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        busy = (sum(fields[:8]) - fields[3] - (fields[4] if len(fields) > 4 else 0)) / hz  # not idle, iowait
        return time.monotonic(), busy, sum(os.times()[:2])

    def begin(self) -> None:
        """Start measuring (a piece of work begins)."""
        self._start = self._sample()

    def end(self) -> None:
        """Stop measuring; :meth:`others` gives what other processes used meanwhile (if long enough)."""
        now, start = self._sample(), self._start
        if now is not None and start is not None and now[0] - start[0] >= 0.05:
            self._busy = max(0.0, ((now[1] - start[1]) - (now[2] - start[2])) / (now[0] - start[0]))

    def others(self) -> float:
        """Average number of cores other processes kept busy during the last measured piece of work."""
        return _load_others() if self._busy is None else self._busy


def _load_others() -> float:
    try:
        return max(0.0, os.getloadavg()[0] - 1.0)
    except (AttributeError, OSError):
        return 0.0


def choose(largest_flops: float, meter: CpuMeter | None = None, n: int | None = None) -> int:
    """BLAS threads for a step whose largest matrix product takes ``largest_flops`` (``2 m n k``).

    ``n`` (or :func:`set_threads`'s default), when given, wins; inside a :func:`limit`
    block the block's choice does (an evaluation inside a training epoch keeps the epoch's).
    """
    if n is None and _active():
        return int(_active()[-1])
    fixed = n if n is not None else _state["default"]
    if fixed is not None:
        return int(fixed)
    if largest_flops < MIN_FLOPS:
        return 1
    busy = (meter.others() if meter is not None else _load_others()) > BUSY
    return 1 if busy else cores()


def _controller() -> Any:
    """threadpoolctl's view of the loaded thread pools, or None where it cannot inspect the platform.

    Looked up again only when modules were imported since (one may load another BLAS, as Numba's
    import brings SciPy's): a lookup costs about a millisecond, too much for every epoch of a small model.
    """
    cached = _state["controller"]
    if cached is False:
        return None
    if cached is not None and cached[0] == len(sys.modules):
        return cached[1]
    try:
        from threadpoolctl import ThreadpoolController

        controller = ThreadpoolController()
    except Exception:  # threadpoolctl cannot inspect this platform: leave the threads alone
        _state["controller"] = False
        return None
    _state["controller"] = (len(sys.modules), controller)
    return controller


@contextlib.contextmanager
def limit(n: int) -> Iterator[None]:
    """Run the block with ``n`` BLAS threads (threadpoolctl); the previous setting comes back after it.

    Inside another block of the same thread (an evaluation within an epoch) the outer block's count
    holds. BLAS has one thread count per process, and threadpoolctl lets only the thread that set
    it restore it: when several Python threads train at once, the first block to begin sets the
    count and restores it at its end; blocks of other threads meanwhile run under that count (and
    under the process's own setting after it ends). No thread's setting outlives its block.
    """
    active = _active()
    nested = bool(active)
    active.append(n)
    try:
        with _lock:
            owner = not nested and _state["owner"] is None
            if owner:
                _state["owner"] = threading.get_ident()
        if not owner:  # an outer block, of this thread or another, has set the process's count
            yield
            return
        try:
            controller = _controller()
            if controller is None:
                yield
            else:
                with controller.limit(limits=n, user_api="blas"):
                    yield
        finally:
            with _lock:
                _state["owner"] = None
    finally:
        active.pop()


def largest_product(model: Any, m: int) -> float:
    """FLOPs ``2 m n[l-1] n[l]`` of the largest matrix product of a model's step on ``m`` rows."""
    dense = model.dense_layers() if hasattr(model, "dense_layers") else []
    return max((2.0 * m * d.in_features * d.out_features for d in dense), default=0.0)


__all__ = [
    "BUSY",
    "MIN_FLOPS",
    "CpuMeter",
    "check_threads",
    "choose",
    "cores",
    "largest_product",
    "limit",
    "set_threads",
]
