"""Tests of :mod:`chainrule.gradcheck`: the proof tools must pass right rules and catch wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import ops
from chainrule.gradcheck import GradReport, InputError
from chainrule.tensor import Primitive, Tensor

# exp with a wrong rule (missing the factor exp(x)): a bug the checks must catch
_wrong_exp = Primitive("wrong_exp", lambda x: np.exp(x), lambda g, out, x: (g,), "dx = g (wrong)")


def test_check_grad_passes_a_right_rule(rng: np.random.Generator) -> None:
    report = cr.check_grad(lambda a, b: ops.matmul(a, b), rng.standard_normal((3, 4)), rng.standard_normal(4))
    assert report.ok
    assert [e.shape for e in report.inputs] == [(3, 4), (4,)]
    assert all(e.max_rel < 1e-7 for e in report.inputs)
    assert report.raise_if_failed() is report


def test_check_grad_catches_a_wrong_rule(rng: np.random.Generator) -> None:
    report = cr.check_grad(lambda x: _wrong_exp(x), rng.standard_normal(4) + 1.0)
    assert not report.ok
    assert report.inputs[0].max_rel > 0.1
    with pytest.raises(
        cr.GradientError, match=r"central finite differences: FAILED .*\n  input 0 \(4,\): max abs"
    ):
        report.raise_if_failed()


def test_check_vjp_passes_a_right_rule_and_catches_a_wrong_one(rng: np.random.Generator) -> None:
    x = rng.standard_normal((5, 6))
    assert cr.check_vjp(lambda t: ops.softmax(t), x).ok
    bad = cr.check_vjp(lambda t: _wrong_exp(t), x + 1.0)
    assert not bad.ok
    assert bad.inputs[0].shape == ()
    assert "dot-product test" in str(bad)


def test_check_grad_scalar_output_and_float32_input() -> None:
    x = np.array([0.3, -0.7], dtype=np.float32)  # checked in float64 regardless
    assert cr.check_grad(lambda t: (t * t).sum(), x).ok


def test_input_without_gradient_counts_as_zero() -> None:
    report = cr.check_grad(lambda a, b: a * 2.0, np.ones(3), np.ones(2))
    assert report.ok
    assert report.inputs[1].max_abs == 0.0


def test_report_tolerances() -> None:
    report = GradReport("m", [InputError(0, (2,), max_abs=1e-3, max_rel=1e-3)], rtol=1e-6, atol=1e-8)
    assert not report.ok
    report.rtol = 1e-2
    assert report.ok
    assert str(report).splitlines()[0] == "m: OK (rtol=0.01, atol=1e-08)"
    assert GradReport("empty").ok


def test_check_grad_accepts_tensors() -> None:
    assert cr.check_grad(lambda t: ops.tanh(t), Tensor([0.1, 0.2])).ok
