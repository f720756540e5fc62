"""Large tables on PostgreSQL: what an identifier costs on disk, and whether resolving slows
down as the tables grow.

    .venv/bin/python loadtests/bench_scale.py [--rows 10000000] [--first 1000000]
                                              [--per-call 100000] [--duration 10]

Makes a fresh database ``idnode_bench_scale``, starts ``idnode serve --server uvicorn`` on it
and loads ``--rows`` identifiers through the bulk path (``POST /api/v1/identifiers:batch``),
a mix of the bundled templates as a dairy and drug plant would register them: 40 %
``vaccine.unit``, 30 % ``food.batch``, 20 % ``drug.batch``, 10 % ``vetdrug.package`` (each
unit with its unique trace code). At ``--first`` rows and again at ``--rows`` it stops to
measure, after ``ANALYZE``:

- bytes on disk per identifier: tables with their indexes and TOAST (records, searchable
  attributes, unique codes, history, references, outbox), and the whole database;
- cold resolution: a second node with its cache off (``IDNODE_CACHE_MAX_ENTRIES=0``), wrk
  asking for identifiers drawn uniformly from all those loaded (rate, p50, p99);

and at the end the bulk rate over the whole load, the time of ``VACUUM (ANALYZE)`` and of
rebuilding the records' indexes (``REINDEX TABLE handles``). The machine's load is recorded
before each part; a part that began on a busy machine is marked and must not be quoted.
Needs PostgreSQL on 127.0.0.1:5432 (trust) and wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.registry.templates import DRUG_BATCH, FOOD_BATCH, VACCINE_UNIT, VETDRUG_PACKAGE
from loadtests.bench_resolve import wrk
from loadtests.machine import check_quiet, snapshot
from loadtests.node import BIN, dsn, free_port, start_on_fresh_database, wait

TOKEN = "bench-operator-token"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}
DATABASE = "idnode_bench_scale"
# Every table a registration writes, and what it holds.
TABLES = {
    "handles": "records",
    "attribute_values": "searchable attributes",
    "unique_attribute_values": "unique codes",
    "handle_history": "history",
    "handle_references": "references",
    "outbox": "outbox (reports to the top-level node)",
}
# Ten slots: the template mix, in tenths.
MIX = ["vaccine.unit"] * 4 + ["food.batch"] * 3 + ["drug.batch"] * 2 + ["vetdrug.package"]


def main() -> None:
    args = _arguments()
    work = Path(tempfile.mkdtemp(prefix="idnode-scalebench-"))
    results: dict[str, Any] = {"rows": args.rows, "first": args.first, "before": snapshot()}
    base, loader = start_on_fresh_database(work, DATABASE, TOKEN, "--server", "uvicorn")
    try:
        prefix = _enterprise(base)
        loaded, seconds = 0, 0.0
        for target in (args.first, args.rows):
            results[f"load_{target}"] = check_quiet(f"loading to {target:,}")
            seconds += _load(base, prefix, loaded, target, args.per_call)
            loaded = target
            print(f"loaded {loaded:,} identifiers, {loaded / seconds:,.0f}/s so far", flush=True)
            results[f"at_{target}"] = _measure(work, prefix, loaded, args.duration)
        results["bulk_rate"] = args.rows / seconds
        results["maintenance"] = asyncio.run(_maintenance())
    finally:
        loader.terminate()
        loader.wait(timeout=60)
    results["after"] = snapshot()
    _print(results)
    out = (
        Path(__file__).parent
        / "results"
        / f"scale-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    )
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"results in {out}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--first", type=int, default=1_000_000)
    parser.add_argument("--per-call", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    args = parser.parse_args()
    if not 0 < args.first < args.rows:
        parser.error("--first must be between 0 and --rows")
    return args


# --- loading ---


def _request(prefix: str, n: int) -> dict[str, Any]:
    """The ``n``-th identifier of the mix: its template's example with unique codes."""
    template = MIX[n % len(MIX)]
    handle = f"{prefix}/S{n:09d}"
    if template == "vaccine.unit":
        attributes = {**VACCINE_UNIT["example"], "traceCode": f"81{n:018d}"}
    elif template == "food.batch":
        attributes = {**FOOD_BATCH["example"], "batchNumber": f"B{n:09d}"}
    elif template == "drug.batch":
        attributes = {
            **DRUG_BATCH["example"],
            "batchNumber": f"{n:09d}",
            "traceCode": f"82{n:018d}",
        }
    else:
        attributes = {**VETDRUG_PACKAGE["example"], "traceCode": f"2026030112345{n:011d}"}
    return {"handle": handle, "template": template, "attributes": attributes}


def _pieces(prefix: str, start: int, stop: int, per_call: int) -> Iterator[bytes]:
    for first in range(start, stop, per_call):
        last = min(stop, first + per_call)
        yield b"".join(orjson.dumps(_request(prefix, n)) + b"\n" for n in range(first, last))


