"""Tests for chainrule.sklearn: sklearn's MLP weight for weight, what it lacks, saving, errors.

scikit-learn's own ``MLPClassifier``/``MLPRegressor`` are the oracle for the
algorithm (initial weights, batches, shuffles, L2 term, stopping rule);
PyTorch is the oracle for dropout.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import numpy as np
import pytest
import sklearn
import torch
from sklearn import neural_network
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import recall_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_info, threadpool_limits

from chainrule import serialize
from chainrule.errors import BackendError, ConfigError, DataError, SerializationError, ShapeError
from chainrule.sklearn import MLPClassifier, MLPRegressor
from chainrule.sklearn._network import initial_weights, with_output

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RNG = np.random.RandomState(0)
X = RNG.normal(size=(90, 5))
TARGETS = {
    "softmax": (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5),  # 3 classes
    "logistic": (X[:, 0] * X[:, 1] > 0).astype(int),  # 2 classes: one logistic unit
    "multilabel": np.c_[X[:, 0] > 0, X[:, 1] > 0, X[:, 2] > 0].astype(int),
    "regression": np.sin(X[:, 0]) + 0.5 * X[:, 1],
}
PLAIN_SGD = dict(
    hidden_layer_sizes=(7, 4),
    activation="tanh",
    solver="sgd",
    momentum=0.0,
    nesterovs_momentum=False,
    learning_rate="constant",
    learning_rate_init=0.1,
    batch_size=16,  # 90 rows: five batches of 16 and one of 10
    shuffle=False,
    random_state=3,
)
SKLEARN_WEIGHTS = tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 7)


def _pair(target: str, **params: Any) -> tuple[Any, Any]:
    """sklearn's estimator and ours, configured alike."""
    if target == "regression":
        return neural_network.MLPRegressor(**params), MLPRegressor(**params)
    return neural_network.MLPClassifier(**params), MLPClassifier(**params)


def _max_rel_diff(theirs: Any, ours: Any) -> float:
    arrays = zip(theirs.coefs_ + theirs.intercepts_, ours.coefs_ + ours.intercepts_, strict=True)
    return max(float(np.abs(a - b).max() / np.abs(a).max()) for a, b in arrays)


# ------------------------------------------------------- sklearn's algorithm, weight for weight
@pytest.mark.parametrize(
    "extra",
    [
        {"alpha": 0.0},
        {"alpha": 0.05},
        {"alpha": 0.05, "shuffle": True},
        {"alpha": 0.01, "activation": "logistic", "learning_rate": "invscaling", "power_t": 0.3},
        {"alpha": 0.01, "activation": "relu", "weighted": True},
    ],
    ids=["alpha=0", "alpha>0", "shuffled", "logistic-invscaling", "relu-sample_weight"],
)
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_weights_equal_sklearns_epoch_by_epoch(target: str, extra: dict[str, Any]) -> None:
    extra = dict(extra)
    weighted = extra.pop("weighted", False)
    if weighted and not SKLEARN_WEIGHTS:
        pytest.skip("sklearn's MLP takes sample_weight from 1.7 on")
    y = TARGETS[target]
    sw = np.random.RandomState(1).randint(0, 4, len(X)).astype(float) if weighted else None
    theirs, ours = _pair(target, **{**PLAIN_SGD, **extra})
    more = {} if target == "regression" else {"classes": np.unique(y) if y.ndim == 1 else np.arange(3)}
    for epoch in range(8):
        theirs.partial_fit(X, y, sample_weight=sw, **more)
        ours.partial_fit(X, y, sample_weight=sw, **more)
        assert _max_rel_diff(theirs, ours) < 1e-12, f"epoch {epoch + 1}"  # float64 round-off
    assert ours.out_activation_ == theirs.out_activation_
    if not weighted:  # with weights sklearn averages batch losses by rows, chainrule by weight
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(ours.predict_proba(X) if target != "regression" else ours.predict(X), (
        theirs.predict_proba(X) if target != "regression" else theirs.predict(X)
    ), rtol=1e-10)  # fmt: skip
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X)) if target != "regression" else None


