"""Bulk registration on PostgreSQL: identifiers/s through ``POST /api/v1/identifiers:batch``,
against the raw COPY of the same rows into the same tables as the ceiling.

    .venv/bin/python loadtests/bench_bulk.py [--rows 1000000] [--per-call 1000000] [--runs 3]

Makes a fresh database, starts ``idnode serve --server uvicorn`` (one process) on it, allocates one
enterprise, and writes ``--rows`` ``food.batch`` requests as NDJSON to a file beforehand (not
timed). Each run empties the identifier tables and sends the file in calls of ``--per-call``
lines, one after the other, timing from the first byte sent to the last result read. Then the
ceiling: the rows the node stored are dumped (binary COPY to a file), the tables emptied,
and the same rows COPied straight into ``handles`` (and, as the second ceiling, into ``handles`` plus
``attribute_values``, which the node writes too). Prints per-run figures, medians, their
ratio, and the node's peak RSS (VmHWM). Needs PostgreSQL on 127.0.0.1:5432 (trust).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import orjson

from app.registry.templates import FOOD_BATCH

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.machine import process_cpu_seconds
from loadtests.node import dsn, emptied, empty, start_on_fresh_database

TOKEN = "bench-operator-token"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}
DATABASE = "idnode_bench_bulk"
ATTRIBUTES = {k: v for k, v in FOOD_BATCH["example"].items() if k != "batchNumber"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--per-call", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="idnode-bulkbench-"))
    # uvicorn: one process, so its peak RSS is the node's
    base, node = start_on_fresh_database(work, DATABASE, TOKEN, "--server", "uvicorn")
    try:
        prefix = _enterprise(base)
        source = work / "batch.ndjson"
        _write_requests(source, prefix, args.rows)
        print(f"{args.rows:,} food.batch requests, {source.stat().st_size / 1e6:.0f} MB NDJSON")
        node_rates, copy_rates, copy_all_rates = [], [], []
        for run in range(1, args.runs + 1):
            asyncio.run(emptied(DATABASE))
            node_cpu, database_cpu = process_cpu_seconds(node.pid), _database_cpu_seconds()
            rate = _through_endpoint(base, source, args.rows, args.per_call)
            node_cpu = process_cpu_seconds(node.pid) - node_cpu
            database_cpu = _database_cpu_seconds() - database_cpu
            handles_only, with_attributes = asyncio.run(_copy_ceiling(work))
            node_rates.append(rate)
            copy_rates.append(handles_only)
            copy_all_rates.append(with_attributes)
            print(
                f"run {run}: endpoint {rate:,.0f}/s; COPY handles {handles_only:,.0f}/s; "
                f"COPY handles + attribute_values {with_attributes:,.0f}/s "
                f"(node peak RSS so far {_peak_rss_mb(node.pid):.0f} MB)"
            )
            print(
                f"       CPU per identifier: node {node_cpu / args.rows * 1e6:.0f} µs, "
                f"PostgreSQL {database_cpu / args.rows * 1e6:.0f} µs "
                f"(the endpoint took {1e6 / rate:.0f} µs per identifier)"
            )
        endpoint = statistics.median(node_rates)
        ceiling = statistics.median(copy_rates)
        ceiling_all = statistics.median(copy_all_rates)
        print(f"median endpoint: {endpoint:,.0f} identifiers/s")
        print(f"median COPY into handles: {ceiling:,.0f} rows/s (ratio {endpoint / ceiling:.2f})")
        print(
            f"median COPY into handles + attribute_values: {ceiling_all:,.0f} identifiers/s "
            f"(ratio {endpoint / ceiling_all:.2f})"
        )
        print(f"node peak RSS: {_peak_rss_mb(node.pid):.0f} MB")
    finally:
        node.terminate()
        node.wait(timeout=30)


def _write_requests(path: Path, prefix: str, rows: int) -> None:
    with path.open("wb") as out:
        for n in range(rows):
            body = {
                "handle": f"{prefix}/BULK-{n:08d}",
                "template": "food.batch",
                "attributes": {**ATTRIBUTES, "batchNumber": f"B{n:08d}"},
            }
            out.write(orjson.dumps(body) + b"\n")


def _calls(source: Path, per_call: int) -> Iterator[bytes]:
    """The file in pieces of ``per_call`` lines (read before timing starts)."""
    with source.open("rb") as lines:
        while True:
            piece = b"".join(line for _, line in zip(range(per_call), lines, strict=False))
            if not piece:
                return
            yield piece


def _through_endpoint(base: str, source: Path, rows: int, per_call: int) -> float:
    pieces = list(_calls(source, per_call))
    accepted = 0
    headers = {**OPERATOR, "Content-Type": "application/x-ndjson"}
    with httpx.Client(timeout=None) as client:
        start = time.perf_counter()
        for piece in pieces:
            answer = client.post(f"{base}/api/v1/identifiers:batch", content=piece, headers=headers)
            answer.raise_for_status()
            summary = orjson.loads(answer.content.rsplit(b"\n", 2)[-2])["summary"]
            accepted += summary["accepted"]
        elapsed = time.perf_counter() - start
    if accepted != rows:
        raise SystemExit(f"only {accepted} of {rows} accepted: {summary}")
    return rows / elapsed


async def _copy_ceiling(work: Path) -> tuple[float, float]:
    """COPY the rows the node just stored back into the emptied tables, twice (binary COPY
    through files written before the clock starts)."""
    conn = await asyncpg.connect(dsn(DATABASE))
    try:
        dumps = {table: work / f"{table}.copy" for table in ("handles", "attribute_values")}
        for table, path in dumps.items():
            await conn.copy_from_query(f"SELECT * FROM {table}", output=str(path), format="binary")
        rows = await conn.fetchval("SELECT count(*) FROM handles")
        timings = []
        for tables in (("handles",), ("handles", "attribute_values")):
            await empty(conn)
            start = time.perf_counter()
            async with conn.transaction():
                for table in tables:
                    await conn.copy_to_table(table, source=str(dumps[table]), format="binary")
            timings.append(rows / (time.perf_counter() - start))
        return timings[0], timings[1]
    finally:
        await conn.close()


def _enterprise(base: str) -> str:
    answer = httpx.post(
        f"{base}/api/v1/enterprises", json={"name": "Bulk Dairy"}, headers=OPERATOR, timeout=30
    )
    answer.raise_for_status()
    return str(answer.json()["prefix"])


def _database_cpu_seconds() -> float:
    """CPU of every PostgreSQL process (the node's backends among them; processes that end
    in between are missed, which the node's pooled connections do not)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == "postgres":
                total += process_cpu_seconds(int(proc.name))
        except OSError:
            continue
    return total


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    main()
