"""Tests of :mod:`chainrule.errors` and of the messages the core raises.

Every error derives from :class:`ChainruleError` and from the built-in
exception a Python user would catch; every message names the op, what it
expected and what came.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import errors, ops
from chainrule.tensor import Tensor

BUILTIN_BASES = {
    errors.ShapeError: ValueError,
    errors.DTypeError: TypeError,
    errors.ConfigError: ValueError,
    errors.GradientError: RuntimeError,
    errors.DataError: ValueError,
    errors.BackendError: RuntimeError,
    errors.SerializationError: ValueError,
    errors.LimitError: ValueError,
    errors.DistributedError: RuntimeError,
}


@pytest.mark.parametrize("cls", list(BUILTIN_BASES))
def test_hierarchy(cls: type[Exception]) -> None:
    assert issubclass(cls, errors.ChainruleError)
    assert issubclass(cls, BUILTIN_BASES[cls])
    assert cls.__doc__


WARNINGS = {errors.ChainruleWarning: UserWarning, errors.CompileWarning: errors.ChainruleWarning}


def test_every_error_and_warning_is_exported() -> None:
    expected = {c.__name__ for c in BUILTIN_BASES} | {c.__name__ for c in WARNINGS} | {"ChainruleError"}
    assert set(errors.__all__) == expected
    assert all(getattr(cr, name) is getattr(errors, name) for name in errors.__all__)
    for cls, base in WARNINGS.items():
        assert issubclass(cls, base) and cls.__doc__


def test_binary_shape_mismatch_names_op_and_shapes() -> None:
    a, b = Tensor(np.ones((3, 4)), requires_grad=True), Tensor(np.ones(5))
    with pytest.raises(
        cr.ShapeError, match=r"^add: cannot apply to inputs \[\(3, 4\) float64, \(5,\) float64\]"
    ):
        a + b
    with pytest.raises(
        ValueError, match=r"multiply: cannot apply to inputs \[\(3, 4\) float64, \(5,\) float64\]"
    ):
        a * b


def test_matmul_inner_dimension_mismatch_names_both_shapes() -> None:
    a, b = Tensor(np.ones((3, 4))), Tensor(np.ones((5, 2)))
    with pytest.raises(
        cr.ShapeError,
        match=r"matmul: cannot apply to inputs \[\(3, 4\) float64, \(5, 2\) float64\]: "
        r"inner dimensions differ: a has 4 columns, b has 5 rows",
    ):
        a @ b


def test_matmul_of_scalars_is_rejected() -> None:
    with pytest.raises(cr.ShapeError, match="matmul needs arrays of at least one axis, not scalars"):
        ops.matmul(Tensor(2.0), Tensor(np.ones(3)))


def test_error_message_includes_params() -> None:
    with pytest.raises(
        cr.ShapeError, match=r"sum: cannot apply to inputs \[\(3,\) float64\] with \{'axis': 2"
    ):
        ops.sum(Tensor(np.ones(3)), axis=2)


def test_bad_dtype_in_forward_is_a_dtype_error() -> None:
    with pytest.raises(cr.DTypeError, match=r"exp: cannot apply to inputs \[\(2,\) <U1\]"):
        ops.exp(np.array(["a", "b"]))


def test_requires_grad_on_int_tensor() -> None:
    with pytest.raises(cr.DTypeError, match=r"pass dtype=numpy.float64 \(or float32\)"):
        Tensor(np.array([1, 2]), requires_grad=True)


def test_duplicate_primitive_registration_raises() -> None:
    def exp(x: np.ndarray) -> np.ndarray:
        return x

    with pytest.raises(cr.ConfigError, match="primitive 'exp' registered twice; pick another name"):
        ops.primitive(None, "dup")(exp)