@pytest.mark.parametrize(
    ("target", "extra"),
    [
        ("softmax", {"early_stopping": True, "shuffle": True, "alpha": 0.01, "n_iter_no_change": 3}),
        ("logistic", {"early_stopping": True, "alpha": 0.01, "tol": 1e-3, "n_iter_no_change": 2}),
        ("regression", {"tol": 1e-3, "n_iter_no_change": 2, "alpha": 1e-3}),
        ("softmax", {"learning_rate": "adaptive", "tol": 0.05, "n_iter_no_change": 1, "shuffle": True}),
    ],
    ids=["early-stopping-shuffled", "early-stopping-stratified", "tol", "adaptive"],
)
def test_fit_stops_where_sklearn_stops_with_its_weights(target: str, extra: dict[str, Any]) -> None:
    y = TARGETS[target]
    theirs, ours = _pair(target, **{**PLAIN_SGD, "max_iter": 60, **extra})
    theirs.fit(X, y)
    ours.fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 60  # the stopping rule fired at the same epoch
    assert _max_rel_diff(theirs, ours) < 1e-11
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-11)
    if extra.get("early_stopping"):  # the same validation rows, scores and restored best weights
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-12)
        assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, rel=1e-12)
    else:
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-12)


def test_initial_weights_are_sklearns_glorot_draws() -> None:
    # sklearn: r = sqrt(6 / (fan_in + fan_out)) (2 for logistic), coef then intercept, layer by layer
    rs = np.random.RandomState(7)
    weights = initial_weights([5, 3, 2], "sigmoid", np.random.RandomState(7))
    r1, r2 = np.sqrt(2 / 8), np.sqrt(2 / 5)
    expected = [rs.uniform(-r1, r1, (5, 3)), rs.uniform(-r1, r1, 3), rs.uniform(-r2, r2, (3, 2))]
    np.testing.assert_array_equal(weights[0][0], expected[0])
    np.testing.assert_array_equal(weights[0][1], expected[1])
    np.testing.assert_array_equal(weights[1][0], expected[2])


def test_squared_error_is_trained_as_half_sse_and_reported_per_output_by_sklearn() -> None:
    y2 = np.c_[np.sin(X[:, 0]), X[:, 1] ** 2]  # k = 2 outputs
    theirs, ours = _pair("regression", **PLAIN_SGD, alpha=0.0)  # the L2 term is not divided by k
    theirs.partial_fit(X, y2)
    ours.partial_fit(X, y2)
    assert _max_rel_diff(theirs, ours) < 1e-12  # the same gradient: delta[L] = a[L] - y
    assert ours.loss_curve_[0] == pytest.approx(2 * theirs.loss_curve_[0], rel=1e-12)  # sklearn reports / k


# ------------------------------------------------------------------------------ dropout
def test_dropout_is_inverted_dropout_on_the_hidden_layer_against_torch() -> None:
    p, lr = 0.4, 0.1
    y = TARGETS["softmax"]
    est = MLPClassifier((6,), "tanh", solver="sgd", momentum=0.0, learning_rate_init=lr, batch_size=90)
    est.set_params(alpha=0.0, shuffle=False, random_state=5, dropout=p)
    est.partial_fit(X, y, classes=[0, 1, 2])
    # the same draws: sklearn's initial weights, then the dropout generator's seed, then its mask
    rs = np.random.RandomState(5)
    (c1, b1), (c2, b2) = initial_weights([5, 6, 3], "tanh", rs)
    seed = int(rs.randint(np.iinfo(np.int32).max))
    keep = np.random.default_rng(seed).random((90, 6), dtype=np.float32) >= p
    w = [torch.tensor(a, requires_grad=True) for a in (c1, b1, c2, b2)]
    hidden = torch.tanh(torch.tensor(X) @ w[0] + w[1]) * torch.tensor(keep / (1 - p))
    torch.nn.functional.cross_entropy(hidden @ w[2] + w[3], torch.tensor(y)).backward()
    for ours, t in zip(est.coefs_ + est.intercepts_, [w[0], w[2], w[1], w[3]], strict=True):
        np.testing.assert_allclose(ours, (t - lr * t.grad).detach().numpy(), rtol=1e-12, atol=1e-15)
    plain = clone(est).set_params(dropout=0.0).partial_fit(X, y, classes=[0, 1, 2])
    assert not np.allclose(plain.coefs_[0], est.coefs_[0], rtol=1e-6)  # without the masks: other weights
    # predicting switches dropout off: the deterministic network a[L] = softmax(tanh(X c1 + b1) c2 + b2)
    z = np.tanh(X @ est.coefs_[0] + est.intercepts_[0]) @ est.coefs_[1] + est.intercepts_[1]
    expected = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(est.predict_proba(X), expected / expected.sum(1, keepdims=True), rtol=1e-12)
    assert est._model.training  # the training mode is restored after predicting


