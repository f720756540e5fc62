"""The node behind PgBouncer in transaction pooling mode (a real PgBouncer of the test's own,
with two server connections for many client ones): every write path, cold reads, and the
cache listener on its direct connection, with no server error."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError

from app.settings import Settings
from tests.api.test_batch import NDJSON, URL, food
from tests.conftest import OPERATOR_TOKEN, LiveNode, bearer, create_enterprise, fresh_pg_database
from tests.servers import private_pgbouncer

IDENTIFIERS = 60
BATCH = 300


def _values(data: str) -> dict[str, Any]:
    return {"values": [{"index": 1, "type": "URL", "data": data}]}


async def _scenario(a: str, b: str) -> Counter[int]:
    """Writes through node A, reads through node B (cache misses, in parallel), then a change
    through A that B must see. Every status code, counted."""
    statuses: Counter[int] = Counter()
    async with (
        httpx.AsyncClient(base_url=a, timeout=30) as node_a,
        httpx.AsyncClient(base_url=b, timeout=30) as node_b,
    ):
        dairy = await create_enterprise(node_a, "Pooled Dairy")
        prefix, owner = dairy["prefix"], bearer(dairy)
        writes = await asyncio.gather(
            *(
                node_a.put(
                    f"/api/handles/{prefix}/P-{n}", json=_values(f"https://x/{n}"), headers=owner
                )
                for n in range(IDENTIFIERS)
            )
        )
        statuses.update(w.status_code for w in writes)
        body = b"".join(orjson.dumps(food(f"{prefix}/B-{n}")) + b"\n" for n in range(BATCH))
        batch = await node_a.post(URL, content=body, headers={**NDJSON, **owner})
        statuses[batch.status_code] += 1
        summary = orjson.loads(batch.content.splitlines()[-1])["summary"]
        assert summary == {"accepted": BATCH, "rejected": 0}, summary

        handles = [f"{prefix}/P-{n}" for n in range(IDENTIFIERS)]
        handles += [f"{prefix}/B-{n}" for n in range(BATCH)]
        reads = await asyncio.gather(*(node_b.get(f"/api/handles/{h}") for h in handles))
        statuses.update(r.status_code for r in reads)
        assert all(r.status_code == 200 for r in reads), Counter(r.status_code for r in reads)

        # B has P-0 cached; a change through A reaches it by the listener's direct connection.
        changed = await node_a.put(
            f"/api/handles/{prefix}/P-0", json=_values("https://x/changed"), headers=owner
        )
        statuses[changed.status_code] += 1
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            seen = (await node_b.get(f"/api/handles/{prefix}/P-0")).json()["values"][0]
            if seen["data"]["value"] == "https://x/changed":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"node B still answers {seen} 5 s after the change")
    return statuses


@pytest.mark.slow
def test_a_node_behind_pgbouncer_in_transaction_mode(tmp_path: Path) -> None:
    with fresh_pg_database("pgbouncer") as (name, direct), private_pgbouncer() as bouncer:
        env = {
            **os.environ,
            "IDNODE_DATABASE_URL": bouncer.url(name),
            "IDNODE_DATABASE_TRANSACTION_POOLER": "true",
            "IDNODE_DATABASE_LISTEN_URL": direct,
            "IDNODE_ADMIN_TOKEN": OPERATOR_TOKEN,
            "IDNODE_DATABASE_POOL_SIZE": "8",
        }
        a, b = LiveNode(env, tmp_path), LiveNode(env, tmp_path)
        a.start("--no-broker")  # migrates through the pooler too
        try:
            b.start("--no-broker", "--no-migrate")
            try:
                statuses = asyncio.run(_scenario(a.url, b.url))
            finally:
                b.stop()
        finally:
            a.stop()
        assert not [s for s in statuses if s >= 500], statuses
        for node in (a, b):
            log = node.log.read_text()
            assert "prepared statement" not in log, log[-3000:]


def test_the_listen_url_is_checked_like_the_database_url() -> None:
    with pytest.raises(ValidationError, match="IDNODE_DATABASE_LISTEN_URL is for PostgreSQL"):
        Settings(database_listen_url="sqlite:///x.db")
    with pytest.raises(ValidationError, match="IDNODE_DATABASE_LISTEN_URL is not a URL"):
        Settings(database_listen_url="db.example.com")
    listen = Settings(database_listen_url="postgres://idnode@db/idnode").database_listen_url
    assert listen == "postgresql+asyncpg://idnode@db/idnode"
