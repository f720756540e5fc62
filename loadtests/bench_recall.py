"""A recall of a batch with 100,000 units below it: how long until the units' answers carry it.

    .venv/bin/python loadtests/bench_recall.py                 # 100,000 units, 2,000 sampled

Loads into a fresh PostgreSQL database one batch, 1,000 cases referencing it and 100 units
in each case (COPY, as bench_resolve.py loads), then starts two node processes A and B on
it (granian, one worker each). B resolves a random sample of the units until each is in
its cache; the batch is recalled through A (POST .../recall); then B is asked for sampled
units round and round until every one answers with the RECALL value. Reports how long the
recall request took (no unit is rewritten, so it does not grow with the units), how long
until B's first answer carried it (the cache invalidation bound: NOTIFY to B), and until
every sampled unit did. Results go to loadtests/results/recall-<time>.json.
Quote figures only from a run that began on a quiet machine (load average < 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.bench_resolve import ADMIN, BIN, RESULTS, _node

CASES = 1_000
OPERATOR = {"Authorization": f"Bearer {ADMIN}"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2_000)
    parser.add_argument("--database", default="idnode_bench_recall")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    dsn = f"postgresql://postgres@127.0.0.1:5432/{args.database}"
    asyncio.run(_fresh(dsn))
    work = Path(tempfile.mkdtemp(prefix="idnode-bench-recall-"))
    a = _node("granian", 1, dsn, work, "a")
    b = _node("granian", 1, dsn, work, "b")
    try:
        enterprise = httpx.post(f"{a.url}/api/v1/enterprises", json={"name": "Bench Dairy"},
                                headers=OPERATOR).json()  # fmt: skip
        prefix = enterprise["prefix"]
        units = asyncio.run(_load(dsn, prefix, args.units))
        sample = random.Random(7).sample(units, min(args.sample, len(units)))
        figures = _measure(a.url, b.url, f"{prefix}/BATCH", sample)
    finally:
        a.stop()
        b.stop()
    figures.update(units=args.units, sample=len(sample), load_avg=load)
    print(f"{args.units:,} units below the batch (load avg {load:.1f} at start): recall "
          f"request {figures['request_ms']:.1f} ms; B's first answer with the recall "
          f"{figures['first_ms']:.1f} ms after that; all {len(sample):,} sampled units after "
          f"{figures['all_ms']:.0f} ms ({figures['rounds']} rounds of asking)")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"recall-{stamp}.json"
    out.write_text(json.dumps({"args": vars(args), "figures": figures}, indent=2))
    print(f"results: {out}")


def _recalled(answer: httpx.Response) -> bool:
    return any(v["type"] == "RECALL" for v in answer.json()["values"])


def _measure(a: str, b: str, batch: str, sample: list[str]) -> dict[str, Any]:
    with httpx.Client(timeout=10) as http:
        for unit in sample:  # cached on B, without a recall
            assert not _recalled(http.get(f"{b}/api/handles/{unit}"))
        started = time.monotonic()
        answer = http.post(f"{a}/api/v1/identifiers/{batch}/recall", headers=OPERATOR,
                           json={"reason": "bench: recall of a batch"})  # fmt: skip
        answer.raise_for_status()
        answered = time.monotonic()
        request = answered - started
        first = None
        pending, rounds = list(sample), 0
        while pending and time.monotonic() - started < 60:
            rounds += 1
            still = []
            for unit in pending:
                if _recalled(http.get(f"{b}/api/handles/{unit}")):
                    first = first or time.monotonic() - answered
                else:
                    still.append(unit)
            pending = still
        assert not pending, f"{len(pending)} units still without the recall after 60 s"
        done = time.monotonic() - started
    return {"request_ms": request * 1e3, "first_ms": (first or done - request) * 1e3,
            "all_ms": done * 1e3, "rounds": rounds}  # fmt: skip


async def _fresh(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(dsn.rsplit("/", 1)[0] + "/postgres")
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    env = {
        **os.environ,
        "IDNODE_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://"),
    }
    subprocess.run([str(BIN / "idnode"), "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)


async def _load(dsn: str, prefix: str, units: int) -> list[str]:
    """The batch, its cases and the units; the unit handles."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    batch = f"{prefix}/BATCH"
    rows = [_row(prefix, batch, None, stamp, now)]
    per_case = max(1, units // CASES)
    names: list[str] = []
    for c in range(CASES):
        case = f"{prefix}/CASE-{c:04d}"
        rows.append(_row(prefix, case, batch, stamp, now))
        for u in range(per_case):
            unit = f"{prefix}/UNIT-{c:04d}-{u:03d}"
            names.append(unit)
            rows.append(_row(prefix, unit, case, stamp, now))
    print(f"loading {len(rows):,} identifiers ...", flush=True)
    conn = await asyncpg.connect(dsn)
    for start in range(0, len(rows), 50_000):
        await conn.copy_records_to_table(
            "handles", records=rows[start : start + 50_000],
            columns=["handle", "prefix", "values", "created_at", "updated_at"],
        )  # fmt: skip
    await conn.execute("ANALYZE handles")
    await conn.close()
    return names


def _row(
    prefix: str, handle: str, parent: str | None, stamp: str, now: datetime
) -> tuple[Any, ...]:
    values: list[dict[str, Any]] = [
        {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": {
            "handle": f"{prefix}/ADMIN", "index": 300, "permissions": "011111110011"}},
         "ttl": 86400, "timestamp": stamp},
    ]  # fmt: skip
    if parent is not None:
        values.append({"index": 10, "type": "PARENT", "data": {"format": "string", "value": parent},
                       "ttl": 86400, "timestamp": stamp,
                       "references": [{"handle": parent, "index": 1}]})  # fmt: skip
    return (handle, prefix, json.dumps(values), now, now)


if __name__ == "__main__":
    main()