# ------------------------------------------------------------------ sample and class weights
def test_integer_sample_weights_equal_repeated_rows() -> None:
    y = TARGETS["softmax"]
    w = np.random.RandomState(2).randint(0, 4, len(X))
    params = {**PLAIN_SGD, "batch_size": "auto", "max_iter": 15, "alpha": 0.01}  # one batch: the same steps
    weighted = MLPClassifier(**params).fit(X, y, sample_weight=w)
    repeated = MLPClassifier(**params).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    unweighted = MLPClassifier(**params).fit(X, y)
    assert _max_rel_diff(repeated, weighted) < 1e-11
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-11)
    assert _max_rel_diff(repeated, unweighted) > 1e-3  # the weights matter


def test_sample_weight_in_score() -> None:
    est = MLPRegressor((5,), max_iter=5, random_state=0).fit(X, TARGETS["regression"])
    w = np.r_[np.ones(45), np.zeros(45)]
    assert est.score(X, TARGETS["regression"], sample_weight=w) == pytest.approx(
        est.score(X[:45], TARGETS["regression"][:45]), rel=1e-12
    )


def test_balanced_class_weight_raises_minority_recall() -> None:
    Xi, yi = make_classification(
        n_samples=600, n_features=10, n_informative=4, weights=[0.93, 0.07], class_sep=0.6, random_state=0
    )
    Xtr, Xte, ytr, yte = train_test_split(Xi, yi, test_size=0.5, random_state=0, stratify=yi)
    recall = {}
    for cw in (None, "balanced"):
        est = MLPClassifier((16,), random_state=0, class_weight=cw).fit(Xtr, ytr)
        recall[cw] = recall_score(yte, est.predict(Xte))
    assert recall["balanced"] >= recall[None] + 0.25, recall  # measured: 0.10 -> 0.48


