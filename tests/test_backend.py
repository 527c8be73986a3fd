"""Tests of :mod:`chainrule.backend`: NumPy by default, CuPy only on request and with a clear error.

The ``gpu`` class runs the table of primitives on CuPy and compares with the
NumPy engine (itself proven against PyTorch in ``test_ops_table.py``); it is
skipped cleanly without CuPy or without a GPU.
"""

from __future__ import annotations

import builtins
import os
import platform
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import chainrule as cr
from chainrule import backend, ops
from chainrule.tensor import Tensor


def test_numpy_is_the_default() -> None:
    assert backend.get_backend() == "numpy"
    assert backend.xp() is np
    assert isinstance(Tensor([1.0]).data, np.ndarray)
    assert backend.xp_of(np.ones(2)) is np and backend.xp_of(np.float64(1.0)) is np
    assert backend.is_array(np.ones(2)) and not backend.is_array([1.0])


@pytest.fixture
def no_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import cupy`` fail even where CuPy is installed."""
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


@pytest.mark.usefixtures("no_cupy")
@pytest.mark.parametrize("name", ["gpu", "cupy"])
def test_gpu_without_cupy_is_a_one_line_backend_error(name: str) -> None:
    with pytest.raises(
        cr.BackendError, match=r"^device 'gpu' requested, but CuPy is not installed: "
    ) as info:
        cr.set_device(name)
    assert "\n" not in str(info.value) and "use device 'cpu' (--device cpu)" in str(info.value)
    assert "numpy" not in str(info.value)  # one vocabulary: devices, not array libraries
    assert backend.get_device() == "cpu"  # unchanged after the failure
    with pytest.raises(cr.BackendError, match="CuPy is not installed"):
        backend.to_device(np.ones(2), "gpu")


def test_cupy_without_gpu_is_a_backend_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    def no_device() -> int:
        raise RuntimeError("cudaErrorNoDevice")

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(
        cr.BackendError, match=r"no CUDA GPU is usable: cudaErrorNoDevice\. Use device 'cpu' \(--device cpu\)"
    ):
        cr.set_device("gpu")
    fake.cuda.runtime.getDeviceCount = lambda: 0  # type: ignore[attr-defined]
    with pytest.raises(cr.BackendError, match="no CUDA GPU was found; use device 'cpu'"):
        cr.set_device("gpu")


def test_unknown_device_is_a_config_error() -> None:
    with pytest.raises(cr.ConfigError, match=r"set_device: expected device 'cpu' or 'gpu', got 'tpu'"):
        cr.set_device("tpu")
    with pytest.raises(cr.ConfigError, match=r"to_device: expected device 'cpu' or 'gpu', got 'tpu'"):
        backend.to_device(np.ones(2), "tpu")


def test_use_device_restores_on_exit() -> None:
    with backend.use_device("cpu"):
        assert backend.get_device() == "cpu" and backend.get_backend() == "numpy"
    with pytest.raises(cr.ConfigError), backend.use_device("tpu"):
        pass  # pragma: no cover
    assert backend.get_device() == "cpu"
    assert cr.set_backend is cr.set_device and cr.use_backend is cr.use_device  # older names, same switch


def test_to_numpy_and_to_device_roundtrip() -> None:
    x = np.arange(6.0).reshape(2, 3)
    assert backend.to_numpy(x) is x
    assert (
        backend.to_device(x) is x and backend.to_device(x, "cpu") is x and backend.to_device(x, "numpy") is x
    )
    np.testing.assert_array_equal(backend.to_numpy([1, 2]), [1, 2])
    assert backend.asarray([1.0, 2.0], dtype=np.float32).dtype == np.float32


def test_scatter_add_accumulates_repeated_indices() -> None:
    target = np.zeros(3)
    backend.scatter_add(target, np.array([0, 2, 2]), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(target, [1.0, 0.0, 5.0])


def _gpu_count() -> int:
    cupy = pytest.importorskip("cupy")
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # CUDA raises its own error types when no driver is present
        return 0


GPU_CASES = [
    pytest.param(name, i, id=f"{name}-{i}")
    for name, prim in ops.PRIMITIVES.items()
    if prim.differentiable
    for i in range(len(prim.samples))
]


@pytest.mark.gpu
class TestCuPy:
    """The table of primitives on CuPy agrees with the NumPy engine."""

    @pytest.fixture(autouse=True)
    def _cupy(self) -> Any:
        if _gpu_count() < 1:
            pytest.skip("no CUDA GPU")
        with backend.use_backend("cupy"):
            yield

    @pytest.mark.parametrize(("name", "i"), GPU_CASES)
    def test_forward_backward_match_numpy(
        self, name: str, i: int, rng: np.random.Generator, make_sample: Any, rel_err: Any
    ) -> None:
        import cupy

        arrays, params = make_sample(ops.PRIMITIVES[name].samples[i], rng)
        g = None
        results = []
        for to in (backend.to_numpy, cupy.asarray):
            dev_params = {k: to(v) if isinstance(v, np.ndarray) else v for k, v in params.items()}
            if "index" in params and isinstance(params["index"], tuple):
                dev_params["index"] = tuple(
                    to(p) if isinstance(p, np.ndarray) else p for p in params["index"]
                )
            tensors = [Tensor(to(a), requires_grad=True) for a in arrays]
            out = ops.PRIMITIVES[name](*tensors, **dev_params)
            if g is None:
                g = rng.standard_normal(out.shape)
            out.backward(to(g))
            results.append((out.numpy(), [backend.to_numpy(t.grad) for t in tensors]))
        assert isinstance(tensors[0].data, cupy.ndarray)
        (out_np, grads_np), (out_cp, grads_cp) = results
        assert rel_err(out_cp, out_np) <= 1e-10
        for a, b in zip(grads_cp, grads_np, strict=True):
            assert rel_err(a, b) <= 1e-10

    def test_to_device_roundtrip(self) -> None:
        import cupy

        x = np.arange(4.0)
        on_gpu = backend.to_device(x)
        assert isinstance(on_gpu, cupy.ndarray)
        np.testing.assert_array_equal(backend.to_numpy(on_gpu), x)


@pytest.mark.usefixtures("no_cupy")
def test_moving_a_model_to_cupy_without_cupy_is_a_backend_error() -> None:
    from chainrule.layers import mlp

    model = mlp([3, 4, 2], seed=0)
    with pytest.raises(cr.BackendError, match="CuPy is not installed"):
        model.to("gpu")
    assert all(isinstance(p.data, np.ndarray) for p in model.parameters())
    before = [p.data.copy() for p in model.parameters()]
    model.to("cpu")  # a move on the host keeps the weights
    assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), before, strict=True))


@pytest.mark.gpu
def test_training_on_cupy_matches_numpy(rng: np.random.Generator) -> None:
    """The same seeded run on both backends ends with the same float32 weights."""
    if _gpu_count() < 1:
        pytest.skip("no CUDA GPU")
    from chainrule.layers import mlp
    from chainrule.train import Trainer

    x = rng.random((256, 8), dtype=np.float32)
    y = rng.integers(0, 3, 256)
    finals = []
    for name in ("cpu", "gpu"):
        with backend.use_device(name):
            model = mlp([8, 16, 3], output="softmax", seed=0).to(name)
            Trainer(model, "cross_entropy", "sgd", 0.1, batch_size=32, seed=0).fit(x, y, epochs=2, verbose=0)
            finals.append([backend.to_numpy(p.data) for p in model.parameters()])
    for a, b in zip(*finals, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------ allocator
_KEPT_AFTER_FREE = """
import ctypes, sys
import numpy as np
from chainrule.backend import memory

