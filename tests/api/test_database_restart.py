"""PostgreSQL stopped and started again under a write load: every write the node acknowledged
is there afterwards, whole; every write it refused was refused with a retryable 503; and it
takes writes again once the database is back, by itself."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import OPERATOR, LiveNode, running_node, url_value
from tests.servers import PrivatePostgres, private_postgres

pytestmark = pytest.mark.slow
WRITERS = 4
WRITES = 240  # in all; the database goes away after a third of them


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


@pytest.fixture
def node(postgres: PrivatePostgres, tmp_path: Path) -> Iterator[LiveNode]:
    with running_node(tmp_path, postgres.url, "--no-broker") as live:
        yield live


def values(n: int) -> list[dict[str, Any]]:
    return [
        url_value(f"https://example.com/items/{n}"),
        {"index": 2, "type": "EMAIL", "data": {"format": "string", "value": f"lot{n}@example.com"}},
    ]


async def test_acknowledged_writes_survive_a_database_restart_and_refusals_are_503(
    node: LiveNode, postgres: PrivatePostgres
) -> None:
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        answer = await http.post("/api/v1/enterprises", json={"name": "Dairy"}, headers=OPERATOR)
        plant = answer.json()
        auth = {"Authorization": f"Bearer {plant['token']}"}
        numbers = iter(range(WRITES))
        answers: dict[int, httpx.Response] = {}
        outage_started = asyncio.Event()
        outage_over = asyncio.Event()

        async def writer() -> None:
            for n in numbers:
                if n == WRITES // 3:
                    outage_started.set()
                if n >= 2 * WRITES // 3:
                    await outage_over.wait()  # the last third after the database is back
                answers[n] = await http.put(
                    f"/api/handles/{plant['prefix']}/LOT-{n}",
                    json={"values": values(n)},
                    headers=auth,
                )

        async def restart() -> None:
            await outage_started.wait()
            await asyncio.to_thread(postgres.stop)
            await asyncio.sleep(1)
            await asyncio.to_thread(postgres.start)
            outage_over.set()

        async with asyncio.timeout(120):
            await asyncio.gather(restart(), *(writer() for _ in range(WRITERS)))

        statuses = Counter(a.status_code for a in answers.values())
        assert set(statuses) <= {201, 503}, statuses  # never a 500
        assert statuses[503] > 0, "the load never met the outage"
        for answer in answers.values():
            if answer.status_code == 503:
                assert answer.headers["retry-after"] == "5"
                assert answer.json()["responseCode"] == 3
        after = [answers[n].status_code for n in range(2 * WRITES // 3, WRITES)]
        assert after == [201] * len(after)  # recovered by itself

        for n, answer in answers.items():
            stored = await http.get(f"/api/handles/{plant['prefix']}/LOT-{n}")
            if answer.status_code == 201:
                assert stored.status_code == 200, stored.text
            if stored.status_code == 200:  # a refused write may have committed: then whole
                got = {v["index"]: v["data"]["value"] for v in stored.json()["values"]}
                assert got[1] == f"https://example.com/items/{n}"
                assert got[2] == f"lot{n}@example.com"
            else:
                assert stored.status_code == 404, stored.text
