"""The default ``chainrule train`` beside other work: alone, two at once, beside a PyTorch training run.

Each *subject* is one whole training run of the default recipe on scikit-learn's
digits (64-256-256-10, ReLU, dropout 0.2, Adam 1e-3, batch 32, 10% validation,
train and validation accuracy every epoch, then the test set):

- ``chainrule``: the command ``chainrule train --quiet`` (as users run it);
- ``torch``: the same recipe in PyTorch eager (``--subject torch`` runs it), with
  PyTorch's default threads.

Three situations, each run ``--repeats`` times, wall time of each subject process:

- ``alone``: one run on an otherwise quiet machine;
- ``two at once``: two runs of the same subject started together (a parameter
  search with two jobs, or tests in parallel);
- ``beside torch``: one run while a PyTorch training process (the torch recipe
  in a loop) keeps the machine busy; the background starts first and is
  stopped afterwards.

Targets (issue 21): chainrule in each situation within 1.5x of chainrule alone,
and no slower than PyTorch in the same situation. Every process has a timeout;
only local processes, no network.

Run: ``python benchmarks/load.py`` (about 4 minutes on 2 cores; ``--epochs 20`` for a shorter run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # the benchmarks folder is not a package

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600.0  # seconds any one process may run
TARGET_SLOWDOWN, TARGET_VS_TORCH = 1.5, 1.0


def torch_recipe(epochs: int, seed: int = 0) -> None:
    """The default recipe of ``chainrule train`` on digits, in PyTorch eager."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from torch import nn

    torch.manual_seed(seed)
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, bunch.target, test_size=0.2, random_state=seed, stratify=bunch.target
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_train, y_train, test_size=0.1, random_state=seed, stratify=y_train
    )
    tensors = [
        torch.from_numpy(np.ascontiguousarray(a)) for a in (x_train, y_train, x_val, y_val, x_test, y_test)
    ]
    x_tr, y_tr, x_va, y_va, x_te, y_te = tensors
    model = nn.Sequential(
        nn.Linear(64, 256),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(256, 256),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(256, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def accuracy(xs: torch.Tensor, ys: torch.Tensor) -> float:
        model.eval()
        with torch.no_grad():
            out = float((model(xs).argmax(1) == ys).float().mean())
        model.train()
        return out

    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(x_tr.shape[0], generator=generator)
        for start in range(0, x_tr.shape[0], 32):
            idx = order[start : start + 32]
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        accuracy(x_tr, y_tr), accuracy(x_va, y_va)  # what chainrule's fit reports every epoch
    print(f"test accuracy {accuracy(x_te, y_te):.4f}")


def command(subject: str, epochs: int, out: str) -> list[str]:
    if subject == "chainrule":
        return [sys.executable, "-m", "chainrule", "train", "--quiet", "--epochs", str(epochs), "--out", out]
    return [sys.executable, __file__, "--subject", "torch", "--epochs", str(epochs)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_together(subject: str, copies: int, epochs: int, background: bool) -> list[float]:
    """Wall seconds of ``copies`` runs of ``subject`` started together (optionally beside torch)."""
    noise = None
    with tempfile.TemporaryDirectory() as tmp:
        if background:
            endless = command("torch", 100_000, "")  # killed below, once the measured runs are done
            noise = subprocess.Popen(endless, env=_env(), stdout=subprocess.DEVNULL)
            time.sleep(3.0)  # the background is importing and training before the clock starts
        starts, procs = [], []
        for i in range(copies):
            starts.append(time.perf_counter())
            procs.append(
                subprocess.Popen(
                    command(subject, epochs, str(Path(tmp) / f"run{i}")),
                    env=_env(),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
        seconds = []
        try:
            for start, proc in zip(starts, procs, strict=True):
                _, err = proc.communicate(timeout=TIMEOUT)
                if proc.returncode != 0:
                    raise RuntimeError(f"{subject} failed: {err.decode()[-500:]}")
                seconds.append(time.perf_counter() - start)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
            if noise is not None:
                noise.kill()
                noise.wait(timeout=30)
    return seconds


SITUATIONS = {"alone": (1, False), "two at once": (2, False), "beside torch": (1, True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--epochs", type=int, default=80, help="epochs of each run (default 80, the recipe's)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--subject", choices=["torch"], help=argparse.SUPPRESS
    )  # one torch run, for the others
    args = parser.parse_args(argv)
    if args.subject == "torch":
        torch_recipe(args.epochs)
        return 0
    print(common.describe_environment({"chainrule": "source tree"}))
    print(
        f"task    : default chainrule train recipe on digits, {args.epochs} epochs; {args.repeats} repeats\n"
    )
    results: dict[tuple[str, str], list[float]] = {}
    for r in range(args.repeats):
        for situation, (copies, background) in SITUATIONS.items():
            for subject in ("chainrule", "torch"):  # interleaved: the machine's drift hits both
                times = run_together(subject, copies, args.epochs, background)
                results.setdefault((subject, situation), []).extend(times)
                print(f"  repeat {r + 1}: {subject:9} {situation:12} " + " ".join(f"{t:.2f}s" for t in times))
    med = {key: statistics.median(v) for key, v in results.items()}
    rows: list[list[Any]] = []
    targets = []
    for situation in SITUATIONS:
        cr, th = med[("chainrule", situation)], med[("torch", situation)]
        slow = cr / med[("chainrule", "alone")]
        rows.append([situation, cr, th, slow, th / med[("torch", "alone")], cr / th])
        if situation != "alone":
            targets.append(
                (f"{situation}: chainrule {slow:.2f}x its time alone <= {TARGET_SLOWDOWN}", slow <= 1.5)
            )
        targets.append((f"{situation}: chainrule/torch = {cr / th:.2f} <= {TARGET_VS_TORCH}", cr / th <= 1.0))
    headers = [
        "situation",
        "chainrule s",
        "torch s",
        "chainrule / alone",
        "torch / alone",
        "chainrule / torch",
    ]
    print("\n### wall time of one run (median over runs and repeats)\n")
    print(common.table(headers, rows))
    print("\n### targets\n")
    print(common.table(["target", "result"], [[t, common.verdict(ok)] for t, ok in targets]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
