"""Load check of ``chainrule playground`` (issue 18): many tabs, one server, step-to-page latency.

Starts one playground server (``python -m chainrule playground``, its own process,
127.0.0.1, a free port) and simulates browser tabs in this process: each tab
creates its session (``POST /api/sessions``, moons, 2-8-8-2 tanh, Adam, batch 16),
opens its WebSocket stream, asks for a run of ``--steps`` steps and reads updates
until the run ends. Every update lists the wall time at which each of its steps
ended on the server; the latency of a step is the time its update was received
here minus that time (one machine, one clock). Tabs that only watch receive the
same messages, so a tab's latency is what a page sees.

Phases, side by side in one run: 1 tab as fast as it trains (the baseline),
``--tabs`` tabs as fast as they train (the stress case: 2 cores shared by every
tab's training), and ``--tabs`` tabs at 30 steps per second (people watching).
Printed per phase: steps, steps per second (all tabs), the p50 / p95 / p99 / max
latency of a step's update, and the 20-tab p95 as a multiple of the 1-tab p95.

Bounded: loopback only, at most ``--steps`` steps per tab, every phase stops after
``--deadline`` seconds, sessions are closed and the server is stopped at the end.

Run: ``python benchmarks/playground_load.py`` (about 30 s on 2 cores), ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import websockets

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {"dataset": "moons", "hidden": [8, 8], "activation": "tanh", "optimizer": "adam", "batch_size": 16}


def start_server(max_sessions: int) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainrule", "playground", "--port", "0", "--max-sessions", str(max_sessions)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
    if match is None:
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, match.group(1)


def http(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:  # loopback only
        text = r.read()
    return json.loads(text) if text else None


async def tab(base: str, steps: int, speed: int, deadline: float) -> dict[str, Any]:
    """One simulated tab: session, stream, one run; the latency of every step's update."""
    state = await asyncio.to_thread(http, "POST", f"{base}/api/sessions", CONFIG)
    sid = state["id"]
    latencies: list[float] = []
    done = 0
    ws_url = base.replace("http://", "ws://") + f"/api/sessions/{sid}/stream"
    async with websockets.connect(ws_url, origin=base, max_size=2**22) as ws:  # type: ignore[arg-type]
        await asyncio.to_thread(
            http, "POST", f"{base}/api/sessions/{sid}/train", {"steps": steps, "speed": speed}
        )
        while time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            now = time.time()
            msg = json.loads(raw)
            if msg["type"] == "update":
                latencies += [now - t for t in msg["ended"]]
                done += len(msg["steps"])
            elif msg["type"] in ("paused", "error"):
                break
    await asyncio.to_thread(http, "DELETE", f"{base}/api/sessions/{sid}")
    return {"latencies": latencies, "steps": done}


async def phase(base: str, tabs: int, steps: int, speed: int, seconds: float) -> dict[str, Any]:
    start = time.monotonic()
    results = await asyncio.gather(*[tab(base, steps, speed, start + seconds) for _ in range(tabs)])
    elapsed = time.monotonic() - start
    lat = sorted(x for r in results for x in r["latencies"])
    total = sum(r["steps"] for r in results)

    def q(p: float) -> float:
        return 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    return {
        "tabs": tabs,
        "speed": speed,
        "steps": total,
        "complete": all(r["steps"] == steps for r in results),
        "steps_per_s": total / elapsed,
        "p50": q(0.50),
        "p95": q(0.95),
        "p99": q(0.99),
        "max": 1000 * lat[-1] if lat else float("nan"),
        "mean": 1000 * statistics.fmean(lat) if lat else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=1500, help="steps per tab in each phase")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds each phase may take at most")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 tabs, 200 steps")
    args = parser.parse_args()
    if args.quick:
        args.tabs, args.steps, args.deadline = 4, 200, 20.0
    proc, base = start_server(max(64, args.tabs + 1))
    try:
        # warm the server (imports, the first trace) outside the timing
        http("POST", f"{base}/api/sessions", CONFIG)
        rows = []
        for tabs, speed, steps in ((1, 0, args.steps), (args.tabs, 0, args.steps), (args.tabs, 30, 150)):
            rows.append(asyncio.run(phase(base, tabs, steps, speed, args.deadline)))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"playground load: {os.cpu_count()} cores, python {sys.version.split()[0]}, one server process")
    print(
        f"{'tabs':>4} {'speed':>9} {'steps':>7} {'all done':>8} {'steps/s':>8} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}"
    )
    for r in rows:
        speed = "max" if r["speed"] == 0 else f"{r['speed']}/s"
        print(
            f"{r['tabs']:>4} {speed:>9} {r['steps']:>7} {r['complete']!s:>8} {r['steps_per_s']:>8.0f} "
            f"{r['p50']:>7.1f} {r['p95']:>7.1f} {r['p99']:>7.1f} {r['max']:>7.1f}"
        )
    ratio = rows[1]["p95"] / rows[0]["p95"]
    print(f"p95 with {args.tabs} tabs / p95 with 1 tab (both at full speed): {ratio:.2f}")


if __name__ == "__main__":
    main()
