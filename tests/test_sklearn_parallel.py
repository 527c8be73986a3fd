"""Hyper-parameter searches over chainrule estimators in joblib's processes and on a Dask cluster.

The cluster is a real ``dask.distributed.LocalCluster``, two worker processes on
127.0.0.1, started and closed by the test. Every search is seeded, so its scores
equal those of the same search run in this process, one fit after another.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info

from chainrule.sklearn import MLPClassifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

X, Y = make_classification(n_samples=240, n_features=8, n_informative=5, random_state=0)
GRID = {"mlpclassifier__hidden_layer_sizes": [(8,), (16,)], "mlpclassifier__alpha": [1e-4, 1e-1]}


def _search(n_jobs: int) -> GridSearchCV:
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=40, random_state=0, threads=1))
    return GridSearchCV(pipe, GRID, cv=3, n_jobs=n_jobs)


@pytest.fixture(scope="module")
def sequential() -> GridSearchCV:
    return _search(n_jobs=1).fit(X, Y)


def _same_search(search: GridSearchCV, sequential: GridSearchCV) -> None:
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], sequential.cv_results_["mean_test_score"], rtol=1e-12
    )
    assert search.best_params_ == sequential.best_params_


def test_grid_search_in_joblib_processes(sequential: GridSearchCV) -> None:
    with joblib.parallel_backend("loky", n_jobs=2):  # two processes: the estimators travel by pickle
        search = _search(n_jobs=-1).fit(X, Y)
    _same_search(search, sequential)


def _probe() -> type[MLPClassifier]:
    """An MLPClassifier that notes, in each epoch, its process and the BLAS threads it runs with.

    Defined in a function so that cloudpickle ships the class itself to the workers.
    """

    class Probe(MLPClassifier):
        def _epoch(self, *args: Any, **kwargs: Any) -> None:
            self.pid_ = os.getpid()
            seen = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
            self.blas_threads_seen_ = sorted(set(getattr(self, "blas_threads_seen_", [])) | seen)
            super()._epoch(*args, **kwargs)

    return Probe


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """A LocalCluster of two worker processes on 127.0.0.1, one thread each, closed after the tests.

    Dask's nanny gives its worker processes OPENBLAS_NUM_THREADS=1 (and the like) by default;
    this cluster leaves the workers' BLAS at its own default, as a worker with several
    threads per job would have, so that the estimators' ``threads`` is what sets it.
    """
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    environ = {"MALLOC_TRIM_THRESHOLD_": 65536}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # the scheduler's HTTP server: loopback, a free port
            silence_logs=logging.ERROR,
        )
    with cluster, distributed.Client(cluster, timeout="60s") as client:
        yield client


def test_grid_search_on_a_dask_cluster(dask_client: Any, sequential: GridSearchCV) -> None:
    from distributed import get_task_stream

    with get_task_stream(dask_client) as tasks, joblib.parallel_backend("dask"):
        search = _search(n_jobs=-1).fit(X, Y)
    _same_search(search, sequential)
    workers = {task["worker"] for task in tasks.data}
    assert workers == set(dask_client.scheduler_info()["workers"])  # both workers took fits


def test_threads_are_set_inside_each_worker(dask_client: Any) -> None:
    probe = _probe()
    with joblib.parallel_backend("dask"):
        one = cross_validate(probe((8,), max_iter=5, threads=1), X, Y, cv=4, return_estimator=True)
        two = cross_validate(probe((8,), max_iter=5, threads=2), X, Y, cv=2, return_estimator=True)
    assert os.getpid() not in {est.pid_ for est in one["estimator"]}  # the fits ran in the worker processes
    assert all(est.blas_threads_seen_ == [1] for est in one["estimator"])
    assert all(
        est.blas_threads_seen_ == [2] for est in two["estimator"]
    )  # the estimator decides, not the worker