def test_a_class_weight_dict_is_the_same_as_sample_weights_per_class() -> None:
    y = TARGETS["logistic"]
    params = {**PLAIN_SGD, "max_iter": 3}
    by_class = MLPClassifier(**params, class_weight={1: 5.0}).fit(X, y, sample_weight=np.full(90, 2.0))
    by_row = MLPClassifier(**params).fit(X, y, sample_weight=np.where(y == 1, 10.0, 2.0))
    for a, b in zip(by_class.coefs_, by_row.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------- losses and outputs
@pytest.mark.parametrize("loss", list(MLPClassifier._losses))
@pytest.mark.parametrize("target", ["softmax", "logistic"])
def test_every_classifier_loss_learns(loss: str, target: str) -> None:
    y = TARGETS[target]
    est = MLPClassifier((16,), loss=loss, max_iter=200, learning_rate_init=0.01, random_state=0).fit(X, y)
    proba = est.predict_proba(X)
    assert proba.shape == (90, len(np.unique(y)))
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    assert est.score(X, y) > 0.8, (loss, target, est.score(X, y))
    units = est.coefs_[-1].shape[1]
    softmax_over_all = loss in ("cross_entropy", "softmax_cross_entropy")
    assert units == (len(est.classes_) if target == "softmax" or softmax_over_all else 1)


@pytest.mark.parametrize("loss", list(MLPRegressor._losses))
def test_every_regressor_loss_learns(loss: str) -> None:
    est = MLPRegressor((16,), loss=loss, max_iter=300, learning_rate_init=0.01, random_state=0)
    assert est.fit(X, TARGETS["regression"]).score(X, TARGETS["regression"]) > 0.9


def test_binary_cross_entropy_on_three_classes_is_one_vs_rest() -> None:
    y = TARGETS["softmax"]
    est = MLPClassifier((8,), loss="binary_cross_entropy", max_iter=20, random_state=0).fit(X, y)
    z = est.decision_function(X)
    p = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(est.predict_proba(X), p / p.sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(est.predict_log_proba(X), np.log(est.predict_proba(X)), rtol=1e-12)


def test_multilabel_and_decision_functions() -> None:
    y = TARGETS["multilabel"]
    est = MLPClassifier((16,), max_iter=300, learning_rate_init=0.01, random_state=0).fit(X, y)
    assert est.predict(X).shape == (90, 3) and set(np.unique(est.predict(X))) <= {0, 1}
    np.testing.assert_array_equal(est.predict(X), (est.decision_function(X) > 0).astype(int))
    binary = MLPClassifier((4,), max_iter=5, random_state=0).fit(
        X, np.where(TARGETS["logistic"], "yes", "no")
    )
    z = binary.decision_function(X)
    assert z.shape == (90,)
    np.testing.assert_array_equal(binary.predict(X), np.where(z > 0, "yes", "no"))


def test_log_probabilities_stay_finite_where_probabilities_underflow() -> None:
    est = MLPClassifier((4,), max_iter=2, random_state=0).fit(X, TARGETS["logistic"])
    est.coefs_[-1][...] *= 1e4  # logits of about +-1e4: exp underflows to 0
    assert np.isfinite(est.predict_log_proba(X)).all()
    assert (est.predict_proba(X) == 0).any()


def test_float32_inputs_train_a_float32_network() -> None:
    est = MLPClassifier((4,), max_iter=3, random_state=0).fit(X.astype(np.float32), TARGETS["logistic"])
    assert est.coefs_[0].dtype == np.float32 and est.predict_proba(X).dtype == np.float32


def test_sparse_inputs_are_densified_per_batch() -> None:
    from scipy import sparse

    y = TARGETS["softmax"]
    dense = MLPClassifier(**{**PLAIN_SGD, "shuffle": True, "max_iter": 4}).fit(X, y)
    csr = MLPClassifier(**{**PLAIN_SGD, "shuffle": True, "max_iter": 4}).fit(sparse.csr_matrix(X), y)
    assert _max_rel_diff(dense, csr) < 1e-13
    np.testing.assert_allclose(csr.predict_proba(sparse.csc_matrix(X)), dense.predict_proba(X), rtol=1e-12)


# ------------------------------------------------------------------ optimizers and options
@pytest.mark.parametrize(
    "options",
    [
        {"solver": "adamw", "optimizer_options": {"weight_decay": 0.1}},
        {"solver": "rmsprop"},
        {"solver": "sgd", "momentum": 0.9, "nesterovs_momentum": True},
    ],
)
def test_chainrule_optimizers_by_name(options: dict[str, Any]) -> None:
    est = MLPClassifier((8,), max_iter=50, random_state=0, **options).fit(X, TARGETS["logistic"])
    assert est._optimizer.__class__.__name__.lower() == options["solver"]
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    if "optimizer_options" in options:
        assert est._optimizer.weight_decay == 0.1


def test_momentum_equals_sklearns_for_a_constant_learning_rate() -> None:
    y = TARGETS["softmax"]
    params = {**PLAIN_SGD, "momentum": 0.9, "nesterovs_momentum": True, "max_iter": 6}
    theirs, ours = _pair("softmax", **params)
    assert _max_rel_diff(theirs.fit(X, y), ours.fit(X, y)) < 1e-10


def test_verbose_prints_sklearns_lines(capsys: pytest.CaptureFixture[str]) -> None:
    MLPRegressor((3,), max_iter=2, verbose=True, early_stopping=True, random_state=0).fit(
        X, TARGETS["regression"]
    )
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Validation score: " in out


def _blas_threads() -> set[int]:
    return {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


def test_threads_set_blas_threads_during_fit_and_predict(monkeypatch: pytest.MonkeyPatch) -> None:
    from chainrule.sklearn import _base

    seen: list[set[int]] = []
    step = _base.Trainer.train_step

    def spy(self: Any, *args: Any, **kwargs: Any) -> float:
        seen.append(_blas_threads())
        return step(self, *args, **kwargs)

    monkeypatch.setattr(_base.Trainer, "train_step", spy)
    monkeypatch.setitem(_base.blas._state, "default", None)  # no set_threads default from elsewhere
    big = np.random.RandomState(0).normal(size=(400, 300))  # products of 2 * 200 * 300 * 200 = 2.4e7 FLOPs
    with threadpool_limits(limits=2, user_api="blas"):
        est = MLPRegressor((200,), max_iter=1, random_state=0, threads=1).fit(big, big[:, 0])
        assert seen and all(s == {1} for s in seen) and _blas_threads() == {2}  # restored after fit
        seen.clear()
        est.set_params(threads=2, warm_start=True).fit(big, big[:, 0])
        assert seen and all(s == {2} for s in seen)
        seen.clear()
        # None: chainrule's choice (chainrule.backend.threads), one thread for small products
        MLPClassifier((4,), max_iter=1, random_state=0).fit(X, TARGETS["logistic"])
        assert seen and all(s == {1} for s in seen) and _blas_threads() == {2}
        forward = est._model.forward
        during: list[set[int]] = []
        monkeypatch.setattr(
            est._model, "forward", lambda *a, **k: during.append(_blas_threads()) or forward(*a, **k)
        )
        est.set_params(threads=1).predict(big)
        assert during and all(s == {1} for s in during)


def test_gpu_device_without_cupy_says_so() -> None:
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed: the GPU test below covers device='gpu'")
    except ImportError:
        pass
    with pytest.raises(BackendError, match=r"device 'gpu' requested, but CuPy is not installed"):
        MLPClassifier((4,), max_iter=1, device="gpu").fit(X, TARGETS["logistic"])


@pytest.mark.gpu
def test_gpu_fit_equals_cpu_fit() -> None:
    cupy = pytest.importorskip("cupy")
    if cupy.cuda.runtime.getDeviceCount() < 1:
        pytest.skip("no CUDA GPU")
    params = {**PLAIN_SGD, "shuffle": True, "early_stopping": True, "max_iter": 5}
    cpu = MLPClassifier(**params).fit(X, TARGETS["softmax"])
    gpu = MLPClassifier(**params, device="gpu").fit(X, TARGETS["softmax"])
    assert isinstance(gpu.coefs_[0], np.ndarray)  # back on the host after fit
    assert _max_rel_diff(cpu, gpu) < 1e-10


# ---------------------------------------------------------------------- continuing a fit
def test_partial_fit_continues_and_warm_start_keeps_the_weights() -> None:
    y = TARGETS["softmax"]
    est = MLPClassifier((5,), random_state=0)
    est.partial_fit(X[:40], y[:40], classes=[0, 1, 2]).partial_fit(X[40:], y[40:])
    assert est.n_iter_ == 1 and est.t_ == 90 and len(est.loss_curve_) == 2
    warm = MLPClassifier((5,), max_iter=3, warm_start=True, random_state=0).fit(X, y)
    first = warm.coefs_[0].copy()
    warm.fit(X, y)
    assert len(warm.loss_curve_) == 6 and not np.array_equal(warm.coefs_[0], first)
    cold = MLPClassifier((5,), max_iter=3, random_state=0).fit(X, y)
    np.testing.assert_array_equal(cold.fit(X, y).coefs_[0], first)  # without warm_start: anew
    warm.set_params(early_stopping=True, max_iter=2).fit(X, y)  # a warm start may switch stopping rules
    assert len(warm.validation_scores_) == 2 and len(warm.loss_curve_) == 8


def test_coefs_are_views_and_can_be_set() -> None:
    est = MLPRegressor((3,), max_iter=2, random_state=0).fit(X, TARGETS["regression"])
    W1 = est._model.dense_layers()[0].W.data
    assert est.coefs_[0].shape == (5, 3) and np.shares_memory(est.coefs_[0], W1)  # the transpose of W[1]
    est.coefs_ = [np.zeros((5, 3)), np.ones((3, 1))]
    est.intercepts_ = [np.zeros(3), np.full(1, 0.5)]
    np.testing.assert_array_equal(est.predict(X), 0.5)  # tanh/relu(0) = 0: only b[2] is left


# --------------------------------------------------------------------- saving and pickling
def test_save_and_load_in_safetensors(tmp_path: Any) -> None:
    y = np.array(["cat", "dog", "emu"])[TARGETS["softmax"]]
    est = MLPClassifier((6,), max_iter=5, random_state=0, class_weight={"dog": 2.0}).fit(X, y)
    path = tmp_path / "clf.safetensors"
    est.save(path)
    assert not path.read_bytes().startswith(b"\x80")  # not a pickle: a safetensors header
    loaded = MLPClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(loaded.classes_, est.classes_)
    assert loaded.get_params() == est.get_params() and loaded.loss_curve_ == est.loss_curve_
    model = serialize.load(path)  # any chainrule tool reads it: the network with its softmax
    np.testing.assert_allclose(model(X).numpy(), est.predict_proba(X), rtol=1e-12)
    loaded.partial_fit(X, y)  # it continues (with a fresh optimizer)
    with pytest.raises(SerializationError, match=r"holds a 'MLPClassifier' estimator, not a MLPRegressor"):
        MLPRegressor.load(path)


def test_save_keeps_feature_names_and_multi_output_regression(tmp_path: Any) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=list("abcde"))
    y2 = np.c_[TARGETS["regression"], X[:, 3]]
    est = MLPRegressor((4,), max_iter=3, random_state=0).fit(frame, y2)
    est.save(tmp_path / "reg.safetensors")
    loaded = MLPRegressor.load(tmp_path / "reg.safetensors")
    assert list(loaded.feature_names_in_) == list("abcde")
    np.testing.assert_array_equal(loaded.predict(frame), est.predict(frame))


def test_an_estimator_pickles_in_memory() -> None:
    est = MLPClassifier((5,), max_iter=3, random_state=0, dropout=0.2).fit(X, TARGETS["softmax"])
    est.partial_fit(X, TARGETS["softmax"])  # a Trainer with traced steps is cached: not pickled
    copy = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(copy.predict_proba(X), est.predict_proba(X))
    for a, b in zip(copy._optimizer.params, copy._model.parameters(), strict=True):
        assert a is b  # the optimizer still steps the network's own parameters
    copy.partial_fit(X, TARGETS["softmax"])
    est.partial_fit(X, TARGETS["softmax"])
    np.testing.assert_allclose(copy.coefs_[0], est.coefs_[0], rtol=1e-12)


def test_with_output_needs_a_dense_layer_last() -> None:
    from chainrule.layers import Activation, Dense, Sequential

    with pytest.raises(TypeError, match=r"the last layer is Activation\('relu'\), not a Dense layer"):
        with_output(Sequential(Dense(2, 2), Activation("relu")), "softmax")


def test_load_refuses_a_model_that_does_not_end_in_dense(tmp_path: Any) -> None:
    from chainrule.layers import Activation, Dense, Sequential

    serialize.save(
        tmp_path / "m.safetensors", Sequential(Dense(2, 2), Activation("relu")), {"estimator": "MLPRegressor"}
    )
    with pytest.raises(SerializationError, match=r"the network does not end in a Dense layer"):
        MLPRegressor.load(tmp_path / "m.safetensors")


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"hidden_layer_sizes": (4, 0)},
            r"hidden_layer_sizes must be a positive int or a sequence of positive ints",
        ),
        ({"activation": "swish"}, r"activation must be one of \['logistic', "),
        (
            {"solver": "lbfgs"},
            r"solver must be one of \['adam', 'adamw', 'rmsprop', 'sgd'\] \(lbfgs is not offered",
        ),
        ({"alpha": -1.0}, r"alpha must be a number >= 0, got -1\.0"),
        ({"batch_size": 0}, r"batch_size must be 'auto' or an int >= 1, got 0"),
        (
            {"learning_rate": "cosine"},
            r"learning_rate must be one of \['constant', 'invscaling', 'adaptive'\]",
        ),
        ({"learning_rate_init": 0.0}, r"learning_rate_init must be a number > 0, got 0\.0"),
        ({"max_iter": 2.5}, r"max_iter must be an int >= 1, got 2\.5"),
        ({"momentum": 1.5}, r"momentum must be a number in \[0, 1\], got 1\.5"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be a number in \(0, 1\), got 1\.0"),
        ({"n_iter_no_change": 0}, r"n_iter_no_change must be an int >= 1 or numpy\.inf, got 0"),
        ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\), got 1\.0"),
        ({"device": "tpu"}, r"device must be one of \['cpu', 'gpu'\], got 'tpu'"),
        ({"threads": 0}, r"threads must be None \(chosen per epoch\) or an int >= 1, got 0"),
        ({"optimizer_options": [1]}, r"optimizer_options must be None or a dict of optimizer keywords"),
        ({"shuffle": "yes"}, r"shuffle must be True or False, got 'yes'"),
        ({"epsilon": float("nan")}, r"epsilon must be a number > 0, got nan"),
        ({"loss": "hinge"}, r"loss must be one of \['log_loss', 'cross_entropy'"),
        ({"class_weight": "auto"}, r"class_weight must be None, 'balanced' or a dict, got 'auto'"),
        (
            {"optimizer_options": {"gamma": 1}},
            r"SGD: bad option in .*got an unexpected keyword argument 'gamma'",
        ),
    ],
)
def test_bad_parameters_are_named_at_fit(params: dict[str, Any], message: str) -> None:
    est = MLPClassifier(**{"solver": "sgd", "max_iter": 1, **params})
    with pytest.raises(ConfigError, match=message):
        est.fit(X, TARGETS["logistic"])


