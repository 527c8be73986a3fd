"""Weight initializers, by name (level 4).

Each initializer draws an array of shape ``(n[l], n[l-1])`` (``fan_out, fan_in``)
from a seeded :class:`numpy.random.Generator`, so the same seed gives the same
weights bit for bit. Draws happen on the host in float64 and are cast to the
requested dtype, so NumPy and CuPy models start from identical weights.

Math (``fan_in = n[l-1]``, ``fan_out = n[l]``)
----------------------------------------------
- ``glorot_uniform``: ``U(-r, r)``, ``r = sqrt(6 / (fan_in + fan_out))``
- ``glorot_normal``: ``N(0, s^2)``, ``s = sqrt(2 / (fan_in + fan_out))``
- ``he_uniform``: ``U(-r, r)``, ``r = sqrt(6 / fan_in)``
- ``he_normal``: ``N(0, s^2)``, ``s = sqrt(2 / fan_in)``
- ``lecun_normal``: ``N(0, s^2)``, ``s = sqrt(1 / fan_in)``
- ``zeros``: all zeros (biases)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from chainrule.errors import ConfigError

Initializer = Callable[[tuple[int, ...], np.random.Generator], np.ndarray]


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 1:
        return shape[0], shape[0]
    return shape[1], shape[0]


def glorot_uniform(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Glorot/Xavier uniform: ``U(-r, r)``, ``r = sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = _fans(shape)
    r = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-r, r, size=shape)


def glorot_normal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Glorot/Xavier normal: ``N(0, 2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _fans(shape)
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def he_uniform(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """He/Kaiming uniform: ``U(-r, r)``, ``r = sqrt(6 / fan_in)`` (for ReLU)."""
    r = math.sqrt(6.0 / _fans(shape)[0])
    return rng.uniform(-r, r, size=shape)


def he_normal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """He/Kaiming normal: ``N(0, 2 / fan_in)`` (for ReLU)."""
    return rng.normal(0.0, math.sqrt(2.0 / _fans(shape)[0]), size=shape)


def lecun_normal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """LeCun normal: ``N(0, 1 / fan_in)``."""
    return rng.normal(0.0, math.sqrt(1.0 / _fans(shape)[0]), size=shape)


def zeros(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """All zeros (the usual bias initializer); draws nothing from ``rng``."""
    return np.zeros(shape)


INITIALIZERS: dict[str, Initializer] = {
    "glorot_uniform": glorot_uniform,
    "xavier_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "xavier_normal": glorot_normal,
    "he_uniform": he_uniform,
    "kaiming_uniform": he_uniform,
    "he_normal": he_normal,
    "kaiming_normal": he_normal,
    "lecun_normal": lecun_normal,
    "zeros": zeros,
}


def get_initializer(name: str) -> Initializer:
    """The initializer registered as ``name``; ConfigError listing the names if unknown."""
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ConfigError(f"unknown initializer {name!r}; expected one of {sorted(INITIALIZERS)}.") from None


def default_for(activation: str) -> str:
    """He for the ReLU family, Glorot otherwise (the usual pairing)."""
    return "he_uniform" if activation in {"relu", "leaky_relu", "elu", "gelu"} else "glorot_uniform"


__all__ = [
    "INITIALIZERS",
    "default_for",
    "get_initializer",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "zeros",
]