class Mallinfo2(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(n, ctypes.c_size_t) for n in names.split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
if sys.argv[1] == "train":  # the library alone: a Trainer's whole fit must leave malloc as it is
    from chainrule.layers import mlp
    from chainrule.train import Trainer
    x = np.random.default_rng(0).random((64, 4), dtype=np.float32)
    y = (x[:, 0] > 0.5).astype(int)
    Trainer(mlp([4, 8, 2], "relu", "softmax"), "cross_entropy").fit(x, y, 2, verbose=0)
    took = False
else:
    took = memory.keep_freed_memory()
    assert memory.keep_freed_memory() is took  # once per process
a = np.ones(4 << 20, dtype=np.uint8)  # 4 MiB: above glibc's default mmap threshold
in_mmap = libc.mallinfo2().hblkhd
del a
info = libc.mallinfo2()
print(took, in_mmap >= 4 << 20, info.fordblks >= 4 << 20)
"""


def _run_child(code: str, mode: str = "tune", **env: str) -> str:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    child_env.update(env)
    done = subprocess.run(
        [sys.executable, "-c", code, mode], capture_output=True, text=True, env=child_env, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc malloc only"
)
def test_keep_freed_memory_keeps_a_freed_array_for_reuse() -> None:
    # tuned: the 4 MiB array comes from the heap and its memory stays there once freed
    assert _run_child(_KEPT_AFTER_FREE) == "True False True"
    # switched off: glibc's default serves it by mmap and returns it to the OS
    assert _run_child(_KEPT_AFTER_FREE, CHAINRULE_KEEP_FREED_MEMORY="0") == "False True False"
    # a user's own malloc settings win
    assert _run_child(_KEPT_AFTER_FREE, MALLOC_TRIM_THRESHOLD_="131072").startswith("False")
    assert _run_child(_KEPT_AFTER_FREE, GLIBC_TUNABLES="glibc.malloc.mmap_threshold=4096").startswith("False")


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc malloc only"
)
def test_training_leaves_the_process_allocator_alone() -> None:
    # the library changes no process-wide setting: after a fit, a 4 MiB array is still served by mmap
    assert _run_child(_KEPT_AFTER_FREE, "train") == "False True False"


def test_the_command_line_asks_for_freed_memory_reuse(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from chainrule.backend import memory
    from chainrule.cli import main

    calls: list[int] = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append(1) or True)
    assert main(["train", "--epochs", "1", "--out", str(tmp_path), "--quiet"]) == 0
    assert calls == [1]


# ------------------------------------------------------------ axpy
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_axpy_is_y_plus_alpha_x_in_place(rng: np.random.Generator, dtype: Any, order: str) -> None:
    x = np.asarray(rng.normal(size=(96, 80)), dtype=dtype, order=order)
    y = np.asarray(rng.normal(size=(96, 80)), dtype=dtype, order=order)
    expected = y + dtype(-0.3) * x
    buffer = y.ctypes.data
    backend.axpy(-0.3, x, y)
    assert y.ctypes.data == buffer and y.dtype == dtype  # in place, no promotion
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(y, expected, rtol=4 * eps, atol=4 * eps * np.abs(x).max())


def test_axpy_mixed_layouts_and_small_arrays_take_numpy(rng: np.random.Generator) -> None:
    x = np.asfortranarray(rng.normal(size=(96, 80)).astype(np.float32))
    y = np.ascontiguousarray(rng.normal(size=(96, 80)).astype(np.float32))  # same shape, other order
    expected = y + np.float32(2.0) * x
    backend.axpy(2.0, x, y)
    np.testing.assert_array_equal(y, expected)  # the NumPy path: exact
    small_x, small_y = np.arange(5.0), np.ones(5)
    backend.axpy(0.5, small_x, small_y)
    np.testing.assert_array_equal(small_y, 1 + 0.5 * np.arange(5.0))
    view = np.ones(8192, dtype=np.float32)  # overlapping operands never reach BLAS
    backend.axpy(1.0, view[:4096], view[2048:6144])  # BLAS would read entries it already wrote
    assert view[2048:6144].tolist() == [2.0] * 4096


def test_axpy_byte_swapped_arrays_take_numpy(rng: np.random.Generator) -> None:
    x = rng.normal(size=(64, 64)).astype(">f4")
    y = np.ones((64, 64), dtype=">f4")
    backend.axpy(-0.1, x, y)
    np.testing.assert_allclose(y, 1 - np.float32(0.1) * x.astype("<f4"), rtol=1e-6)


@pytest.mark.parametrize("routine", ["axpy", "gemm"])
def test_blas_routines_are_found_in_numpys_openblas_where_numpy_ships_it(routine: str) -> None:
    from threadpoolctl import threadpool_info

    from chainrule.backend import blas

    if not any("scipy_openblas64" in i["filepath"] for i in threadpool_info()):
        pytest.skip("this NumPy is not built on scipy-openblas64: the NumPy path is used")
    assert blas.routine(routine, np.float32) is not None
    assert blas.routine(routine, np.float64) is not None
    assert blas.routine(routine, np.int64) is None
    assert blas.routine(routine, np.complex64) is None


# ------------------------------------------------------------ addmm
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("orders", ["CCC", "CCF", "CFC", "CFF", "FCC", "FCF", "FFC", "FFF"])
@pytest.mark.parametrize(("n", "k", "p"), [(5, 7, 3), (1, 7, 3), (5, 1, 3), (5, 7, 1), (1, 1, 1)])
def test_addmm_is_c_plus_alpha_a_b_in_place(
    rng: np.random.Generator, dtype: Any, orders: str, n: int, k: int, p: int
) -> None:
    a = np.asarray(rng.standard_normal((n, k)), dtype, order=orders[0])
    b = np.asarray(rng.standard_normal((k, p)), dtype, order=orders[1])
    c = np.asarray(rng.standard_normal((n, p)), dtype, order=orders[2])
    expected = c.astype(np.float64) - 0.3 * (a.astype(np.float64) @ b.astype(np.float64))
    same = c
    backend.addmm(c, a, b, -0.3)
    assert c is same
    np.testing.assert_allclose(c, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_addmm_goes_to_blas_only_for_contiguous_float_arrays_apart(rng: np.random.Generator) -> None:
    from chainrule.backend import blas

    if blas.routine("gemm", np.float32) is None:
        pytest.skip("this NumPy is not built on scipy-openblas64: addmm takes its reference")
    a = rng.standard_normal((32, 10), dtype=np.float32)
    b = rng.standard_normal((32, 64), dtype=np.float32)
    w = np.asfortranarray(rng.standard_normal((10, 64), dtype=np.float32))  # a Dense layer's W
    assert blas.gemm_plan(w, a.T, b) is not None  # W -= lr delta^T A_prev, as the fused update calls it
    square = rng.standard_normal((4, 4), dtype=np.float32)
    view = rng.standard_normal((4, 8), dtype=np.float32)[:, ::2]  # strided: no leading dimension fits
    assert blas.gemm_plan(view, square, square) is None
    assert blas.gemm_plan(square, square, square.T) is None  # c is also an operand
    assert blas.gemm_plan(np.zeros((4, 4)), square, square) is None  # float32 operands, float64 result


def test_addmm_reference_takes_views_overlap_and_mixed_dtypes(rng: np.random.Generator) -> None:
    a = rng.standard_normal((4, 4), dtype=np.float32)
    b = rng.standard_normal((4, 4), dtype=np.float32)
    wide = rng.standard_normal((4, 8), dtype=np.float32)
    view = wide[:, ::2]
    expected = view + 2.0 * (a @ b)
    backend.addmm(view, a, b, 2.0)
    np.testing.assert_allclose(wide[:, ::2], expected, rtol=1e-5)
    c = a.copy()
    expected = c + 0.5 * (c @ b)  # c is also an operand
    backend.addmm(c, c, b, 0.5)
    np.testing.assert_allclose(c, expected, rtol=1e-5)
    c64 = np.zeros((4, 4))
    backend.addmm(c64, a, b, 1.0)  # float32 operands into a float64 result
    np.testing.assert_allclose(c64, a @ b, rtol=1e-6)
