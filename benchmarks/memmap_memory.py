"""Peak memory of iterating a memory-mapped .npy file in batches (issue 5).

Writes a float32 file of ``--mb`` megabytes to a temporary folder, then, in a
fresh subprocess each, measures the peak resident set size (``ru_maxrss``) and
peak traced Python allocations (``tracemalloc``) of:

- ``batches``: ``iterate_batches`` over the memory map, shuffled, batch 256;
- ``load_all``: ``np.array(memmap)``, reading the whole file (the baseline).

RSS also counts file pages mapped in while reading (shared, reclaimable page
cache); the traced allocations show what the process itself allocates. On a
200 MiB file: batches 3.4 MiB traced / 8 MiB RSS growth, load_all 200 / 200.
Nothing is timed.

    python benchmarks/memmap_memory.py --mb 400
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import resource, sys, tracemalloc
import numpy as np
from chainrule.data import iterate_batches
path, mode = sys.argv[1], sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
x = np.load(path, mmap_mode="r")
tracemalloc.start()
if mode == "batches":
    rows = sum(len(xb) for xb, _ in iterate_batches(x, batch_size=256, shuffle=True, rng=0))
else:
    rows = len(np.array(x))
_, peak = tracemalloc.get_traced_memory()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(rows, peak / 2**20, (rss - base) / 1024)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="file size in MiB")
    parser.add_argument("--features", type=int, default=1024)
    args = parser.parse_args()
    m = args.mb * 2**20 // (4 * args.features)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(m, args.features))
        for start in range(0, m, 4096):
            out[start : start + 4096] = 1.0
        out.flush()
        del out
        print(f"file: {m} x {args.features} float32 = {args.mb} MiB")
        print(f"{'mode':>10} {'rows':>8} {'traced peak MiB':>16} {'RSS growth MiB':>15}")
        for mode in ("batches", "load_all"):
            result = subprocess.run(
                [sys.executable, "-c", CHILD, str(path), mode], capture_output=True, text=True, check=True
            )
            rows, traced, rss = result.stdout.split()
            print(f"{mode:>10} {rows:>8} {float(traced):>16.1f} {float(rss):>15.1f}")


if __name__ == "__main__":
    main()
