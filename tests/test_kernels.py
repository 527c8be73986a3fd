"""Every override of a kernel computes what the kernel's reference computes, on awkward inputs.

One generic harness: for each kernel of :data:`chainrule.backend.KERNELS`, :data:`SAMPLES`
builds arguments; each float array among them is then varied (Fortran order,
byte-swapped, a strided view; a row of -inf and of NaN, huge and tiny values), over
batch sizes 0, 1, 5 and 70 and both float dtypes. Wherever an override applies (and
does not decline), its result, and every array it writes in place, must equal the
reference's: the same shape, NaN and infinities in the same places, the rest equal to
rounding. Every override must apply somewhere, so no predicate is dead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from chainrule import Tensor, backend, ops
from chainrule.backend import KERNELS
from chainrule.backend.registry import load_overrides

Args = tuple[tuple[Any, ...], dict[str, Any]]
Builder = Callable[[np.random.Generator, Any, int], list[Args]]
ACTS = ("relu", "sigmoid", "tanh")


def _phi(name: str, z: np.ndarray) -> np.ndarray:
    return ops.DENSE_ACTIVATIONS[name][0](z)


SAMPLES: dict[str, Builder] = {
    "bias_act": lambda rng, dt, m: [
        ((rng.standard_normal((m, 6)).astype(dt), b, act), {})
        for act in ACTS
        for b in (
            None,
            rng.standard_normal(6).astype(dt),
            rng.standard_normal(1).astype(dt),
            rng.standard_normal((1, 6)).astype(dt),
        )
    ],
    "act_grad": lambda rng, dt, m: [
        (
            (
                rng.standard_normal((m, 6)).astype(dt),
                _phi(act, rng.standard_normal((m, 6)).astype(dt)),
                act,
                db,
            ),
            {},
        )
        for act in ACTS
        for db in (True, False)
    ],
    "weight_grad": lambda rng, dt, m: [
        ((rng.standard_normal((m, 4)).astype(dt), rng.standard_normal((m, 7)).astype(dt), w), {})
        for w in (np.zeros((4, 7), dt), np.zeros((4, 7), dt, order="F"))
    ],
    "sce_labels": lambda rng, dt, m: [
        ((rng.standard_normal((m, k)).astype(dt), rng.integers(0, k, m)), {}) for k in (1, 3, 10)
    ],
    "sce_labels_grad": lambda rng, dt, m: [
        ((rng.standard_normal((m, 3)).astype(dt), rng.integers(0, 3, m), scale), {})
        for scale in (np.asarray(0.25, dt), rng.random(m).astype(dt))
    ],
    "softmax": lambda rng, dt, m: [
        ((rng.standard_normal((m, k)).astype(dt),), {"axis": axis}) for k in (3, 80) for axis in (-1, 0, 1)
    ],
    "logsumexp": lambda rng, dt, m: [
        ((rng.standard_normal((m, 4)).astype(dt),), {"axis": axis, "keepdims": keep})
        for axis in (-1, 0)
        for keep in (True, False)
    ],
    "axpy": lambda rng, dt, m: [
        ((-0.3, rng.standard_normal((m, n)).astype(dt), rng.standard_normal((m, n)).astype(dt)), {})
        for n in (3, 100)
    ],
    "addmm": lambda rng, dt, m: [
        (
            (
                rng.standard_normal((5, 7)).astype(dt),
                rng.standard_normal((5, m)).astype(dt),
                rng.standard_normal((m, 7)).astype(dt),
                -0.5,
            ),
            {},
        )
    ],
    "adam_update": lambda rng, dt, m: [
        (
            (
                rng.standard_normal((m, 5)).astype(dt),
                rng.standard_normal((m, 5)).astype(dt),
                rng.standard_normal((m, 5)).astype(dt),
                rng.random((m, 5)).astype(dt),
                1e-3,
                0.9,
                0.999,
                1e-8,
                t,
            ),
            {},
        )
        for t in (1, 7)
    ],
    "momentum_update": lambda rng, dt, m: [
        (
            (
                rng.standard_normal((m, 5)).astype(dt),
                rng.standard_normal((m, 5)).astype(dt),
                rng.standard_normal((m, 5)).astype(dt),
                0.1,
                0.9,
                nesterov,
            ),
            {},
        )
        for nesterov in (False, True)
    ],
    "parameter": lambda rng, dt, m: [
        ((rng.standard_normal((m, 3)).astype(dt),), {}),
        ((np.ones(m, dt),), {}),
    ],
}


def _variants(a: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The awkward versions of one float array."""
    out = {"plain": a}
    if a.ndim == 2:
        out["fortran"] = np.asfortranarray(a)
        wide = np.zeros((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
        wide[:, ::2] = a
        out["strided"] = wide[:, ::2]  # a non-contiguous view
    out["byteswapped"] = a.astype(a.dtype.newbyteorder())
    big = np.finfo(a.dtype).max ** 0.5
    out["huge"], out["tiny"] = a * big, a / big
    if a.ndim == 2 and a.shape[0] >= 3 and a.shape[1] > 0:
        bad = a.copy()
        bad[0], bad[1] = -np.inf, np.nan  # a row of -inf, a row of NaN
        bad[2, 0] = np.inf
        out["non-finite"] = bad
    return out


def _cases(name: str) -> list[tuple[str, Args]]:
    rng = np.random.default_rng(7)
    cases = []
    for dtype in (np.float32, np.float64):
        for m in (0, 1, 5, 70):
            for args, kwargs in SAMPLES[name](rng, dtype, m):
                cases.append((f"{dtype.__name__} m={m}", (args, kwargs)))
                for i, a in enumerate(args):
                    if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.ndim:
                        for how, v in _variants(a, rng).items():
                            if how != "plain":
                                varied = (*args[:i], v, *args[i + 1 :])
                                cases.append((f"{dtype.__name__} m={m} arg {i} {how}", (varied, kwargs)))
                labels = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind in "iu"]
                for i in labels:
                    swapped = args[i].astype(args[i].dtype.newbyteorder())
                    cases.append(
                        (
                            f"{dtype.__name__} m={m} labels byteswapped",
                            ((*args[:i], swapped, *args[i + 1 :]), kwargs),
                        )
                    )
    return cases


def _copy(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Fresh copies that keep each array's layout, dtype and view-ness (in-place kernels write them)."""
    out = []
    for a in args:
        if (
            isinstance(a, np.ndarray)
            and a.base is not None
            and not (a.flags.c_contiguous or a.flags.f_contiguous)
        ):
            wide = np.zeros((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
            wide[:, ::2] = a
            out.append(wide[:, ::2])
        elif isinstance(a, np.ndarray):
            out.append(a.copy(order="K"))
        else:
            out.append(a)
    return tuple(out)


def _same(ref: Any, got: Any, where: str) -> None:
    if ref is None or got is None:
        assert ref is None and got is None, f"{where}: {ref!r} vs {got!r}"
        return
    if isinstance(ref, tuple):
        assert isinstance(got, tuple) and len(got) == len(ref), where
        for r, g in zip(ref, got, strict=True):
            _same(r, g, where)
        return
    ref, got = np.asarray(ref), np.asarray(got)
    assert ref.shape == got.shape, f"{where}: shape {got.shape}, reference {ref.shape}"
    assert np.array_equal(np.isnan(ref), np.isnan(got)), f"{where}: NaN in other places"
    assert np.array_equal(_infs(ref), _infs(got)), f"{where}: infinities differ"
    fin = np.isfinite(ref)
    r, g = ref[fin].astype(np.float64), got[fin].astype(np.float64)
    eps = np.finfo(ref.dtype if ref.dtype.kind == "f" else np.float64).eps
    tol = 64 * eps * max(1.0, float(np.abs(r).max(initial=0.0)))
    assert np.allclose(g, r, rtol=64 * eps, atol=tol), f"{where}: max |diff| {np.abs(g - r).max(initial=0)}"


def _infs(a: np.ndarray) -> np.ndarray:
    return np.where(np.isinf(a), np.sign(a), 0)


# arguments a kernel writes as its result (compared after the call), and scratch it may overwrite
WRITES = {"axpy": {2}, "addmm": {0}, "adam_update": {0, 2, 3}, "momentum_update": {0, 2}}
SCRATCH = {"bias_act": {0}}


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, type | None]:
    try:
        return fn(*args, **kwargs), None
    except (ValueError, ArithmeticError) as exc:  # the reference may refuse (an empty reduction)
        return None, type(exc)


def test_every_kernel_has_samples_and_every_override_a_kernel() -> None:
    load_overrides()
    assert set(SAMPLES) == set(KERNELS)
    for name, kernel in KERNELS.items():
        for ov in kernel.overrides:
            assert ov.name == name


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the non-finite and huge inputs overflow, on purpose
def test_every_override_equals_its_reference(name: str) -> None:
    load_overrides()
    kernel = KERNELS[name]
    ran = {id(ov): 0 for ov in kernel.overrides}
    for where, (args, kwargs) in _cases(name):
        ref_args = _copy(args)
        expected, refused = _call(kernel.reference, ref_args, kwargs)
        for ov in kernel.overrides:
            if not ov.applies(*args, **kwargs):
                continue
            ov_args = _copy(args)
            got, failed = _call(ov.fn, ov_args, kwargs)
            if got is NotImplemented:
                continue
            ran[id(ov)] += 1
            label = f"{name} {ov.provider} ({where})"
            if refused is not None or failed is not None:
                assert failed is not None and refused is not None, f"{label}: {refused} vs {failed}"
                continue
            _same(expected, got, label)
            for i, (a, b) in enumerate(zip(ref_args, ov_args, strict=True)):
                if isinstance(a, np.ndarray) and i not in SCRATCH.get(name, ()):
                    _same(a, b, f"{label}: argument {i} after the call")
                    if i not in WRITES.get(name, ()):
                        _same(args[i], b, f"{label}: argument {i} must not change")
    dead = [repr(ov) for ov in kernel.overrides if not ran[id(ov)]]
    assert not dead, f"overrides that never ran on any sample: {dead}"


def test_overrides_are_used_where_they_apply_and_can_be_switched_off() -> None:
    load_overrides()
    z = np.zeros((4, 10), np.float32)
    chosen = KERNELS["softmax"].choose(z, -1)
    assert chosen is None  # 4 rows: not the short-row case
    tall = np.zeros((100, 10), np.float32)
    assert KERNELS["softmax"].choose(tall, -1) is not None
    with backend.use_overrides(False):
        assert not backend.overrides_enabled()
        assert KERNELS["softmax"].choose(tall, -1) is None
    assert backend.overrides_enabled()


def test_a_declining_override_leaves_the_error_to_the_reference() -> None:
    """A loop that meets a label out of range returns NotImplemented; the reference names the label."""
    from chainrule.errors import DataError

    z = np.zeros((5, 3), np.float32)
    labels = np.array([0, 1, 7, 2, 0])
    with pytest.raises(DataError, match=r"labels\[2\] = 7 is out of range for n_classes=3"):
        ops.sce_labels(z, labels)
    with pytest.raises(DataError, match=r"labels\[2\] = 7 is out of range for n_classes=3"):
        ops.sce_labels_grad(z, labels, np.asarray(1.0, np.float32))


def test_the_numba_loops_cache_in_the_user_cache_directory(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    pytest.importorskip("numba")
    code = (
        "import numpy as np, chainrule as cr; "
        "cr.ops.dense(cr.Tensor(np.ones((2, 3), np.float32)), cr.Tensor(np.ones((4, 3), np.float32)), "
        "activation='relu')"
    )
    env = {**__import__("os").environ, "CHAINRULE_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    cached = list((tmp_path / "cache" / "numba").iterdir())
    assert any(p.suffix in (".nbi", ".nbc") for p in cached)
    package = __import__("pathlib").Path(backend.__file__).parent
    assert not list(package.rglob("*.nbi")), "compiled loops cached beside the installed package"


def test_the_optimizer_loops_flush_subnormals_and_restore_the_processor_setting() -> None:
    """Adam's loop flushes subnormal moments to zero while it runs; afterwards NumPy sees them again."""
    import platform

    from chainrule.backend import loops

    pytest.importorskip("numba")
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("FTZ/DAZ are x86 settings")
    tiny = np.float32(1e-41)  # subnormal in float32
    assert tiny * np.float32(1) != 0  # NumPy keeps subnormals before the call
    w = np.ones((64, 3), np.float32)
    g = np.zeros((64, 3), np.float32)
    m = np.full((64, 3), tiny, np.float32)
    v = np.full((64, 3), tiny, np.float32)
    assert loops.adam_update(w, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 1) is None  # the loop ran
    assert not m.any() and not v.any()  # 0.9 * 1e-41 is flushed to zero, not kept subnormal
    assert tiny * np.float32(1) != 0, "the loop left flush-to-zero switched on for the whole process"
    ref_m = np.full((64, 3), tiny, np.float32)
    KERNELS["adam_update"].reference(np.ones_like(w), g, ref_m, ref_m.copy(), 1e-3, 0.9, 0.999, 1e-8, 1)
    assert ref_m.all()  # the reference keeps them: the one stated difference


def test_a_numba_that_cannot_compile_leaves_the_references_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken accelerator is said once and switched off; the results come from the references."""
    from chainrule.backend import loops

    pytest.importorskip("numba")
    from numba.core.errors import TypingError

    def broken(*args: Any) -> None:
        raise TypingError("no implementation for this CPU")

    compiled = dict(loops.loops() or {})
    monkeypatch.setattr(loops, "_compiled", {**compiled, "bias_act": broken})
    z = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    b = np.ones(3, np.float32)
    with pytest.warns(RuntimeWarning, match="Numba loops are off"):
        eye = Tensor(np.eye(4, 4, dtype=np.float32))
        out = ops.dense(eye, Tensor(z.T.copy()), Tensor(b), activation="relu")
    np.testing.assert_allclose(out.data, np.maximum(z + b, 0), rtol=1e-6)
    assert loops.loops() is None  # off for the rest of the process (this test's copy of it)
    assert loops.bias_act(z.copy(), b, "relu") is NotImplemented
