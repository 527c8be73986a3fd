"""ONNX in and out (issue 16): how closely the runtimes agree, and inference time side by side.

1. **Agreement.** chainrule -> ONNX -> onnxruntime for every activation (as
   hidden and output activation of a 5-16-12-3 MLP with dropout), float32
   and float64, on standard-normal inputs at batch 1, 7 and 1024; PyTorch's
   ``nn.Sequential`` of every activation chainrule reads, exported by both
   of torch 2.13's exporters and imported; scikit-learn's ``MLPClassifier``
   through skl2onnx, imported. Reported: the largest ``|a - b|`` relative
   to ``max(1, max |b|)``, the measure the tests bound (1e-6 float32, 1e-12 float64).
2. **Inference time.** The 784-256-128-10 ReLU/softmax MLP: chainrule's
   ``predict`` against onnxruntime's CPU session on the exported file, at
   batch 1 and 1024, interleaved, medians over ``--repeats``; one thread each.

Run: ``python benchmarks/onnx_agreement.py`` (about 20 s), ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from common import SIZES, limit_threads, use_source_tree

use_source_tree()

ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "elu", "gelu", "softmax"]


def error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got.astype(np.float64) - want)) / max(1.0, float(np.max(np.abs(want)))))


def session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def round_trip(folder: Path) -> None:
    import chainrule.onnx as cro
    from chainrule.layers import mlp
    from chainrule.train import predict

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        worst = {}
        for act in ACTIVATIONS:
            model = mlp([5, 16, 12, 3], act, act, dropout=0.2, seed=1, dtype=dtype)
            cro.export(model, folder / "m.onnx")
            run = session(folder / "m.onnx")
            xs = [rng.normal(size=(m, 5)).astype(dtype) for m in (1, 7, 1024)]
            worst[act] = max(error(run.run(None, {"input": x})[0], predict(model, x)) for x in xs)
        detail = ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
        print(f"chainrule -> onnxruntime, {np.dtype(dtype)}: worst {max(worst.values()):.1e} ({detail})")


def from_pytorch(folder: Path) -> None:
    import torch

    import chainrule.onnx as cro
    from chainrule.train import predict

    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16, False), nn.Sigmoid(),
        nn.Linear(16, 16), nn.LeakyReLU(), nn.Linear(16, 16), nn.ELU(), nn.Linear(16, 16), nn.Softplus(),
        nn.Linear(16, 16), nn.GELU(approximate="tanh"), nn.Linear(16, 3), nn.Softmax(dim=-1),
    ).float().eval()  # fmt: skip
    for dynamo in (True, False):
        path = folder / f"torch_{dynamo}.onnx"
        options: dict[str, Any] = {"dynamo": dynamo, "input_names": ["x"], "output_names": ["y"]}
        if dynamo:
            options["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
        else:
            options["dynamic_axes"] = {"x": {0: "batch"}, "y": {0: "batch"}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.zeros(2, 6),), str(path), verbose=False, **options)
        model = cro.load(path)
        with torch.no_grad():
            xs = [torch.randn(m, 6) * 3 for m in (1, 7, 1024)]
            worst = max(error(predict(model, x.numpy()), net(x).numpy()) for x in xs)
        print(
            f"PyTorch ({'torch.export' if dynamo else 'legacy'} exporter) -> chainrule, float32: {worst:.1e}"
        )


def from_sklearn() -> None:
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier

    import chainrule.onnx as cro
    from chainrule.train import predict

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    for classes in (2, 3):
        y = (x[:, 0] + x[:, 1] > 0).astype(int) + (classes == 3) * (x[:, 2] > 0.5)
        for act in ("relu", "tanh", "logistic"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf = MLPClassifier(hidden_layer_sizes=(8, 6), activation=act, max_iter=50, random_state=0)
                clf.fit(x, y)
            worst = error(predict(cro.from_onnx(to_onnx(clf, x[:1])), x), clf.predict_proba(x))
            print(f"skl2onnx MLPClassifier ({classes} classes, {act}) -> chainrule: {worst:.1e}")


def timing(folder: Path, repeats: int) -> None:
    import chainrule.onnx as cro
    from chainrule.layers import mlp
    from chainrule.train import predict

    model = mlp(list(SIZES), "relu", "softmax", seed=0)
    cro.export(model, folder / "mlp.onnx")
    run = session(folder / "mlp.onnx")
    rng = np.random.default_rng(1)
    for m in (1, 1024):
        x = rng.random((m, SIZES[0]), dtype=np.float32)
        times: dict[str, list[float]] = {"chainrule": [], "onnxruntime": []}
        calls = {
            "chainrule": lambda x=x: predict(model, x),
            "onnxruntime": lambda x=x: run.run(None, {"input": x}),
        }
        loops = 200 if m == 1 else 10
        for _ in range(repeats):
            for name, call in calls.items():
                start = time.perf_counter()
                for _ in range(loops):
                    call()
                times[name].append((time.perf_counter() - start) / loops)
        ours, theirs = (statistics.median(times[k]) for k in ("chainrule", "onnxruntime"))
        print(
            f"784-256-128-10 inference, batch {m}: chainrule {ours * 1e6:.0f} us, onnxruntime "
            f"{theirs * 1e6:.0f} us, chainrule / onnxruntime = {ours / theirs:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    args = parser.parse_args()
    limit_threads(1)  # one thread for NumPy's BLAS; onnxruntime's session asks for one too
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        round_trip(folder)
        from_pytorch(folder)
        from_sklearn()
        timing(folder, 3 if args.quick else args.repeats)


if __name__ == "__main__":
    main()
