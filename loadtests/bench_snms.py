"""SNMS ``batchCreate`` against the node's own batch endpoint, on the same rows in one run.

    .venv/bin/python loadtests/bench_snms.py [--rows 40000] [--runs 3]

Makes a fresh PostgreSQL database, starts ``idnode serve --server uvicorn`` (one process) on
it, allocates one enterprise, makes an SNMS user and logs it in, and creates an SNMS template
(four string items, as SNMS integrations define them). The ``--rows`` identifiers are built
before timing, once as SNMS records and once as the same registrations in the node's own
shape (same handles, template and values). Each run empties the identifier tables before each
of four measurements: SNMS ``POST /identityv2/data/batchCreate`` and the node's
``POST /api/v1/identifiers:batch`` (a JSON array), both in calls of 2,000 items, first one call
at a time and then from 4 parallel clients. Prints identifiers/s of each, medians and the
SNMS/node ratios. Needs PostgreSQL on 127.0.0.1:5432 (trust).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.node import emptied, start_on_fresh_database

TOKEN = "bench-operator-token"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}
DATABASE = "idnode_bench_snms"
PER_CALL = 2000  # SNMS's limit per batch call
CLIENTS = 4
VERSION = "单品模板1"
ITEMS = [("产品名称", "productName"), ("批次号", "batchNo"), ("产地", "origin"), ("规格", "spec")]
Calls = list[bytes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="idnode-snmsbench-"))
    base, node = start_on_fresh_database(work, DATABASE, TOKEN, "--server", "uvicorn")
    try:
        prefix, snms_headers, template_id = _set_up(base)
        snms_calls, node_calls = _requests(prefix, template_id, args.rows)
        print(f"{args.rows:,} identifiers in calls of {PER_CALL:,}; load: {_load()}")
        figures: dict[str, list[float]] = {}
        for run in range(1, args.runs + 1):
            measured = {
                "snms 1 client": lambda: _rate(base, _snms, snms_calls, snms_headers, 1),
                "node 1 client": lambda: _rate(base, _native, node_calls, OPERATOR, 1),
                f"snms {CLIENTS} clients": lambda: _rate(
                    base, _snms, snms_calls, snms_headers, CLIENTS
                ),
                f"node {CLIENTS} clients": lambda: _rate(
                    base, _native, node_calls, OPERATOR, CLIENTS
                ),
            }
            line = []
            for name, measure in measured.items():
                asyncio.run(emptied(DATABASE))
                figures.setdefault(name, []).append(measure())
                line.append(f"{name} {figures[name][-1]:,.0f}/s")
            print(f"run {run}: " + "; ".join(line))
        medians = {name: statistics.median(rates) for name, rates in figures.items()}
        for name, rate in medians.items():
            print(f"median {name}: {rate:,.0f} identifiers/s")
        for clients in ("1 client", f"{CLIENTS} clients"):
            ratio = medians[f"snms {clients}"] / medians[f"node {clients}"]
            print(f"SNMS / node, {clients}: {ratio:.2f}")
        print(f"load at the end: {_load()}")
    finally:
        node.terminate()
        node.wait(timeout=30)


def _set_up(base: str) -> tuple[str, dict[str, str], str]:
    """An enterprise, its SNMS login and template; (prefix, SNMS headers, node template id)."""
    with httpx.Client(base_url=base, timeout=60) as client:
        made = client.post("/api/v1/enterprises", json={"name": "SNMS Dairy"}, headers=OPERATOR)
        made.raise_for_status()
        prefix = str(made.json()["prefix"])
        user = {"username": "bench-mes", "password": "bench-password-1"}
        client.post(
            f"/api/v1/enterprises/{prefix}/users", json=user, headers=OPERATOR
        ).raise_for_status()
        token = _ok(client.post("/identity/token", json=user))["token"]
        headers = {"Authorization": f"Bearer {token}"}
        template = {
            "prefix": prefix,
            "version": VERSION,
            "industryCategory": "C",
            "industrySpecific": "14",
            "industryTrade": "144",
            "industrySubclass": "1441",
            "type": 1,
            "items": [
                {
                    "name": name,
                    "idType": id_type,
                    "idIndex": str(2000 + n),
                    "required": True,
                    "metadata": {"type": "string", "minLength": 1, "maxLength": 64},
                }
                for n, (name, id_type) in enumerate(ITEMS)
            ],
        }
        _ok(client.post("/snms/api/v5/template", json=template, headers=headers))
        shown = _ok(
            client.get(
                "/snms/api/v5/template",
                params={"prefix": prefix, "version": VERSION},
                headers=headers,
            )
        )
        listed = client.get("/api/v1/templates", headers=OPERATOR).json()
        template_id = next(t["id"] for t in listed if t["title"]["zh"] == VERSION)
        assert [i["idIndex"] for i in shown["items"]] == [2000, 2001, 2002, 2003]
        return prefix, headers, template_id


def _requests(prefix: str, template_id: str, rows: int) -> tuple[Calls, Calls]:
    """The same registrations as SNMS calls and as node calls, serialised before timing."""
    snms, node = [], []
    for start in range(0, rows, PER_CALL):
        records, bodies = [], []
        for n in range(start, min(start + PER_CALL, rows)):
            handle = f"{prefix}/SNMS-{n:08d}"
            values = {"productName": "纯牛奶 250ml", "batchNo": f"B{n:08d}", "origin": "内蒙古",
                      "spec": "250ml*24"}  # fmt: skip
            records.append(
                {
                    "handle": handle,
                    "templateVersion": VERSION,
                    "value": [
                        {
                            "index": 2000 + i,
                            "type": t,
                            "auth": "",
                            "data": {"format": "string", "value": values[t]},
                        }
                        for i, (_, t) in enumerate(ITEMS)
                    ],
                }
            )
            bodies.append({"handle": handle, "template": template_id, "attributes": values})
        snms.append(orjson.dumps(records))
        node.append(orjson.dumps(bodies))
    return snms, node


def _snms(client: httpx.Client, body: bytes, headers: dict[str, str]) -> int:
    answer = client.post("/identityv2/data/batchCreate", content=body, headers=headers)
    return sum(1 for item in _ok(answer) if item["code"] == 1)


def _native(client: httpx.Client, body: bytes, headers: dict[str, str]) -> int:
    answer = client.post("/api/v1/identifiers:batch", content=body, headers=headers)
    answer.raise_for_status()
    return int(answer.json()["accepted"])


def _rate(
    base: str,
    send: Callable[[httpx.Client, bytes, dict[str, str]], int],
    calls: Calls,
    headers: dict[str, str],
    clients: int,
) -> float:
    """Identifiers/s over all ``calls``, spread over ``clients`` parallel clients."""
    sent = {**headers, "Content-Type": "application/json"}
    shares = [calls[n::clients] for n in range(clients)]

    def client_run(share: Calls) -> int:
        with httpx.Client(base_url=base, timeout=None) as client:
            return sum(send(client, body, sent) for body in share)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        created = sum(pool.map(client_run, shares))
    elapsed = time.perf_counter() - start
    expected = sum(len(orjson.loads(c)) for c in calls)
    if created != expected:
        raise SystemExit(f"only {created} of {expected} identifiers were created")
    return created / elapsed


def _ok(answer: httpx.Response) -> Any:
    body = answer.json()
    if body.get("status") != 1:
        raise SystemExit(f"SNMS call failed: {body}")
    return body["data"]


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    main()
