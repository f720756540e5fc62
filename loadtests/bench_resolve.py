"""Resolve benchmark: the node against ceilings measured in the same run, on one machine.

    .venv/bin/python loadtests/bench_resolve.py            # both servers, 3 runs, 1M rows

Loads 1,000,000 identifiers into PostgreSQL (once; reused while the table holds them), then
for each server (granian, uvicorn) with the same worker count starts the node and the ceiling
apps of loadtests/ceiling.py and drives each with wrk (1 thread, 64 connections):

  hot       one handle, cache on               vs  raw ASGI app returning the same bytes
            (node and ceiling measured in turns, 3 rounds each: see ``alternate``)
  half      p99 at half the hot rate (hey, fixed rate)
  cold      uniform over 1M, cache off         vs  raw ASGI + asyncpg primary-key lookup
  zipf      Zipf s=1.1 over 1M, 100k-entry cache, measured after a warm-up draw from the
            same distribution (hit ratio from /api/v1/node/cache)
  notfound  10,000 unknown handles, repeatedly (store lookups counted by the node)
  recursive Zipf through a second node whose upstream is the first (also after a warm-up)

Prints medians of the runs with ratios, writes loadtests/results/resolve-<time>.json and a
PNG chart beside it. Needs wrk and hey (apt-get install wrk hey) and PostgreSQL on
127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.machine import check_quiet, pinned, snapshot
from loadtests.node import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "loadtests" / "results"
ADMIN = "bench-operator-token"
PREFIX = "88.999.1"
HOT = f"{PREFIX}/B0000001"
WARM_UP_LIMIT = 120  # seconds; the Zipf warm-up normally ends sooner, after 400,000 answers


def main() -> None:
    args = _arguments()
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install wrk hey")
    dsn = f"postgresql://postgres@127.0.0.1:5432/{args.database}"
    asyncio.run(_load(dsn, args.rows))
    work = Path(tempfile.mkdtemp(prefix="idnode-bench-"))
    scripts = _scripts(work, args.rows)
    runs: list[dict[str, Any]] = []
    for run in range(args.runs):
        for server in args.servers:
            print(f"--- run {run + 1}/{args.runs}, {server}, {args.workers} worker(s)", flush=True)
            runs.append(_one_run(server, args, dsn, work, scripts))
    summary = _summarise(runs, args)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"resolve-{stamp}.json"
    out.write_text(json.dumps({"args": vars(args), "runs": runs, "summary": summary}, indent=2))
    _chart(summary, out.with_suffix(".png"))
    print(f"\nresults: {out} and {out.with_suffix('.png')}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", type=lambda s: s.split(","), default=["granian", "uvicorn"])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk measurement")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database", default="idnode_bench")
    parser.add_argument(
        "--hot-and-cold",
        action="store_true",
        help="only hot, half-rate p99 and cold (skip the Zipf, not-found and recursive runs)",
    )
    return parser.parse_args()


# --- data ---


async def _load(dsn: str, rows: int) -> None:
    admin = await asyncpg.connect(dsn.rsplit("/", 1)[0] + "/postgres")
    exists = await admin.fetchval(
        "SELECT 1 FROM pg_database WHERE datname = $1", dsn.rsplit("/", 1)[1]
    )
    if not exists:
        await admin.execute(f'CREATE DATABASE "{dsn.rsplit("/", 1)[1]}"')
    await admin.close()
    env = {
        **os.environ,
        "IDNODE_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://"),
    }
    subprocess.run([str(BIN / "idnode"), "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    conn = await asyncpg.connect(dsn)
    have = await conn.fetchval("SELECT count(*) FROM handles WHERE prefix = $1", PREFIX)
    if have == rows:
        print(f"reusing {rows:,} identifiers in {dsn}")
        await conn.close()
        return
    print(f"loading {rows:,} identifiers into {dsn} ...", flush=True)
    started = time.monotonic()
    await conn.execute("DELETE FROM handles WHERE prefix = $1", PREFIX)
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    for start in range(0, rows, 50_000):
        batch = [_row(i, stamp, now) for i in range(start, min(rows, start + 50_000))]
        await conn.copy_records_to_table(
            "handles",
            records=batch,
            columns=["handle", "prefix", "values", "created_at", "updated_at"],
        )
    await conn.execute("ANALYZE handles")
    await conn.close()
    print(f"loaded in {time.monotonic() - started:.0f} s")


def _row(i: int, stamp: str, now: datetime) -> tuple[Any, ...]:
    handle = f"{PREFIX}/B{i:07d}"
    values = [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": f"https://trace.example.com/b/{i}"},
         "ttl": 86400, "timestamp": stamp},
        {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": {
            "handle": f"{PREFIX}/ADMIN", "index": 300, "permissions": "011111110011"}},
         "ttl": 86400, "timestamp": stamp},
    ]  # fmt: skip
    return (handle, PREFIX, json.dumps(values), now, now)


def _scripts(work: Path, rows: int) -> dict[str, Path]:
    """wrk Lua scripts choosing a path per request."""
    rng = np.random.default_rng(7)
    ranks = np.arange(1, rows + 1, dtype=np.float64)
    cdf = np.cumsum(ranks**-1.1)
    cdf /= cdf[-1]
    permutation = rng.permutation(rows)  # popular handles spread over the key space
    paths = {}
    # Two independent draws: one warms the cache to its steady state, the other is measured,
    # long enough that a run never wraps around into requests it has already made.
    for name, count in (("zipf_warm", 400_000), ("zipf", 1_000_000)):
        sample = permutation[np.searchsorted(cdf, rng.random(count))]
        paths[name] = work / f"{name}.lua"
        # The warm-up stops once it has had an answer to each of its requests.
        stop = (
            "local answered = 0\nresponse = function()\n  answered = answered + 1\n"
            "  if answered >= #ids then wrk.thread:stop() end\nend\n"
            if name == "zipf_warm"
            else ""
        )
        paths[name].write_text(
            "local ids = {" + ",".join(str(int(i)) for i in sample) + "}\n"
            "local n = 0\n"
            "request = function()\n  n = n % #ids + 1\n"
            f'  return wrk.format("GET", string.format("/api/handles/{PREFIX}/B%07d", ids[n]))\nend\n'
            + stop
        )
    uniform = work / "uniform.lua"
    uniform.write_text(
        "math.randomseed(11)\nrequest = function()\n"
        f'  return wrk.format("GET", string.format("/api/handles/{PREFIX}/B%07d", math.random(0, {rows - 1})))\nend\n'
    )
    notfound = work / "notfound.lua"
    notfound.write_text(
        "math.randomseed(13)\nrequest = function()\n"
        f'  return wrk.format("GET", string.format("/api/handles/{PREFIX}/NOPE%05d", math.random(1, 10000)))\nend\n'
    )
    return {**paths, "uniform": uniform, "notfound": notfound}


# --- processes ---


class Process:
    def __init__(self, command: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        with log.open("w") as out:
            self.process = subprocess.Popen(
                pinned(command, "server"),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=log.parent,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command} exited:\n{log.read_text()}")
            try:
                httpx.get(self.url + "/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"{command} did not start:\n{log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _node(server: str, workers: int, dsn: str, work: Path, name: str, **settings: str) -> Process:
    port = free_port()
    env = {
        **os.environ,
        "IDNODE_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://"),
        "IDNODE_ADMIN_TOKEN": ADMIN,
        **{f"IDNODE_{k.upper()}": v for k, v in settings.items()},
    }
    command = [str(BIN / "idnode"), "serve", "--server", server, "--workers", str(workers),
               "--port", str(port), "--no-migrate"]  # fmt: skip
    if "database_url" in settings:
        command.remove("--no-migrate")
    node = Process(command, env, port, work / f"{name}-{server}.log")
    return node


def _ceiling(
    server: str, workers: int, factory: str, env_extra: dict[str, str], work: Path
) -> Process:
    port = free_port()
    env = {**os.environ, **env_extra, "PYTHONPATH": str(ROOT)}
    target = f"loadtests.ceiling:{factory}"
    if server == "granian":
        command = [str(BIN / "granian"), "--interface", "asgi", "--factory", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(workers), "--log-level", "warning", target]  # fmt: skip
    else:
        command = [str(BIN / "uvicorn"), "--factory", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", str(workers), "--log-level", "warning", target]  # fmt: skip
    return Process(command, env, port, work / f"ceiling-{factory}-{server}.log")


# --- load generators ---

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, duration: int, script: Path | None = None) -> dict[str, float]:
    command = ["wrk", "-t1", "-c64", f"-d{duration}s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    out = subprocess.run(
        pinned(command, "generator"), capture_output=True, text=True, check=True
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)) for p in ("50", "99")}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rate, "p50_ms": latency["50"], "p99_ms": latency["99"],
            "non2xx": float(errors.group(1)) if errors else 0.0}  # fmt: skip


def alternate(
    first: str, second: str, duration: int, script: Path | None = None, rounds: int = 3
) -> tuple[dict[str, float], dict[str, float]]:
    """Two servers (both running) measured in turns, each figure the median of ``rounds``.

    On a shared, noisy machine the load from elsewhere changes from minute to minute; taking
    turns exposes the node and its ceiling to the same conditions, so their ratio holds.
    """
    slice_ = max(3, duration // 2)
    wrk(first, 2, script)  # warm up
    wrk(second, 2, script)
    pairs = [(wrk(first, slice_, script), wrk(second, slice_, script)) for _ in range(rounds)]
    return _median_of([a for a, _ in pairs]), _median_of([b for _, b in pairs])


def _median_of(measurements: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(m[k] for m in measurements) for k in measurements[0]}


def _ms(match: re.Match[str] | None) -> float:
    assert match is not None
    return float(match.group(1)) * _UNITS[match.group(2)]


def hey_fixed_rate(url: str, rate: float, duration: int) -> dict[str, float]:
    connections = 32
    command = [
        "hey",
        "-z",
        f"{duration}s",
        "-c",
        str(connections),
        "-q",
        f"{rate / connections:.1f}",
        url,
    ]
    out = subprocess.run(
        pinned(command, "generator"), capture_output=True, text=True, check=True
    ).stdout
    p50 = float(re.search(r"50%+ in ([\d.]+) secs", out).group(1)) * 1e3  # type: ignore[union-attr]
    p99 = float(re.search(r"99%+ in ([\d.]+) secs", out).group(1)) * 1e3  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "target_rps": rate}


def _cache(node: Process) -> dict[str, float]:
    response = httpx.get(
        f"{node.url}/api/v1/node/cache", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    return dict(response.json())


# --- one run ---


def _one_run(
    server: str, args: argparse.Namespace, dsn: str, work: Path, scripts: dict[str, Path]
) -> dict[str, Any]:
    d, w = args.duration, args.workers
    result: dict[str, Any] = {"server": server, "before": check_quiet(f"{server} run")}
    hot_url = f"/api/handles/{HOT}"

    node = _node(server, w, dsn, work, "node", cache_max_entries="100000")
    ceiling = None
    try:
        body = httpx.get(node.url + hot_url).content
        (work / "hot.json").write_bytes(body)
        ceiling = _ceiling(server, w, "bytes_app", {"CEILING_BODY_FILE": str(work / "hot.json")}, work)  # fmt: skip
        result["hot"], result["hot_ceiling"] = alternate(node.url + hot_url, ceiling.url + hot_url, d)  # fmt: skip
        ceiling.stop()
        ceiling = None
        result["half"] = hey_fixed_rate(node.url + hot_url, result["hot"]["rps"] / 2, d)
        if args.hot_and_cold:
            return _cold(server, args, dsn, work, scripts, result)
        wrk(node.url, WARM_UP_LIMIT, scripts["zipf_warm"])
        before = _cache(node)
        result["zipf"] = wrk(node.url, d, scripts["zipf"])
        after = _cache(node)
        result["zipf"]["hit_ratio"] = _ratio(before, after)
        before = _cache(node)
        result["notfound"] = wrk(node.url, d, scripts["notfound"])
        after = _cache(node)
        result["notfound"]["store_lookups"] = after["loads"] - before["loads"]
        result["notfound"]["requests"] = sum(
            after[k] - before[k] for k in ("hits", "negativeHits", "misses")
        )
        upstream_work = work / f"upstream-{server}"
        upstream_work.mkdir(exist_ok=True)
        edge = _node(server, w, dsn, upstream_work, "edge", node_prefix="86.1", upstream_url=node.url,
                     cache_max_entries="100000",
                     database_url=f"sqlite+aiosqlite:///{upstream_work / 'edge.db'}")  # fmt: skip
        try:
            wrk(edge.url, WARM_UP_LIMIT, scripts["zipf_warm"])
            before = _cache(edge)
            result["recursive"] = wrk(edge.url, d, scripts["zipf"])
            result["recursive"]["hit_ratio"] = _ratio(before, _cache(edge))
        finally:
            edge.stop()
    finally:
        node.stop()
        if ceiling is not None:
            ceiling.stop()
    return _cold(server, args, dsn, work, scripts, result)


def _cold(
    server: str,
    args: argparse.Namespace,
    dsn: str,
    work: Path,
    scripts: dict[str, Path],
    result: dict[str, Any],
) -> dict[str, Any]:
    d, w = args.duration, args.workers
    cold = _node(server, w, dsn, work, "cold", cache_max_entries="0")
    lookup = _ceiling(server, w, "lookup_app", {"CEILING_DSN": dsn}, work)
    try:
        result["cold"], result["cold_ceiling"] = alternate(cold.url, lookup.url, d, scripts["uniform"])  # fmt: skip
    finally:
        cold.stop()
        lookup.stop()
    result["after"] = snapshot()
    print(f"load average {result['before']['load']} -> {result['after']['load']}", flush=True)
    _print_run(result)
    return result


def _ratio(before: dict[str, float], after: dict[str, float]) -> float:
    hits = after["hits"] - before["hits"]
    answered = hits + after["misses"] - before["misses"]
    return hits / answered if answered else 0.0


SCENARIOS = ("hot", "hot_ceiling", "half", "cold", "cold_ceiling", "zipf", "notfound", "recursive")


def _print_run(r: dict[str, Any]) -> None:
    for name in SCENARIOS:
        if name not in r:
            continue
        m = r[name]
        hits = f"  hit ratio {m['hit_ratio']:.3f}" if "hit_ratio" in m else ""
        print(
            f"  {name:13s} {m['rps']:10,.0f} req/s  p50 {m['p50_ms']:6.2f} ms  p99 {m['p99_ms']:6.2f} ms{hits}"
        )


# --- summary ---


def _summarise(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for server in args.servers:
        mine = [r for r in runs if r["server"] == server]

        def med(scenario: str, field: str, mine: list[dict[str, Any]] = mine) -> float:
            return statistics.median(r[scenario][field] for r in mine)

        present = [n for n in SCENARIOS if all(n in r for r in mine)]
        s = {name: {f: med(name, f) for f in ("rps", "p50_ms", "p99_ms")} for name in present}
        s["ratios"] = {
            "hot_vs_ceiling": s["hot"]["rps"] / s["hot_ceiling"]["rps"],
            "cold_vs_ceiling": s["cold"]["rps"] / s["cold_ceiling"]["rps"],
        }
        if "zipf" in s:
            s["ratios"]["zipf_vs_hot"] = s["zipf"]["rps"] / s["hot"]["rps"]
            s["ratios"]["recursive_vs_hot"] = s["recursive"]["rps"] / s["hot"]["rps"]
            s["zipf"]["hit_ratio"] = med("zipf", "hit_ratio")
            s["recursive"]["hit_ratio"] = med("recursive", "hit_ratio")
            s["notfound"]["store_lookups"] = med("notfound", "store_lookups")
            s["notfound"]["requests"] = med("notfound", "requests")
        s["busy_runs"] = sum(r["before"]["busy"] for r in mine)
        summary[server] = s
    _print_summary(summary, args)
    return summary


def _print_summary(summary: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\nmedians of {args.runs} runs, {args.workers} worker(s), wrk -t1 -c64 -d{args.duration}s"
    )
    for server, s in summary.items():
        r = s["ratios"]
        print(f"\n{server}")
        print(
            f"  hot        {s['hot']['rps']:9,.0f} req/s   ceiling {s['hot_ceiling']['rps']:9,.0f}   ratio {r['hot_vs_ceiling']:.2f} (target >= 0.8, >= 20,000 req/s)"
        )
        print(
            f"  half rate  p99 {s['half']['p99_ms']:.2f} ms at {s['half']['rps']:,.0f} req/s (target <= 5 ms)"
        )
        print(
            f"  cold       {s['cold']['rps']:9,.0f} req/s   ceiling {s['cold_ceiling']['rps']:9,.0f}   ratio {r['cold_vs_ceiling']:.2f} (target >= 0.9)"
        )
        print(f"  runs begun on a busy machine: {s['busy_runs']} (quote none of them)")
        if "zipf" not in s:
            continue
        print(
            f"  zipf       {s['zipf']['rps']:9,.0f} req/s   hit ratio {s['zipf']['hit_ratio']:.3f}   vs hot {r['zipf_vs_hot']:.2f} (targets >= 0.90, >= 0.6)"
        )
        print(
            f"  notfound   {s['notfound']['rps']:9,.0f} req/s   store lookups {s['notfound']['store_lookups']:,.0f} for {s['notfound']['requests']:,.0f} requests over 10,000 handles"
        )
        print(f"  recursive  {s['recursive']['rps']:9,.0f} req/s   hit ratio {s['recursive']['hit_ratio']:.3f}   vs hot {r['recursive_vs_hot']:.2f}")  # fmt: skip


def _chart(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in SCENARIOS if n != "half" and all(n in s for s in summary.values())]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(1, len(summary))
    for i, (server, s) in enumerate(summary.items()):
        ax.bar(
            [n + i * width for n in range(len(names))],
            [s[n]["rps"] for n in names],
            width,
            label=server,
        )
    ax.set_xticks([n + width * (len(summary) - 1) / 2 for n in range(len(names))], names)
    ax.set_ylabel("requests/s (median)")
    ax.set_title("idnode resolve benchmark")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
