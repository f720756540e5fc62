"""Resolve benchmark: the node against ceilings measured in the same run, on one machine.

    .venv/bin/python loadtests/bench_resolve.py            # both servers, 3 runs, 1M rows

Loads 1,000,000 identifiers into PostgreSQL (once; reused while the table holds them), then
for each server (granian, uvicorn) with the same worker count starts the node and the ceiling
apps of loadtests/ceiling.py and drives each with wrk (1 thread, 64 connections):

  hot       one handle, cache on               vs  raw ASGI app returning the same bytes
  half      p99 at half the hot rate (hey, fixed rate)
  cold      uniform over 1M, cache off         vs  raw ASGI + asyncpg primary-key lookup
  zipf      Zipf s=1.1 over 1M, 100k-entry cache (hit ratio from /api/v1/node/cache)
  notfound  10,000 unknown handles, repeatedly (store lookups counted by the node)
  recursive Zipf through a second node whose upstream is the first

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
import socket
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

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "loadtests" / "results"
ADMIN = "bench-operator-token"
PREFIX = "88.999.1"
HOT = f"{PREFIX}/B0000001"


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
    sample = permutation[np.searchsorted(cdf, rng.random(200_000))]
    zipf = work / "zipf.lua"
    zipf.write_text(
        "local ids = {" + ",".join(str(int(i)) for i in sample) + "}\n"
        "local n = 0\n"
        "request = function()\n  n = n % #ids + 1\n"
        f'  return wrk.format("GET", string.format("/api/handles/{PREFIX}/B%07d", ids[n]))\nend\n'
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
    return {"zipf": zipf, "uniform": uniform, "notfound": notfound}


# --- processes ---


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    def __init__(self, command: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        with log.open("w") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent
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
    port = _port()
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
    port = _port()
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
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)) for p in ("50", "99")}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rate, "p50_ms": latency["50"], "p99_ms": latency["99"],
            "non2xx": float(errors.group(1)) if errors else 0.0}  # fmt: skip


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
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
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
    result: dict[str, Any] = {"server": server}
    hot_url = f"/api/handles/{HOT}"

    node = _node(server, w, dsn, work, "node", cache_max_entries="100000")
    try:
        body = httpx.get(node.url + hot_url).content
        (work / "hot.json").write_bytes(body)
        wrk(node.url + hot_url, 2)  # warm up
        result["hot"] = wrk(node.url + hot_url, d)
        result["half"] = hey_fixed_rate(node.url + hot_url, result["hot"]["rps"] / 2, d)
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
            result["recursive"] = wrk(edge.url, d, scripts["zipf"])
        finally:
            edge.stop()
    finally:
        node.stop()

    cold = _node(server, w, dsn, work, "cold", cache_max_entries="0")
    try:
        wrk(cold.url, 2, scripts["uniform"])
        result["cold"] = wrk(cold.url, d, scripts["uniform"])
    finally:
        cold.stop()

    ceiling = _ceiling(server, w, "bytes_app", {"CEILING_BODY_FILE": str(work / "hot.json")}, work)
    try:
        wrk(ceiling.url + hot_url, 2)
        result["hot_ceiling"] = wrk(ceiling.url + hot_url, d)
    finally:
        ceiling.stop()
    lookup = _ceiling(server, w, "lookup_app", {"CEILING_DSN": dsn}, work)
    try:
        wrk(lookup.url, 2, scripts["uniform"])
        result["cold_ceiling"] = wrk(lookup.url, d, scripts["uniform"])
    finally:
        lookup.stop()
    _print_run(result)
    return result


def _ratio(before: dict[str, float], after: dict[str, float]) -> float:
    hits = after["hits"] - before["hits"]
    answered = hits + after["misses"] - before["misses"]
    return hits / answered if answered else 0.0


def _print_run(r: dict[str, Any]) -> None:
    for name in (
        "hot",
        "hot_ceiling",
        "half",
        "cold",
        "cold_ceiling",
        "zipf",
        "notfound",
        "recursive",
    ):
        m = r[name]
        print(
            f"  {name:13s} {m['rps']:10,.0f} req/s  p50 {m['p50_ms']:6.2f} ms  p99 {m['p99_ms']:6.2f} ms"
        )


# --- summary ---


def _summarise(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for server in args.servers:
        mine = [r for r in runs if r["server"] == server]

        def med(scenario: str, field: str, mine: list[dict[str, Any]] = mine) -> float:
            return statistics.median(r[scenario][field] for r in mine)

        s = {name: {f: med(name, f) for f in ("rps", "p50_ms", "p99_ms")}
             for name in ("hot", "hot_ceiling", "half", "cold", "cold_ceiling", "zipf", "notfound", "recursive")}  # fmt: skip
        s["ratios"] = {
            "hot_vs_ceiling": s["hot"]["rps"] / s["hot_ceiling"]["rps"],
            "cold_vs_ceiling": s["cold"]["rps"] / s["cold_ceiling"]["rps"],
            "zipf_vs_hot": s["zipf"]["rps"] / s["hot"]["rps"],
            "recursive_vs_hot": s["recursive"]["rps"] / s["hot"]["rps"],
        }
        s["zipf"]["hit_ratio"] = med("zipf", "hit_ratio")
        s["notfound"]["store_lookups"] = med("notfound", "store_lookups")
        s["notfound"]["requests"] = med("notfound", "requests")
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
        print(
            f"  zipf       {s['zipf']['rps']:9,.0f} req/s   hit ratio {s['zipf']['hit_ratio']:.3f}   vs hot {r['zipf_vs_hot']:.2f} (targets >= 0.90, >= 0.6)"
        )
        print(
            f"  notfound   {s['notfound']['rps']:9,.0f} req/s   store lookups {s['notfound']['store_lookups']:,.0f} for {s['notfound']['requests']:,.0f} requests over 10,000 handles"
        )
        print(f"  recursive  {s['recursive']['rps']:9,.0f} req/s   vs hot {r['recursive_vs_hot']:.2f}")  # fmt: skip


def _chart(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["hot", "hot_ceiling", "cold", "cold_ceiling", "zipf", "notfound", "recursive"]
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
