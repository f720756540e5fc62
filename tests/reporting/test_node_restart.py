"""A node process killed mid-delivery loses no event: after it starts again every event reaches
the top-level node, and any batch sent again carries the same event ids."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import OPERATOR, LiveNode, url_value
from tests.reporting.recorder import Recorder

pytestmark = pytest.mark.slow


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder(delay=0.1)  # a slow top-level node, so the kill lands mid-delivery
    server.start()
    yield server
    server.stop()


def wait_for(check: Any, what: str, within: float = 90) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def kill_with_workers(pid: int) -> None:
    """SIGKILL the server and its worker processes (a killed parent leaves them running)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        os.kill(int(child), signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)


def outbox(url: str) -> list[tuple[str, bool]]:
    async def read() -> list[tuple[str, bool]]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT event_id, delivered_at IS NOT NULL FROM outbox ORDER BY id")
            )
            found = [(r[0], bool(r[1])) for r in rows.all()]
        await engine.dispose()
        return found

    return asyncio.run(read())


def test_a_killed_node_delivers_everything_after_restart(
    live_node: LiveNode, recorder: Recorder
) -> None:
    live_node.stop()
    live_node.env |= {
        "IDNODE_UPSTREAM_REPORT_URL": recorder.url,
        "IDNODE_REPORT_BATCH_SIZE": "5",
        "IDNODE_REPORT_INTERVAL": "0.05",
        "IDNODE_REPORT_MAX_BACKOFF": "0.5",
    }
    live_node.start("--no-broker")
    recorder.public_pem = httpx.get(f"{live_node.url}/api/v1/node/key").text
    with httpx.Client(base_url=live_node.url, timeout=30) as http:
        answer = http.post("/api/v1/enterprises", json={"name": "Yili Dairy"}, headers=OPERATOR)
        dairy = answer.json()
        auth = {"Authorization": f"Bearer {dairy['token']}"}
        for i in range(40):
            answer = http.put(
                f"/api/handles/{dairy['prefix']}/K{i}",
                json={"values": [url_value("https://example.com")]},
                headers=auth,
            )
            assert answer.status_code == 201, answer.text

    wait_for(lambda: len(recorder.accepted()) >= 10, "the first batches")
    assert live_node.process is not None
    kill_with_workers(live_node.process.pid)  # no shutdown: lease and batch abandoned
    live_node.process.wait(timeout=20)
    live_node.process = None
    database = live_node.env["IDNODE_DATABASE_URL"]
    assert not all(delivered for _, delivered in outbox(database))  # it was mid-way

    live_node.start("--no-broker")  # takes over once the dead process's lease expires
    stored = outbox(database)
    wait_for(lambda: len(recorder.accepted()) >= len(stored), "the rest after the restart")
    accepted = [e["id"] for e in recorder.accepted()]
    assert accepted == [event_id for event_id, _ in stored]  # every event, in order
    assert {e["id"] for e in recorder.events} == set(accepted)  # re-sends reuse the ids
    wait_for(lambda: all(delivered for _, delivered in outbox(database)), "all marked")
