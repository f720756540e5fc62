"""A request body that does not arrive in time is refused (408) and its connection closed, on
both servers ``idnode serve`` can run: a slow client cannot hold connections open."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import OPERATOR_TOKEN, LiveNode

pytestmark = pytest.mark.slow

TIMEOUT = 2  # IDNODE_REQUEST_BODY_TIMEOUT for the node under test
CONNECTIONS = 10
PATIENCE = 20.0  # seconds the test waits for each answer, well past the timeout


GRANIAN_KEEPS_SOME_OPEN = pytest.mark.xfail(
    reason="granian (hyper) keeps some refused connections open while their body is still "
    "arriving, despite the 408 and Connection: close, and queues later requests behind them; "
    "not fixed from the ASGI app yet",
    strict=False,
)


@pytest.fixture(params=[pytest.param("granian", marks=GRANIAN_KEEPS_SOME_OPEN), "uvicorn"])
def slow_node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveNode]:
    env = {
        **os.environ,
        "IDNODE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'slow.db'}",
        "IDNODE_ADMIN_TOKEN": OPERATOR_TOKEN,
        "IDNODE_REQUEST_BODY_TIMEOUT": str(TIMEOUT),
    }
    node = LiveNode(env, tmp_path)
    node.start("--server", request.param, "--no-broker")
    try:
        yield node
    finally:
        node.stop()


def _slow_request(port: int) -> socket.socket:
    """A connection that sends its headers and the start of a 100 kB body, then waits."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    sock.sendall(
        b"POST /api/v1/grants HTTP/1.1\r\nHost: idnode.test\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        b'{"grantee": "'
    )
    return sock


def _answer(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """What the node answered by ``deadline``, and whether it closed the connection."""
    received = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            return received, True
        received += chunk
    return received, False


def test_slow_bodies_are_answered_408_and_their_connections_closed(slow_node: LiveNode) -> None:
    sockets = [_slow_request(slow_node.port) for _ in range(CONNECTIONS)]
    deadline = time.monotonic() + PATIENCE
    try:
        answers = [_answer(sock, deadline) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    for answer, closed in answers:
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"RequestTimeout" in answer
        assert closed, answer