def test_regressor_names_its_losses() -> None:
    with pytest.raises(ConfigError, match=r"MLPRegressor: loss must be one of \['squared_error', 'sse'"):
        MLPRegressor(loss="poisson").fit(X, TARGETS["regression"])


def test_target_errors() -> None:
    y = TARGETS["softmax"]
    with pytest.raises(DataError, match=r"needs samples of at least 2 classes, got 1 class: \[4\]"):
        MLPClassifier().fit(X, np.full(90, 4))
    with pytest.raises(DataError, match=r"targets of type 'multiclass-multioutput' are not supported"):
        MLPClassifier().fit(X, np.c_[y, y])
    with pytest.raises(
        ConfigError, match=r"loss='cross_entropy' is a softmax over classes, but y is multi-label"
    ):
        MLPClassifier(loss="cross_entropy").fit(X, TARGETS["multilabel"])
    with pytest.raises(ConfigError, match=r"class_weight needs single-output class labels, y is multi-label"):
        MLPClassifier(class_weight="balanced").fit(X, TARGETS["multilabel"])


def test_partial_fit_errors() -> None:
    y = TARGETS["softmax"]
    with pytest.raises(ConfigError, match=r"classes must be passed on the first call to partial_fit"):
        MLPClassifier().partial_fit(X, y)
    est = MLPClassifier((3,)).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ConfigError, match=r"classes=\[0, 1\] is not the same as on the first call"):
        est.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(DataError, match=r"`y` has classes not in `self\.classes_` \[0 1 2\]: \[7\]"):
        est.partial_fit(X, np.r_[y[:-1], 7])
    with pytest.raises(DataError, match=r"y is multilabel-indicator, but the model was fitted on multiclass"):
        est.partial_fit(X, TARGETS["multilabel"])
    with pytest.raises(ConfigError, match=r"partial_fit does not support early_stopping=True"):
        est.set_params(early_stopping=True).partial_fit(X, y)
    with pytest.raises(ConfigError, match=r"class_weight='balanced' is not supported by partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])
    MLPClassifier(class_weight={0: 3.0}).partial_fit(X, y, classes=[0, 1, 2])  # a dict is fine


def test_warm_start_errors() -> None:
    y = TARGETS["softmax"]
    est = MLPClassifier((3,), max_iter=1, warm_start=True).fit(X, y)
    with pytest.raises(DataError, match=r"warm_start can only be used where `y` has the same classes"):
        est.fit(X, np.r_[y[:-1], 7])
    with pytest.raises(
        ConfigError, match=r"has layer sizes \[5, 3, 3\], but these parameters and data need \[5, 4, 3\]"
    ):
        est.set_params(hidden_layer_sizes=(4,)).fit(X, y)


def test_weight_and_split_errors() -> None:
    y = TARGETS["logistic"]
    with pytest.raises(
        ShapeError, match=r"MLPClassifier: sample_weight: expected sample weights of shape \(90,\)"
    ):
        MLPClassifier().fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(DataError, match=r"sample weights must be finite and >= 0; weight\[0\] = -1\.0"):
        MLPClassifier().fit(X, y, sample_weight=np.r_[-1.0, np.ones(89)])
    with pytest.raises(DataError, match=r"the sample weights sum to 0 \(every weight is zero\)"):
        MLPClassifier().fit(X, y, sample_weight=np.zeros(90))
    with pytest.raises(
        DataError, match=r"the validation set is too small \(1 row\); increase validation_fraction"
    ):
        MLPRegressor(early_stopping=True).fit(X[:10], TARGETS["regression"][:10])
    scalar = MLPRegressor((3,), max_iter=2, random_state=0)  # a number is every row's weight
    by_row = clone(scalar).fit(X, TARGETS["regression"], np.full(90, 3.0))
    assert _max_rel_diff(by_row, scalar.fit(X, TARGETS["regression"], 3.0)) == 0.0


def test_coefs_errors() -> None:
    with pytest.raises(NotFittedError, match=r"This MLPRegressor instance is not fitted yet"):
        MLPRegressor().coefs_ = []
    assert not hasattr(MLPRegressor(), "coefs_")
    est = MLPRegressor((3,), max_iter=1).fit(X, TARGETS["regression"])
    with pytest.raises(ShapeError, match=r"MLPRegressor\.coefs_: expected 2 arrays, got 1"):
        est.coefs_ = [np.zeros((5, 3))]
    with pytest.raises(
        ShapeError, match=r"MLPRegressor\.intercepts_\[1\]: expected shape \(1,\), got \(2,\)"
    ):
        est.intercepts_ = [np.zeros(3), np.zeros(2)]


def test_warnings_sklearn_gives() -> None:
    with pytest.warns(UserWarning, match=r"Got `batch_size` less than 1 or larger than sample size"):
        MLPRegressor((3,), batch_size=500, max_iter=1).fit(X, TARGETS["regression"])
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(2\) reached"):
        MLPRegressor((3,), max_iter=2).fit(X, TARGETS["regression"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        MLPRegressor((3,), max_iter=2).partial_fit(X, TARGETS["regression"])  # one epoch is no failure


def test_repr_shows_changed_parameters() -> None:
    assert repr(MLPClassifier((8,), dropout=0.2)) == "MLPClassifier(dropout=0.2, hidden_layer_sizes=(8,))"
