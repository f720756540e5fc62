"""What metrics cost the resolve hot path: the node with IDNODE_METRICS=true against itself
with IDNODE_METRICS=false, on the same machine at the same time.

    .venv/bin/python loadtests/bench_metrics.py                 # granian, 3 runs
    .venv/bin/python loadtests/bench_metrics.py --workers 2     # multiprocess mode

Both nodes run side by side on one PostgreSQL database (loaded like bench_resolve.py, with
fewer rows: the hot path touches one identifier) and are driven in turns with wrk (1 thread,
64 connections, 5 turns each per run, medians), the ``hot`` scenario of bench_resolve.py: one
cached identifier on the lean path. Metrics on also has /metrics scraped every second, as
Prometheus or the dashboard would. Prints each run and the median ratio on/off (target:
>= 0.95), plus what one request id and one counted resolution cost in the process, measured
with timeit. Results go to loadtests/results/metrics-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import timeit
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.datastructures import State

from app.api.fast import FastResolve
from app.logs import RequestIds
from loadtests.bench_resolve import HOT, RESULTS, _load, _node, alternate
from resolver.cache import ResolverCache
from resolver.engine import Resolver
from resolver.identifier import parse_handle
from resolver.record import Record
from resolver.stats import HIT, ResolveStats, perf_counter
from resolver.values import HandleValue


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", default="granian", choices=["granian", "uvicorn"])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk turn pair")
    parser.add_argument("--rounds", type=int, default=5, help="turns per run (medians)")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--database", default="idnode_bench_metrics")
    args = parser.parse_args()

    dsn = f"postgresql://postgres@127.0.0.1:5432/{args.database}"
    asyncio.run(_load(dsn, args.rows))
    work = Path(tempfile.mkdtemp(prefix="idnode-bench-metrics-"))
    url = f"/api/handles/{HOT}"
    d, rounds = args.duration, args.rounds
    runs = []
    for run in range(args.runs):
        load = os.getloadavg()[0]
        on = _node(args.server, args.workers, dsn, work, "on", metrics="true")
        off = _node(args.server, args.workers, dsn, work, "off", metrics="false")
        scraping = _Scraper(on.url + "/metrics")
        try:
            assert httpx.get(on.url + url).content == httpx.get(off.url + url).content
            scraping.start()
            # Every other run the other goes first, so an order effect cancels out.
            if run % 2 == 0:
                with_metrics, without = alternate(on.url + url, off.url + url, d, rounds=rounds)
            else:
                without, with_metrics = alternate(off.url + url, on.url + url, d, rounds=rounds)
        finally:
            scraping.stop()
            on.stop()
            off.stop()
        ratio = with_metrics["rps"] / without["rps"]
        runs.append({"on": with_metrics, "off": without, "ratio": ratio, "load_avg": load,
                     "scrapes": scraping.count})  # fmt: skip
        print(f"run {run + 1}/{args.runs}: metrics on {with_metrics['rps']:,.0f} req/s, "
              f"off {without['rps']:,.0f} req/s, ratio {ratio:.3f} "
              f"(p99 {with_metrics['p99_ms']:.2f} / {without['p99_ms']:.2f} ms, "
              f"load avg {load:.1f}, {scraping.count} scrapes)", flush=True)  # fmt: skip
    costs = {**_in_process_costs(), **asyncio.run(_fast_path_costs())}
    summary = {
        "ratio_median": statistics.median(r["ratio"] for r in runs),
        "on_rps_median": statistics.median(r["on"]["rps"] for r in runs),
        "off_rps_median": statistics.median(r["off"]["rps"] for r in runs),
        **costs,
    }
    print(f"\nmedian ratio on/off {summary['ratio_median']:.3f} (target >= 0.95); "
          f"on {summary['on_rps_median']:,.0f} req/s, off {summary['off_rps_median']:,.0f} req/s")  # fmt: skip
    print(f"in process: request id {costs['request_id_ns']:.0f} ns, counted hit "
          f"{costs['observe_ns']:.0f} ns; one request at the 'off' rate takes "
          f"{1e9 / summary['off_rps_median']:,.0f} ns")  # fmt: skip
    print(f"lean path cache hit in process (no server): metrics on {costs['fast_on_ns']:,.0f} ns, "
          f"off {costs['fast_off_ns']:,.0f} ns; at the 'off' rate that bounds the ratio at "
          f"{_bound(costs, summary):.3f}")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"metrics-{stamp}.json"
    out.write_text(json.dumps({"args": vars(args), "runs": runs, "summary": summary}, indent=2))
    print(f"results: {out}")


class _Scraper:
    """GET /metrics once a second in a thread, like a Prometheus server or the dashboard."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            httpx.get(self.url, timeout=5).raise_for_status()
            self.count += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


async def _fast_path_costs(number: int = 100_000) -> dict[str, float]:
    """One cached resolve through the lean path, called directly (no server, no socket):
    the CPU time metrics add to a hit, without the machine's noise."""

    class Store:
        async def fetch(self, handle: str) -> Record | None:
            return Record(handle, (HandleValue(1, "URL", "string", "https://example.com/"),))

    async def ignore(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "GET", "query_string": b"", "headers": [],
             "path": f"/api/handles/{HOT}"}  # fmt: skip
    leans = {}
    for name, stats in (("fast_on_ns", ResolveStats()), ("fast_off_ns", None)):
        resolver = Resolver(Store(), node_prefix="88.999", cache=ResolverCache(), stats=stats)
        await resolver.resolve(parse_handle(HOT))  # cached from now on
        state = State()
        state.node = SimpleNamespace(resolver=resolver)
        leans[name] = FastResolve(state, RequestIds())
    # In turns, best of 7 each, in CPU time (process_time leaves out the time other jobs on
    # the machine hold the CPU): the least disturbed figure is the closest to the true cost.
    costs = dict.fromkeys(leans, float("inf"))
    for _ in range(7):
        for name, lean in leans.items():
            started = time.process_time()
            for _ in range(number):
                await lean(scope, ignore)
            costs[name] = min(costs[name], (time.process_time() - started) / number * 1e9)
    return costs


def _bound(costs: dict[str, float], summary: dict[str, Any]) -> float:
    per_request = 1e9 / summary["off_rps_median"]
    return per_request / (per_request + costs["fast_on_ns"] - costs["fast_off_ns"])


def _in_process_costs(number: int = 1_000_000) -> dict[str, Any]:
    ids, stats = RequestIds(), ResolveStats()
    take = min(timeit.repeat(lambda: ids.take(None), number=number, repeat=3)) / number
    observe = min(
        timeit.repeat(
            lambda: stats.observe(HIT, perf_counter(), "88.999.1"), number=number, repeat=3
        )
    ) / number  # fmt: skip
    return {"request_id_ns": take * 1e9, "observe_ns": observe * 1e9}


if __name__ == "__main__":
    main()
