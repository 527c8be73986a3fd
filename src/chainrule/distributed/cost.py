"""The alpha-beta cost of a ring allreduce, and what it leaves of data-parallel speed.

Part of :mod:`chainrule.distributed` (level 8).

Math
----
A ring allreduce of ``n`` bytes over ``p`` nodes sends ``2 (p - 1)`` messages of
``n / p`` bytes from each node (a reduce-scatter, then an allgather):

    T(p) = 2 (p - 1) alpha + 2 (p - 1) / p * n / B + (p - 1) / p * n * gamma

with ``alpha`` the latency of one message, ``B`` the bandwidth of a link (bytes per
second) and ``gamma`` the time to add one byte's worth of values. A step that
computes for ``t`` seconds and then reduces its gradients runs at

    efficiency(p) = t / (t + T(p))

of a perfect ``p``-fold speed-up. Weak scaling keeps each node's batch (``t`` fixed);
strong scaling keeps the global batch, so each node computes ``(t - u) / p + u``, where
``u`` is the part of the step every node repeats whole (the optimizer's update of every
weight), and the speed-up is ``t / ((t - u) / p + u + T(p))``.

Examples
--------
>>> round(ring_allreduce(1e6, 2, alpha=0.0, bandwidth=1e9), 6)   # 2 (1/2) 1e6 / 1e9
0.001
>>> ring_allreduce(1e6, 1, alpha=1e-5, bandwidth=1e9)            # one node sends nothing
0.0
"""

from __future__ import annotations

from dataclasses import dataclass

from chainrule.errors import ConfigError


def ring_allreduce(n_bytes: float, nodes: int, alpha: float, bandwidth: float, gamma: float = 0.0) -> float:
    """Seconds of a ring allreduce of ``n_bytes`` over ``nodes`` (see the module's Math).

    Raises
    ------
    ConfigError
        A node count below 1, a negative size or latency, or a bandwidth that is not positive.
    """
    if nodes < 1 or n_bytes < 0 or alpha < 0 or gamma < 0 or not bandwidth > 0:
        raise ConfigError(
            f"ring_allreduce: needs nodes >= 1, n_bytes, alpha, gamma >= 0 and bandwidth > 0, got "
            f"nodes={nodes}, n_bytes={n_bytes}, alpha={alpha}, bandwidth={bandwidth}, gamma={gamma}."
        )
    share = (nodes - 1) / nodes
    return 2 * (nodes - 1) * alpha + 2 * share * n_bytes / bandwidth + share * n_bytes * gamma


@dataclass(frozen=True)
class Projection:
    """One row of the table: ``nodes`` on a network, the allreduce's time and what it leaves."""

    nodes: int
    gbits: float
    allreduce_s: float
    weak_efficiency: float  # each node keeps its batch
    strong_speedup: float  # the global batch is cut over the nodes

    def __repr__(self) -> str:
        return (
            f"Projection(nodes={self.nodes}, gbits={self.gbits:g}, allreduce_s={self.allreduce_s:.3g}, "
            f"weak_efficiency={self.weak_efficiency:.3f}, strong_speedup={self.strong_speedup:.2f})"
        )


def project(
    n_bytes: float,
    step_s: float,
    nodes: int,
    gbits: float,
    alpha: float,
    gamma: float = 0.0,
    update_s: float = 0.0,
) -> Projection:
    """The allreduce time, weak-scaling efficiency and strong-scaling speed-up at ``nodes`` on ``gbits`` Gb/s.

    ``step_s`` is the compute time of one step on one node (forward, backward, update)
    for its batch; ``update_s`` the part of it that every node repeats whole (the
    update), the rest divides evenly over the nodes in strong scaling.
    """
    t = ring_allreduce(n_bytes, nodes, alpha, gbits * 1e9 / 8, gamma)
    divided = (step_s - update_s) / nodes + update_s
    return Projection(nodes, gbits, t, step_s / (step_s + t), step_s / (divided + t))


__all__ = ["Projection", "project", "ring_allreduce"]
