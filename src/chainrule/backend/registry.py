"""The kernel registry: one reference implementation per kernel, optional fast overrides.

Part of :mod:`chainrule.backend` (level 1).

A *kernel* is a piece of array work that a fused op needs: a dense layer's bias
and activation after its matrix product, the rows of the label cross-entropy, an
in-place update. The module that needs it defines its *reference* implementation
with :func:`kernel`: array operations on the arrays' own namespace, so it runs on
NumPy and CuPy alike, written as the math reads. Calling the returned
:class:`Kernel` runs the kernel; the caller never chooses an implementation.

An *override* is a faster implementation of one kernel for the inputs it can
take (Numba loops, BLAS through ctypes, later CUDA). It registers with
:func:`override` and one predicate, ``applies(*args, **kwargs) -> bool``; a kernel
runs the first override that applies, else its reference. An override may still
decline at run time by returning :data:`NotImplemented` (a loop that meets a
label out of range): the reference then runs, and raises the reference's error.
Overrides must compute what the reference computes, up to rounding; one test
harness (``tests/test_kernels.py``) checks every override against its reference
on awkward inputs.

The overrides live in the modules of :data:`PROVIDERS`, imported on the first
kernel call, so that importing the math core imports no Numba and no ctypes.
``CHAINRULE_OVERRIDES=0`` in the environment, or :func:`use_overrides`, runs
every kernel on its reference.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from chainrule.errors import ConfigError

PROVIDERS = ("chainrule.backend.loops", "chainrule.backend.blas", "chainrule.backend.rows")
PREFERENCE = ("numba", "blas", "numpy")  # where two overrides apply, the first provider's runs

_state: dict[str, Any] = {"loaded": False, "on": os.environ.get("CHAINRULE_OVERRIDES", "1") != "0"}


@dataclass(frozen=True)
class Override:
    """A fast implementation ``fn`` of kernel ``name`` for the arguments where ``applies`` is true."""

    name: str
    fn: Callable[..., Any]
    applies: Callable[..., bool]
    provider: str

    def __repr__(self) -> str:
        return f"Override({self.name!r}, {self.fn.__qualname__}, provider={self.provider!r})"


OVERRIDES: dict[str, list[Override]] = {}


class Kernel:
    """A named kernel: ``kernel(*args, **kwargs)`` runs the first override that applies, else the reference.

    Attributes
    ----------
    name : str
        The kernel's name in :data:`KERNELS`.
    reference : callable
        The array-operation implementation, the definition of the kernel.
    overrides : list of Override
        The registered fast paths, in the order they are tried.
    """

    def __init__(self, reference: Callable[..., Any]) -> None:
        self.name = self.__name__ = reference.__name__
        self.reference = reference
        self.overrides = OVERRIDES.setdefault(self.name, [])
        self.__doc__ = reference.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _state["on"]:  # NOTE: hot path: a few predicates per call
            if not _state["loaded"]:
                load_overrides()
            for ov in self.overrides:  # usually one
                if ov.applies(*args, **kwargs):
                    out = ov.fn(*args, **kwargs)
                    if out is not NotImplemented:
                        return out
                    break
        return self.reference(*args, **kwargs)

    def choose(self, *args: Any, **kwargs: Any) -> Override | None:
        """The override that would run for these arguments, or None for the reference."""
        if not _state["on"]:
            return None
        load_overrides()
        return next((ov for ov in self.overrides if ov.applies(*args, **kwargs)), None)

    def __repr__(self) -> str:
        return f"Kernel({self.name!r}, overrides={[ov.provider for ov in self.overrides]})"


KERNELS: dict[str, Kernel] = {}


def kernel(reference: Callable[..., Any]) -> Kernel:
    """Define a kernel by its reference implementation (a decorator); registered under its name.

    Raises
    ------
    ConfigError
        If a kernel of that name exists already.
    """
    if reference.__name__ in KERNELS:
        raise ConfigError(f"kernel {reference.__name__!r} defined twice; pick another name.")
    k = KERNELS[reference.__name__] = Kernel(reference)
    return k


def override(
    name: str, applies: Callable[..., bool], provider: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as a fast path of kernel ``name`` where ``applies(...)`` holds."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        found = OVERRIDES.setdefault(name, [])
        found.append(Override(name, fn, applies, provider))
        rank = {p: i for i, p in enumerate(PREFERENCE)}
        found.sort(key=lambda ov: rank.get(ov.provider, len(rank)))  # stable: one provider keeps its order
        return fn

    return register


def load_overrides() -> None:
    """Import the override providers (:data:`PROVIDERS`) once; a provider that cannot load is skipped."""
    if _state["loaded"]:
        return
    _state["loaded"] = True
    for module in PROVIDERS:
        try:
            importlib.import_module(module)  # each registers what its platform supports
        except Exception as e:  # a broken optional library must not break the math: references run
            _state.setdefault("failed", {})[module] = f"{type(e).__name__}: {e}"


def overrides_enabled() -> bool:
    """True unless overrides are switched off (``CHAINRULE_OVERRIDES=0`` or :func:`use_overrides`)."""
    return bool(_state["on"])


@contextlib.contextmanager
def use_overrides(enabled: bool) -> Iterator[None]:
    """Context manager: with ``False``, every kernel runs its reference inside the block.

    The switch is process-wide (it is meant for tests and for comparing results): kernels
    called from other threads meanwhile run their references too.
    """
    previous = _state["on"]
    _state["on"] = bool(enabled)
    try:
        yield
    finally:
        _state["on"] = previous


__all__ = [
    "KERNELS",
    "OVERRIDES",
    "PREFERENCE",
    "PROVIDERS",
    "Kernel",
    "Override",
    "kernel",
    "load_overrides",
    "override",
    "overrides_enabled",
    "use_overrides",
]
