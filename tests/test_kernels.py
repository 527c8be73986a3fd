"""The fused dense-layer loops of :mod:`chainrule.kernels` against the same math in NumPy.

:func:`chainrule.ops.dense` itself is checked against PyTorch and finite
differences by the ops table (``tests/test_ops_table.py``); here the compiled
loops are compared with the array-operation path
that CuPy and ``CHAINRULE_NUMBA=0`` take, in float32 and float64, with NaN and
edge inputs, and ``Dense`` is checked to record one fused op.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from chainrule import kernels
from chainrule.errors import DataError
from chainrule.layers import Dense
from chainrule.tensor import Tensor

pytest.importorskip("numba")
if kernels._load() is None:
    pytest.skip("CHAINRULE_NUMBA=0: the compiled loops are switched off", allow_module_level=True)

SHAPES = [(7, 5), (300, 256)]


@pytest.fixture
def array_ops() -> Iterator[None]:
    """Run the array-operation path (as on CuPy) inside the block."""
    saved = kernels._load()
    kernels._compiled["loops"] = None
    yield
    kernels._compiled["loops"] = saved


def _both(fn: Any, *args: Any) -> tuple[Any, Any]:
    compiled = fn(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
    saved = kernels._load()
    kernels._compiled["loops"] = None
    try:
        reference = fn(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
    finally:
        kernels._compiled["loops"] = saved
    return compiled, reference


def _ulps(dtype: Any) -> float:
    return 4 * float(np.finfo(dtype).eps)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", kernels.FUSED)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_loop_equals_array_ops(
    rng: np.random.Generator, shape: tuple[int, int], dtype: Any, activation: str, bias: bool
) -> None:
    z = (3 * rng.standard_normal(shape)).astype(dtype)
    z[0, :3] = [0.0, 40.0, -40.0]  # the kink, and saturation both ways
    b = rng.standard_normal(shape[1]).astype(dtype) if bias else None
    got, want = _both(kernels.bias_act, z, b, activation)
    assert got.dtype == dtype and got.shape == shape
    np.testing.assert_allclose(got, want, rtol=_ulps(dtype), atol=_ulps(dtype))


def test_forward_loop_works_in_place_and_keeps_nan() -> None:
    z = np.array([[np.nan, -1.0, 2.0]], dtype=np.float32)
    out = kernels.bias_act(z, None, "relu")
    assert out is z  # in place
    assert np.isnan(out[0, 0]) and out[0, 1:].tolist() == [0.0, 2.0]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", kernels.FUSED)
def test_backward_loop_equals_array_ops(
    rng: np.random.Generator, shape: tuple[int, int], dtype: Any, activation: str
) -> None:
    a = kernels.bias_act(rng.standard_normal(shape).astype(dtype), None, activation)
    a[0, 0] = 0.0  # relu's kink: relu'(0) = 0
    g = rng.standard_normal(shape).astype(dtype)
    (d, db), (d_ref, db_ref) = _both(kernels.act_grad, g, a, activation, True)
    assert d.dtype == dtype and db.dtype == dtype and db.shape == (shape[1],)
    np.testing.assert_allclose(d, d_ref, rtol=_ulps(dtype), atol=0)
    np.testing.assert_allclose(db, db_ref, rtol=_ulps(dtype) * shape[0], atol=1e-5)
    expected_at_zero = {"relu": 0.0, "sigmoid": 0.0, "tanh": g[0, 0]}[activation]  # phi'(a = 0) = 0, 0, 1
    assert d[0, 0] == expected_at_zero
    _, no_db = kernels.act_grad(g, a, activation, False)
    assert no_db is None


def test_backward_keeps_nan_gradients_nan_as_the_relu_rule_does(array_ops: None) -> None:
    a = np.array([[0.0, 1.0]])
    g = np.array([[np.nan, np.nan]])
    d, _ = kernels.act_grad(g, a, "relu", False)
    assert np.isnan(d).all()  # g * [a > 0], as ops.relu's rule: a NaN is never hidden


def test_backward_compiled_keeps_nan_gradients_nan() -> None:
    d, _ = kernels.act_grad(np.array([[np.nan, np.nan]]), np.array([[0.0, 1.0]]), "relu", False)
    assert np.isnan(d).all()


def test_non_contiguous_and_mixed_dtypes_take_array_ops(rng: np.random.Generator) -> None:
    z = np.asfortranarray(rng.standard_normal((6, 4)))
    want = np.maximum(z + 1.0, 0)
    np.testing.assert_array_equal(kernels.bias_act(z, np.ones(4), "relu"), want)
    z32 = rng.standard_normal((6, 4)).astype(np.float32)
    b64 = np.ones(4)  # float64 bias on float32 z: no compiled loop for that pair
    np.testing.assert_allclose(kernels.bias_act(z32.copy(), b64, "tanh"), np.tanh(z32 + 1.0), rtol=1e-6)


def test_dense_records_one_fused_op_and_identity_stays_linear() -> None:
    x = Tensor(np.ones((2, 3)))
    assert Dense(3, 4, activation="relu", seed=0)(x)._node[0].name == "dense"
    assert Dense(3, 4, activation="identity", seed=0)(x)._node[0].name == "linear"
    assert Dense(3, 4, activation="leaky_relu", seed=0)(x)._node[0].name == "leaky_relu"


def test_numba_can_be_switched_off() -> None:
    code = "from chainrule import kernels; print(kernels._load() is None)"
    env = {**os.environ, "CHAINRULE_NUMBA": "0"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "True"


# ------------------------------------------------------------ label cross-entropy
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [5, 300, 1024])
def test_label_cross_entropy_loops_equal_array_ops(rng: np.random.Generator, dtype: Any, m: int) -> None:
    z = (4 * rng.standard_normal((m, 10))).astype(dtype)
    z[0] = 1e4  # huge logits stay finite
    z[1, :3] = -np.inf  # -inf entries give no NaN
    labels = rng.integers(0, 10, m)
    labels[1] = 5
    got, want = _both(kernels.sce_labels, z, labels)
    assert got.dtype == dtype and np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=_ulps(dtype), atol=_ulps(dtype))
    for scale in (dtype(1.0 / m), rng.random(m).astype(dtype)):  # the mean's 1/m, or one per row
        got_g, want_g = _both(kernels.sce_labels_grad, z, labels, scale)
        assert got_g.dtype == dtype and np.isfinite(got_g).all()
        np.testing.assert_allclose(got_g, want_g, rtol=_ulps(dtype), atol=_ulps(dtype))


@pytest.mark.parametrize("compiled", [True, False])
def test_label_cross_entropy_names_a_label_out_of_range(compiled: bool) -> None:
    z = np.zeros((3, 3))
    saved = kernels._load()
    kernels._compiled["loops"] = saved if compiled else None
    try:
        for bad in (3, -1):  # a traced step replays this op without the loss's own label check
            labels = np.array([0, 2, bad])
            with pytest.raises(DataError, match=rf"labels\[2\] = {bad} is out of range for n_classes=3"):
                kernels.sce_labels(z, labels)
            with pytest.raises(DataError, match=rf"labels\[2\] = {bad} is out of range"):
                kernels.sce_labels_grad(z, labels, 1.0)
    finally:
        kernels._compiled["loops"] = saved


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_label_cross_entropy_non_finite_rows_as_array_ops(dtype: Any) -> None:
    inf = np.inf
    z = np.array([[0, 1, 2], [-inf, -inf, -inf], [inf, 0, 1], [inf, -inf, 0], [np.nan, 0, 1]], dtype=dtype)
    labels = np.array([2, 0, 1, 2, 1])
    tol = {"rtol": _ulps(dtype), "atol": _ulps(dtype)}
    with np.errstate(all="ignore"):  # the array path warns about the inf - inf it computes
        got, want = _both(kernels.sce_labels, z, labels)
        got_g, want_g = _both(kernels.sce_labels_grad, z, labels, dtype(0.5))  # no division error
    np.testing.assert_allclose(got, want, **tol)  # NaN where NaN, inf where inf
    np.testing.assert_allclose(got_g, want_g, **tol)
    assert np.isnan(got_g[1:]).all() and np.isfinite(got_g[0]).all()


def test_loops_compile_where_no_cache_location_is_writable(monkeypatch: pytest.MonkeyPatch) -> None:
    import numba

    real = numba.njit

    def njit(*args: Any, cache: bool = False, **kwargs: Any) -> Any:
        if cache:  # what Numba raises when neither __pycache__ nor a user cache dir is writable
            raise RuntimeError("cannot cache function: no locator available")
        return real(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", njit)
    loops = kernels._compile()
    assert set(loops) == {"forward", "backward", "sce_shift", "sce_loss", "sce_grad", "gemm"}
    z = np.array([[-1.0, 2.0]])
    loops["forward"](z, z[0, :1], False, 0, 0.0, 1.0)
    assert z.tolist() == [[0.0, 2.0]]


# ------------------------------------------------------------ review regressions
def test_empty_batch_without_bias() -> None:
    out = Dense(3, 4, bias=False, activation="relu", seed=0, dtype=np.float32)(np.zeros((0, 3), np.float32))
    assert out.shape == (0, 4)


@pytest.mark.parametrize("bias", [np.array([0.5]), np.array(0.5), np.full((2, 4), 0.5)])
def test_dense_with_a_broadcast_bias_equals_linear_then_relu(rng: np.random.Generator, bias: Any) -> None:
    from chainrule import ops

    a, w = rng.standard_normal((2, 3)), rng.standard_normal((4, 3))
    got = ops.dense(Tensor(a), Tensor(w), Tensor(bias), activation="relu").data
    np.testing.assert_array_equal(got, np.maximum(a @ w.T + bias, 0))


def test_byte_swapped_arrays_take_array_ops(rng: np.random.Generator) -> None:
    z = rng.standard_normal((4, 3)).astype(">f8")
    np.testing.assert_array_equal(kernels.bias_act(z.copy(), None, "relu"), np.maximum(z, 0))
    labels = np.array([0, 2, 1, 2], dtype=">i8")
    want = kernels.lse(z.astype("<f8"), -1, False) - z[np.arange(4), labels]
    np.testing.assert_allclose(kernels.sce_labels(z, labels), want, rtol=1e-12)


def test_unknown_fused_activation_is_a_config_error() -> None:
    from chainrule.errors import ConfigError

    with pytest.raises(ConfigError, match="softplus"):
        kernels.bias_act(np.zeros((1, 2)), None, "softplus")


def test_integer_pre_activation_takes_tanh_out_of_place() -> None:
    np.testing.assert_allclose(kernels.bias_act(np.array([[1, 2]]), None, "tanh"), np.tanh([[1.0, 2.0]]))


# ------------------------------------------------------------ addmm from compiled code
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("orders", ["FFC", "CCC", "CFF", "FCF"])
def test_addmm_from_compiled_code_is_the_same_blas_call(
    rng: np.random.Generator, dtype: Any, orders: str
) -> None:
    from chainrule import backend

    if backend._blas("gemm", dtype) is None:
        pytest.skip("this NumPy is not built on scipy-openblas64: addmm takes the NumPy path")
    a = np.asarray(rng.standard_normal((9, 32)), dtype, order=orders[0])  # delta^T of a batch of 32
    b = np.asarray(rng.standard_normal((32, 17)), dtype, order=orders[1])
    c = np.asarray(rng.standard_normal((9, 17)), dtype, order=orders[2])
    expected, compiled, numpy_path = (c.copy(order="K") for _ in range(3))
    backend.addmm(expected, a, b, -0.1)  # through ctypes
    saved = kernels._load()
    calls = []
    kernels._compiled["loops"] = {**saved, "gemm": lambda *args: calls.append(saved["gemm"](*args))}
    try:
        kernels.addmm(compiled, a, b, -0.1)
    finally:
        kernels._compiled["loops"] = saved
    assert len(calls) == 1  # the compiled call, not a fallback
    kernels._compiled["loops"] = None
    try:
        kernels.addmm(numpy_path, a, b, -0.1)  # without Numba: backend.addmm
    finally:
        kernels._compiled["loops"] = saved
    np.testing.assert_array_equal(compiled, expected)  # the very same gemm, bit for bit
    np.testing.assert_array_equal(numpy_path, expected)


def test_addmm_from_compiled_code_leaves_odd_arrays_to_numpy(rng: np.random.Generator) -> None:
    a = rng.standard_normal((4, 4), dtype=np.float32)
    wide = rng.standard_normal((4, 8), dtype=np.float32)
    view = wide[:, ::2]
    expected = view + 0.5 * (a @ a)
    kernels.addmm(view, a, a, 0.5)  # strided: no BLAS plan, NumPy's path
    np.testing.assert_allclose(view, expected, rtol=1e-5)
    c = a.copy()
    expected = c + 0.5 * (c @ a)
    kernels.addmm(c, c, a, 0.5)  # c is an operand too
    np.testing.assert_allclose(c, expected, rtol=1e-5)
