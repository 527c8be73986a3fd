"""What one recorded op costs, and one SGD step of a tiny network (issue 6).

Two measurements where the arithmetic is negligible and the engine's Python
bookkeeping is all that is left:

1. **Per-op overhead.** A chain of ``--ops`` alternating ``h = h + c`` and
   ``h = h * c`` on ``(4, 4)`` float32 tensors, then ``h.sum().backward()``.
   Reported per op: the forward (recording the graph), the backward, and both,
   for chainrule and PyTorch eager, with plain NumPy's forward as the floor.
2. **A small step.** One SGD step (forward, backward, update) of a 64-64-10
   MLP (ReLU, softmax cross-entropy, ``alpha = 0.1``) at batch 32, for
   chainrule's ``Trainer.train_step``, PyTorch eager and the hand-written
   NumPy loop of ``mlp_epoch.py``. Target: chainrule under 0.15 ms per step.

Each repeat times every framework once, in a rotating order; medians and
minimums over ``--repeats`` are printed.

Run: ``python benchmarks/op_overhead.py`` (about 30 s), ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # the benchmarks folder is not a package
from mlp_epoch import HandNumpy

STEP_SIZES = (64, 64, 10)
STEP_BATCH = 32
STEP_TARGET_MS = 0.15


# ------------------------------------------------------------ op chains
def chainrule_chain(n_ops: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """``(forward, forward_and_backward)`` closures over an ``n_ops`` chain on (4, 4) tensors."""
    common.use_source_tree()
    from chainrule.tensor import Tensor

    rng = np.random.default_rng(0)
    x = Tensor(rng.random((4, 4), dtype=np.float32), requires_grad=True)
    c = Tensor(rng.random((4, 4), dtype=np.float32) * 0.5 + 0.75)

    def forward() -> Any:
        h = x
        for i in range(n_ops):
            h = h * c if i % 2 else h + c
        return h.sum()

    def both() -> None:
        x.grad = None
        forward().backward()

    return forward, both


def torch_chain(n_ops: int, torch: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """The same chain in PyTorch eager."""
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.random((4, 4), dtype=np.float32), requires_grad=True)
    c = torch.tensor(rng.random((4, 4), dtype=np.float32) * 0.5 + 0.75)

    def forward() -> Any:
        h = x
        for i in range(n_ops):
            h = h * c if i % 2 else h + c
        return h.sum()

    def both() -> None:
        x.grad = None
        forward().backward()

    return forward, both


def numpy_chain(n_ops: int) -> Callable[[], Any]:
    """The chain's forward in plain NumPy (no graph): the floor of any engine on top of it."""
    rng = np.random.default_rng(0)
    x = rng.random((4, 4), dtype=np.float32)
    c = rng.random((4, 4), dtype=np.float32) * 0.5 + 0.75

    def forward() -> Any:
        h = x
        for i in range(n_ops):
            h = h * c if i % 2 else h + c
        return h.sum()

    return forward


def per_call(fn: Callable[[], Any], calls: int) -> float:
    """Seconds per call of ``fn``, over ``calls`` back-to-back calls."""

    def loop() -> None:
        for _ in range(calls):
            fn()

    return common.timed(loop) / calls


