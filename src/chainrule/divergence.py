"""The divergence guard: a loss that grows by orders of magnitude stops training, naming the step (level 5).

A learning rate far too large (``lr = 1e6`` with Adam) does not always end in a
NaN: the loss can climb to ``1e18`` and stay finite, and a run would then save
a useless model and report success. :class:`DivergenceGuard` compares every
batch loss with a reference, the loss of the run's first batch (or, for a run
resumed from a checkpoint or continued with more epochs, the first epoch's
training loss in its history), and stops with a
:class:`~chainrule.errors.GradientError` naming the epoch and step when a loss
is more than :attr:`DivergenceGuard.factor` (1000) times that reference.

``Trainer(allow_divergence=True)`` (``chainrule train --allow-divergence``)
turns the error into one ``RuntimeWarning`` per run, for those who study
divergence on purpose. A loss that is NaN or infinite is an error either way
(raised by :meth:`chainrule.train.Trainer.train_step`, which names the step and
the first layer with a non-finite gradient): there is nothing left to train.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from chainrule.errors import GradientError


class DivergenceGuard:
    """Raise (or warn once) when a batch loss exceeds ``factor`` times the run's reference loss.

    Parameters
    ----------
    allow : bool
        Warn instead of raising.
    factor : float
        How many times the reference a loss may reach (default 1000: three orders of magnitude).

    Examples
    --------
    >>> guard = DivergenceGuard()
    >>> guard.check(2.3, epoch=1, step=1, lr=1e6)
    >>> guard.check(5e4, epoch=1, step=2, lr=1e6)
    Traceback (most recent call last):
    ...
    chainrule.errors.GradientError: training diverged: the loss grew from 2.3 (epoch 1, step 1) to 5e+04 \
at epoch 1, step 2, more than 1000 times; lower the learning rate (alpha = 1e+06), clip the gradients \
(clip_norm), or allow it with allow_divergence=True (chainrule train --allow-divergence).
    """

    factor: float = 1e3

    def __init__(self, allow: bool = False, factor: float = 1e3) -> None:
        self.allow, self.factor = bool(allow), float(factor)
        self.reference: float | None = None
        self.where = ""
        self.warned = False

    def __repr__(self) -> str:
        return f"DivergenceGuard(allow={self.allow}, factor={self.factor:g}, reference={self.reference})"

    def start(self, history: Sequence[dict[str, float]]) -> None:
        """Take the reference from a run's history (its first epoch's loss), or from the next batch."""
        first = history[0].get("loss") if history else None
        self.reference = None
        if isinstance(first, float | int) and 0 < first < 1e300:
            self.reference, self.where = float(first), "the first epoch's mean"

    def check(self, loss: float, epoch: int, step: int, lr: float) -> None:
        """Look at the loss of ``step`` (1-based) of ``epoch``; raise or warn if it diverged."""
        if not math.isfinite(loss):
            return  # train_step raises for these, naming the layer
        if self.reference is None:
            if loss > 0:
                self.reference, self.where = loss, f"epoch {epoch}, step {step}"
            return
        if loss <= self.factor * self.reference:
            return
        what = (
            f"training diverged: the loss grew from {self.reference:.4g} ({self.where}) to {loss:.4g} at "
            f"epoch {epoch}, step {step}, more than {self.factor:g} times"
        )
        fix = f"lower the learning rate (alpha = {lr:g}), clip the gradients (clip_norm)"
        if not self.allow:
            raise GradientError(
                f"{what}; {fix}, or allow it with allow_divergence=True (chainrule train --allow-divergence)."
            )
        if not self.warned:
            self.warned = True
            warnings.warn(f"{what} (allowed: training goes on); {fix}.", RuntimeWarning, stacklevel=3)


__all__ = ["DivergenceGuard"]
