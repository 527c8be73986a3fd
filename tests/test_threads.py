"""Tests of :mod:`chainrule.backend.threads`: BLAS threads that fit the work and the machine."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from chainrule.backend import threads
from chainrule.errors import ConfigError
from chainrule.layers import mlp
from chainrule.train import Trainer, evaluate


class _Meter(threads.CpuMeter):
    def __init__(self, busy: float) -> None:
        super().__init__()
        self.busy = busy

    def others(self) -> float:
        return self.busy


def _blas_threads() -> int:
    """Threads of the BLAS NumPy's matrix products run on (Numba's import loads SciPy's too)."""
    mine = [i for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]]
    return max(i["num_threads"] for i in mine or threadpool_info())


def test_small_products_take_one_thread_large_ones_every_core_unless_busy() -> None:
    assert threads.choose(threads.MIN_FLOPS / 2, _Meter(0.0)) == 1
    assert threads.choose(threads.MIN_FLOPS * 10, _Meter(0.0)) == threads.cores()
    assert threads.choose(threads.MIN_FLOPS * 10, _Meter(threads.BUSY + 0.5)) == 1
    assert threads.choose(threads.MIN_FLOPS / 2, _Meter(0.0), n=3) == 3  # the caller's choice wins


def test_a_default_and_an_enclosing_limit_override_the_choice() -> None:
    try:
        threads.set_threads(2)
        assert threads.choose(1.0, _Meter(0.0)) == 2
    finally:
        threads.set_threads(None)
    with threads.limit(1):
        assert threads.choose(threads.MIN_FLOPS * 10, _Meter(0.0)) == 1  # an evaluation inside an epoch
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="threads must be a positive integer or None"):
            threads.set_threads(bad)  # type: ignore[arg-type]


def test_a_limit_applies_inside_the_block_and_restores_the_setting() -> None:
    before = _blas_threads()
    with threads.limit(1):
        assert _blas_threads() == 1
    assert _blas_threads() == before


def test_limits_of_two_threads_that_end_out_of_order_restore_the_setting() -> None:
    """BLAS has one count per process: the first block sets it and restores it; no setting leaks."""
    import threading

    before = _blas_threads()
    entered, release_first = threading.Event(), threading.Event()
    seen: list[int] = []

    def first() -> None:
        with threads.limit(1):
            entered.set()
            release_first.wait(10)
            seen.append(_blas_threads())

    worker = threading.Thread(target=first)
    worker.start()
    assert entered.wait(10)
    with threads.limit(1):  # a second thread's block begins while the first's runs ...
        assert _blas_threads() == 1  # ... under the first block's count
        assert threads.choose(threads.MIN_FLOPS * 10, _Meter(0.0)) == 1  # its own block's choice
        release_first.set()
        worker.join(10)  # ... and ends after it
        assert _blas_threads() == before  # the first block restored the process's setting at its end
    assert seen == [1]
    assert _blas_threads() == before
    with threads.limit(1):  # the count can be set again, from this thread
        assert _blas_threads() == 1
    assert _blas_threads() == before
    assert threads.choose(threads.MIN_FLOPS * 10, _Meter(0.0)) == threads.cores()  # no block left open


def test_the_meter_sees_another_busy_process() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("the meter reads /proc/stat on Linux")
    meter = threads.CpuMeter()
    meter.begin()
    time.sleep(0.5)
    meter.end()
    background = meter.others()  # other processes' work while this one sleeps
    if background > 0.3:
        pytest.skip(f"the machine is busy ({background:.1f} cores of other work): no known load to measure")
    spin = "import time\nend = time.monotonic() + 1.0\nwhile time.monotonic() < end: pass\n"
    child = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.1)
        meter.begin()
        time.sleep(0.6)  # the child keeps one core busy; this process sleeps
        meter.end()
    finally:
        child.wait(timeout=10)
    assert meter.others() > threads.BUSY
    meter.begin()
    own = np.random.default_rng(0).random((300, 300))
    end = time.monotonic() + 0.5
    while time.monotonic() < end:  # this process's own work is not "other" work
        own @ own
    meter.end()
    assert meter.others() < threads.BUSY
    meter.begin()
    meter.end()  # too short to measure: the last measurement stands
    assert meter.others() < threads.BUSY


@pytest.mark.parametrize(
    ("sizes", "batch", "expected"), [([64, 32, 10], 32, 1), ([784, 1024, 10], 256, None)]
)
def test_the_trainer_runs_each_epoch_with_the_threads_it_chose(
    sizes: list[int], batch: int, expected: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    trainer = Trainer(mlp(sizes, "relu", "softmax", seed=0), "cross_entropy", batch_size=batch)
    trainer._cpu = _Meter(0.0)  # an idle machine
    step = trainer.train_step

    def watched(*args: Any, **kwargs: Any) -> float:
        seen.append(_blas_threads())
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_step", watched)
    rng = np.random.default_rng(0)
    x = rng.random((2 * batch, sizes[0]), dtype=np.float32)
    before = _blas_threads()
    trainer.fit(x, rng.integers(0, 10, 2 * batch), 1, verbose=0)
    want = threads.cores() if expected is None else expected
    assert seen and set(seen) == {want} and trainer.blas_threads == want
    assert _blas_threads() == before  # the process's own setting is back after the epoch
    trainer._cpu = _Meter(5.0)  # a busy machine: one thread, whatever the size
    seen.clear()
    trainer.fit(x, rng.integers(0, 10, 2 * batch), 2, verbose=0)
    assert set(seen) == {1}


def test_the_threads_option_wins_and_evaluation_chooses_for_its_own_batches() -> None:
    x = np.random.default_rng(0).random((64, 8), dtype=np.float32)
    y = (x[:, 0] > 0.5).astype(int)
    trainer = Trainer(mlp([8, 4, 2], "relu", "softmax"), "cross_entropy", threads=2)
    trainer.fit(x, y, 1, verbose=0)
    assert trainer.blas_threads == 2
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        Trainer(mlp([8, 2]), "mse", threads=0)
    assert evaluate(trainer.model, x, y)["accuracy"] >= 0.0  # a small model: one thread, no error
