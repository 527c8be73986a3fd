"""An opt-in allocator setting: let glibc's ``malloc`` keep freed memory for the next training step.

Part of :mod:`chainrule.backend` (level 1). Nothing in the library calls
:func:`keep_freed_memory` on its own: it changes the whole process's allocator, so
it is the application's choice. The ``chainrule`` command line and the benchmarks
make it; a Python user who wants it calls it once.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")
_state: dict[str, bool] = {}


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Let glibc's ``malloc`` reuse freed memory for the next step's arrays; True if it took.

    A training step allocates its activations and gradients afresh and frees them
    at its end. By default glibc serves arrays over 128 KiB with ``mmap`` and hands
    freed memory at the top of the heap back to the OS, so every step page-faults
    its megabytes in again (in a VM a fault costs microseconds; what that costs a
    step is measured in ``docs/benchmarks.md``). This sets ``M_MMAP_THRESHOLD``
    (arrays below it come from the heap) and ``M_TRIM_THRESHOLD`` (free memory kept
    before returning any), so that steady state allocates nothing new from the OS.
    The process keeps up to ``trim_threshold`` bytes of freed memory for reuse
    instead of returning it.

    It is process-wide: the library never calls it; ``chainrule train`` and the
    benchmarks do. It does nothing (and returns False) off Linux/glibc, when
    ``CHAINRULE_KEEP_FREED_MEMORY=0`` is set, or when the user already tuned malloc
    (``MALLOC_*_`` variables, ``glibc.malloc`` tunables).
    """
    if "malloc" in _state:
        return _state["malloc"]
    user_tuned = any(v in os.environ for v in _MALLOC_ENV) or "glibc.malloc" in os.environ.get(
        "GLIBC_TUNABLES", ""
    )
    if os.environ.get("CHAINRULE_KEEP_FREED_MEMORY", "1") == "0" or user_tuned:
        return False
    ok = False
    if sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL(None).mallopt  # the process's C library; musl's is a no-op returning 0
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            ok = (
                mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
                and mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1
            )
        except (OSError, AttributeError):
            ok = False
    _state["malloc"] = ok
    return ok


__all__ = ["keep_freed_memory"]
