"""What counting scans costs: the node with IDNODE_SCANS=true against itself with
IDNODE_SCANS=false, on the same machine at the same time.

    .venv/bin/python loadtests/bench_scans.py                  # granian, 3 runs

Both nodes run side by side on one PostgreSQL database (loaded like bench_resolve.py) and are
driven in turns with wrk (1 thread, 64 connections, medians of 5 turns per run) on two paths:

  scan     GET /{handle}: what a scanned QR code opens (a 302 to the identifier's URL value);
           with scans on, each is counted in memory and written in batches
  resolve  GET /api/handles/{handle}: the lean resolve path, which never counts scans

Prints each run and the median ratios on/off (target: >= 0.95 for both), and what one counted
scan costs in the process (timeit). Results go to loadtests/results/scans-<time>.json.
Quote figures only from a run that began on a quiet machine (load average < 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import timeit
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.registry.identifiers import ScanRecorder
from loadtests.bench_resolve import HOT, RESULTS, _load, _node, alternate

PATHS = {"scan": f"/{HOT}", "resolve": f"/api/handles/{HOT}"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", default="granian", choices=["granian", "uvicorn"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk turn pair")
    parser.add_argument("--rounds", type=int, default=5, help="turns per run (medians)")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--database", default="idnode_bench_scans")
    args = parser.parse_args()

    dsn = f"postgresql://postgres@127.0.0.1:5432/{args.database}"
    asyncio.run(_load(dsn, args.rows))
    work = Path(tempfile.mkdtemp(prefix="idnode-bench-scans-"))
    runs: list[dict[str, Any]] = []
    for run in range(args.runs):
        load = os.getloadavg()[0]
        on = _node(args.server, 1, dsn, work, "on", scans="true")
        off = _node(args.server, 1, dsn, work, "off", scans="false")
        measured: dict[str, Any] = {"load_avg": load}
        try:
            for name, path in PATHS.items():
                a, b = on.url + path, off.url + path
                assert httpx.get(a).status_code == httpx.get(b).status_code
                # Every other run the other goes first, so an order effect cancels out.
                if run % 2 == 0:
                    counted, uncounted = alternate(a, b, args.duration, rounds=args.rounds)
                else:
                    uncounted, counted = alternate(b, a, args.duration, rounds=args.rounds)
                measured[name] = {"on": counted, "off": uncounted,
                                  "ratio": counted["rps"] / uncounted["rps"]}  # fmt: skip
        finally:
            on.stop()
            off.stop()
        runs.append(measured)
        print(f"run {run + 1}/{args.runs} (load avg {load:.1f}): " + ", ".join(
            f"{name} on {m['on']['rps']:,.0f} / off {m['off']['rps']:,.0f} req/s = {m['ratio']:.3f}"
            for name, m in measured.items() if name in PATHS), flush=True)  # fmt: skip
    summary = {f"{name}_ratio_median": statistics.median(r[name]["ratio"] for r in runs)
               for name in PATHS}  # fmt: skip
    summary["add_ns"] = _add_cost()
    print(f"\nmedian ratios on/off: scan {summary['scan_ratio_median']:.3f}, resolve "
          f"{summary['resolve_ratio_median']:.3f} (target >= 0.95); one counted scan "
          f"{summary['add_ns']:.0f} ns in the process")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"scans-{stamp}.json"
    out.write_text(json.dumps({"args": vars(args), "runs": runs, "summary": summary}, indent=2))
    print(f"results: {out}")


def _add_cost(number: int = 1_000_000) -> float:
    """ScanRecorder.add, what a scan adds to a page hit: a dict increment and a clock read."""
    recorder = ScanRecorder(database=None, interval=3600, batch_size=10**9)  # type: ignore[arg-type]
    handles = [f"88.999.1/B{i:07d}" for i in range(1000)]
    best = min(timeit.repeat(lambda: recorder.add(handles[42]), number=number, repeat=3))
    return best / number * 1e9


if __name__ == "__main__":
    main()