def interleaved(cases: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run each case once per repeat, in a rotating order; the seconds each returned."""
    names = list(cases)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            out[name].append(cases[name]())
    return out


def bench_ops(args: argparse.Namespace, torch: Any) -> str:
    n, calls = args.ops, args.calls
    cr_fwd, cr_both = chainrule_chain(n)
    cases: dict[str, Callable[[], float]] = {
        "chainrule forward": lambda: per_call(cr_fwd, calls) / n,
        "chainrule forward+backward": lambda: per_call(cr_both, calls) / n,
        "numpy forward": lambda: per_call(numpy_chain(n), calls) / n,
    }
    if torch is not None:
        t_fwd, t_both = torch_chain(n, torch)
        cases["torch forward"] = lambda: per_call(t_fwd, calls) / n
        cases["torch forward+backward"] = lambda: per_call(t_both, calls) / n
    for fn in (cr_both, cr_fwd, *([t_fwd, t_both] if torch is not None else [])):  # warm-up
        for _ in range(3):
            fn()
    times = interleaved(cases, args.repeats)
    med = {k: common.summarize(v)[0] for k, v in times.items()}
    rows = []
    for name in ("chainrule", "torch", "numpy"):
        if f"{name} forward" not in med:
            continue
        fwd = med[f"{name} forward"]
        both = med.get(f"{name} forward+backward", float("nan"))
        rows.append(
            [name, fwd * 1e6, (both - fwd) * 1e6, both * 1e6, both / med.get("torch forward+backward", both)]
        )
    headers = ["engine", "forward us/op", "backward us/op", "fwd+bwd us/op", "x torch (fwd+bwd)"]
    return f"### per-op overhead: chain of {n} add/mul on (4, 4) float32, median of {args.repeats}\n\n" + (
        common.table(headers, rows)
    )


# ----------------------------------------------------------- small step
def small_step_cases(torch: Any, threads: int) -> dict[str, Callable[[int], float]]:
    """Per framework, ``run(steps) -> seconds per step`` of SGD on 64-64-10 at batch 32."""
    common.use_source_tree()
    from chainrule.layers import mlp
    from chainrule.train import Trainer

    rng = np.random.default_rng(0)
    m = STEP_BATCH * 64
    x = rng.random((m, STEP_SIZES[0]), dtype=np.float32)
    y = rng.integers(0, STEP_SIZES[-1], size=m)
    batches = [(x[i : i + STEP_BATCH], y[i : i + STEP_BATCH]) for i in range(0, m, STEP_BATCH)]
    init = common.init_weights(STEP_SIZES)

    model = mlp(STEP_SIZES, "relu", "softmax", seed=0)
    for layer, (w, b) in zip(model.dense_layers(), init, strict=True):
        layer.W.data[...], layer.b.data[...] = w, b
    trainer = Trainer(model, "cross_entropy", "sgd", lr=common.LR, batch_size=STEP_BATCH)

    hand = HandNumpy(x, y, STEP_BATCH)
    hand.reset(init)

    def run(step: Callable[[Any, Any], Any]) -> Callable[[int], float]:
        def go(steps: int) -> float:
            def loop() -> None:
                for i in range(steps):
                    step(*batches[i % len(batches)])

            return common.timed(loop) / steps

        return go

    cases = {"chainrule": run(trainer.train_step), "numpy": run(hand.step)}
    if torch is not None:
        torch.set_num_threads(threads)
        layers = []
        for i, (w, b) in enumerate(init):
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w))
                lin.bias.copy_(torch.from_numpy(b))
            layers += [lin] if i == len(init) - 1 else [lin, torch.nn.ReLU()]
        net = torch.nn.Sequential(*layers)
        opt = torch.optim.SGD(net.parameters(), lr=common.LR)
        t_batches = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in batches]
        batches_of = {"torch": t_batches}

        def torch_step(xb: Any, yb: Any) -> None:
            loss = torch.nn.functional.cross_entropy(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def torch_go(steps: int) -> float:
            def loop() -> None:
                for i in range(steps):
                    torch_step(*batches_of["torch"][i % len(t_batches)])

            return common.timed(loop) / steps

        cases["torch"] = torch_go
    return cases


def bench_step(args: argparse.Namespace, torch: Any) -> tuple[str, bool]:
    cases = small_step_cases(torch, args.threads)
    for go in cases.values():
        go(50)  # warm-up
    times = interleaved({k: (lambda go=go: go(args.steps)) for k, go in cases.items()}, args.repeats)
    rows = []
    torch_med = common.summarize(times["torch"])[0] if "torch" in times else float("nan")
    for name, ts in times.items():
        med, best = common.summarize(ts)
        rows.append([name, med * 1e3, best * 1e3, med / torch_med])
    cr = common.summarize(times["chainrule"])[0] * 1e3
    ok = cr < STEP_TARGET_MS
    text = (
        f"### one SGD step, MLP {'-'.join(map(str, STEP_SIZES))} at batch {STEP_BATCH} "
        f"({args.steps} steps per repeat, {args.repeats} repeats)\n\n"
        + common.table(["framework", "median ms/step", "min ms/step", "x torch"], rows)
        + f"\n\ntarget: chainrule {cr:.3f} ms/step < {STEP_TARGET_MS} ms: {common.verdict(ok)}"
    )
    if "numpy" in times:
        ratio = cr / (common.summarize(times["numpy"])[0] * 1e3)
        text += f"\nchainrule / hand-numpy = {ratio:.2f}"
    return text, ok


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=200, help="ops in the chain")
    parser.add_argument("--calls", type=int, default=50, help="chains per timing")
    parser.add_argument("--steps", type=int, default=2000, help="SGD steps per timing")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="PyTorch intra-op threads")
    parser.add_argument("--quick", action="store_true", help="smoke run, a few seconds")
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.steps, args.repeats = 5, 100, 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch = None if args.skip_torch else common.optional_import("torch")
    extra = {"torch": torch.__version__} if torch is not None else {}
    print(common.describe_environment(extra))
    print()
    print(bench_ops(args, torch))
    print()
    text, _ = bench_step(args, torch)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
