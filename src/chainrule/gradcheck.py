"""Proof tools for gradients: finite differences and the dot-product test (level 4).

The same tools chainrule's own tests use, public so that a user who adds an
op proves it the same way.

- :func:`check_grad` compares the engine's gradient of
  ``C = sum(f(x1, ..., xn) * r)`` (``r`` a fixed random array, so any output
  shape works) with central differences ``(C(x + eps e_i) - C(x - eps e_i)) / 2 eps``,
  entry by entry, in float64.
- :func:`check_vjp` checks the dot-product identity ``<g, J v> = <J^T g, v>``
  for random ``g`` and ``v``: ``J^T g`` from the VJP rules, ``J v`` from one
  central difference along ``v``. Cheap for large inputs.

Both return a :class:`GradReport` with the largest absolute and relative error
per input. The relative error is ``max|analytic - numeric| / max(max|analytic|,
max|numeric|)``, which stays meaningful where single entries are near zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule import backend
from chainrule.autograd import enable_grad
from chainrule.errors import GradientError
from chainrule.tensor import Tensor


@dataclass
class InputError:
    """Largest errors for one input: ``max_abs`` and (max-norm) ``max_rel``."""

    index: int
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float


@dataclass
class GradReport:
    """Result of :func:`check_grad` or :func:`check_vjp`; ``ok`` if within tolerance."""

    method: str
    inputs: list[InputError] = field(default_factory=list)
    rtol: float = 1e-6
    atol: float = 1e-8

    @property
    def ok(self) -> bool:
        """True if every input has ``max_abs <= atol`` or ``max_rel <= rtol``."""
        return all(e.max_abs <= self.atol or e.max_rel <= self.rtol for e in self.inputs)

    def __str__(self) -> str:
        lines = [f"{self.method}: {'OK' if self.ok else 'FAILED'} (rtol={self.rtol}, atol={self.atol})"]
        lines += [
            f"  input {e.index} {e.shape}: max abs error {e.max_abs:.3e}, max rel error {e.max_rel:.3e}"
            for e in self.inputs
        ]
        return "\n".join(lines)

    def raise_if_failed(self) -> GradReport:
        """Raise :class:`GradientError` with the report if any input failed."""
        if not self.ok:
            raise GradientError(str(self))
        return self


def _errors(i: int, analytic: np.ndarray, numeric: np.ndarray) -> InputError:
    diff = float(np.max(np.abs(analytic - numeric))) if analytic.size else 0.0
    scale = max(float(np.max(np.abs(analytic), initial=0.0)), float(np.max(np.abs(numeric), initial=0.0)))
    return InputError(i, tuple(analytic.shape), diff, diff / scale if scale > 0 else diff)


def _as_float64(inputs: Sequence[Any]) -> list[np.ndarray]:
    return [
        np.array(backend.to_numpy(x.data if isinstance(x, Tensor) else x), dtype=np.float64) for x in inputs
    ]


def _vjps(
    f: Callable[..., Tensor], xs: list[np.ndarray], g: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``f(xs)`` and ``J_i^T g`` for each input ``i``, by the engine."""
    tensors = [Tensor(x.copy(), requires_grad=True) for x in xs]
    with enable_grad():
        out = f(*tensors)
    if out.requires_grad:
        out.backward(g)
    grads = [
        np.zeros_like(x) if t.grad is None else backend.to_numpy(t.grad)
        for t, x in zip(tensors, xs, strict=True)
    ]
    return out.numpy(), grads


def _eval(f: Callable[..., Tensor], xs: list[np.ndarray]) -> np.ndarray:
    return f(*[Tensor(x) for x in xs]).numpy()


def check_grad(
    f: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    seed: int = 0,
) -> GradReport:
    """Compare the engine's gradients of ``f`` with central finite differences.

    Parameters
    ----------
    f : callable
        ``f(*tensors) -> Tensor`` of any shape.
    *inputs : array_like
        Points to check at; converted to float64.
    eps : float
        Step of the central difference.
    rtol, atol : float
        Tolerances for :attr:`GradReport.ok`.

    Returns
    -------
    GradReport
        The largest absolute and relative error per input.

    Examples
    --------
    >>> import numpy as np, chainrule as cr
    >>> cr.check_grad(lambda x: cr.ops.tanh(x), np.array([0.1, -0.4])).ok
    True
    """
    xs = _as_float64(inputs)
    out = _eval(f, xs)
    r = np.random.default_rng(seed).standard_normal(out.shape)
    _, analytic = _vjps(f, xs, r)
    report = GradReport("central finite differences", rtol=rtol, atol=atol)
    for i, x in enumerate(xs):
        numeric = np.zeros_like(x)
        flat = numeric.reshape(-1)
        for j in range(x.size):
            step = np.zeros(x.size)
            step[j] = eps
            shifted = [*xs]
            shifted[i] = x + step.reshape(x.shape)
            plus = float(np.sum(_eval(f, shifted) * r))
            shifted[i] = x - step.reshape(x.shape)
            minus = float(np.sum(_eval(f, shifted) * r))
            flat[j] = (plus - minus) / (2 * eps)
        report.inputs.append(_errors(i, analytic[i], numeric))
    return report


def check_vjp(
    f: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    seed: int = 0,
) -> GradReport:
    """Dot-product test ``<g, J_i v> = <J_i^T g, v>`` for each input ``i``.

    ``J_i^T g`` comes from the VJP rules; ``J_i v`` from one central difference
    of ``f`` along a random direction ``v``. Errors are reported as scalars
    (the two sides of the identity).
    """
    xs = _as_float64(inputs)
    rng = np.random.default_rng(seed)
    out = _eval(f, xs)
    g = rng.standard_normal(out.shape)
    _, jtg = _vjps(f, xs, g)
    report = GradReport("dot-product test <g, J v> = <J^T g, v>", rtol=rtol, atol=atol)
    for i, x in enumerate(xs):
        v = rng.standard_normal(x.shape)
        shifted = [*xs]
        shifted[i] = x + eps * v
        plus = _eval(f, shifted)
        shifted[i] = x - eps * v
        jv = (plus - _eval(f, shifted)) / (2 * eps)
        report.inputs.append(_errors(i, np.array(np.sum(jtg[i] * v)), np.array(np.sum(g * jv))))
    return report


__all__ = ["GradReport", "InputError", "check_grad", "check_vjp"]
