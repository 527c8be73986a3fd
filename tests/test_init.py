"""Tests for chainrule.init: bounds, variances, seeding and the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chainrule.errors import ConfigError
from chainrule.init import INITIALIZERS, default_for, get_initializer

SHAPE = (200, 300)  # fan_out = 200, fan_in = 300: 60000 draws


@pytest.mark.parametrize(
    ("name", "bound"),
    [("glorot_uniform", math.sqrt(6 / 500)), ("he_uniform", math.sqrt(6 / 300))],
)
def test_uniform_bounds_and_variance(name: str, bound: float) -> None:
    w = get_initializer(name)(SHAPE, np.random.default_rng(0))
    assert w.shape == SHAPE and np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound  # fills the interval
    assert w.var() == pytest.approx(bound**2 / 3, rel=0.02)  # Var U(-r, r) = r^2 / 3


@pytest.mark.parametrize(
    ("name", "var"),
    [("glorot_normal", 2 / 500), ("he_normal", 2 / 300), ("lecun_normal", 1 / 300)],
)
def test_normal_variance(name: str, var: float) -> None:
    w = get_initializer(name)(SHAPE, np.random.default_rng(1))
    assert abs(w.mean()) < 4 * math.sqrt(var / w.size)
    assert w.var() == pytest.approx(var, rel=0.02)  # sampling error ~ sqrt(2/60000) = 0.6%


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_same_seed_bit_identical(name: str) -> None:
    a = get_initializer(name)((7, 5), np.random.default_rng(42))
    b = get_initializer(name)((7, 5), np.random.default_rng(42))
    assert a.tobytes() == b.tobytes()
    if name != "zeros":
        assert a.tobytes() != get_initializer(name)((7, 5), np.random.default_rng(43)).tobytes()


def test_zeros_and_aliases() -> None:
    assert not get_initializer("zeros")((3,), np.random.default_rng(0)).any()
    assert INITIALIZERS["xavier_uniform"] is INITIALIZERS["glorot_uniform"]
    assert INITIALIZERS["kaiming_normal"] is INITIALIZERS["he_normal"]


def test_default_for() -> None:
    assert default_for("relu") == "he_uniform"
    assert default_for("gelu") == "he_uniform"
    assert default_for("tanh") == "glorot_uniform"
    assert default_for("softmax") == "glorot_uniform"


def test_unknown_initializer() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown initializer 'uniform'; expected one of \['glorot_normal'"
    ):
        get_initializer("uniform")
