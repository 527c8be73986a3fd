"""The fuzzers and the memory bombs of ``fuzz/`` as tests (issue 14).

Each target runs a fixed, seeded number of mutated inputs in a subprocess of its
own, under ``RLIMIT_AS`` (1.5 GiB beyond the imports) and a per-input alarm; every
input must end in a chainrule error or a round trip. The budget (inputs per
target) keeps the whole file at about a minute on two cores; the longer run is
``python fuzz/run.py --iterations 20000`` (docs/guarantees.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUDGET = {  # inputs per target in CI: about 50 s in all on one quiet core, the bombs 5 s more
    "model-bytes": 6000,
    "model-forged": 6000,
    "checkpoint": 3000,
    "idx": 5000,
    "csv": 5000,
    "npy-npz": 6000,
    "spec": 5000,
    "download": 3000,
}

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and SIGALRM: Linux")


def _run(*args: str) -> dict:  # type: ignore[type-arg]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "run.py"), "--json", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert proc.stdout.strip(), proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == (1 if report["failed"] else 0), proc.stderr
    return report  # type: ignore[no-any-return]


@pytest.mark.parametrize("target", list(BUDGET))
def test_every_mutated_input_ends_in_a_chainrule_error_or_a_round_trip(target: str) -> None:
    report = _run("--targets", target, "--iterations", str(BUDGET[target]), "--seed", "0", "--seconds", "120")
    (result,) = report["report"]
    outcomes = result["outcomes"]
    failures = "\n".join(f"{f['error']}\n{f['traceback']}" for f in result["failures"][:3])
    assert not result["failures"], f"{target}: {len(result['failures'])} inputs escaped:\n{failures}"
    assert result["iterations"] == BUDGET[target], "the time cap cut the budget short"
    assert sum(outcomes.values()) == BUDGET[target]
    assert any(k.startswith("rejected: ") for k in outcomes)  # the mutations do break things
    if target != "model-bytes":  # a digest catches every byte-level edit of a model file
        assert outcomes.get("round-trip", 0) > 0, f"{target}: nothing was accepted: the fuzzer is too blunt"


def test_memory_bombs_are_refused_within_a_small_multiple_of_their_size() -> None:
    """Each bomb: refused with a chainrule error, peak memory <= 4 x its size + 2 MiB (tracemalloc)."""
    report = _run("--bombs")
    bad = [r for r in report["report"] if not r["ok"]]
    assert not bad, json.dumps(bad, indent=1)
    cases = {r["case"] for r in report["report"]}
    assert {
        "idx-gzip-count",
        "npz-bad-crc",
        "npy-header",
        "model-nested",
        "npz-label",
        "download-flood",
    } <= cases
