"""One exception hierarchy for chainrule (level 0: imports nothing of ours).

Every error chainrule raises derives from :class:`ChainruleError`, and each
subclass also derives from the built-in exception a Python user would reach
for (``ValueError`` or ``RuntimeError``), so ``except ValueError`` keeps
working. A message says who (the op or layer), what was expected, what came,
and, where it helps, how to fix it.
"""

from __future__ import annotations


class ChainruleError(Exception):
    """Base class of every error raised by chainrule."""


class ShapeError(ChainruleError, ValueError):
    """An array had a shape that the op, layer or loss cannot take."""


class DTypeError(ChainruleError, TypeError):
    """An array had a dtype that the op cannot take (e.g. integers into ``exp``)."""


class ConfigError(ChainruleError, ValueError):
    """A bad argument or configuration: an unknown name, a value out of range."""


class GradientError(ChainruleError, RuntimeError):
    """Backward could not run, or a gradient became non-finite."""


class DataError(ChainruleError, ValueError):
    """A data file or array is malformed: wrong magic, truncated, NaN, bad labels."""


class BackendError(ChainruleError, RuntimeError):
    """The requested array backend (e.g. CuPy on a GPU) is not available."""


class SerializationError(ChainruleError, ValueError):
    """A saved model file is truncated, altered or not a chainrule file."""


class DistributedError(ChainruleError, RuntimeError):
    """The ranks of a data-parallel job cannot go on together (no MPI, a rank gone silent, disagreement)."""


class ChainruleWarning(UserWarning):
    """Base class of every warning chainrule gives."""


class CompileWarning(ChainruleWarning):
    """A training step could not be compiled and runs on the eager engine (the numbers are the same)."""


class LimitError(ChainruleError, ValueError):
    """A size from the input (parameters, classes, bytes, steps) is over a limit of :mod:`chainrule.limits`.

    Raised before anything of that size is allocated; the message names the limit
    and the option that raises it.
    """


__all__ = [
    "BackendError",
    "ChainruleError",
    "ChainruleWarning",
    "CompileWarning",
    "ConfigError",
    "DTypeError",
    "DataError",
    "DistributedError",
    "GradientError",
    "LimitError",
    "SerializationError",
    "ShapeError",
]
