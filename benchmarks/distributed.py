"""Data-parallel training over MPI on this machine, and what it would give on a cluster (issue 17).

Four measurements, each in its own ``mpiexec`` job started by this script
(:func:`chainrule.distributed.launch.run`: local settings, a time limit, no rank
left behind), then the cost model:

1. ``allreduce``: latency and bandwidth of ``Allreduce`` on 2 ranks for one value
   and for the gradients of 784-256-128-10 (235,146 values) and of a 10x wider
   net, 784-2560-1280-10 (5,300,490 values), float32 and float64, through
   ``Communicator.allreduce`` (what training calls). Algorithm bandwidth is
   ``n / t``; bus bandwidth, what a link carries in a ring, ``2 (p - 1) / p * n / t``.
2. ``overlap``: can an allreduce run while the backward pass computes (PyTorch DDP's
   buckets)? On 2 ranks: the step's forward and backward alone, the gradients'
   allreduce alone, and a non-blocking allreduce started before the step and waited
   for after it. If the last is the sum of the first two, nothing overlaps here.
3. ``scaling``: epoch time of 784-256-128-10 (batch 128, SGD with momentum, compiled
   step) on 8,192 MNIST-shaped rows: 1 rank with 2 BLAS threads against 2 ranks with
   1 thread each (the same 2 cores either way), and the share of the allreduce.
4. The alpha-beta model of a ring allreduce (:mod:`chainrule.distributed.cost`) with
   the measured compute time per step: efficiency at 4, 16 and 64 nodes on 10 and
   100 Gb/s, weak scaling (each node keeps a batch of 128) and strong scaling (a
   global batch of 128 cut over the nodes; the update of every weight, measured
   apart, is repeated on each node). The wider net's step is the small one's, its
   forward and backward pass scaled by the measured ratio of the two nets' passes,
   its update by the ratio of their weights.

Run: ``python benchmarks/distributed.py`` (about 2 minutes on 2 cores); ``--repeats``
for more runs of each. Results and the model's table: ``docs/distributed.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

common.use_source_tree()

SMALL, WIDE = (784, 256, 128, 10), (784, 2560, 1280, 10)
ROWS, BATCH = 8192, 128
NETWORKS = {10.0: 25e-6, 100.0: 3e-6}  # Gb/s -> alpha, one message's latency (TCP on 10 GbE; RDMA)


def n_params(sizes: tuple[int, ...]) -> int:
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def _seconds(fn: Any, repeats: int, comm: Any) -> list[float]:
    """The fastest and the median of ``repeats`` calls, each started together on every rank."""
    times = []
    for _ in range(repeats):
        comm.comm.Barrier()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return [min(times), statistics.median(times)]


# --------------------------------------------------------------- in the ranks
def role_allreduce(comm: Any, args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    sizes = (("one value", 1), ("784-256-128-10", n_params(SMALL)), ("784-2560-1280-10", n_params(WIDE)))
    for label, n in sizes:
        for dtype in (np.float32, np.float64):
            flat = np.ones(n, dtype=dtype)
            repeats = 200 if n < 10**6 else 20
            comm.allreduce(flat, "warm-up")
            fastest, median = _seconds(lambda flat=flat: comm.allreduce(flat, "benchmark"), repeats, comm)
            name = np.dtype(dtype).name
            rows.append(
                {"what": label, "dtype": name, "bytes": flat.nbytes, "fastest": fastest, "median": median}
            )
    return {"allreduce": rows}


def _trainer(comm: Any, sizes: tuple[int, ...], threads: int) -> Any:
    import chainrule as cr

    model = cr.mlp(list(sizes), "relu", "softmax", seed=0)
    return cr.Trainer(
        model,
        "cross_entropy",
        "sgd",
        0.05,
        BATCH,
        optimizer_options={"momentum": 0.9},
        threads=threads,
        distributed=comm,
    )


def role_overlap(comm: Any, args: argparse.Namespace) -> dict[str, Any]:
    return {"overlap": {"-".join(map(str, s)): _overlap(comm, s, args.repeats * 10) for s in (SMALL, WIDE)}}


def _overlap(comm: Any, sizes: tuple[int, ...], repeats: int) -> dict[str, float]:
    """Forward and backward alone, the allreduce alone, and a non-blocking allreduce around the step."""
    from chainrule.backend import threads as blas

    trainer = _trainer(comm, sizes, 1)
    x, y = common.make_data(BATCH // comm.size, n_in=sizes[0], k=sizes[-1])
    batch = {"x": x, "y": y}
    flat = np.ones(n_params(sizes), dtype=np.float32)
    other = flat.copy()
    MPI = comm.MPI

    def step() -> None:
        trainer.optimizer.zero_grad()
        trainer.compiler(batch, True)

    def started() -> Any:
        return comm.comm.Iallreduce(MPI.IN_PLACE, other, op=MPI.SUM)

    def both() -> None:
        request = started()
        step()
        request.Wait()

    with blas.limit(1):
        for _ in range(3):
            step()  # record, record, compile
        return {
            "compute": _seconds(step, repeats, comm),
            "allreduce": _seconds(lambda: comm.allreduce(flat, "benchmark"), repeats, comm),
            "iallreduce": _seconds(lambda: started().Wait(), repeats, comm),
            "overlapped": _seconds(both, repeats, comm),
        }


def role_scaling(comm: Any, args: argparse.Namespace) -> dict[str, Any]:
    x, y = common.make_data(ROWS)
    trainer = _trainer(comm, SMALL, args.threads)
    spent = [0.0]
    allreduce = comm.allreduce

    def timed(flat: Any, what: str) -> None:
        started = time.perf_counter()
        allreduce(flat, what)
        spent[0] += time.perf_counter() - started

    comm.allreduce = timed
    steps: list[float] = []
    train_step = trainer.train_step

    def timed_step(xb: Any, yb: Any, step: int = 0) -> float:
        started = time.perf_counter()
        value = float(train_step(xb, yb, step))
        steps.append(time.perf_counter() - started)
        return value

    trainer.train_step = timed_step
    updates: list[float] = []
    update = trainer.optimizer.step

    def timed_update() -> None:
        started = time.perf_counter()
        update()
        updates.append(time.perf_counter() - started)

    trainer.optimizer.step = timed_update
    epochs, shares = [], []
    for epoch in range(args.epochs + 1):
        spent[0] = 0.0
        del steps[:]
        comm.comm.Barrier()
        started = time.perf_counter()
        trainer.train_epoch(x, y)
        seconds = time.perf_counter() - started
        if epoch:  # the first records and compiles the step
            epochs.append(seconds)
            shares.append(spent[0] / seconds)
    return {
        "epochs": epochs,
        "allreduce_share": statistics.median(shares),
        "step": statistics.median(steps),
        "update": statistics.median(updates),
    }


ROLES = {"allreduce": role_allreduce, "overlap": role_overlap, "scaling": role_scaling}


def rank_main(args: argparse.Namespace) -> None:
    from chainrule.distributed import Communicator

    comm = Communicator(threads=args.threads, timeout=120)
    result = ROLES[args.role](comm, args)
    if comm.rank == 0:
        print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------- the parent
def job(ranks: int, role: str, args: argparse.Namespace, threads: int = 1) -> dict[str, Any]:
    from chainrule.distributed import launch

    argv = [sys.executable, __file__, "--role", role, "--threads", str(threads)]
    argv += ["--repeats", str(args.repeats), "--epochs", str(args.epochs)]
    result = launch.run(ranks, argv, 600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"{role} on {ranks} ranks failed ({result!r}):\n{result.stderr[-3000:]}")
    return dict(json.loads(lines[-1][len("RESULT ") :]))


def _gamma() -> float:
    """Seconds per byte of adding float32 arrays in place (the reduction's arithmetic)."""
    a, b = np.ones(n_params(WIDE), np.float32), np.ones(n_params(WIDE), np.float32)
    times = []
    for _ in range(10):
        started = time.perf_counter()
        np.add(a, b, out=a)
        times.append(time.perf_counter() - started)
    return min(times) / a.nbytes


def report_allreduce(rows: list[dict[str, Any]]) -> None:
    print("\n### Allreduce on 2 ranks of this machine (Communicator.allreduce; fastest, median)\n")
    print("| gradients | dtype | bytes | time: fastest | median | bandwidth (fastest): algorithm | bus |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        t = r["fastest"]
        bus = 2 * (2 - 1) / 2 * r["bytes"] / t  # 2 ranks
        print(
            f"| {r['what']} | {r['dtype']} | {r['bytes']:,} | {t * 1e6:,.1f} us | "
            f"{r['median'] * 1e6:,.1f} us | {r['bytes'] / t / 1e9:.2f} GB/s | {bus / 1e9:.2f} GB/s |"
        )


def report_overlap(result: dict[str, Any]) -> None:
    print("\n### Overlap: a non-blocking allreduce started before the step (2 ranks, 1 thread each)")
    print("(fastest of the repeats, then the median)\n")
    print("| net | step (fwd+bwd) | Allreduce | Iallreduce alone | step, then Allreduce | Iallreduce, step |")
    print("|---|---:|---:|---:|---:|---:|")
    for net, r in result.items():
        for i, which in enumerate(("fastest", "median")):
            both = (r["compute"][i] + r["allreduce"][i]) * 1e3
            cells = [r[k][i] * 1e3 for k in ("compute", "allreduce", "iallreduce")] + [
                both,
                r["overlapped"][i] * 1e3,
            ]
            print(f"| {net} ({which}) | " + " | ".join(f"{c:.2f} ms" for c in cells) + " |")


def report_model(step_s: float, update_s: float, nbytes: float, gamma: float, net: str) -> None:
    from chainrule.distributed import project

    print(
        f"\n### Cost model, {net}: {nbytes / 1e6:.2f} MB of gradients, {step_s * 1e3:.2f} ms a step "
        f"({update_s * 1e3:.2f} ms of it the update)\n"
    )
    print("| nodes | network | allreduce | weak efficiency (128 rows a node) | strong speed-up (128 rows) |")
    print("|---:|---|---:|---:|---:|")
    for gbits, alpha in NETWORKS.items():
        for nodes in (2, 4, 16, 64):
            p = project(nbytes, step_s, nodes, gbits, alpha, gamma, update_s)
            print(
                f"| {nodes} | {gbits:g} Gb/s | {p.allreduce_s * 1e3:.2f} ms | {p.weak_efficiency:.0%} | "
                f"{p.strong_speedup:.2f}x ({p.strong_speedup / nodes:.0%}) |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (default: 3)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per scaling run (default: 3)")
    args = parser.parse_args()
    if args.role:
        rank_main(args)
        return
    print(common.describe_environment(), flush=True)
    report_allreduce(job(2, "allreduce", args)["allreduce"])
    overlap = job(2, "overlap", args)["overlap"]
    report_overlap(overlap)
    one, two = [], []
    for _ in range(args.repeats):  # alternated, so a busy moment of the machine hits both
        one.append(job(1, "scaling", args, threads=2))
        two.append(job(2, "scaling", args, threads=1))
    e1 = [t for r in one for t in r["epochs"]]
    e2 = [t for r in two for t in r["epochs"]]
    share = statistics.median(r["allreduce_share"] for r in two)
    print("\n### Epoch time, 784-256-128-10, 8,192 rows, batch 128, 2 cores either way\n")
    print(
        "| run | fastest epoch | median epoch | step (median) | its update | allreduce share of the epoch |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    rows = (("1 rank x 2 BLAS threads", e1, one, "-"), ("2 ranks x 1 BLAS thread", e2, two, f"{share:.0%}"))
    for label, epochs, runs, what in rows:
        step = statistics.median(r["step"] for r in runs)
        update = statistics.median(r["update"] for r in runs)
        print(
            f"| {label} | {min(epochs):.3f} s | {statistics.median(epochs):.3f} s | "
            f"{step * 1e3:.2f} ms | {update * 1e3:.2f} ms | {what} |"
        )
    print(
        f"\nspeed-up of 2 ranks: {min(e1) / min(e2):.2f}x (fastest), "
        f"{statistics.median(e1) / statistics.median(e2):.2f}x (median)"
    )
    print(f"epochs, 1 rank: {[round(t, 3) for t in e1]}; 2 ranks: {[round(t, 3) for t in e2]}")
    gamma = _gamma()
    print(f"\nreduction arithmetic measured here: {1 / gamma / 1e9:.1f} GB/s (gamma = {gamma:.2e} s/byte)")
    step_small = statistics.median(r["step"] for r in one)  # a node = this machine, a step of 128 rows
    update_small = statistics.median(r["update"] for r in one)  # every node repeats it whole
    report_model(step_small, update_small, n_params(SMALL) * 4, gamma, "784-256-128-10")
    small, wide = ("-".join(map(str, s)) for s in (SMALL, WIDE))
    ratio = overlap[wide]["compute"][0] / overlap[small]["compute"][0]  # measured, same batch and thread
    grow = n_params(WIDE) / n_params(SMALL)  # the update touches every weight once
    step_wide = (step_small - update_small) * ratio + update_small * grow
    report_model(step_wide, update_small * grow, n_params(WIDE) * 4, gamma, "784-2560-1280-10 (scaled)")


if __name__ == "__main__":
    main()
