"""A node killed (SIGKILL) in the middle of a bulk load keeps only whole chunks, and sending
the same batch again with the same idempotency keys completes it: every item exactly once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.registry.templates import FOOD_BATCH
from tests.conftest import OPERATOR, LiveNode, bearer
from tests.reporting.test_node_restart import kill_with_workers

pytestmark = pytest.mark.slow
CHUNK = 50
ITEMS = 600
KILL_AFTER = 4 * CHUNK  # identifiers stored


def counts(url: str, prefix: str) -> tuple[int, int, int]:
    """Identifiers under ``prefix`` (but its ADMIN record), their idempotency keys and their
    history entries."""

    async def read() -> tuple[int, int, int]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                where = {"like": f"{prefix}/%", "admin": f"{prefix}/ADMIN"}
                found = []
                for table in ("handles", "idempotency_keys", "handle_history"):
                    query = text(
                        f"SELECT count(*) FROM {table} WHERE handle LIKE :like AND handle <> :admin"
                    )
                    found.append(int((await conn.execute(query, where)).scalar_one()))
        finally:
            await engine.dispose()
        return found[0], found[1], found[2]

    return asyncio.run(read())


def lines(prefix: str) -> Iterator[bytes]:
    for n in range(ITEMS):
        item = {
            "prefix": prefix,
            "template": "food.batch",
            "idempotencyKey": f"lot-{n}",
            "attributes": {**FOOD_BATCH["example"], "batchNumber": f"B{n}"},
        }
        yield orjson.dumps(item) + b"\n"


def test_a_bulk_load_killed_midway_keeps_whole_chunks_and_a_retry_completes_it(
    live_node: LiveNode,
) -> None:
    live_node.stop()
    live_node.env["IDNODE_BATCH_CHUNK_ROWS"] = str(CHUNK)
    live_node.start("--no-broker")
    database = live_node.env["IDNODE_DATABASE_URL"]
    with httpx.Client(base_url=live_node.url, timeout=60) as http:
        plant = http.post("/api/v1/enterprises", json={"name": "Dairy"}, headers=OPERATOR).json()
    prefix = plant["prefix"]
    headers = {"Content-Type": "application/x-ndjson", **bearer(plant)}
    killed = threading.Event()

    def body() -> Iterator[bytes]:
        # Half the items, then nothing more until the node has stored some chunks and is
        # killed: the load is cut mid-way, as when the machine fails.
        for n, line in enumerate(lines(prefix)):
            if n == ITEMS // 2:
                killed.wait(60)
            yield line

    outcome: list[object] = []

    def send() -> None:
        try:
            with httpx.Client(timeout=60) as client:
                url = f"{live_node.url}/api/v1/identifiers:batch"
                outcome.append(client.post(url, content=body(), headers=headers).status_code)
        except httpx.TransportError:
            outcome.append("cut")

    sender = threading.Thread(target=send)
    sender.start()
    try:
        deadline = time.monotonic() + 60
        while counts(database, prefix)[0] < KILL_AFTER:
            assert time.monotonic() < deadline, "the node stored no chunks"
            time.sleep(0.1)
        assert live_node.process is not None
        kill_with_workers(live_node.process.pid)
        live_node.process.wait(timeout=20)
        live_node.process = None
    finally:
        killed.set()
        sender.join(timeout=60)

    assert outcome == ["cut"]
    stored, keys, history = counts(database, prefix)
    assert 0 < stored < ITEMS
    assert stored % CHUNK == 0, f"{stored} identifiers: a chunk was cut"
    assert keys == history == stored  # each identifier whole: its key and its history

    live_node.start("--no-broker")
    with httpx.Client(base_url=live_node.url, timeout=60) as http:
        answer = http.post(
            "/api/v1/identifiers:batch", content=b"".join(lines(prefix)), headers=headers
        )
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = [orjson.loads(line) for line in answer.content.splitlines()]
    assert results[-1]["summary"] == {"accepted": ITEMS, "rejected": 0}
    created = [r["created"] for r in results[:-1]]
    assert created.count(False) == stored  # the earlier ones answered, not minted again
    assert counts(database, prefix) == (ITEMS, ITEMS, ITEMS)
