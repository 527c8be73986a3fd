"""Seeded mutations: bytes as an unlucky disk or network garbles them, JSON as an attacker edits it.

Everything draws from the ``numpy.random.Generator`` it is given, so a run is
reproduced exactly by its seed.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

Rng = np.random.Generator


def mutate_bytes(data: bytes, rng: Rng, focus: int | None = None) -> bytes:
    """One to three random edits of ``data``; ``focus`` favours the first ``focus`` bytes (a header)."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        span = len(out) if focus is None or rng.random() < 0.3 else min(focus, len(out))
        at = int(rng.integers(0, max(span, 1)))
        kind = int(rng.integers(0, 8))
        if kind == 0:  # truncate
            del out[at:]
        elif kind == 1 and out:  # flip bits of one byte
            out[min(at, len(out) - 1)] ^= int(rng.integers(1, 256))
        elif kind == 2:  # overwrite a span with random bytes
            n = int(rng.integers(1, 16))
            out[at : at + n] = rng.bytes(n)
        elif kind == 3:  # insert random bytes
            out[at:at] = rng.bytes(int(rng.integers(1, 32)))
        elif kind == 4:  # delete a span
            del out[at : at + int(rng.integers(1, 64))]
        elif kind == 5:  # duplicate a span
            out[at:at] = out[at : at + int(rng.integers(1, 256))]
        elif kind == 6 and out:  # an extreme byte
            out[min(at, len(out) - 1)] = int(rng.choice([0x00, 0xFF, 0x7F, 0x80]))
        else:  # a 32-bit field set to an extreme value (sizes, counts, offsets)
            out[at : at + 4] = int(rng.choice([0, 1, 2**31 - 1, 2**32 - 1, 65536])).to_bytes(4, "big")
    return bytes(out)


def hostile_value(rng: Rng) -> Any:
    """A JSON value of a surprising type or size."""
    choices: list[Any] = [
        -1, 0, 1, 2.5, -0.0, 1e300, 2**70, -(2**63), math.nan, math.inf, -math.inf, True, False, None,
        "", "relu", "float32", "x" * 10_000, "\udcff", [], [1], [[1, 2], [3]], {}, {"type": "Dense"},
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
        100_000, 2_000_000_000, 2**2000,
    ]  # fmt: skip
    return copy.deepcopy(choices[int(rng.integers(0, len(choices)))])


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node of a JSON value (the root is ``()``)."""
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:50]):
            found += _paths(v, (*prefix, i))
    return found


def mutate_json(value: Any, rng: Rng) -> Any:
    """``value`` with one to three nodes replaced, deleted, duplicated or given an unknown key."""
    value = copy.deepcopy(value)
    for _ in range(int(rng.integers(1, 4))):
        paths = [p for p in _paths(value) if p]
        if not paths:
            return hostile_value(rng)
        path = paths[int(rng.integers(0, len(paths)))]
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        kind = int(rng.integers(0, 5))
        if kind == 0 and isinstance(parent, dict):
            del parent[key]
        elif kind == 1 and isinstance(parent, dict):
            parent[f"unknown_{int(rng.integers(0, 9))}"] = hostile_value(rng)
        elif kind == 2 and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif kind == 3 and isinstance(parent[key], int | float) and not isinstance(parent[key], bool):
            factor = float(rng.choice([-1, 0, 0.5, 2, 1e6, 1e-6]))
            parent[key] = parent[key] * factor if abs(parent[key]) < 1e300 else -parent[key]
        else:
            parent[key] = hostile_value(rng)
    return value


__all__ = ["hostile_value", "mutate_bytes", "mutate_json"]
