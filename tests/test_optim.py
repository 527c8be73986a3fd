"""Tests for chainrule.optim: update rules by hand and against torch.optim, schedules, clipping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from chainrule.errors import ConfigError
from chainrule.optim import (
    SGD,
    Adam,
    CosineAnnealingLR,
    ExponentialLR,
    RMSprop,
    StepLR,
    clip_grad_norm,
    get_optimizer,
)
from chainrule.tensor import Tensor


def param(values) -> Tensor:  # type: ignore[no-untyped-def]
    return Tensor(np.array(values, dtype=np.float64), requires_grad=True)


# -------------------------------------------------------------- by hand
def test_sgd_is_the_notes_update() -> None:
    # W := W - alpha dC/dW: [1, -2] - 0.1 [0.5, -1] = [0.95, -1.9]
    w = param([1.0, -2.0])
    opt = SGD([w], lr=0.1)
    w.grad = np.array([0.5, -1.0])
    opt.step()
    np.testing.assert_allclose(w.data, [0.95, -1.9], rtol=1e-15)


def test_sgd_momentum_two_steps_by_hand() -> None:
    # step 1: v = g1 = 1;           w = 1 - 0.1 * 1 = 0.9
    # step 2: v = 0.9 * 1 + 2 = 2.9; w = 0.9 - 0.1 * 2.9 = 0.61
    w = param([1.0])
    opt = SGD([w], lr=0.1, momentum=0.9)
    for g in (1.0, 2.0):
        w.grad = np.array([g])
        opt.step()
    np.testing.assert_allclose(w.data, [0.61], rtol=1e-15)


def test_adam_two_steps_by_hand() -> None:
    # g = 1 both steps, lr = 0.1. Step t: m = 1 - 0.9^t, v = 1 - 0.999^t, so m_hat = v_hat = 1
    # and each step moves w by 0.1 * 1 / (1 + 1e-8): w = 1 - 0.2 / (1 + 1e-8)
    w = param([1.0])
    opt = Adam([w], lr=0.1)
    for _ in range(2):
        w.grad = np.array([1.0])
        opt.step()
    assert w.data[0] == pytest.approx(1 - 0.2 / (1 + 1e-8), rel=1e-14)


# --------------------------------------------------------------- torch
CASES = [
    ("sgd", {"lr": 0.1}, torch.optim.SGD, {}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}, torch.optim.SGD, {}),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}, torch.optim.SGD, {}),
    ("sgd", {"lr": 0.1, "weight_decay": 0.1}, torch.optim.SGD, {}),
    ("adam", {"lr": 0.01}, torch.optim.Adam, {}),
    ("adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05}, torch.optim.Adam, {}),
    ("adamw", {"lr": 0.01, "weight_decay": 0.1}, torch.optim.AdamW, {}),
    ("rmsprop", {"lr": 0.01}, torch.optim.RMSprop, {}),
    ("rmsprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "weight_decay": 0.02}, torch.optim.RMSprop, {}),
]


@pytest.mark.parametrize(("name", "options", "torch_cls", "extra"), CASES)
def test_optimizer_matches_torch(name, options, torch_cls, extra, rel_err) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    w0, b0 = rng.normal(size=(3, 4)), rng.normal(size=3)
    ours = [param(w0), param(b0)]
    theirs = [torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)]
    opt = get_optimizer(name, ours, **options)
    topt = torch_cls(theirs, **options, **extra)
    for step in range(6):
        for p, t in zip(ours, theirs, strict=True):
            g = np.sin(3 * p.data) + 0.1 * step  # a gradient that depends on w and on the step
            p.grad = g
            t.grad = torch.tensor(g)
        opt.step()
        topt.step()
        for p, t in zip(ours, theirs, strict=True):
            assert rel_err(p.data, t.detach().numpy()) < 1e-13, f"step {step + 1}"


def test_float32_parameters_stay_float32() -> None:
    w = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    opt = SGD([w], lr=0.1, momentum=0.9)
    w.grad = np.ones(3, dtype=np.float64)
    opt.step()
    assert w.data.dtype == np.float32


def test_parameters_without_grad_are_skipped() -> None:
    a, b = param([1.0]), param([2.0])
    opt = SGD([a, b], lr=1.0)
    a.grad = np.array([1.0])
    opt.step()
    assert b.data[0] == 2.0 and a.data[0] == 0.0
    opt.zero_grad()
    assert a.grad is None


def test_state_dict_round_trip() -> None:
    a = param([1.0, 2.0])
    opt = Adam([a], lr=0.01)
    a.grad = np.array([0.5, -0.5])
    opt.step()
    state = opt.state_dict()
    assert state["name"] == "adam" and state["steps"] == 1 and set(state["arrays"]) == {"0.m", "0.v"}
    assert state["counters"] == {"0.step": 1}
    b = param([1.0, 2.0])
    opt2 = Adam([b], lr=1.0)
    opt2.load_state_dict(state)
    assert opt2.lr == 0.01 and opt2.steps == 1 and opt2.state[0]["step"] == 1
    np.testing.assert_array_equal(opt2.state[0]["m"], opt.state[0]["m"])


def test_reprs() -> None:
    w = [param([1.0])]
    assert repr(SGD(w, lr=0.1)) == "SGD(lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0)"
    assert repr(Adam(w)) == "Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0)"
    assert (
        repr(get_optimizer("adamw", w)) == "AdamW(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01)"
    )
    assert repr(RMSprop(w)) == "RMSprop(lr=0.01, weight_decay=0.0)"


# --------------------------------------------------------------- errors
def test_config_errors() -> None:
    w = [param([1.0])]
    with pytest.raises(ConfigError, match=r"SGD: learning rate must be positive and finite, got 0"):
        SGD(w, lr=0)
    with pytest.raises(ConfigError, match=r"Adam: learning rate must be positive and finite, got nan"):
        Adam(w, lr=math.nan)
    with pytest.raises(ConfigError, match=r"RMSprop: weight_decay must be >= 0, got -0.1"):
        RMSprop(w, weight_decay=-0.1)
    with pytest.raises(ConfigError, match=r"SGD: need momentum >= 0 \(and > 0 with nesterov\), got 0.0"):
        SGD(w, nesterov=True)
    with pytest.raises(ConfigError, match=r"SGD: need momentum >= 0 \(and > 0 with nesterov\), got -1"):
        SGD(w, momentum=-1)
    with pytest.raises(ConfigError, match=r"Adam: betas must be in \[0, 1\), got \(1.0, 0.999\)"):
        Adam(w, betas=(1.0, 0.999))
    with pytest.raises(
        ConfigError, match=r"unknown optimizer 'lbfgs'; expected one of \['adam', 'adamw', 'rmsprop', 'sgd'\]"
    ):
        get_optimizer("lbfgs", w)
    with pytest.raises(ConfigError, match=r"SGD: got an empty parameter list"):
        SGD([], lr=0.1)


# ------------------------------------------------------------ schedules
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda o: StepLR(o, step_size=3, gamma=0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        (lambda o: ExponentialLR(o, gamma=0.8), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.8)),
        (
            lambda o: CosineAnnealingLR(o, t_max=10, eta_min=0.01),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, 0.01),
        ),
        (lambda o: CosineAnnealingLR(o, t_max=4), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 4)),
    ],
    ids=["step", "exponential", "cosine", "cosine-past-t_max"],
)
def test_schedules_match_torch(ours, theirs) -> None:  # type: ignore[no-untyped-def]
    opt = SGD([param([1.0])], lr=0.1)
    sched = ours(opt)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    tsched = theirs(topt)
    for _ in range(12):
        topt.step()
        tsched.step()
        assert sched.step() == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
        assert opt.lr == sched.optimizer.lr


def test_schedule_errors() -> None:
    opt = SGD([param([1.0])], lr=0.1)
    with pytest.raises(ConfigError, match=r"StepLR: step_size must be >= 1, got 0"):
        StepLR(opt, 0)
    with pytest.raises(ConfigError, match=r"CosineAnnealingLR: t_max must be >= 1, got 0"):
        CosineAnnealingLR(opt, 0)


# -------------------------------------------------------------- clipping
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(max_norm: float, rel_err) -> None:
    rng = np.random.default_rng(1)
    grads = [rng.normal(size=(3, 4)), rng.normal(size=3)]
    ours = [param(np.zeros_like(g)) for g in grads]
    theirs = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for p, t, g in zip(ours, theirs, grads, strict=True):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    total = clip_grad_norm(ours, max_norm)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert total == pytest.approx(float(ttotal), rel=1e-14)
    assert total == pytest.approx(math.sqrt(sum((g**2).sum() for g in grads)), rel=1e-14)
    for p, t in zip(ours, theirs, strict=True):
        assert rel_err(p.grad, t.grad.numpy()) < 1e-14


def test_bad_options_are_config_errors() -> None:
    from chainrule.errors import ConfigError
    from chainrule.optim import get_optimizer
    from chainrule.tensor import Tensor

    w = Tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(ConfigError, match=r"SGD: bad option in \['bogus'\]"):
        get_optimizer("sgd", [w], bogus=1)
    with pytest.raises(ConfigError, match=r"RMSprop: need 0 <= alpha < 1, eps > 0 and momentum >= 0"):
        get_optimizer("rmsprop", [w], alpha=1.5)


def test_adam_counts_steps_per_parameter_like_torch() -> None:
    """A parameter without a gradient on some step keeps its own bias-correction count."""
    from chainrule.optim import Adam
    from chainrule.tensor import Tensor

    rng = np.random.default_rng(0)
    w0, v0 = rng.standard_normal(3), rng.standard_normal(3)
    w, v = Tensor(w0.copy(), requires_grad=True), Tensor(v0.copy(), requires_grad=True)
    tw, tv = torch.tensor(w0.copy(), requires_grad=True), torch.tensor(v0.copy(), requires_grad=True)
    ours, theirs = Adam([w, v], lr=0.1), torch.optim.Adam([tw, tv], lr=0.1)
    for step in range(4):
        g = rng.standard_normal(3)
        w.grad, tw.grad = g.copy(), torch.tensor(g)
        v.grad, tv.grad = (None, None) if step == 0 else (g.copy(), torch.tensor(g))
        ours.step()
        theirs.step()
    np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(v.data, tv.detach().numpy(), rtol=1e-12)
