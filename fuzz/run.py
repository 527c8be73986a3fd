"""Seeded, bounded fuzzing of every reader and loader of chainrule, under a memory limit.

    python fuzz/run.py                                  # CI's budget: a few hundred inputs per target
    python fuzz/run.py --iterations 20000 --seconds 3600   # the longer run (docs/guarantees.md)
    python fuzz/run.py --targets csv,idx --seed 7       # some targets, another seed
    python fuzz/run.py --bombs                          # the memory bombs, each measured

Every input must end in one of two ways: chainrule raises one of its own errors
(``ChainruleError``: ``SerializationError``, ``DataError``, ``LimitError``, ...),
or it accepts the input and the result round-trips (written and read back
unchanged). Anything else is a failure: its target, iteration and seed are
printed and its input kept under ``--keep``, and the exit status is 1. The whole
process runs under ``RLIMIT_AS`` (``--memory-mib`` above what the imports took),
and each input under a 20-second alarm, so a bomb or a hang fails instead of
swapping or stalling the machine.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads: the fuzzer is single-threaded
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from fuzz.bombs import run_bombs
from fuzz.targets import TARGETS

ALARM_SECONDS = 20


class Hang(Exception):  # noqa: N818
    """An input took longer than :data:`ALARM_SECONDS`."""


def _alarm(signum: int, frame: object) -> None:
    raise Hang(f"one input ran for more than {ALARM_SECONDS} s")


def limit_memory(mib: int) -> None:
    """Cap the address space at what the process uses now plus ``mib`` MiB (Linux)."""
    try:
        import resource

        status = Path("/proc/self/status").read_text()
        used_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmSize:")))
    except (ImportError, OSError, StopIteration):  # not Linux: no limit
        return
    cap = used_kib * 1024 + mib * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def fuzz(name: str, iterations: int, seconds: float, seed: int, work: Path, keep: Path) -> dict[str, object]:
    """Run one target; the counts of its outcomes and its failures."""
    target = TARGETS[name](work)
    rng = np.random.default_rng([seed, sorted(TARGETS).index(name)])
    counts: collections.Counter[str] = collections.Counter()
    failures = []
    started = time.monotonic()
    try:
        for i in range(iterations):
            if time.monotonic() - started > seconds:
                break
            signal.alarm(ALARM_SECONDS)
            try:
                counts[target.one(rng)] += 1
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                counts["FAILED"] += 1
                kept = _keep(target.last, keep / f"{name}-{seed}-{i}")
                failures.append(
                    {
                        "iteration": i,
                        "error": f"{type(exc).__name__}: {exc}"[:300],
                        "input": kept,
                        "traceback": traceback.format_exc(limit=-4),
                    }
                )
            finally:
                signal.alarm(0)
    finally:
        target.close()
    runs = sum(counts.values())
    return {"target": name, "iterations": runs, "seconds": round(time.monotonic() - started, 1),
            "outcomes": dict(sorted(counts.items())), "failures": failures}  # fmt: skip


def _keep(path: Path | None, dest: Path) -> str | None:
    if path is None or not path.exists():
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        shutil.copytree(path, dest, dirs_exist_ok=True)
    else:
        shutil.copy(path, dest)
    return str(dest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {list(TARGETS)}")
    parser.add_argument("--iterations", type=int, default=300, help="inputs per target (default 300)")
    parser.add_argument("--seconds", type=float, default=600.0, help="time cap per target (default 600)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--memory-mib", type=int, default=1536, help="address space allowed beyond the imports"
    )
    parser.add_argument("--keep", default=None, help="folder for failing inputs (default: a temporary one)")
    parser.add_argument("--bombs", action="store_true", help="run the memory bombs instead of the targets")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = parser.parse_args(argv)
    unknown = set(args.targets.split(",")) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; choose from {list(TARGETS)}")
    warnings.simplefilter("ignore")  # overflow warnings of forged weights are expected noise here
    limit_memory(args.memory_mib)
    signal.signal(signal.SIGALRM, _alarm)
    keep = Path(args.keep or tempfile.mkdtemp(prefix="chainrule-fuzz-failures-"))
    with tempfile.TemporaryDirectory(prefix="chainrule-fuzz-") as tmp:
        if args.bombs:
            report: list[dict[str, object]] = run_bombs(Path(tmp))
            failed = sum(not r["ok"] for r in report)
        else:
            report = [
                fuzz(name, args.iterations, args.seconds, args.seed, Path(tmp), keep)
                for name in args.targets.split(",")
            ]
            failed = sum(len(r["failures"]) for r in report)  # type: ignore[arg-type]
    if args.json:
        print(json.dumps({"seed": args.seed, "report": report, "failed": failed}))
    else:
        _table(report, args.bombs)
    return 1 if failed else 0


def _table(report: list[dict[str, object]], bombs: bool) -> None:
    if bombs:
        for r in report:
            print(f"{r['case']:<20} {r['size']:>10} B  peak {r['peak']:>10} B  bound {r['bound']:>10} B  "
                  f"{'ok ' if r['ok'] else 'BAD'}  {r['outcome']}")  # fmt: skip
        return
    for r in report:
        outcomes = ", ".join(f"{k} {v}" for k, v in r["outcomes"].items())  # type: ignore[attr-defined]
        print(f"{r['target']:<14} {r['iterations']:>6} inputs  {r['seconds']:>7} s  {outcomes}")
        for failure in r["failures"]:  # type: ignore[attr-defined]
            print(
                f"    FAILED at iteration {failure['iteration']}: {failure['error']} "
                f"(input: {failure['input']})"
            )
            print("      " + failure["traceback"].replace("\n", "\n      "))


if __name__ == "__main__":
    sys.exit(main())
