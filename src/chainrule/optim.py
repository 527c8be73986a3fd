"""Optimizers, learning-rate schedules and gradient clipping (level 5).

Every optimizer updates each parameter's array in place from its ``grad``,
with the same arithmetic as ``torch.optim`` (checked step by step in the
tests). The plain rule of the notes is :class:`SGD` with no momentum:

    W := W - alpha dC/dW

Weight decay ``lambda`` adds ``lambda W`` to the gradient (L2), except in
:class:`AdamW`, which decouples it: ``W := W - alpha lambda W`` before the
Adam step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar

from chainrule import backend
from chainrule.errors import ConfigError
from chainrule.tensor import Array, Tensor

OPTIMIZERS: dict[str, type[Optimizer]] = {}


class Optimizer:
    """Base class: holds the parameters, the learning rate ``lr`` and per-parameter state."""

    name: ClassVar[str] = ""
    state_keys: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        OPTIMIZERS[cls.name] = cls

    def __init__(self, params: Iterable[Tensor], lr: float, weight_decay: float = 0.0) -> None:
        self.params = list(params)
        if not self.params:
            raise ConfigError(f"{type(self).__name__}: got an empty parameter list.")
        if lr <= 0 or not math.isfinite(lr):
            raise ConfigError(f"{type(self).__name__}: learning rate must be positive and finite, got {lr}.")
        if weight_decay < 0:
            raise ConfigError(f"{type(self).__name__}: weight_decay must be >= 0, got {weight_decay}.")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.steps = 0
        self.state: list[dict[str, Array]] = [{} for _ in self.params]
        self.options: dict[str, Any] = {"weight_decay": self.weight_decay}  # constructor keywords

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr}, weight_decay={self.weight_decay})"

    def zero_grad(self) -> None:
        """Forget every parameter's gradient."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        self.steps += 1
        for p, state in zip(self.params, self.state, strict=True):
            if p.grad is not None:
                self.update(p.data, p.grad, state)

    def update(self, w: Array, g: Array, state: dict[str, Array]) -> None:
        """Update ``w`` in place from its gradient ``g``."""
        raise NotImplementedError

    def _decayed(self, w: Array, g: Array) -> Array:
        return g + self.weight_decay * w if self.weight_decay else g

    def state_dict(self) -> dict[str, Any]:
        """Name, hyper-parameters (``options``), step counts and per-parameter arrays, for checkpoints.

        Per-parameter integers (Adam's step count) go to ``counters`` (JSON), arrays to ``arrays``.
        """
        items = [(f"{i}.{k}", v) for i, s in enumerate(self.state) for k, v in s.items()]
        return {
            "name": self.name,
            "lr": self.lr,
            "options": self.options,
            "steps": self.steps,
            "counters": {key: v for key, v in items if isinstance(v, int)},
            "arrays": {key: v for key, v in items if not isinstance(v, int)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.lr = float(state["lr"])
        self.steps = int(state["steps"])
        self.state = [{} for _ in self.params]
        for key, value in state["arrays"].items():
            i, k = key.split(".", 1)
            array = backend.to_device(value, backend.get_backend())
            param = self.params[int(i)].data
            if getattr(array, "shape", None) == param.shape and array.dtype == param.dtype:
                laid_out = backend.xp_of(param).empty_like(param)  # the parameter's memory order
                laid_out[...] = array
                array = laid_out
            self.state[int(i)][k] = array
        for key, count in state.get("counters", {}).items():
            i, k = key.split(".", 1)
            self.state[int(i)][k] = int(count)


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Math (``g = dC/dW + lambda W``; buffer ``v`` starts at the first ``g``)::

        v := mu v + g
        W := W - alpha (g + mu v)   if nesterov
        W := W - alpha v            otherwise (W - alpha g without momentum)
    """

    name = "sgd"

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, weight_decay)
        if momentum < 0 or (nesterov and momentum == 0):
            raise ConfigError(f"SGD: need momentum >= 0 (and > 0 with nesterov), got {momentum}.")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.options = {"momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": weight_decay}

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}, "
            f"weight_decay={self.weight_decay})"
        )

    def update(self, w: Array, g: Array, state: dict[str, Array]) -> None:
        g = self._decayed(w, g)
        if not self.momentum:
            backend.axpy(-self.lr, g, w)  # W := W - alpha g, in place (a kernel)
        elif "momentum" not in state:  # the buffer starts at the first gradient, as torch.optim's does
            v = state["momentum"] = g.copy(order="K")  # laid out as W, for the one-pass update
            backend.axpy(-self.lr, g + self.momentum * v if self.nesterov else v, w)
        else:
            momentum_update(w, g, state["momentum"], self.lr, self.momentum, self.nesterov)


@backend.kernel
def momentum_update(w: Array, g: Array, v: Array, lr: float, mu: float, nesterov: bool) -> None:
    """SGD with momentum on one parameter, in place on ``w`` and its buffer ``v``.

    Math: ``v := mu v + g``; ``W := W - alpha (g + mu v)`` (Nesterov) or ``W := W - alpha v``.
    """
    v *= mu
    v += g
    backend.axpy(-lr, g + mu * v if nesterov else v, w)


@backend.kernel
def adam_update(
    w: Array, g: Array, m: Array, v: Array, lr: float, b1: float, b2: float, eps: float, t: int
) -> None:
    """Adam's step ``t`` on one parameter, in place on ``w`` and its moments ``m`` and ``v``.

    Math::

        m := b1 m + (1 - b1) g;  v := b2 v + (1 - b2) g^2
        W := W - alpha (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """
    xp = backend.xp_of(w)
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * (g * g)
    denom = xp.sqrt(v / (1 - b2**t))
    denom += eps
    w -= (lr / (1 - b1**t)) * m / denom


class Adam(Optimizer):
    """Adam (Kingma & Ba), with L2 weight decay added to the gradient.

    Math (step ``t`` of this parameter, ``g = dC/dW + lambda W``)::

        m := b1 m + (1 - b1) g;  v := b2 v + (1 - b2) g^2
        W := W - alpha (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """

    name = "adam"
    decoupled = False

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, weight_decay)
        self.b1, self.b2 = (float(b) for b in betas)
        if not (0 <= self.b1 < 1 and 0 <= self.b2 < 1):
            raise ConfigError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}.")
        self.eps = float(eps)
        self.options = {"betas": [self.b1, self.b2], "eps": self.eps, "weight_decay": weight_decay}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(lr={self.lr}, betas=({self.b1}, {self.b2}), eps={self.eps}, "
            f"weight_decay={self.weight_decay})"
        )

    def update(self, w: Array, g: Array, state: dict[str, Array]) -> None:
        xp = backend.xp_of(w)
        if self.decoupled:
            w *= 1 - self.lr * self.weight_decay
        else:
            g = self._decayed(w, g)
        if "m" not in state:
            state["m"], state["v"] = xp.zeros_like(w), xp.zeros_like(w)
        t = int(state.get("step", 0)) + 1  # per parameter, as torch.optim counts
        state["step"] = t
        adam_update(w, g, state["m"], state["v"], self.lr, self.b1, self.b2, self.eps, t)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``W := W (1 - alpha lambda)`` first."""

    name = "adamw"
    decoupled = True

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    """RMSprop (Hinton), as ``torch.optim.RMSprop``.

    Math (``g = dC/dW + lambda W``)::

        s := rho s + (1 - rho) g^2
        W := W - alpha g / (sqrt(s) + eps)          (momentum 0)
        b := mu b + g / (sqrt(s) + eps); W := W - alpha b   (momentum mu)
    """

    name = "rmsprop"

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, weight_decay)
        if not 0.0 <= alpha < 1.0 or eps <= 0 or momentum < 0:
            raise ConfigError(
                f"RMSprop: need 0 <= alpha < 1, eps > 0 and momentum >= 0, got alpha={alpha}, "
                f"eps={eps}, momentum={momentum}."
            )
        self.rho, self.eps, self.momentum = float(alpha), float(eps), float(momentum)
        self.options = {
            "alpha": self.rho,
            "eps": self.eps,
            "momentum": self.momentum,
            "weight_decay": weight_decay,
        }

    def update(self, w: Array, g: Array, state: dict[str, Array]) -> None:
        xp = backend.xp_of(w)
        g = self._decayed(w, g)
        if "square_avg" not in state:
            state["square_avg"] = xp.zeros_like(w)
        s = state["square_avg"]
        s *= self.rho
        s += (1 - self.rho) * (g * g)
        step = g / (xp.sqrt(s) + self.eps)
        if self.momentum:
            buf = state.setdefault("momentum", xp.zeros_like(w))
            buf *= self.momentum
            buf += step
            step = buf
        w -= self.lr * step


def get_optimizer(name: str, params: Iterable[Tensor], **options: Any) -> Optimizer:
    """The optimizer named ``name`` (``sgd``, ``adam``, ``adamw``, ``rmsprop``) over ``params``."""
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise ConfigError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}.") from None
    try:
        return cls(params, **options)
    except TypeError as exc:  # an unknown keyword: name the optimizer and the option
        raise ConfigError(f"{cls.__name__}: bad option in {sorted(options)}: {exc}.") from None


# -------------------------------------------------------------- schedules
class Schedule:
    """Sets ``optimizer.lr`` from the epoch count; call :meth:`step` once per epoch."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def lr_at(self, epoch: int) -> float:
        """Learning rate for epoch ``epoch`` (0-based)."""
        raise NotImplementedError

    def step(self) -> float:
        """Advance one epoch and set the optimizer's learning rate; returns it."""
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)
        return self.optimizer.lr


class StepLR(Schedule):
    """``alpha_e = alpha_0 gamma^floor(e / step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        if step_size < 1:
            raise ConfigError(f"StepLR: step_size must be >= 1, got {step_size}.")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(Schedule):
    """``alpha_e = alpha_0 gamma^e``."""

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        super().__init__(optimizer)
        self.gamma = float(gamma)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma**epoch


class CosineAnnealingLR(Schedule):
    """``alpha_e = eta_min + (alpha_0 - eta_min) (1 + cos(pi e / T_max)) / 2``.

    As ``torch.optim.lr_scheduler.CosineAnnealingLR``: past ``T_max`` the cosine
    continues (the rate climbs back towards ``alpha_0``, period ``2 T_max``).
    """

    def __init__(self, optimizer: Optimizer, t_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        if t_max < 1:
            raise ConfigError(f"CosineAnnealingLR: t_max must be >= 1, got {t_max}.")
        self.t_max, self.eta_min = int(t_max), float(eta_min)

    def lr_at(self, epoch: int) -> float:
        cos = (1 + math.cos(math.pi * epoch / self.t_max)) / 2
        return self.eta_min + (self.base_lr - self.eta_min) * cos


def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> float:
    """Scale all gradients in place so their joint L2 norm is at most ``max_norm``.

    Math: ``n = sqrt(sum_p ||g_p||^2)``; if ``n > max_norm``, ``g_p := g_p max_norm / (n + 1e-6)``
    (as ``torch.nn.utils.clip_grad_norm_``). Returns ``n`` before clipping.
    """
    grads = [p.grad for p in params if p.grad is not None]
    total = math.sqrt(sum(float((g.astype("float64") ** 2).sum()) for g in grads))
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g *= scale
    return total


__all__ = [
    "OPTIMIZERS",
    "adam_update",
    "momentum_update",
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "Optimizer",
    "RMSprop",
    "Schedule",
    "StepLR",
    "clip_grad_norm",
    "get_optimizer",
]