def _load(base: str, prefix: str, start: int, stop: int, per_call: int) -> float:
    """Identifiers ``start`` to ``stop`` through the bulk endpoint; seconds spent sending
    (each call's body is built before its clock starts)."""
    headers = {**OPERATOR, "Content-Type": "application/x-ndjson"}
    spent = 0.0
    with httpx.Client(timeout=None) as client:
        for piece in _pieces(prefix, start, stop, per_call):
            began = time.perf_counter()
            answer = client.post(f"{base}/api/v1/identifiers:batch", content=piece, headers=headers)
            spent += time.perf_counter() - began
            answer.raise_for_status()
            summary = orjson.loads(answer.content.rsplit(b"\n", 2)[-2])["summary"]
            if summary["rejected"]:
                raise SystemExit(f"rows rejected: {summary}; first lines: {answer.text[:500]}")
    return spent


# --- measuring ---


def _measure(work: Path, prefix: str, loaded: int, duration: int) -> dict[str, Any]:
    result: dict[str, Any] = {"sizes": asyncio.run(_sizes())}
    result["quiet"] = check_quiet(f"cold resolution at {loaded:,}")
    result["cold"] = _cold(work, prefix, loaded, duration)
    return result


async def _sizes() -> dict[str, int]:
    conn = await asyncpg.connect(dsn(DATABASE))
    try:
        await conn.execute("ANALYZE")
        sizes = {
            table: await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table)
            for table in TABLES
        }
        sizes["database"] = await conn.fetchval("SELECT pg_database_size(current_database())")
        sizes["handle_indexes"] = await conn.fetchval("SELECT pg_indexes_size('handles')")
        return sizes
    finally:
        await conn.close()


def _cold(work: Path, prefix: str, loaded: int, duration: int) -> dict[str, float]:
    """A node with its cache off, asked for identifiers drawn uniformly from those loaded."""
    script = work / f"uniform-{loaded}.lua"
    script.write_text(
        "math.randomseed(17)\nrequest = function()\n"
        f'  return wrk.format("GET", string.format("/api/handles/{prefix}/S%09d", '
        f"math.random(0, {loaded - 1})))\nend\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "IDNODE_DATABASE_URL": dsn(DATABASE).replace("postgresql://", "postgresql+asyncpg://"),
        "IDNODE_ADMIN_TOKEN": TOKEN,
        "IDNODE_CACHE_MAX_ENTRIES": "0",
    }
    command = [str(BIN / "idnode"), "serve", "--port", str(port), "--no-migrate", "--no-broker",
               "--handle-port", "0"]  # fmt: skip
    with (work / f"cold-{loaded}.log").open("w") as log:
        node = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    try:
        base = f"http://127.0.0.1:{port}"
        wait(base, node)
        wrk(base + "/", 2, script)  # warm up the connections
        measured = wrk(base + "/", duration, script)
    finally:
        node.terminate()
        node.wait(timeout=30)
    if measured["non2xx"]:
        raise SystemExit(f"{measured['non2xx']:.0f} answers were not 200: {measured}")
    return measured


async def _maintenance() -> dict[str, float]:
    conn = await asyncpg.connect(dsn(DATABASE), command_timeout=None)
    try:
        timings = {}
        for name, statement in (("vacuum_analyze", "VACUUM (ANALYZE)"),
                                ("reindex_handles", "REINDEX TABLE handles")):  # fmt: skip
            check_quiet(name)
            began = time.perf_counter()
            await conn.execute(statement)
            timings[name] = time.perf_counter() - began
        return timings
    finally:
        await conn.close()


def _enterprise(base: str) -> str:
    answer = httpx.post(
        f"{base}/api/v1/enterprises", json={"name": "Scale Dairy"}, headers=OPERATOR, timeout=30
    )
    answer.raise_for_status()
    return str(answer.json()["prefix"])


# --- report ---


def _print(results: dict[str, Any]) -> None:
    print(f"\nload average {results['before']['load']} -> {results['after']['load']}, "
          f"{results['before']['cpus']} CPUs")  # fmt: skip
    print(f"bulk rate over the whole load: {results['bulk_rate']:,.0f} identifiers/s")
    counts = (results["first"], results["rows"])
    print(f"{'bytes per identifier':<40}" + "".join(f"{n:>14,}" for n in counts))
    for table, what in (*TABLES.items(), ("handle_indexes", "of which the records' indexes"),
                        ("database", "whole database")):  # fmt: skip
        per = [results[f"at_{n}"]["sizes"][table] / n for n in counts]
        print(f"  {what:<38}" + "".join(f"{p:>14,.0f}" for p in per))
    for n in counts:
        cold, quiet = results[f"at_{n}"]["cold"], results[f"at_{n}"]["quiet"]
        mark = " (BUSY: do not quote)" if quiet["busy"] else ""
        print(f"cold resolution at {n:>12,}: {cold['rps']:,.0f}/s, p50 {cold['p50_ms']:.2f} ms, "
              f"p99 {cold['p99_ms']:.2f} ms (load average {quiet['load']}){mark}")  # fmt: skip
    small, large = (results[f"at_{n}"]["cold"] for n in counts)
    print(
        f"cold rate at {counts[1]:,} / at {counts[0]:,}: {large['rps'] / small['rps']:.2f}; "
        f"p99 {large['p99_ms'] / small['p99_ms']:.2f}x"
    )
    for name, seconds in results["maintenance"].items():
        print(f"{name} at {counts[1]:,}: {seconds:.1f} s")


if __name__ == "__main__":
    main()
