"""``idnode serve`` with its Handle protocol listener: every worker serves it; a taken port
is said at start-up and the node keeps serving HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import httpx
import pytest

from resolver.handle_protocol.client import HandleClient
from tests.conftest import OPERATOR_TOKEN, LiveNode, free_port

pytestmark = pytest.mark.slow


def node(tmp_path: Path) -> LiveNode:
    env = {
        **os.environ,
        "IDNODE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'live.db'}",
        "IDNODE_ADMIN_TOKEN": OPERATOR_TOKEN,
    }
    return LiveNode(env, tmp_path)


async def resolve_on_many_connections(port: int, handle: str, connections: int) -> list[int]:
    async def one() -> int:
        client = await HandleClient.connect("127.0.0.1", port)
        try:
            return (await client.resolve(handle)).code
        finally:
            await client.close()

    return await asyncio.gather(*(one() for _ in range(connections)))


def test_every_worker_serves_the_handle_port(tmp_path: Path) -> None:
    running = node(tmp_path)
    handle_port = free_port()
    running.start("--workers", "2", "--no-broker", "--handle-port", str(handle_port))
    try:
        created = httpx.post(
            f"{running.url}/api/v1/enterprises",
            json={"name": "Dairy"},
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        )
        assert created.status_code == 201, created.text
        admin = created.json()["adminHandle"]
        codes = asyncio.run(resolve_on_many_connections(handle_port, admin, 40))
        assert codes == [1] * 40
    finally:
        running.stop()
    log = running.log.read_text()
    assert f"Handle protocol on 127.0.0.1:{handle_port}" in log
    assert "native listener off" not in log  # the second worker shared the port


def test_a_taken_handle_port_is_said_and_http_keeps_serving(tmp_path: Path) -> None:
    running = node(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        running.start("--no-broker", "--handle-port", str(taken))
        try:
            assert httpx.get(f"{running.url}/healthz").status_code == 200
        finally:
            running.stop()
    log = running.log.read_text()
    assert f"Handle protocol port 127.0.0.1:{taken}" in log
    assert "IDNODE_HANDLE_PORT" in log
