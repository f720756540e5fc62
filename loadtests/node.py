"""The node a benchmark measures: a free port, ``idnode serve`` started on it in a work
directory (its output in ``node.log`` there), the wait until it answers, and the PostgreSQL
database under it made fresh or emptied of identifiers."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

BIN = Path(sys.executable).parent
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Everything a registration writes, so a run can start again from no identifiers at all.
IDENTIFIER_TABLES = (
    "handles, attribute_values, unique_attribute_values, handle_history, handle_references, "
    "idempotency_keys, outbox"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(
    work: Path, port: int, database_url: str, token: str, *options: str
) -> subprocess.Popen[bytes]:
    """``idnode serve --port <port> <options>`` on ``database_url``, operator token ``token``."""
    env = {**os.environ, "IDNODE_DATABASE_URL": database_url, "IDNODE_ADMIN_TOKEN": token}
    with (work / "node.log").open("w") as log:
        return subprocess.Popen(
            [str(BIN / "idnode"), "serve", "--port", str(port), *options],
            env=env,
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait(base: str, node: subprocess.Popen[bytes]) -> None:
    """Until the node at ``base`` answers; exits the benchmark if it dies or takes over 60 s."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise SystemExit(f"node exited with {node.returncode}")
        try:
            httpx.get(f"{base}/api/v1/templates", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("node did not answer within 60 s")


def start_on_fresh_database(
    work: Path, database: str, token: str, *options: str
) -> tuple[str, subprocess.Popen[bytes]]:
    """A node on PostgreSQL ``database`` made afresh, answering: (its base URL, its process)."""
    url = asyncio.run(fresh_database(database))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    node = serve(work, port, url, token, *options)
    try:
        wait(base, node)
    except BaseException:
        node.terminate()
        node.wait(timeout=30)
        raise
    return base, node


def dsn(database: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{database}"


async def fresh_database(database: str) -> str:
    """``database`` dropped and made again, empty; its URL for ``IDNODE_DATABASE_URL``."""
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"


async def empty(conn: asyncpg.Connection) -> None:
    """Every identifier goes (the node needs only the enterprise and template tables)."""
    await conn.execute(f"TRUNCATE {IDENTIFIER_TABLES}")
    await conn.execute("CHECKPOINT")


async def emptied(database: str) -> None:
    conn = await asyncpg.connect(dsn(database))
    try:
        await empty(conn)
    finally:
        await conn.close()
