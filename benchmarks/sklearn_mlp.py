"""chainrule.sklearn.MLPClassifier beside scikit-learn's MLPClassifier: fit time and accuracy (issue 15).

Both estimators get the same data, the same parameters and the same
``random_state``, so they start from the same weights and see the same
batches in the same order: sklearn's defaults (one hidden layer of 100 ReLU
units, Adam at 1e-3, ``alpha=1e-4``), a fixed number of epochs
(``tol=0``, no early stop), at ``batch_size`` 32 and 200 (sklearn's 'auto' for
these sizes). Runs alternate between the two (each repeat fits sklearn, then
chainrule, or the other way round), after one untimed fit of each (the
process's one-time costs, printed), and the median fit time of each is reported
with its ratio, chainrule / sklearn (below 1: chainrule is faster), and the
test accuracy of each fitted model.

Data
----
digits   scikit-learn's bundled 8x8 digits, 1,797 x 64 (float64, scaled to [0, 1]),
         a stratified 75/25 split
mnist    MNIST-shaped synthetic data from ``common.make_data``: 12,000 x 784 float32
         (80% zeros), 10 classes from a linear teacher; 10,000 to train, 2,000 to test

Run
---
``python benchmarks/sklearn_mlp.py`` (a few minutes on 2 cores),
``python benchmarks/sklearn_mlp.py --quick`` (a smoke run, well under a minute);
``--threads 1`` holds both to one BLAS thread (steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # the benchmarks folder is not a package

common.use_source_tree()

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SklearnMLP  # noqa: E402

from chainrule.backend.threads import set_threads  # noqa: E402
from chainrule.sklearn import MLPClassifier as ChainruleMLP  # noqa: E402

BATCHES = (32, 200)
CHAINRULE_OPTIONS: dict[str, Any] = {}  # chainrule's own parameters (threads), set from the command line


def datasets(quick: bool) -> dict[str, tuple[np.ndarray, ...]]:
    """``name -> (X_train, X_test, y_train, y_test)``."""
    X, y = load_digits(return_X_y=True)
    digits = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    m = 3000 if quick else 12000  # 10,000 rows to train: 313 steps per epoch at batch 32
    Xm, ym = common.make_data(m, n_in=784, k=10)
    cut = m * 5 // 6
    return {"digits": tuple(digits), "mnist": (Xm[:cut], Xm[cut:], ym[:cut], ym[cut:])}


def fit_once(cls: Any, batch: int, epochs: int, data: tuple[np.ndarray, ...]) -> tuple[float, float]:
    """Seconds of one ``fit`` and the fitted model's test accuracy."""
    X_train, X_test, y_train, y_test = data
    extra = CHAINRULE_OPTIONS if cls is ChainruleMLP else {}
    est = cls(
        batch_size=batch, max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1, random_state=0, **extra
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed number of epochs, on purpose
        seconds = common.timed(lambda: est.fit(X_train, y_train))
    assert est.n_iter_ == epochs
    return seconds, float(est.score(X_test, y_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs, rows and repeats: a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="fits per estimator and case (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads for both (default: as set)")
    args = parser.parse_args()
    if args.threads:
        common.limit_threads(args.threads)
        set_threads(args.threads)  # chainrule's per-epoch choice of BLAS threads would otherwise apply
        CHAINRULE_OPTIONS["threads"] = args.threads  # held for the whole fit, as a user would set it
    repeats = args.repeats or (1 if args.quick else 3)
    epochs = {"digits": 5 if args.quick else 30, "mnist": 1 if args.quick else 4}
    print(common.describe_environment({"sklearn": __import__("sklearn").__version__}))
    print(f"repeats: {repeats} (interleaved), epochs: {epochs}")
    cases = datasets(args.quick)
    # one-time costs of a process (imports, chainrule's compiled kernels loading), reported, not timed below
    first = {label: fit_once(cls, 200, 1, cases["digits"])[0] for label, cls in (("sklearn", SklearnMLP),
             ("chainrule", ChainruleMLP))}  # fmt: skip
    print(f"first fit in this process (one epoch of digits, untimed below): {first}\n")
    rows = []
    for name, data in cases.items():
        for batch in BATCHES:
            times: dict[str, list[float]] = {"sklearn": [], "chainrule": []}
            accuracy: dict[str, float] = {}
            order = [("sklearn", SklearnMLP), ("chainrule", ChainruleMLP)]
            for r in range(repeats):
                for label, cls in order if r % 2 == 0 else order[::-1]:
                    seconds, accuracy[label] = fit_once(cls, batch, epochs[name], data)
                    times[label].append(seconds)
            sk, cr = statistics.median(times["sklearn"]), statistics.median(times["chainrule"])
            rows.append(
                [name, batch, epochs[name], sk, cr, cr / sk, accuracy["sklearn"], accuracy["chainrule"]]
            )
            print(f"  {name} batch {batch}: sklearn {sk:.2f} s, chainrule {cr:.2f} s", flush=True)
    headers = [
        "data",
        "batch",
        "epochs",
        "sklearn fit s",
        "chainrule fit s",
        "time ratio (chainrule/sklearn)",
        "sklearn accuracy",
        "chainrule accuracy",
    ]
    print()
    print(common.table(headers, rows))


if __name__ == "__main__":
    main()
